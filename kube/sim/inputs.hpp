#pragma once
// The inputs every simulation starts from: the node options every command shares, a cluster and
// the node of it being simulated, iptables-save dumps.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/diag.hpp"
#include "ipvs/ipvs.hpp"
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

/// What an input file holds, judged from its first bytes and lines only (never a full parse): each
/// file flag checks it once, at the edge, so a file given to the wrong flag is answered with the
/// flag that takes it instead of the wrong loader's errors.
enum class InputKind : uint8_t {
  Unknown,       // nothing recognised: the flag's own loader decides (and reports)
  IptablesSave,  // iptables-save / ip6tables-save, iptables -S
  IpsetSave,     // ipset save
  NftRuleset,    // nft list ruleset, nft -f input, nft -j list ruleset
  Ipvsadm,       // ipvsadm-save, ipvsadm -L
  KubeObjects,   // kubectl's YAML or JSON (kind: Service, List, ...)
  ProxyConfig,   // kind: KubeProxyConfiguration
  NodeConfig,    // svcpath's node YAML (interfaces:, routes:, sysctls:, ...)
  PacketSpecs,   // trace's packet lines ("tcp A:1 -> B:2")
  Capture,       // pcap or pcapng
  Archive,       // gzip: a scripts/svcpath-snapshot archive
  Json,          // other JSON (replay, sweep, benchmark results)
};
/// The kind of what text starts with (head: the file's first few KiB, binary or not).
InputKind what_is_text(std::string_view head);
/// The kind of the file at path (reads its first 4 KiB; Unknown when it cannot be read or is not a
/// regular file: a pipe is left unread for its loader).
InputKind what_is(const std::string& path);
/// "an nft ruleset", "Kubernetes objects", ... for messages.
std::string_view describe(InputKind k);

/// A file of another kind given to a flag: the command line is wrong, not the file (exit 2).
class WrongInput : public LoadError {
 public:
  using LoadError::LoadError;
};
/// Throws WrongInput ("FILE: error: an nft ruleset given to --rules, which takes an iptables-save
/// dump; give it with --nft") when the file at path is recognisably something flag does not take.
/// want is what flag takes (takes, when given, says it more precisely); Unknown content is let
/// through for the flag's loader to judge.
void expect_input(const std::string& path, std::string_view flag, InputKind want, std::string_view takes = {});

/// --services names the port names of an --ipvs listing: alone it would change nothing, so it is
/// refused (LoadError on --services).
void check_services_flag(const std::string& services, const std::string& ipvs);
/// Loads an ipvsadm dump (any form), port names from services (the node's /etc/services; "" =
/// netbase's built-in copy).
ipvs::ServiceTable load_ipvs_dump(const std::string& ipvs, const std::string& services);

/// Loads an iptables-save dump; the family comes from force, else from an ip6tables-save header.
nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters = false,
                       const std::string& backend = "", bool noflush = false);

}  // namespace svcpath::sim
