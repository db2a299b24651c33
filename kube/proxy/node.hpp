#pragma once
// The node svcpath simulates for a cluster: its addresses, the pod bridge, routes to the other
// nodes' pod subnets, and the sysctls kube-proxy sets.
#include "kube/objects/cluster.hpp"
#include "netfilter/node.hpp"

namespace svcpath::kube {

/// eth0 carries the Node's InternalIP/ExternalIP addresses; cni0 (a bridge) holds the first address
/// of each podCIDR; every other node's podCIDR is routed via its InternalIP; a default route leaves
/// through eth0. Then kube-proxy's sysctls.
nf::Node kube_node(const k8s::Cluster& c, const k8s::Node& self, const k8s::ProxyConfig& cfg);

}  // namespace svcpath::kube
