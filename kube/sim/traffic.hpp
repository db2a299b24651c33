#pragma once
// Synthetic traffic for a node of a cluster: the Service ports a client can address on that node
// and where its clients come from, handed to pcap's Generator (which knows no Kubernetes).
#include <vector>

#include "kube/objects/cluster.hpp"
#include "pcap/generate.hpp"

namespace svcpath::sim {

/// Every Service port reachable on node, in a fixed order (services as given, then ports).
std::vector<pcap::Target> service_targets(const k8s::Cluster& c, const k8s::Node& node);

/// This node's pod CIDRs, the other nodes' pod CIDRs, and the node's InternalIPs.
pcap::Clients clients(const k8s::Cluster& c, const k8s::Node& node);

/// A traffic generator for node. Throws LoadError when nothing can be sent.
pcap::Generator cluster_traffic(const k8s::Cluster& c, const k8s::Node& node, const pcap::TrafficModel& m);

}  // namespace svcpath::sim
