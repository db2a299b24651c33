// sh: source hashing into 256 buckets, optional port and fallback flags (net/netfilter/ipvs/ip_vs_sh.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

// hash_32 of include/linux/hash.h (GOLDEN_RATIO_32).
uint32_t hash_32(uint32_t v, unsigned bits) { return (v * 0x61C88647u) >> (32 - bits); }

class Sh final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Sh>(*this); }
  static constexpr unsigned kBits = 8, kSize = 1u << kBits;
  std::string_view name() const override { return "sh"; }
  void update(const Service& s) override {
    // ip_vs_sh_reassign: walk the buckets, each dest takes `weight` buckets in a row (at least one).
    table_.assign(kSize, -1);
    if (s.dests.empty()) return;
    size_t p = 0;
    int count = 0;
    for (unsigned i = 0; i < kSize; ++i) {
      table_[i] = int(p);
      if (++count >= s.dests[p].weight) {
        p = (p + 1) % s.dests.size();
        count = 0;
      }
    }
  }
  int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) override {
    uint16_t port = (s.sched_flags & flag::SH_PORT) ? p.t.sport : 0;
    auto key = [&](unsigned offset) { return (offset + hash_32(uint32_t(port) + fold(p.t.src), kBits)) & (kSize - 1); };
    unsigned ih = key(0);
    int d = table_.empty() ? -1 : table_[ih];
    if (scanned) ++*scanned;
    if (d >= 0 && !s.dests[size_t(d)].unavailable()) {
      if (why) *why = fmt::format("source hash: bucket {} -> {}", ih, dest_str(s.dests[size_t(d)]));
      return d;
    }
    if (d < 0 || !(s.sched_flags & flag::SH_FALLBACK)) {
      if (why) *why = fmt::format("source hash: bucket {} has no available destination", ih);
      return -1;
    }
    for (unsigned off = 0; off < kSize; ++off) {
      unsigned b = key((off + ih) % kSize);
      if (scanned) ++*scanned;
      int x = table_[b];
      if (x < 0) break;
      if (!s.dests[size_t(x)].unavailable()) {
        if (why)
          *why = fmt::format("source hash: bucket {} unavailable, fallback bucket {} -> {}", ih, b, dest_str(s.dests[size_t(x)]));
        return x;
      }
    }
    if (why) *why = "source hash: no available destination in any bucket";
    return -1;
  }
  const std::vector<int>* lookup_table() const override { return &table_; }

 private:
  std::vector<int> table_;
};

}  // namespace

std::unique_ptr<Scheduler> make_sh() { return std::make_unique<Sh>(); }

}  // namespace svcpath::ipvs
