#pragma once
// A node snapshot: the tar.gz scripts/svcpath-snapshot writes on a real node (what iptables-save,
// ipset, ipvsadm, nft, conntrack, ip and sysctl print there), loaded as the node a command runs
// packets through. Members are read once into memory; the rule dumps are handed on under the name
// ARCHIVE:MEMBER (core/diag's add_input_member), so every loader's errors point into the archive.
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "kube/sim/node_dump.hpp"
#include "netfilter/conntrack.hpp"
#include "netfilter/node.hpp"

namespace svcpath::sim {

/// Member names inside the archive (below its one top directory, node-NAME-DATE/).
namespace member {
inline constexpr const char *kManifest = "manifest", *kLegacy4 = "iptables-legacy-save.v4", *kLegacy6 = "iptables-legacy-save.v6",
                            *kNft4 = "iptables-nft-save.v4", *kNft6 = "iptables-nft-save.v6", *kIpset = "ipset-save",
                            *kIpvs = "ipvsadm-save", *kNftRuleset = "nft-ruleset", *kConntrack4 = "conntrack.v4",
                            *kConntrack6 = "conntrack.v6", *kLink = "ip-link.json", *kAddr = "ip-addr.json",
                            *kRoute4 = "ip-route.v4.json", *kRoute6 = "ip-route.v6.json", *kRule4 = "ip-rule.v4.json",
                            *kRule6 = "ip-rule.v6.json", *kMaddr = "ip-maddr.txt", *kSysctl = "sysctl.txt",
                            *kKubeProxy = "kube-proxy.txt";
}

struct Snapshot {
  std::string path;
  std::map<std::string, std::string> members;  // member name -> text
  nf::Node node;                               // interfaces, addresses, routes of every table, rules, sysctls
  std::vector<nf::CtEntry> conntrack;          // conntrack -L of both families; expires_ns: remaining
  std::string backend;                         // iptables back end holding the rules: "nft", "legacy" or ""
  std::string kube_proxy_mode;                 // "iptables", "ipvs", "nftables" or "" (no kube-proxy seen)
  Notes notes;                                 // what was skipped or chosen, for stderr
  /// The inputs for the lanes, as names read_input_file resolves (empty: the node had none).
  std::string rules, rules6, ipsets, ipvs, nft;
};

/// Reads the archive and every reader's member; throws one LoadError with all the problems
/// (ARCHIVE:MEMBER:line:col). Missing members (a tool the node lacked, as its manifest says) are fine.
Snapshot load_snapshot(const std::string& path);

/// Rule lines (-A) in an iptables-save dump, and whether kube-proxy's chains are among them.
struct DumpRules {
  size_t rules = 0;
  bool kube = false;
};
DumpRules count_rules(std::string_view iptables_save);

/// kube-proxy's mode from the snapshot's kube-proxy.txt (what kube-proxy answered on /proxyMode,
/// else its /configz "mode", else the chains and devices it leaves: kube-ipvs0 means IPVS), and
/// how it was told. Empty when nothing there says kube-proxy runs.
struct KubeProxyMode {
  std::string mode, how;
};
KubeProxyMode kube_proxy_mode(std::string_view kube_proxy_txt);

/// nft list ruleset text without the tables iptables-nft owns (family ip/ip6, a table name
/// iptables-nft-save printed): those rules are loaded once, from iptables-nft-save.
std::string without_xtables_tables(std::string_view nft_text, std::string_view nft4_save, std::string_view nft6_save);

/// Inserts the snapshot's conntrack entries into a datapath's table as they stood at now_ns (the
/// time of the first packet: each entry's remaining timeout counts from there); returns how many
/// clashed.
size_t seed_conntrack(nf::Conntrack& ct, const std::vector<nf::CtEntry>& entries, uint64_t now_ns = 0);

}  // namespace svcpath::sim
