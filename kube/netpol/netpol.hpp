#pragma once
// NetworkPolicy: the API's semantics (which connections a set of policies allows), and their
// compilation into filter-table rules and ipsets the way an iptables-based policy engine enforces
// them on one node. The compiled rules are ordinary iptables-restore input, so the engine traces
// them like any other rule and the real kernel loads them.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kube/objects/cluster.hpp"
#include "core/trace.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf::netpol {

/// One side of a connection: an address, and the pod that owns it when there is one.
struct Peer {
  Addr ip;
  const k8s::Pod* pod = nullptr;
};

/// What the policies say about one direction of one connection.
struct Decision {
  bool allowed = true;
  bool isolated = false;  // some policy selects the pod for this direction
  std::string by;         // "ns/policy ingress[0]" that allowed it, or why it is denied / open
};

/// Ingress to pod dst from src, to port/proto of dst.
Decision ingress(const k8s::Cluster& c, const k8s::Pod& dst, const Peer& src, uint8_t proto, uint16_t port);
/// Egress from pod src to dst, to port/proto on dst (named ports resolve against dst's pod).
Decision egress(const k8s::Cluster& c, const k8s::Pod& src, const Peer& dst, uint8_t proto, uint16_t port);
/// Both directions, as a connection between two endpoints needs: src's egress and dst's ingress.
bool connection_allowed(const k8s::Cluster& c, const Peer& src, const Peer& dst, uint8_t proto, uint16_t port);

/// The pod owning an address, if any (hostNetwork pods own no address of their own).
const k8s::Pod* pod_by_ip(const k8s::Cluster& c, const Addr& ip);

/// Where the per-pod chains are reached from.
enum class Placement : uint8_t {
  Plain,  // FORWARD (pod to pod), INPUT (pod to host: egress), OUTPUT (host to pod: ingress)
  // kube-proxy in IPVS mode: a pod's connection to a ClusterIP enters INPUT still addressed to the
  // ClusterIP and leaves, rewritten by IPVS, through OUTPUT. The engine skips Service addresses
  // in INPUT and checks egress again in OUTPUT, where the real backend is visible.
  IpvsAware,
};

struct Compiled {
  std::string rules;   // iptables-restore --noflush input: *filter with the policy chains
  std::string ipsets;  // ipset restore input: one set per selector peer and per ipBlock
  size_t pods = 0;     // local pods some policy isolates
};

/// Compiles the policies for the pods on node `self` (family fam).
Compiled compile(const k8s::Cluster& c, const k8s::Node& self, Family fam, Placement where);

/// Loads compiled policy into a node's filter table and sets, as the engine would
/// (ipset restore, then iptables-restore --noflush); set references are resolved afterwards.
void apply(const Compiled& np, Ruleset& rs, IpSets& sets);

/// Packets each policy rule decided, from a datapath's rule counters: "ns/policy ingress[0]" ->
/// allowed packets, and "ns/pod ingress: isolated by ...; no rule allows" -> denied packets.
struct Verdicts {
  std::map<std::string, uint64_t> allowed, denied;
};
void count_verdicts(const Ruleset& rs, const std::vector<uint64_t>& rule_pkts, Verdicts& into);

/// Names of what compile() emits, for readers of traces.
inline constexpr std::string_view kChainPrefix = "NP-";

/// What a packet's trace says about policy: where DNAT happened, what tuple the policy chains saw,
/// and the rule that decided.
struct Story {
  bool checked = false;  // a per-pod policy chain was entered
  bool allowed = true;
  Hook hook = Hook::Forward;  // where the deciding rule ran
  std::string chain;          // NP-IN-... / NP-EG-...
  uint32_t rulenum = 0;
  std::string by;                 // the rule's comment: "ns/policy ingress[0]" or the deny reason
  FiveTuple seen;                 // the packet as the policy chain saw it
  std::optional<Hook> dnat_hook;  // where the destination was rewritten, if it was
  std::string dnat_by;            // "nat" or "ipvs"
  bool dnat_before = false;       // the rewrite happened before the deciding rule saw the packet
  std::vector<std::string> path;  // each policy chain entered, "HOOK:chain"
};
Story story(const std::vector<TraceEvent>& events, const FiveTuple& original);
/// One line: "allowed by shop/db-from-web ingress[0] at FORWARD, which saw ... (DNAT by nat at
/// PREROUTING, before)"; empty when no policy chain was entered.
std::string story_line(const Story& s);

}  // namespace svcpath::nf::netpol
