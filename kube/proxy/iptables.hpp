#pragma once
// kube-proxy's iptables mode: the restore input kube-proxy writes for a node, built from cluster
// objects the way syncProxyRules builds it (chain names, comments, probabilities, rule order), and
// the node's resulting tables (kube-proxy's jumps from the built-in chains plus that input).
#include <string>

#include "kube/objects/cluster.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::kube::iptables {

/// Exactly the iptables-restore input kube-proxy writes (filter then nat, chain lines then rules,
/// kube-proxy's own argument order). Loaded with --noflush on top of the node's tables.
std::string restore_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

/// The node's mangle, filter and nat tables after kube-proxy ran: built-in chains with kube-proxy's
/// jump rules, the canary, and restore_input() loaded on top. What iptables-save on the node prints.
nf::Ruleset node_ruleset(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

}  // namespace svcpath::kube::iptables
