#pragma once
// IPVS placed on a datapath where the kernel registers it (ip_vs_ops4): the request path at
// LOCAL_IN 99 and LOCAL_OUT -98, the reply path at LOCAL_IN 98, LOCAL_OUT -99 and FORWARD 100.
// NAT (masq) forwarding: a request scheduled at LOCAL_IN is rewritten, marked ipvs_property and
// re-injected at LOCAL_OUT, so it meets OUTPUT and POSTROUTING but never FORWARD.
#include <memory>

#include "ipvs/ipvs.hpp"
#include "netfilter/datapath.hpp"

namespace svcpath::ipvs {

namespace prio {
inline constexpr int IN_LOCAL_IN = 99, OUT_LOCAL_IN = 98, OUT_LOCAL_OUT = -99, IN_LOCAL_OUT = -98, OUT_FORWARD = 100;
}

class Engine {
 public:
  Engine(unsigned conn_bits = 12, uint32_t conn_rnd = 0x9e3779b9u) : conns(conn_bits, conn_rnd) {}

  ServiceTable services;
  ConnTable conns;
  Timeouts timeouts;

  /// Registers IPVS's five hook functions on dp (the engine must outlive dp).
  void attach(nf::Datapath& dp);

  // The hook functions.
  Verdict in(Hook h, Packet& p, nf::HookContext& ctx) noexcept;
  Verdict out(Hook h, Packet& p, nf::HookContext& ctx) noexcept;

 private:
  class InStage;
  class OutStage;
  void expire(Conn& c);
  void set_state(Conn& c, Service& s, ConnState next);
  std::vector<std::unique_ptr<nf::Stage>> stages_;
};

}  // namespace svcpath::ipvs
