// The inputs every simulation starts from: a cluster and the node of it, or a node built from
// flags and a node-config file, and iptables-save dumps of either family.
#include "kube/sim/inputs.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "ipvs/ipvsadm.hpp"
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

namespace {

// A note without its "file:line: " landmark, so that 40 ConfigMaps make one line, not 40.
std::string_view unplaced(std::string_view note) {
  for (size_t c = note.find(": "); c != std::string_view::npos; c = note.find(": ", c + 1)) {
    size_t d = note.find_last_not_of("0123456789", c - 1);
    if (d != std::string_view::npos && d + 1 < c && note[d] == ':') return note.substr(c + 2);
  }
  return note;
}

// Each note once per run, at its first place, with how many more places say the same: a command
// that loads the cluster again (demo) or a file full of skipped kinds repeats nothing.
void print_notes(const std::vector<std::string>& notes) {
  static std::set<std::string, std::less<>> said;
  std::vector<std::pair<std::string_view, size_t>> order;  // first note of each kind, more like it
  std::map<std::string_view, size_t> at;
  for (auto& n : notes) {
    auto [it, fresh] = at.try_emplace(unplaced(n), order.size());
    if (fresh) order.push_back({n, 0});
    else ++order[it->second].second;
  }
  for (auto& [n, more] : order) {
    if (!said.insert(std::string(unplaced(n))).second) continue;
    std::cerr << "svcpath: note: " << n;
    if (more) std::cerr << " (and " << more << " more like it)";
    std::cerr << "\n";
  }
}

}  // namespace

ClusterInput load_cluster(const ClusterOptions& o) {
  ClusterInput in;
  for (auto& f : o.files) k8s::load_cluster_file(f, in.cluster);
  k8s::check_cluster(in.cluster);
  print_notes(in.cluster.notes);
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

namespace {

// One line's leading words, for sniffing.
std::pair<std::string_view, std::string_view> two_words(std::string_view l) {
  auto word = [&l]() {
    auto b = l.find_first_not_of(" \t");
    if (b == std::string_view::npos) return std::string_view();
    auto e = l.find_first_of(" \t", b);
    std::string_view w = l.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    l.remove_prefix(e == std::string_view::npos ? l.size() : e);
    return w;
  };
  auto a = word();
  return {a, word()};
}

bool one_of(std::string_view w, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), w) != set.end();
}

// YAML: the top-level keys decide (a node config's interfaces may say "kind: bridge", indented).
InputKind yaml_kind(std::string_view head) {
  bool proxy = false, objects = false, k8s = false;
  std::string_view first;
  for (size_t at = 0; at < head.size();) {
    auto nl = head.find('\n', at);
    std::string_view l = head.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? head.size() : nl + 1;
    if (l.starts_with("- ")) l.remove_prefix(2);  // a top-level list of objects
    else if (l.empty() || l[0] == ' ' || l[0] == '#' || l[0] == '-') continue;
    auto colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = l.substr(0, colon), value = two_words(l.substr(colon + 1)).first;
    if (first.empty()) first = key;
    if (key == "kind") (value == "KubeProxyConfiguration" ? proxy : objects) = true;
    else if (one_of(key, {"apiVersion", "items", "metadata"})) k8s = true;
  }
  if (proxy && !objects) return InputKind::ProxyConfig;
  if (objects || k8s) return InputKind::KubeObjects;
  if (one_of(first, {"interfaces", "routes", "rules", "neighbors", "sockets", "sysctls"})) return InputKind::NodeConfig;
  return InputKind::Unknown;
}

}  // namespace

InputKind what_is_text(std::string_view head) {
  auto byte = [&](size_t i) { return uint8_t(head[i]); };
  if (head.size() >= 4) {
    uint32_t m = uint32_t(byte(0)) << 24 | uint32_t(byte(1)) << 16 | uint32_t(byte(2)) << 8 | byte(3);
    // pcap (microsecond and nanosecond magic, either byte order), then pcapng's Section Header Block.
    if (m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1 || m == 0x0a0d0d0a) return InputKind::Capture;
  }
  if (head.size() >= 2 && byte(0) == 0x1f && byte(1) == 0x8b) return InputKind::Archive;
  if (head.find('\0') != std::string_view::npos) return InputKind::Unknown;
  if (head.starts_with("\xef\xbb\xbf")) head.remove_prefix(3);
  for (size_t at = 0; at < head.size();) {
    auto nl = head.find('\n', at);
    std::string_view l = head.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? head.size() : nl + 1;
    auto b = l.find_first_not_of(" \t\r");
    if (b == std::string_view::npos || l[b] == '#' || l.substr(b).starts_with("---")) continue;
    l.remove_prefix(b);
    if (l[0] == '{' || l[0] == '[') {
      // nft -j's one top-level key opens the document.
      std::string_view body = head.substr(size_t(l.data() - head.data()) + 1);
      if (body.substr(std::min(body.size(), body.find_first_not_of(" \t\r\n"))).starts_with("\"nftables\""))
        return InputKind::NftRuleset;
      if (head.find("KubeProxyConfiguration") != std::string_view::npos) return InputKind::ProxyConfig;
      if (head.find("\"apiVersion\"") != std::string_view::npos) return InputKind::KubeObjects;
      return InputKind::Json;
    }
    if (l.size() > 1 && (l[0] == '*' || l[0] == ':') && std::isalpha(uint8_t(l[1]))) return InputKind::IptablesSave;
    if (l.starts_with("IP Virtual Server") || l.starts_with("Prot LocalAddress")) return InputKind::Ipvsadm;
    auto [w0, w1] = two_words(l);
    // ipvsadm-save's "-A -t VIP:PORT" against iptables -S's "-A CHAIN".
    if (one_of(w0, {"-A", "-a"}) && w1.starts_with('-')) return InputKind::Ipvsadm;
    if (one_of(w0, {"-P", "-N", "-A", "-I"})) return InputKind::IptablesSave;
    if (one_of(w0, {"TCP", "UDP", "SCTP", "FWM"}) && w1.find(':') != std::string_view::npos) return InputKind::Ipvsadm;
    if (w0 == "create") return InputKind::IpsetSave;
    if (w0 == "add")
      return one_of(w1, {"table", "chain", "rule", "set", "map", "element", "flowtable", "counter", "quota"})
                 ? InputKind::NftRuleset
                 : InputKind::IpsetSave;
    if (one_of(w0, {"table", "flush", "define", "include", "delete", "insert", "replace", "destroy"}))
      return InputKind::NftRuleset;
    if (w0.ends_with(':') || l.starts_with("- ")) return yaml_kind(head);
    std::string_view proto = w0.substr(0, w0.find('/'));
    if (one_of(proto, {"tcp", "udp", "sctp", "icmp", "icmp6", "icmpv6", "ipv6-icmp"}) &&
        (l.find("->") != std::string_view::npos || w1.starts_with("reply")))
      return InputKind::PacketSpecs;
    return InputKind::Unknown;
  }
  return InputKind::Unknown;
}

InputKind what_is(const std::string& path) {
  // A pipe (<(iptables-save), /dev/stdin) can be read once only: its loader gets it whole.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return InputKind::Unknown;
  std::ifstream f(path, std::ios::binary);
  std::string head(4096, '\0');
  f.read(head.data(), std::streamsize(head.size()));
  head.resize(size_t(f.gcount()));
  return what_is_text(head);
}

std::string_view describe(InputKind k) {
  switch (k) {
    case InputKind::Unknown: return "an unrecognised file";
    case InputKind::IptablesSave: return "an iptables-save dump";
    case InputKind::IpsetSave: return "an ipset save dump";
    case InputKind::NftRuleset: return "an nft ruleset";
    case InputKind::Ipvsadm: return "an ipvsadm dump";
    case InputKind::KubeObjects: return "Kubernetes objects";
    case InputKind::ProxyConfig: return "a KubeProxyConfiguration";
    case InputKind::NodeConfig: return "a node config";
    case InputKind::PacketSpecs: return "packet specs";
    case InputKind::Capture: return "a packet capture";
    case InputKind::Archive: return "a gzip archive";
    case InputKind::Json: return "JSON";
  }
  return "?";
}

namespace {

// The flag that takes each kind ("" for JSON, which several commands read).
std::string_view door(InputKind k) {
  switch (k) {
    case InputKind::IptablesSave: return "--rules";
    case InputKind::IpsetSave: return "--ipsets";
    case InputKind::NftRuleset: return "--nft";
    case InputKind::Ipvsadm: return "--ipvs";
    case InputKind::KubeObjects: return "--cluster";
    case InputKind::ProxyConfig: return "--proxy-config";
    case InputKind::NodeConfig: return "--node-config";
    case InputKind::PacketSpecs: return "trace --packets";
    case InputKind::Capture: return "replay --pcap";
    case InputKind::Archive: return "--snapshot";
    case InputKind::Unknown:
    case InputKind::Json: break;
  }
  return "";
}

}  // namespace

void expect_input(const std::string& path, std::string_view flag, InputKind want, std::string_view takes) {
  InputKind got = what_is(path);
  // Only a kind another flag takes is refused here: other JSON, say, is the flag's loader's to judge,
  // and a kube-proxy ConfigMap or a mixed file may hold the KubeProxyConfiguration.
  if (got == want || door(got).empty() || (want == InputKind::ProxyConfig && got == InputKind::KubeObjects)) return;
  throw WrongInput(path, fmt::format("{} given to {}, which takes {}; give it with {}", describe(got), flag,
                                     takes.empty() ? describe(want) : takes, door(got)));
}

// An iptables-save dump or iptables -S output of either family (nf::guess_family).
void check_services_flag(const std::string& services, const std::string& ipvs) {
  if (!services.empty() && ipvs.empty())
    throw LoadError({{"--services", 0, 0, "names the ports of an ipvsadm -L listing: give that listing with --ipvs"}});
}

ipvs::ServiceTable load_ipvs_dump(const std::string& ipvs, const std::string& services) {
  return services.empty() ? ipvs::load_ipvsadm_file(ipvs) : ipvs::load_ipvsadm_file(ipvs, ipvs::ServicesDb::load_file(services));
}

nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters, const std::string& backend,
                       bool noflush) {
  std::string text = read_input_file(path);
  // iptables-save's own header says IPv4: read as IPv6, every address in it would be an error.
  if (force == Family::V6 && text.find("# Generated by iptables") != std::string::npos)
    throw WrongInput(path, "an IPv4 dump (iptables-save) given as IPv6 (--rules6 or -6); give it with --rules");
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
