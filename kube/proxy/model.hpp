#pragma once
// kube-proxy's model of a node's Services, shared by its three modes: the service ports and their
// endpoints (pkg/proxy servicePortInfo / endpointsInfo), endpoint selection (CategorizeEndpoints),
// the local-traffic detector (pkg/proxy/util/localdetector.go), chain-name hashing, and the
// sysctls kube-proxy sets. Each generator renders these facts in its own language.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/objects/cluster.hpp"

namespace svcpath::kube {

/// servicePortChainName's hash: base32(sha256(s)) truncated to 16 characters, the suffix of
/// iptables mode's KUBE-SVC-/SEP-/EXT-/FW-/SVL- names (and of NetworkPolicy's NP- names).
std::string chain_hash(std::string_view s);

/// nftables mode's hashAndTruncate: base32(sha256(name))[:8] + "-" + name, cut to 240 characters
/// with "...".
std::string nft_chain_base(std::string_view name);

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
};

/// The service ports kube-proxy would program on node for family, in a deterministic order
/// (by "ns/name:port" then protocol; kube-proxy itself iterates a Go map).
std::vector<ServicePort> service_ports(const k8s::Cluster& c, const k8s::Node& node, Family fam);

/// CategorizeEndpoints (pkg/proxy/topology.go), without topology hints, and the facts
/// syncProxyRules derives from it for each service port.
struct Categorized {
  std::vector<Endpoint> cluster, local, all;
  bool has_any = false;
  bool uses_cluster = false;   // the cluster-policy chain exists (SVC / service-)
  bool uses_local = false;     // the local-policy chain exists (SVL / local-)
  bool has_internal = false;   // internal traffic has endpoints under internalTrafficPolicy
  bool has_external = false;   // external traffic has endpoints under externalTrafficPolicy
  bool uses_external = false;  // the external-destinations chain exists (EXT / external-)
};
Categorized categorize(const ServicePort& sp);

/// kube-proxy's local-traffic detector (--detect-local-mode), typed: which packets come from a
/// local pod. None: not implemented (no rule uses it).
struct LocalDetector {
  enum class Kind { None, Cidr, Interface, InterfacePrefix } kind = Kind::None;
  Prefix cidr;        // Cidr: ClusterCIDR or the node's podCIDR of the family
  std::string iface;  // Interface: the bridge; InterfacePrefix: the name prefix
};
LocalDetector local_detector(const k8s::ProxyConfig& cfg, const k8s::Node& node, Family fam);

/// The detector as iptables arguments (IfLocal / IfNotLocal): "-s 10.244.0.0/16", "! -i cni0",
/// "-i veth+"; empty when not implemented. Both iptables and IPVS mode write iptables rules.
std::string iptables_match(const LocalDetector& d, bool local);

/// The sysctls kube-proxy sets ("key", "value").
std::vector<std::pair<std::string, std::string>> sysctls(const k8s::ProxyConfig& cfg);

}  // namespace svcpath::kube
