#include "kube/objects/cluster_synth.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/rng.hpp"

namespace svcpath::k8s {

Addr synthetic_cluster_ip(uint32_t i) { return Addr::v4(0x0a600000u + 1 + i); }  // 10.96.0.1 + i

std::vector<uint32_t> synthetic_service_order(uint32_t services) {
  std::vector<std::pair<std::string, uint32_t>> names;
  names.reserve(services);
  for (uint32_t i = 0; i < services; ++i) names.push_back({"svc-" + std::to_string(i), i});
  std::sort(names.begin(), names.end());
  std::vector<uint32_t> idx;
  idx.reserve(services);
  for (auto& n : names) idx.push_back(n.second);
  return idx;
}

uint32_t synthetic_service_at(uint32_t services, uint32_t pos) {
  return synthetic_service_order(services).at(std::min(pos, services - 1));
}

Cluster synthetic_cluster(const SynthSpec& spec) {
  Cluster c;
  Rng rng(spec.seed);
  uint32_t nodes = spec.nodes ? spec.nodes : 1;
  for (uint32_t n = 0; n < nodes; ++n) {
    Node node;
    node.name = fmt::format("node-{}", n);
    node.internal_ips.push_back(Addr::v4(0x0a000000u + 10 + n));             // 10.0.0.10 + n
    node.pod_cidrs.push_back(Prefix{Addr::v4(0x0a400000u + (n << 8)), 24});  // 10.64.n.0/24
    c.nodes.push_back(std::move(node));
  }
  std::vector<uint32_t> next_host(nodes, 2);  // .1 is the bridge
  c.services.reserve(spec.services);
  c.slices.reserve(spec.services);
  for (uint32_t i = 0; i < spec.services; ++i) {
    Service s;
    s.ns = "bench";
    s.name = fmt::format("svc-{}", i);
    s.cluster_ips.push_back(synthetic_cluster_ip(i));
    ServicePort p;
    p.name = "http";
    p.port = 80;
    p.target_port.num = 8080;
    if (spec.node_ports) {
      s.type = "NodePort";
      p.node_port = uint16_t(30000 + (i % 2768));
    }
    s.ports.push_back(p);
    EndpointSlice sl;
    sl.ns = "bench";
    sl.name = s.name + "-1";
    sl.service_name = s.name;
    sl.ports.push_back({"http", proto::TCP, uint16_t(8080)});
    for (uint32_t e = 0; e < spec.endpoints; ++e) {
      uint32_t n = rng.below(nodes);
      uint32_t host = next_host[n]++;
      Endpoint ep;
      // Pod k of node n: 10.64.0.0 + n*256 + k, spilling into further /24s of a /10 when a node is full.
      ep.addresses.push_back(Addr::v4(0x0a400000u + (n << 8) + (host % 254) + (host / 254) * nodes * 256));
      ep.node_name = c.nodes[n].name;
      sl.endpoints.push_back(std::move(ep));
    }
    c.services.push_back(std::move(s));
    c.slices.push_back(std::move(sl));
  }
  return c;
}

}  // namespace svcpath::k8s
