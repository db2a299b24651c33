// dh: destination hashing into 256 buckets (net/netfilter/ipvs/ip_vs_dh.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

class Dh final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Dh>(*this); }
  static constexpr unsigned kBits = 8, kSize = 1u << kBits;
  std::string_view name() const override { return "dh"; }
  void update(const Service& s) override {
    table_.assign(kSize, -1);
    if (s.dests.empty()) return;
    for (unsigned i = 0; i < kSize; ++i) table_[i] = int(i % s.dests.size());  // one bucket each, cycling
  }
  int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) override {
    unsigned b = (fold(p.t.dst) * 2654435761u) & (kSize - 1);
    if (scanned) ++*scanned;
    int d = table_.empty() ? -1 : table_[b];
    if (d < 0 || s.dests[size_t(d)].unavailable()) {
      if (why) *why = fmt::format("destination hash: bucket {} has no available destination", b);
      return -1;
    }
    if (why) *why = fmt::format("destination hash: {} -> bucket {} -> {}", p.t.dst.str(), b, dest_str(s.dests[size_t(d)]));
    return d;
  }
  const std::vector<int>* lookup_table() const override { return &table_; }

 private:
  std::vector<int> table_;
};

}  // namespace

std::unique_ptr<Scheduler> make_dh() { return std::make_unique<Dh>(); }

}  // namespace svcpath::ipvs
