#pragma once
// svcpath diff: the same flows through two nodes (two modes, versions, configurations, clusters or
// dumps), and the flows whose outcome changes, grouped into classes a person can act on.
#include <cstdint>
#include <string>
#include <vector>

#include "kube/objects/cluster.hpp"
#include "kube/sim/lanes.hpp"
#include "netfilter/datapath.hpp"

namespace svcpath::sim {

/// Where a flow is addressed: which of a Service's addresses, or a probe beside them.
enum class Reach : uint8_t {
  ClusterIP,
  NodePort,           // on a node address kube-proxy's nodePortAddresses selects first (the primary)
  NodePortSecondary,  // on another address of the node
  NodePortLoopback,   // on 127.0.0.1
  ExternalIP,
  LoadBalancer,
  UndeclaredPort,        // a ClusterIP on a port the Service does not declare
  PodIP,                 // straight to a pod, not through a Service (the late-FIN probe)
  RuleMatch,             // what a rule of a dump names (dumps have no Services)
  UnallocatedClusterIP,  // an address of a ServiceCIDR no Service holds
};
std::string_view reach_name(Reach r);

/// Where it comes from.
enum class From : uint8_t { LocalPod, RemotePod, Host, External, ExternalAllowed, ExternalDenied };
std::string_view from_name(From f);

struct Flow {
  std::string service;  // "ns/name:port", "" for probes that name none
  Reach reach = Reach::ClusterIP;
  From from = From::LocalPod;
  Packet pkt;
  bool local = false;     // sent by a process on the node
  std::string in;         // arriving interface (not local)
  bool late_fin = false;  // a FIN/ACK of a connection the node no longer tracks
};

/// Every meaningful flow of a cluster's node: each Service port on each address it answers on
/// (ClusterIP, NodePort on each node address and on 127.0.0.1, external IPs, LB ingress), from
/// each kind of client (pod here, pod elsewhere, the host, an external client inside and outside
/// loadBalancerSourceRanges), plus an undeclared ClusterIP port per Service and a late FIN/ACK to
/// a pod. `node` is the simulated node (its interfaces and addresses); the order is fixed.
std::vector<Flow> cluster_flows(const k8s::Cluster& c, const k8s::Node& kn, const nf::Node& node);

/// Flows for nodes given as dumps, where no Service objects say what matters: each iptables rule's
/// own destination, port, source and input interface (a host inside each prefix), and each IPVS
/// virtual service from outside. nftables rulesets contribute nothing yet (give --packet). At
/// most `limit` flows, deduplicated, in rule order.
std::vector<Flow> dump_flows(const std::vector<const Lane*>& lanes, size_t limit = 5000);

/// What one side did with a flow, reduced to what a user sees.
struct Behaviour {
  std::string verdict;                // "answered", "delivered to the node", "forwarded", "dropped", "rejected: ..."
  std::vector<std::string> backends;  // "10.244.1.5:8080", sorted, when DNATed
  std::vector<std::string> masq;      // backends reached with the source rewritten, sorted
  bool operator==(const Behaviour&) const = default;
  std::string str() const;
};
/// Every outcome of a flow's first packet on lane l: enumerated (each random branch), and where an
/// IPVS virtual service answers, also sampled over successive connections from the same client
/// (source ports from probe_port on, which advances), since the scheduler's state picks one real
/// server per connection and does not fork. The sampling leaves IPVS connections and conntrack
/// entries behind on the lane, as those connections would.
std::vector<nf::Outcome> flow_outcomes(Lane& l, const Flow& f, uint16_t& probe_port);
Behaviour behaviour(const std::vector<nf::Outcome>& outs);

struct FlowChange {
  Flow flow;
  Behaviour a, b;
  std::string what;  // "verdict", "backends", "masquerade"
};

/// Changes of one kind: a sentence, the setting that restores side A's behaviour (when one
/// exists), and the flows.
struct DiffClass {
  std::string key;       // stable id, e.g. "nodeport-loopback"
  std::string sentence;  // what changed and why
  std::string setting;   // "" when nothing restores it
  std::vector<FlowChange> flows;
  std::vector<nf::Outcome> example_a, example_b;  // the first flow's outcomes, traced, for pictures
};

struct DiffSide {
  Lane* lane;
  std::string label;  // "ipvs", "nftables", "before.rules"
  std::string mode;   // kube-proxy mode when known ("" for dumps)
  int release = 0;    // kube-proxy release 1.N when known
};

struct DiffResult {
  std::string a, b;  // side labels
  size_t flows = 0;
  std::vector<DiffClass> classes;
  size_t changed() const;
};

/// Runs every flow through both sides (each outcome enumerated, neither side's state changed)
/// and groups the flows whose behaviour differs.
DiffResult diff_sides(const DiffSide& a, const DiffSide& b, const std::vector<Flow>& flows);

}  // namespace svcpath::sim
