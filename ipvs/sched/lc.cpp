// lc: least connection by the kernel's overhead 256*active+inactive (net/netfilter/ipvs/ip_vs_lc.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

class Lc final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Lc>(*this); }
  std::string_view name() const override { return "lc"; }
  void update(const Service&) override {}
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int least = -1;
    uint64_t loh = 0;
    for (int i = 0; i < int(s.dests.size()); ++i) {
      const Dest& d = s.dests[size_t(i)];
      if (scanned) ++*scanned;
      if (d.overloaded || d.weight == 0) continue;
      if (least < 0 || d.overhead() < loh) {
        least = i;
        loh = d.overhead();
      }
    }
    if (why)
      *why = least < 0
                 ? "least connection: no available destination"
                 : fmt::format("least connection: {} has the lowest overhead 256*{}+{} = {}", dest_str(s.dests[size_t(least)]),
                               s.dests[size_t(least)].activeconns, s.dests[size_t(least)].inactconns, loh);
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_lc() { return std::make_unique<Lc>(); }

}  // namespace svcpath::ipvs
