// nq: never queue, an idle server first, else shortest expected delay (net/netfilter/ipvs/ip_vs_nq.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

class Nq final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Nq>(*this); }
  std::string_view name() const override { return "nq"; }
  void update(const Service&) override {}
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int least = -1;
    uint64_t loh = 0;
    for (int i = 0; i < int(s.dests.size()); ++i) {
      const Dest& d = s.dests[size_t(i)];
      if (scanned) ++*scanned;
      if (d.overloaded || d.weight == 0) continue;
      uint64_t doh = uint64_t(d.activeconns) + 1;
      if (d.activeconns == 0) {
        if (why) *why = fmt::format("never queue: {} is idle", dest_str(d));
        return i;
      }
      if (least < 0 || __int128(loh) * d.weight > __int128(doh) * s.dests[size_t(least)].weight) {
        least = i;
        loh = doh;
      }
    }
    if (why)
      *why = least < 0
                 ? "never queue: no available destination"
                 : fmt::format("never queue: none idle; {} has the lowest (active+1)/weight", dest_str(s.dests[size_t(least)]));
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_nq() { return std::make_unique<Nq>(); }

}  // namespace svcpath::ipvs
