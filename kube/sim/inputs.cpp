// The inputs every simulation starts from: a cluster and the node of it, or a node built from
// flags and a node-config file, and iptables-save dumps of either family.
#include "kube/sim/inputs.hpp"

#include <iostream>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "kube/sim/node_config.hpp"
#include "netfilter/iptables/iptables.hpp"

namespace svcpath::sim {

std::vector<std::string> ClusterOptions::modes() const {
  std::vector<std::string> v;
  std::string_view s = mode;
  while (!s.empty()) {
    auto c = s.find(',');
    v.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return v;
}

ClusterInput load_cluster(const ClusterOptions& o) {
  ClusterInput in;
  for (auto& f : o.files) k8s::load_cluster_file(f, in.cluster);
  k8s::check_cluster(in.cluster);
  for (auto& n : in.cluster.notes) std::cerr << "svcpath: note: " << n << "\n";
  if (!o.proxy_config.empty()) in.cfg = k8s::load_proxy_config(o.proxy_config);
  if (!o.kube_proxy_version.empty()) {
    std::string_view v = o.kube_proxy_version;
    if (v.starts_with('v')) v.remove_prefix(1);
    std::optional<uint64_t> minor;
    if (v.starts_with("1.")) {
      v.remove_prefix(2);
      minor = parse_uint(v.substr(0, v.find('.')), 1000);
    }
    if (!minor || *minor < uint64_t(k8s::ProxyConfig::kOldestRelease) || *minor > uint64_t(k8s::ProxyConfig::kCurrentRelease))
      throw LoadError({{"--kube-proxy-version", 0, 0,
                        fmt::format("'{}': give a release 1.{}..1.{} (e.g. 1.33 or v1.34.2)", o.kube_proxy_version,
                                    k8s::ProxyConfig::kOldestRelease, k8s::ProxyConfig::kCurrentRelease)}});
    in.cfg.release = int(*minor);
  }
  for (auto& m : o.modes())
    if (!k8s::parse_proxy_mode(m))
      throw LoadError({{"--mode", 0, 0, fmt::format("mode '{}' is not available (iptables, ipvs, nftables)", m)}});
  if (o.node.empty()) {
    std::string names;
    for (auto& n : in.cluster.nodes) names += (names.empty() ? "" : ", ") + n.name;
    throw LoadError(
        {{"--node", 0, 0,
          fmt::format("name the node to simulate with --node (nodes in the input: {})", names.empty() ? "none" : names)}});
  }
  const k8s::Node* n = in.cluster.node(o.node);
  if (!n) {
    std::string names;
    for (auto& x : in.cluster.nodes) names += (names.empty() ? "" : ", ") + x.name;
    throw LoadError(
        {{"--node", 0, 0, fmt::format("no Node '{}' in the input (nodes: {})", o.node, names.empty() ? "none" : names)}});
  }
  in.node = *n;
  return in;
}

nf::Node NodeOptions::build(std::optional<nf::Node> base) const {
  nf::Node n = base ? std::move(*base) : snapshot ? *snapshot : nf::Node();
  if (!node_config.empty()) nf::load_node_config(node_config, n);
  // The plain host's eth0, unless the node config names its own interfaces: a phantom eth0 would
  // take traffic and fe80:: routes the real node does not have.
  bool own = false;
  for (auto& i : n.interfaces()) own = own || i.name != "lo";
  if (!snapshot && !own) n.ensure("eth0");
  std::vector<Diagnostic> errs;
  for (auto& s : local_ips)
    if (auto e = nf::apply_local_ip(n, s); !e.empty()) errs.push_back({"--local-ip", 0, 0, e});
  for (auto& s : routes)
    if (auto e = nf::apply_route(n, s); !e.empty()) errs.push_back({"--route", 0, 0, e});
  for (auto& s : sysctls) {
    auto eq = s.find('=');
    std::string e = eq == std::string::npos ? fmt::format("'{}': expected KEY=VALUE", s)
                                            : n.sys.set(std::string_view(s).substr(0, eq), std::string_view(s).substr(eq + 1));
    if (!e.empty()) errs.push_back({"--sysctl", 0, 0, e});
  }
  if (nfqueue == "none") n.nfqueue = nf::Node::QueueListener::None;
  else if (!nfqueue.empty() && nfqueue != "unknown")
    errs.push_back({"--nfqueue", 0, 0, fmt::format("'{}': expected 'none' (no listener) or 'unknown'", nfqueue)});
  if (!errs.empty()) throw LoadError(errs);
  if (!snapshot) n.add_default_route_if_none();
  return n;
}

// An iptables-save dump or iptables -S output of either family (nf::guess_family).
nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters, const std::string& backend,
                       bool noflush) {
  std::string text = read_input_file(path);
  Family fam = force ? *force : nf::guess_family(text);
  nf::Ruleset rs;
  rs.family = fam;
  nf::RestoreOptions opt;
  opt.counters = counters;
  opt.noflush = noflush;
  if (backend == "nft") opt.backend = nf::XtBackend::Nft;
  else if (backend == "legacy") opt.backend = nf::XtBackend::Legacy;
  else if (backend.empty()) opt.backend = nf::detect_backend(text);
  else throw LoadError({{"--iptables-backend", 0, 0, fmt::format("'{}': expected legacy or nft", backend)}});
  nf::load_restore(text, path, rs, opt);
  return rs;
}

}  // namespace svcpath::sim
