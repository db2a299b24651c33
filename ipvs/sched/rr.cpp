// rr: round robin over the kernel list, a cursor that survives edits (net/netfilter/ipvs/ip_vs_rr.c).
#include "ipvs/sched/schedulers.hpp"

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

class Rr final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Rr>(*this); }
  std::string_view name() const override { return "rr"; }
  void update(const Service&) override {}
  void removing(const Service& s, int i) override {
    if (cursor_ == key(s.dests[size_t(i)])) cursor_ = i == 0 ? Key{} : key(s.dests[size_t(i - 1)]);
  }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    // The cursor is a list node: scan after it to the end, then from the start up to it.
    int n = int(s.dests.size());
    int at = -1;
    for (int i = 0; i < n; ++i)
      if (key(s.dests[size_t(i)]) == cursor_) at = i;
    for (int k = 1; k <= n; ++k) {
      int i = (at + k) % (n + 1);
      if (i == n) {
        if (at == -1) break;  // started at the head: one pass is all
        continue;
      }
      if (scanned) ++*scanned;
      if (!s.dests[size_t(i)].overloaded && s.dests[size_t(i)].weight > 0) {
        cursor_ = key(s.dests[size_t(i)]);
        if (why) *why = fmt::format("round robin: next available after the cursor is {}", dest_str(s.dests[size_t(i)]));
        return i;
      }
    }
    if (at >= 0 && at < n) {
      // The cursor's own node is checked last, after a full turn.
      if (scanned) ++*scanned;
      if (!s.dests[size_t(at)].overloaded && s.dests[size_t(at)].weight > 0) {
        if (why) *why = fmt::format("round robin: only {} is available", dest_str(s.dests[size_t(at)]));
        return at;
      }
    }
    if (why) *why = "round robin: no available destination";
    return -1;
  }

 private:
  // A destination's identity in its service (ip_vs_lookup_dest): address and port. The kernel's
  // cursor is a list node; a value key survives clone() and costs no allocation per packet.
  struct Key {
    Addr addr;
    uint16_t port = 0;
    bool set = false;  // false: the list head
    bool operator==(const Key&) const = default;
  };
  static Key key(const Dest& d) { return {d.addr, d.port, true}; }
  Key cursor_;
};

}  // namespace

std::unique_ptr<Scheduler> make_rr() { return std::make_unique<Rr>(); }

}  // namespace svcpath::ipvs
