// wrr: interleaved weighted round robin stepping the current weight down by the weights' gcd
// (net/netfilter/ipvs/ip_vs_wrr.c).
#include "ipvs/sched/schedulers.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

class Wrr final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Wrr>(*this); }
  std::string_view name() const override { return "wrr"; }
  void update(const Service& s) override {
    int g = 0, mx = 0;
    for (auto& d : s.dests)
      if (d.weight > 0) {
        g = std::gcd(g, d.weight);
        mx = std::max(mx, d.weight);
      }
    di_ = g ? g : 1;
    mw_ = mx - (di_ - 1);
    cursor_ = -1;  // reset to the list head
    if (!bound_) {
      cw_ = mw_;
      bound_ = true;
    } else if (cw_ > mw_ || cw_ == 0) {
      cw_ = mw_;
    } else if (di_ > 1) {
      cw_ = (cw_ / di_) * di_ + 1;
    }
  }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int n = int(s.dests.size());
    if (mw_ <= 0 || n == 0) {
      if (why) *why = "weighted round robin: no destination has weight";
      return -1;
    }
    // Classic LVS interleaved WRR over the kernel list with a head position; bounded so that an
    // all-overloaded service cannot loop.
    long guard = long(n + 1) * (mw_ / di_ + 2) + 2;
    int i = cursor_;
    while (guard-- > 0) {
      i = i + 1;
      if (i >= n) {
        i = -1;
        cw_ -= di_;
        if (cw_ <= 0) cw_ = mw_;
        continue;
      }
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (!d.overloaded && d.weight >= cw_) {
        cursor_ = i;
        if (why) *why = fmt::format("weighted round robin: {} has weight {} >= current weight {}", dest_str(d), d.weight, cw_);
        return i;
      }
    }
    if (why) *why = "weighted round robin: every destination is overloaded";
    return -1;
  }

 private:
  int mw_ = 0, di_ = 1, cw_ = 0, cursor_ = -1;
  bool bound_ = false;
};

}  // namespace

std::unique_ptr<Scheduler> make_wrr() { return std::make_unique<Wrr>(); }

}  // namespace svcpath::ipvs
