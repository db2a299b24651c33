// wlc and sed: weighted least connection and shortest expected delay, one algorithm with two overhead
// functions (net/netfilter/ipvs/ip_vs_wlc.c, ip_vs_sed.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

// wlc and sed share the kernel's shape: the first available dest seeds the minimum, later ones win
// by cross-multiplication (so a weight-0 dest can never win).
template <bool Sed>
class WeightedLeast final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<WeightedLeast>(*this); }
  std::string_view name() const override { return Sed ? "sed" : "wlc"; }
  void update(const Service&) override {}
  static uint64_t oh(const Dest& d) { return Sed ? uint64_t(d.activeconns) + 1 : d.overhead(); }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int n = int(s.dests.size()), least = -1;
    uint64_t loh = 0;
    int i = 0;
    for (; i < n; ++i) {
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (!d.overloaded && d.weight > 0) {
        least = i;
        loh = oh(d);
        break;
      }
    }
    if (least < 0) {
      if (why) *why = fmt::format("{}: no available destination", name());
      return -1;
    }
    for (++i; i < n; ++i) {
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (d.overloaded) continue;
      uint64_t doh = oh(d);
      if (__int128(loh) * d.weight > __int128(doh) * s.dests[size_t(least)].weight) {
        least = i;
        loh = doh;
      }
    }
    const Dest& w = s.dests[size_t(least)];
    if (why)
      *why = fmt::format("{}: {} has the lowest {}/weight = {}/{}", name(), dest_str(w),
                         Sed ? "(active+1)" : "(256*active+inactive)", loh, w.weight);
    return least;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_wlc() { return std::make_unique<WeightedLeast<false>>(); }
std::unique_ptr<Scheduler> make_sed() { return std::make_unique<WeightedLeast<true>>(); }

}  // namespace svcpath::ipvs
