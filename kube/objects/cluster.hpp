#pragma once
// Kubernetes objects as kubectl prints them (the fields svcpath needs), and kube-proxy's
// configuration. Loaded once at the edge (cluster_load.cpp) into validated values.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/addr.hpp"

namespace svcpath::k8s {

/// Where an object (or field) came from, for messages.
struct Loc {
  std::string file;
  int line = 0;
};

/// A port given as a number or as a name (targetPort, NetworkPolicy ports).
struct IntOrName {
  bool is_name = false;
  uint16_t num = 0;
  std::string name;
};

struct ServicePort {
  std::string name;
  uint8_t proto = proto::TCP;
  uint16_t port = 0;
  IntOrName target_port;
  uint16_t node_port = 0;
};

struct LbIngress {
  Addr ip;
  std::string ip_mode;  // "VIP" (default) or "Proxy"
};

struct Service {
  std::string ns, name;
  std::string type = "ClusterIP";  // ClusterIP, NodePort, LoadBalancer, ExternalName
  std::vector<Addr> cluster_ips;   // empty when headless ("None") or unset
  bool headless = false;
  std::vector<Addr> external_ips;
  std::vector<LbIngress> lb_ingress;
  std::vector<std::string> lb_source_ranges;  // trimmed text, as kube-proxy writes them
  std::vector<ServicePort> ports;
  bool affinity_client_ip = false;
  int affinity_timeout = 10800;
  bool etp_local = false, itp_local = false;
  uint16_t health_check_node_port = 0;
  std::string external_name;
  std::map<std::string, std::string> labels;
  Loc loc;

  bool externally_accessible() const { return type == "NodePort" || type == "LoadBalancer" || !external_ips.empty(); }
};

struct Endpoint {
  std::vector<Addr> addresses;
  std::optional<bool> ready, serving, terminating;
  std::string node_name;
  std::string zone;
  std::string target_pod;  // "ns/name" of targetRef when it is a Pod

  // EndpointSlice semantics: an unset condition reads as ready/serving, not terminating.
  bool is_ready() const { return ready.value_or(true); }
  bool is_serving() const { return serving.value_or(is_ready()); }
  bool is_terminating() const { return terminating.value_or(false); }
};

struct EndpointPort {
  std::string name;
  uint8_t proto = proto::TCP;
  std::optional<uint16_t> port;
};

struct EndpointSlice {
  std::string ns, name;
  std::string service_name;           // label kubernetes.io/service-name
  std::string address_type = "IPv4";  // IPv4, IPv6, FQDN
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;
  Loc loc;
};

struct Node {
  std::string name;
  std::vector<Addr> internal_ips, external_ips;
  std::vector<Prefix> pod_cidrs;
  std::map<std::string, std::string> labels;
  Loc loc;
};

struct ContainerPort {
  std::string name;
  uint16_t port = 0;
  uint8_t proto = proto::TCP;
};

struct Pod {
  std::string ns, name;
  std::map<std::string, std::string> labels;
  std::vector<Addr> ips;
  std::string node_name;
  bool host_network = false;
  std::vector<ContainerPort> ports;
  Loc loc;
};

struct Namespace {
  std::string name;
  std::map<std::string, std::string> labels;
  Loc loc;
};

struct SelectorRequirement {
  std::string key, op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
};

struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<SelectorRequirement> match_expressions;
  bool matches(const std::map<std::string, std::string>& labels) const;
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
};

struct IpBlock {
  Prefix cidr;
  std::vector<Prefix> except;
};

struct PolicyPeer {
  std::optional<LabelSelector> pod_selector, namespace_selector;
  std::optional<IpBlock> ip_block;
};

struct PolicyPort {
  uint8_t proto = proto::TCP;
  std::optional<IntOrName> port;
  std::optional<uint16_t> end_port;
};

struct PolicyRule {
  std::vector<PolicyPort> ports;  // empty: all ports
  std::vector<PolicyPeer> peers;  // empty: all peers (from/to omitted)
};

struct NetworkPolicy {
  std::string ns, name;
  LabelSelector pod_selector;
  bool ingress_type = false, egress_type = false;  // effective policyTypes
  std::vector<PolicyRule> ingress, egress;
  Loc loc;
};

/// Everything loaded from the user's manifests.
struct Cluster {
  std::vector<Service> services;
  std::vector<EndpointSlice> slices;
  std::vector<Node> nodes;
  std::vector<Pod> pods;
  std::vector<Namespace> namespaces;
  std::vector<NetworkPolicy> policies;
  /// The Service CIDRs (ServiceCIDR objects' spec.cidrs): addresses ClusterIPs come from; kube-proxy's
  /// nftables mode drops traffic to the ones no Service holds.
  std::vector<Prefix> service_cidrs;
  std::vector<std::string> notes;  // e.g. "skipped kind ConfigMap at file:line"

  const Node* node(std::string_view name) const;
};

/// kube-proxy's --proxy-mode: which of its three generators programs the node.
enum class ProxyMode { Iptables, Ipvs, Nftables };
/// "iptables", "ipvs" or "nftables"; nullopt for any other text.
std::optional<ProxyMode> parse_proxy_mode(std::string_view s);

/// kube-proxy's configuration (the KubeProxyConfiguration fields that shape rules), with its defaults.
struct ProxyConfig {
  ProxyMode mode = ProxyMode::Iptables;
  std::vector<Prefix> cluster_cidrs;
  bool masquerade_all = false;
  int masquerade_bit = 14;
  std::string detect_local_mode = "ClusterCIDR";  // ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix
  std::string bridge_interface, interface_name_prefix;
  std::vector<std::string> node_port_addresses;  // CIDRs, or "primary"
  bool localhost_nodeports = true;
  bool random_fully = true;     // MASQUERADE --random-fully (iptables >= 1.6.2)
  bool nfacct = false;          // kernel has nfacct: kube-proxy adds its counters
  bool tcp_be_liberal = false;  // nf_conntrack_tcp_be_liberal=1: no INVALID drop rule
  std::string ipvs_scheduler = "rr";
  bool strict_arp = false;
  /// The kube-proxy release (1.minor) whose rules the generators write where releases differ
  /// (docs/kube-proxy-versions.md); --kube-proxy-version, default the current release.
  int release = kCurrentRelease;
  static constexpr int kCurrentRelease = 35;
  static constexpr int kOldestRelease = 30;
  Loc loc;

  uint32_t masquerade_mark() const { return 1u << masquerade_bit; }
};

/// Loads one manifest file: YAML (multi-document, kind: List) or JSON as kubectl prints it. Unknown
/// kinds are skipped with a note. Throws LoadError with file:line:col and the field path.
void load_cluster_file(const std::string& path, Cluster& out);
/// Cross-object checks once every file is loaded: an EndpointSlice must name a Service in the
/// input (kube-proxy would ignore it; here it means a partial dump and a silently wrong answer).
void check_cluster(const Cluster& c);
/// Loads a KubeProxyConfiguration (YAML or JSON).
ProxyConfig load_proxy_config(const std::string& path);

}  // namespace svcpath::k8s
