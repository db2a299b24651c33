#pragma once
// Synthetic clusters of a given size, deterministic per seed: the same fixtures feed tests,
// benchmarks and sweeps.
#include <cstdint>
#include <vector>

#include "kube/objects/cluster.hpp"

namespace svcpath::k8s {

struct SynthSpec {
  uint32_t services = 100;
  uint32_t endpoints = 10;  // per service
  uint32_t nodes = 10;      // node-0 .. node-(n-1); pods spread round-robin
  bool node_ports = false;  // every service also gets a NodePort (from 30000)
  uint64_t seed = 1;
};

/// Services "svc-<i>" in namespace "bench" (ClusterIP 10.96.x.y, port 80/TCP named "http"), one
/// EndpointSlice each with `endpoints` ready pods, and the Nodes (InternalIP 10.0.x.y, podCIDR
/// 10.<64+node/256>.<node%256>.0/24 style). Addresses are assigned sequentially, so service i's
/// ClusterIP is a pure function of i.
Cluster synthetic_cluster(const SynthSpec& spec);

/// The ClusterIP the synthesiser gives service i.
Addr synthetic_cluster_ip(uint32_t i);

/// Service indices in KUBE-SERVICES order, which kube-proxy sorts by name ("svc-10" before "svc-9").
std::vector<uint32_t> synthetic_service_order(uint32_t services);
/// The service at position pos (0-based) of that order; pos = services - 1 is the last one a
/// packet is compared against.
uint32_t synthetic_service_at(uint32_t services, uint32_t pos);

}  // namespace svcpath::k8s
