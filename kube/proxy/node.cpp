#include "kube/proxy/node.hpp"

#include "kube/proxy/model.hpp"

namespace svcpath::kube {

nf::Node kube_node(const k8s::Cluster& c, const k8s::Node& self, const k8s::ProxyConfig& cfg) {
  using nf::Node, nf::Route;
  Node n;
  int16_t eth0 = n.ensure("eth0");
  for (auto* list : {&self.internal_ips, &self.external_ips})
    for (auto& a : *list) n.add_address(eth0, {a, uint8_t(a.bits())});
  if (!self.pod_cidrs.empty()) {
    int16_t cni = n.ensure("cni0");
    n.iface(cni).bridge = true;
    n.iface(cni).kind = "bridge";
    for (auto& p : self.pod_cidrs) {
      Addr gw = p.addr;
      gw.b[gw.is_v4() ? 3 : 15] |= 1;  // the first host address, as CNI bridges take it
      n.add_address(cni, {gw, p.len});
    }
  }
  for (auto& other : c.nodes) {
    if (other.name == self.name) continue;
    for (auto& ip : other.internal_ips) {
      Route host;
      host.dst = Prefix::host(ip);
      host.oif = eth0;
      n.add_route(host);
      for (auto& pc : other.pod_cidrs) {
        if (pc.addr.fam != ip.fam) continue;
        Route r;
        r.dst = pc;
        r.oif = eth0;
        r.via = ip;
        n.add_route(r);
      }
    }
  }
  n.add_default_route_if_none();
  Route d4, d6;
  d4.dst = Prefix{Addr::any(Family::V4), 0};
  d6.dst = Prefix{Addr::any(Family::V6), 0};
  d4.oif = d6.oif = eth0;
  n.add_route(d4);
  n.add_route(d6);
  for (auto& [k, v] : kube::sysctls(cfg)) n.sys.set(k, v);
  return n;
}

}  // namespace svcpath::kube
