// svcpath gen-cluster: the synthetic clusters the benchmarks use, written as kubectl would print
// them, so a sweep's fixture can be fed to every subcommand and to real tools.
#include <fstream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "core/diag.hpp"

namespace svcpath::cli {

void write_cluster_yaml(const k8s::Cluster& c, std::ostream& out) {
  out << "# svcpath gen-cluster: " << c.services.size() << " Services, " << c.nodes.size() << " Nodes\n";
  for (auto& n : c.nodes) {
    out << fmt::format("---\napiVersion: v1\nkind: Node\nmetadata: {{name: {0}, labels: {{kubernetes.io/hostname: {0}}}}}\n",
                       n.name);
    out << "spec: {podCIDRs: [";
    for (size_t i = 0; i < n.pod_cidrs.size(); ++i) out << (i ? ", " : "") << '"' << n.pod_cidrs[i].str() << '"';
    out << "]}\nstatus: {addresses: [";
    for (size_t i = 0; i < n.internal_ips.size(); ++i)
      out << (i ? ", " : "") << fmt::format("{{type: InternalIP, address: \"{}\"}}", n.internal_ips[i].str());
    out << "]}\n";
  }
  auto proto_name = [](uint8_t p) { return p == proto::UDP ? "UDP" : p == proto::SCTP ? "SCTP" : "TCP"; };
  for (size_t k = 0; k < c.services.size(); ++k) {
    auto& s = c.services[k];
    out << fmt::format("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: {}}}\nspec:\n  type: {}\n", s.name,
                       s.ns, s.type);
    if (!s.cluster_ips.empty()) out << fmt::format("  clusterIP: \"{}\"\n", s.cluster_ips[0].str());
    out << "  ports:\n";
    for (auto& p : s.ports) {
      out << fmt::format("  - {{name: {}, protocol: {}, port: {}, targetPort: {}", p.name, proto_name(p.proto), p.port,
                         p.target_port.is_name ? p.target_port.name : std::to_string(p.target_port.num));
      if (p.node_port) out << fmt::format(", nodePort: {}", p.node_port);
      out << "}\n";
    }
  }
  for (auto& sl : c.slices) {
    out << fmt::format(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {}\n  namespace: {}\n"
        "  labels: {{kubernetes.io/service-name: {}}}\naddressType: {}\nports:\n",
        sl.name, sl.ns, sl.service_name, sl.address_type);
    for (auto& p : sl.ports)
      out << fmt::format("- {{name: {}, protocol: {}, port: {}}}\n", p.name, proto_name(p.proto), p.port.value_or(0));
    out << "endpoints:\n";
    for (auto& e : sl.endpoints) {
      out << "- addresses: [";
      for (size_t i = 0; i < e.addresses.size(); ++i) out << (i ? ", " : "") << '"' << e.addresses[i].str() << '"';
      out << fmt::format("]\n  conditions: {{ready: true, serving: true, terminating: false}}\n  nodeName: {}\n", e.node_name);
    }
  }
}

int run_gen_cluster(const GenClusterOptions& o, std::ostream& out) {
  k8s::SynthSpec spec;
  spec.services = o.services;
  spec.endpoints = o.endpoints;
  spec.nodes = o.nodes;
  spec.node_ports = o.node_ports;
  spec.seed = o.seed;
  auto c = k8s::synthetic_cluster(spec);
  if (o.out.empty() || o.out == "-") {
    write_cluster_yaml(c, out);
    return 0;
  }
  std::ofstream f(o.out, std::ios::binary);
  if (!f) throw LoadError({{o.out, 0, 0, "cannot create file"}});
  write_cluster_yaml(c, f);
  f.close();
  if (!f) throw LoadError({{o.out, 0, 0, "write failed (disk full?)"}});
  return 0;
}

}  // namespace svcpath::cli
