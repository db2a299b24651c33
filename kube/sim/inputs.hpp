#pragma once
// The inputs every simulation starts from: the node options every command shares, a cluster and
// the node of it being simulated, iptables-save dumps.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kube/objects/cluster.hpp"
#include "netfilter/iptables/rules.hpp"
#include "netfilter/node.hpp"

namespace svcpath::sim {

/// The node options every command shares (--node-config, --sysctl, --local-ip, --route).
struct NodeOptions {
  std::string node_config;
  std::vector<std::string> sysctls, local_ips, routes;
  std::string nfqueue;  // "" (unknown listener) or "none" (--nfqueue none)
  /// --iptables-backend: "" (what the dump's header says), "legacy" or "nft" (nf::XtBackend).
  std::string iptables_backend;
  /// --noflush: the dumps are read as iptables-restore --noflush reads them (a table named again
  /// is edited, not replaced).
  bool noflush = false;
  /// --services: the node's /etc/services, for port names in `ipvsadm -L` listings ("" = netbase's).
  std::string services;
  /// The node a snapshot (--snapshot) describes; the flags above apply on top of it, and no eth0
  /// or default route is invented for it.
  std::shared_ptr<const nf::Node> snapshot;
  /// Builds the node on top of base (a plain host with lo and eth0 when none); throws LoadError
  /// naming the flag or file:line of each problem.
  nf::Node build(std::optional<nf::Node> base = std::nullopt) const;
};

/// A cluster and the node of it being simulated (--cluster FILE... --node NAME --proxy-config FILE).
struct ClusterOptions {
  std::vector<std::string> files;
  std::string node;
  std::string proxy_config;
  std::string mode = "iptables";  // one mode, or a comma list for side-by-side traces
  // NetworkPolicy enforcement: auto (IPVS-aware placement in the ipvs mode, plain otherwise),
  // plain, ipvs (IPVS-aware in every mode), off.
  std::string policy = "auto";
  std::string kube_proxy_version;  // "1.33", "v1.34.2"; "" = the current release
  bool given() const { return !files.empty(); }
  std::vector<std::string> modes() const;
};

/// The loaded cluster, the chosen node and the proxy configuration.
struct ClusterInput {
  k8s::Cluster cluster;
  k8s::Node node;
  k8s::ProxyConfig cfg;
};
ClusterInput load_cluster(const ClusterOptions& o);

/// Loads an iptables-save dump; the family comes from force, else from an ip6tables-save header.
nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters = false,
                       const std::string& backend = "", bool noflush = false);

}  // namespace svcpath::sim
