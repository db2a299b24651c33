#pragma once
// kube-proxy's IPVS mode for a node (pkg/proxy/ipvs): every Service IP bound to the dummy
// kube-ipvs0, one virtual server per IP:port with the configured scheduler, real servers from the
// endpoints, the ipsets, and the fixed iptables rules that mark for masquerade and filter.
#include <memory>
#include <string>
#include <vector>

#include "kube/objects/cluster.hpp"
#include "ipvs/engine.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "netfilter/node.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::kube::ipvs {

struct IpvsMode {
  nf::Ruleset rules;                              // the node's iptables tables
  nf::IpSets sets;                                // kube-proxy's ipsets
  std::unique_ptr<svcpath::ipvs::Engine> engine;  // virtual servers and real servers
  std::vector<Addr> vips;                         // addresses bound to kube-ipvs0
  std::string restore_input;                      // kube-proxy's iptables-restore input
  std::string ipset_restore;                      // kube-proxy's ipset restore input
};

/// Builds IPVS mode for one family.
IpvsMode build(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

/// Adds kube-ipvs0 (a dummy interface holding every VIP) and net.ipv4.vs.conntrack=1 to the node.
void add_to_node(nf::Node& n, const IpvsMode& m);

}  // namespace svcpath::kube::ipvs
