#pragma once
// kube-proxy's iptables mode: the restore input kube-proxy writes for a node, built from cluster
// objects the way syncProxyRules builds it (chain names, comments, probabilities, rule order), and
// the node's resulting tables (kube-proxy's jumps from the built-in chains plus that input).
#include <string>
#include <vector>

#include "kube/objects/cluster.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf::kube {

/// base32(sha256(s)) truncated to 16 characters: the suffix of KUBE-SVC-/SEP-/EXT-/FW-/SVL- names.
std::string chain_hash(std::string_view s);

/// One endpoint of a service port, as kube-proxy's endpointsMap holds it.
struct Endpoint {
  Addr ip;
  uint16_t port = 0;
  bool ready = true, serving = true, terminating = false, local = false;
  std::string str() const;  // "ip:port", "[v6]:port"
};

/// A Service port for one IP family: kube-proxy's unit of rule generation.
struct ServicePort {
  const k8s::Service* svc = nullptr;
  const k8s::ServicePort* port = nullptr;
  std::string spn;    // "ns/name:port" (":port" only for named ports)
  std::string proto;  // "tcp", "udp", "sctp"
  Addr cluster_ip;
  std::vector<Addr> external_ips, lb_ips;
  std::vector<std::string> source_ranges;
  std::vector<Endpoint> endpoints;  // deduplicated, sorted by "ip:port" text as kube-proxy sorts them
  std::string svc_chain, svl_chain, ext_chain, fw_chain;
  std::string sep_chain(const Endpoint& e) const;
};

/// The service ports kube-proxy would program on node for family, in a deterministic order
/// (by "ns/name:port" then protocol; kube-proxy itself iterates a Go map).
std::vector<ServicePort> service_ports(const k8s::Cluster& c, const k8s::Node& node, Family fam);

/// CategorizeEndpoints (pkg/proxy/topology.go), without topology hints.
struct Categorized {
  std::vector<Endpoint> cluster, local, all;
  bool has_any = false;
};
Categorized categorize(const ServicePort& sp);

/// kube-proxy's local-traffic detector as iptables arguments ("! -s 10.244.0.0/16", "-i cni0").
struct Detector {
  std::string if_local, if_not_local;  // empty: not implemented
};
Detector detector(const k8s::ProxyConfig& cfg, const k8s::Node& node, Family fam);

/// Exactly the iptables-restore input kube-proxy writes (filter then nat, chain lines then rules,
/// kube-proxy's own argument order). Loaded with --noflush on top of the node's tables.
std::string restore_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

/// The node's mangle, filter and nat tables after kube-proxy ran: built-in chains with kube-proxy's
/// jump rules, the canary, and restore_input() loaded on top. What iptables-save on the node prints.
Ruleset node_ruleset(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

/// The sysctls kube-proxy sets in iptables mode ("key", "value").
std::vector<std::pair<std::string, std::string>> sysctls(const k8s::ProxyConfig& cfg);

}  // namespace svcpath::nf::kube
