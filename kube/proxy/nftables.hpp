#pragma once
// kube-proxy's nftables mode (pkg/proxy/nftables): the `nft -f` transaction a full sync writes for a
// node — table `kube-proxy` with its base chains, the service-ips / service-nodeports verdict maps,
// per-service, per-endpoint, external and firewall chains, masquerading, the no-endpoint maps and
// the ClusterIP check — built from cluster objects the way syncProxyRules builds it.
#include <string>

#include "kube/objects/cluster.hpp"

namespace svcpath::kube::nftables {

/// The transaction text (`nft -f` input) for one family: `ip kube-proxy` or `ip6 kube-proxy`.
std::string nft_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam);

}  // namespace svcpath::kube::nftables
