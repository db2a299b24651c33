#include "kube/sim/traffic.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace svcpath::sim {

std::vector<pcap::Target> service_targets(const k8s::Cluster& c, const k8s::Node& node) {
  std::vector<pcap::Target> out;
  for (const auto& s : c.services) {
    if (s.type == "ExternalName" || s.headless) continue;
    for (const auto& sp : s.ports) {
      std::string name = fmt::format("{}/{}:{}", s.ns, s.name, sp.name.empty() ? std::to_string(sp.port) : sp.name);
      for (const Addr& a : s.cluster_ips) out.push_back({a, sp.port, sp.proto, false, name});
      for (const Addr& a : s.external_ips) out.push_back({a, sp.port, sp.proto, true, name});
      for (const auto& lb : s.lb_ingress) out.push_back({lb.ip, sp.port, sp.proto, true, name});
      // NodePorts answer on the node's addresses of the Service's own IP families only.
      if (sp.node_port && (s.type == "NodePort" || s.type == "LoadBalancer"))
        for (const Addr& a : node.internal_ips)
          if (std::any_of(s.cluster_ips.begin(), s.cluster_ips.end(), [&](const Addr& vip) { return vip.fam == a.fam; }))
            out.push_back({a, sp.node_port, sp.proto, true, name});
    }
  }
  return out;
}

pcap::Clients clients(const k8s::Cluster& c, const k8s::Node& node) {
  pcap::Clients out;
  out.local_pods = node.pod_cidrs;
  for (const auto& n : c.nodes)
    if (n.name != node.name) out.remote_pods.insert(out.remote_pods.end(), n.pod_cidrs.begin(), n.pod_cidrs.end());
  out.host = node.internal_ips;
  return out;
}

pcap::Generator cluster_traffic(const k8s::Cluster& c, const k8s::Node& node, const pcap::TrafficModel& m) {
  return pcap::Generator(service_targets(c, node), clients(c, node), m);
}

}  // namespace svcpath::sim
