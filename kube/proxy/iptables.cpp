// kube-proxy's iptables mode (pkg/proxy/iptables/proxier.go, syncProxyRules): the restore input
// for a node, written section by section as syncProxyRules writes it, and the node's tables.
#include "kube/proxy/iptables.hpp"

#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "kube/proxy/model.hpp"
#include "netfilter/iptables/iptables.hpp"

namespace svcpath::kube::iptables {

namespace {

// Like kube-proxy's LineBuffer: words joined by spaces.
struct Lines {
  std::string text;
  size_t n = 0;
  template <class... A>
  void write(A&&... words) {
    // Straight onto the text: a line of its own would be built and copied again (issue 19: a
    // 50k-Service node writes ~2M lines).
    bool first = true;
    auto add = [&](std::string_view w) {
      if (w.empty()) return;  // an omitted part (e.g. comments in large-cluster mode)
      if (!first) text += ' ';
      text += w;
      first = false;
    };
    (add(std::string_view(words)), ...);
    text += '\n';
    ++n;
  }
  void chain(std::string_view name) { write(fmt::format(":{} - [0:0]", name)); }
};

std::string q(std::string_view s) { return fmt::format("\"{}\"", s); }

const char* kServices = "KUBE-SERVICES";
const char* kExternalServices = "KUBE-EXTERNAL-SERVICES";
const char* kForward = "KUBE-FORWARD";
const char* kNodePorts = "KUBE-NODEPORTS";
const char* kProxyFirewall = "KUBE-PROXY-FIREWALL";
const char* kFirewall = "KUBE-FIREWALL";
const char* kPostrouting = "KUBE-POSTROUTING";
const char* kMarkMasq = "KUBE-MARK-MASQ";

// servicePortChainName: a service port's chains share the hash of "ns/name:port" + protocol.
struct Chains {
  std::string svc, svl, ext, fw;
  explicit Chains(const ServicePort& sp) {
    std::string h = chain_hash(sp.spn + sp.proto);
    svc = "KUBE-SVC-" + h;
    svl = "KUBE-SVL-" + h;
    ext = "KUBE-EXT-" + h;
    fw = "KUBE-FW-" + h;
  }
};

// One service port as syncProxyRules sees it: its chains, endpoints, and the targets and comments
// of its no-endpoint rules.
struct Port {
  const ServicePort& sp;
  const k8s::Service& svc;
  Chains ch;
  Categorized cat;
  std::string cip, port;
  std::string internal_chain, external_policy_chain, lb_chain;
  bool uses_fw;
  std::string int_target, int_comment, ext_target, ext_comment;

  /// servicePortEndpointChainName: the endpoint's "ip:port" joins the hashed text. The KUBE-SEP-
  /// chain of an endpoint is hashed once per service port, though
  /// the load-balancing rules and the endpoint's own chain both name it (issue 19: the SHA-256
  /// was a tenth of a 50k-Service sync).
  std::string sep(const std::string& endpoint) const {
    auto [it, fresh] = seps_.try_emplace(endpoint);
    if (fresh) it->second = "KUBE-SEP-" + chain_hash(sp.spn + sp.proto + endpoint);
    return it->second;
  }

  explicit Port(const ServicePort& s)
      : sp(s), svc(*s.svc), ch(s), cat(categorize(s)), cip(s.cluster_ip.str()), port(std::to_string(s.port->port)) {
    internal_chain = svc.itp_local ? ch.svl : ch.svc;
    external_policy_chain = svc.etp_local ? ch.svl : ch.svc;
    uses_fw = cat.has_any && !sp.lb_ips.empty() && !sp.source_ranges.empty();
    lb_chain = uses_fw ? ch.fw : ch.ext;
    if (!cat.has_any) {
      int_target = ext_target = "REJECT";
      int_comment = ext_comment = q(sp.spn + " has no endpoints");
    } else {
      if (!cat.has_internal) {
        int_target = "DROP";
        int_comment = q(sp.spn + " has no local endpoints");
      }
      if (!cat.has_external) {
        ext_target = "DROP";
        ext_comment = q(sp.spn + " has no local endpoints");
      }
    }
  }

 private:
  mutable std::unordered_map<std::string, std::string> seps_;
};

// One sync: the four buffers proxier.go keeps (filterChains, filterRules, natChains, natRules),
// filled in syncProxyRules' order.
class Sync {
 public:
  Sync(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam)
      : node_(node), cfg_(cfg), fam_(fam), v6_(fam == Family::V6), sps_(service_ports(c, node, fam)) {
    // Go's %#08x (kube-proxy's format) pads the digits to 8, then prefixes 0x: 0x00004000.
    mark_ = fmt::format("0x{:08x}", cfg.masquerade_mark());
    kube_firewall_ = !v6_ && cfg.localhost_nodeports;
    LocalDetector det = local_detector(cfg, node, fam);
    if_local_ = iptables_match(det, true);
    if_not_local_ = iptables_match(det, false);
    size_t total_endpoints = 0;
    for (auto& sp : sps_) total_endpoints += sp.endpoints.size();
    large_ = total_endpoints > 1000;  // largeClusterEndpointsThreshold
    for (auto& a : node.internal_ips)
      if (a.fam == fam) {
        node_ip_ = &a;
        break;
      }
  }

  std::string run() {
    fixed_chains();
    for (auto& sp : sps_) service_port(Port(sp));
    nodeports_jump();
    forward_rules();
    return "*filter\n" + filter_chains_.text + filter_rules_.text + "COMMIT\n*nat\n" + nat_chains_.text + nat_rules_.text +
           "COMMIT\n";
  }

 private:
  // The top-level chains, and the rules of KUBE-POSTROUTING, KUBE-MARK-MASQ and KUBE-FIREWALL.
  void fixed_chains() {
    for (const char* ch : {kServices, kExternalServices, kForward, kNodePorts, kProxyFirewall}) filter_chains_.chain(ch);
    if (kube_firewall_) filter_chains_.chain(kFirewall);
    for (const char* ch : {kServices, kNodePorts, kPostrouting, kMarkMasq}) nat_chains_.chain(ch);
    masquerading();
    if (kube_firewall_)
      filter_rules_.write("-A", kFirewall, "-m", "comment", "--comment", q("block incoming localnet connections"), "-d",
                          "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
                          "RELATED,ESTABLISHED,DNAT", "-j", "DROP");
  }

  // Masquerade what KUBE-MARK-MASQ marked, once, in POSTROUTING.
  void masquerading() {
    nat_rules_.write("-A", kPostrouting, "-m", "mark", "!", "--mark", mark_ + "/" + mark_, "-j", "RETURN");
    nat_rules_.write("-A", kPostrouting, "-j", "MARK", "--xor-mark", mark_);
    if (cfg_.random_fully)
      nat_rules_.write("-A", kPostrouting, "-m", "comment", "--comment", q("kubernetes service traffic requiring SNAT"), "-j",
                       "MASQUERADE", "--random-fully");
    else
      nat_rules_.write("-A", kPostrouting, "-m", "comment", "--comment", q("kubernetes service traffic requiring SNAT"), "-j",
                       "MASQUERADE");
    nat_rules_.write("-A", kMarkMasq, "-j", "MARK", "--or-mark", mark_);
  }

  void service_port(const Port& p) {
    cluster_ip_rules(p);
    external_ip_rules(p);
    load_balancer_rules(p);
    node_port_rules(p);
    internal_masquerade(p);
    external_chain(p);
    firewall_chain(p);
    if (p.cat.uses_cluster) load_balance(p, p.ch.svc, p.cat.cluster);
    if (p.cat.uses_local) load_balance(p, p.ch.svl, p.cat.local);
    endpoint_chains(p);
  }

  // "Capture the clusterIP."
  void cluster_ip_rules(const Port& p) {
    const std::string& pr = p.sp.proto;
    if (p.cat.has_internal)
      nat_rules_.write("-A", kServices, "-m", "comment", "--comment", q(p.sp.spn + " cluster IP"), "-m", pr, "-p", pr, "-d",
                       p.cip, "--dport", p.port, "-j", p.internal_chain);
    else
      filter_rules_.write("-A", kServices, "-m", "comment", "--comment", p.int_comment, "-m", pr, "-p", pr, "-d", p.cip,
                          "--dport", p.port, "-j", p.int_target);
  }

  // "Capture externalIPs."
  void external_ip_rules(const Port& p) {
    const std::string& pr = p.sp.proto;
    for (auto& eip : p.sp.external_ips) {
      if (p.cat.has_any)
        nat_rules_.write("-A", kServices, "-m", "comment", "--comment", q(p.sp.spn + " external IP"), "-m", pr, "-p", pr, "-d",
                         eip.str(), "--dport", p.port, "-j", p.ch.ext);
      if (!p.cat.has_external)
        filter_rules_.write("-A", kExternalServices, "-m", "comment", "--comment", p.ext_comment, "-m", pr, "-p", pr, "-d",
                            eip.str(), "--dport", p.port, "-j", p.ext_target);
    }
  }

  // "Capture load-balancer ingress", with KUBE-PROXY-FIREWALL's drop for source ranges.
  void load_balancer_rules(const Port& p) {
    const std::string& pr = p.sp.proto;
    for (auto& lb : p.sp.lb_ips) {
      if (p.cat.has_any)
        nat_rules_.write("-A", kServices, "-m", "comment", "--comment", q(p.sp.spn + " loadbalancer IP"), "-m", pr, "-p", pr,
                         "-d", lb.str(), "--dport", p.port, "-j", p.lb_chain);
      if (p.uses_fw)
        filter_rules_.write("-A", kProxyFirewall, "-m", "comment", "--comment",
                            q(p.sp.spn + " traffic not accepted by " + p.ch.fw), "-m", pr, "-p", pr, "-d", lb.str(), "--dport",
                            p.port, "-j", "DROP");
    }
    if (!p.cat.has_external)
      for (auto& lb : p.sp.lb_ips)
        filter_rules_.write("-A", kExternalServices, "-m", "comment", "--comment", p.ext_comment, "-m", pr, "-p", pr, "-d",
                            lb.str(), "--dport", p.port, "-j", p.ext_target);
  }

  // "Capture nodeports" and "Capture healthCheckNodePorts".
  void node_port_rules(const Port& p) {
    const std::string& pr = p.sp.proto;
    const std::string& spn = p.sp.spn;
    if (p.sp.port->node_port) {
      std::string np = std::to_string(p.sp.port->node_port);
      if (p.cat.has_any) {
        if (!v6_ && cfg_.localhost_nodeports && cfg_.nfacct)
          nat_rules_.write("-A", kNodePorts, "-m", "comment", "--comment", spn, "-m", pr, "-p", pr, "-d", "127.0.0.0/8",
                           "--dport", np, "-m", "nfacct", "--nfacct-name", "localhost_nps_accepted_pkts", "-j", p.ch.ext);
        nat_rules_.write("-A", kNodePorts, "-m", "comment", "--comment", spn, "-m", pr, "-p", pr, "--dport", np, "-j", p.ch.ext);
      }
      if (!p.cat.has_external)
        filter_rules_.write("-A", kExternalServices, "-m", "comment", "--comment", p.ext_comment, "-m", "addrtype", "--dst-type",
                            "LOCAL", "-m", pr, "-p", pr, "--dport", np, "-j", p.ext_target);
    }
    // kube-proxy serves health checks only for externalTrafficPolicy: Local; a healthCheckNodePort
    // left on a Cluster Service (the API server keeps it) opens nothing.
    if (p.svc.health_check_node_port && p.svc.etp_local)
      filter_rules_.write("-A", kNodePorts, "-m", "comment", "--comment", q(spn + " health check node port"), "-m", "tcp", "-p",
                          "tcp", "--dport", std::to_string(p.svc.health_check_node_port), "-j", "ACCEPT");
  }

  // Internal traffic: masquerade off-cluster sources (or everything with masqueradeAll).
  void internal_masquerade(const Port& p) {
    if (!p.cat.has_internal) return;
    const std::string& pr = p.sp.proto;
    std::string args =
        fmt::format("-m comment --comment {} -m {} -p {} -d {} --dport {}", q(p.sp.spn + " cluster IP"), pr, pr, p.cip, p.port);
    if (cfg_.masquerade_all) nat_rules_.write("-A", p.internal_chain, args, "-j", kMarkMasq);
    else if (!if_not_local_.empty()) nat_rules_.write("-A", p.internal_chain, args, if_not_local_, "-j", kMarkMasq);
  }

  // KUBE-EXT-: masquerade external traffic, or (eTP=Local) short-circuit pod and node traffic.
  void external_chain(const Port& p) {
    if (!p.cat.uses_external) return;
    const std::string& ext = p.ch.ext;
    const std::string& spn = p.sp.spn;
    nat_chains_.chain(ext);
    if (!p.svc.etp_local) {
      nat_rules_.write("-A", ext, "-m", "comment", "--comment", q("masquerade traffic for " + spn + " external destinations"),
                       "-j", kMarkMasq);
    } else {
      if (!if_local_.empty())
        nat_rules_.write("-A", ext, "-m", "comment", "--comment", q("pod traffic for " + spn + " external destinations"),
                         if_local_, "-j", p.ch.svc);
      nat_rules_.write("-A", ext, "-m", "comment", "--comment",
                       q("masquerade LOCAL traffic for " + spn + " external destinations"), "-m", "addrtype", "--src-type",
                       "LOCAL", "-j", kMarkMasq);
      nat_rules_.write("-A", ext, "-m", "comment", "--comment", q("route LOCAL traffic for " + spn + " external destinations"),
                       "-m", "addrtype", "--src-type", "LOCAL", "-j", p.ch.svc);
    }
    if (p.cat.has_external) nat_rules_.write("-A", ext, "-j", p.external_policy_chain);
  }

  // KUBE-FW-: loadBalancerSourceRanges; what falls through is dropped in KUBE-PROXY-FIREWALL.
  void firewall_chain(const Port& p) {
    if (!p.uses_fw) return;
    const std::string& fw = p.ch.fw;
    nat_chains_.chain(fw);
    std::string head = fmt::format("-A {} -m comment --comment {}", fw, q(p.sp.spn + " loadbalancer IP"));
    bool allow_from_node = false;
    for (auto& src : p.sp.source_ranges) {
      nat_rules_.write(head, "-s", src, "-j", p.ch.ext);
      auto pf = Prefix::parse(src);
      if (pf && node_ip_ && pf->contains(*node_ip_)) allow_from_node = true;
    }
    if (allow_from_node)
      for (auto& lb : p.sp.lb_ips) nat_rules_.write(head, "-s", lb.str(), "-j", p.ch.ext);
    nat_rules_.write("-A", fw, "-m", "comment", "--comment",
                     q("other traffic to " + p.sp.spn + " will be dropped by KUBE-PROXY-FIREWALL"));
  }

  // writeServiceToEndpointRules: KUBE-SVC-/KUBE-SVL- pick an endpoint, affinity first.
  void load_balance(const Port& p, const std::string& chain, const std::vector<Endpoint>& eps) {
    nat_chains_.chain(chain);
    if (p.svc.affinity_client_ip)
      for (auto& e : eps) {
        std::string es = e.str(), sep = p.sep(es);
        nat_rules_.write("-A", chain, comment(q(p.sp.spn + " -> " + es)), "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                         std::to_string(p.svc.affinity_timeout), "--reap", "-j", sep);
      }
    size_t n = eps.size();
    for (size_t i = 0; i < n; ++i) {
      std::string es = eps[i].str();
      if (i + 1 < n)
        nat_rules_.write("-A", chain, comment(q(p.sp.spn + " -> " + es)), "-m", "statistic", "--mode", "random", "--probability",
                         fmt::format("{:.10f}", 1.0 / double(n - i)), "-j", p.sep(es));
      else nat_rules_.write("-A", chain, comment(q(p.sp.spn + " -> " + es)), "-j", p.sep(es));
    }
  }

  // KUBE-SEP-: hairpin masquerade, then DNAT to the endpoint.
  void endpoint_chains(const Port& p) {
    for (auto& e : p.cat.all) {
      std::string es = e.str(), sep = p.sep(es);
      nat_chains_.chain(sep);
      std::string head = "-A " + sep;
      if (!large_) head += " -m comment --comment " + p.sp.spn;
      nat_rules_.write(head, "-s", e.ip.str(), "-j", kMarkMasq);
      std::string dnat = head;
      if (p.svc.affinity_client_ip) dnat += " -m recent --name " + sep + " --set";
      nat_rules_.write(dnat, "-m", p.sp.proto, "-p", p.sp.proto, "-j", "DNAT", "--to-destination", es);
    }
  }

  // The tail of KUBE-SERVICES: NodePorts on this node's addresses.
  void nodeports_jump() {
    std::string np_comment = q("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
    std::vector<std::string> cidrs;
    for (auto& a : cfg_.node_port_addresses) {
      if (a == "primary") {
        for (auto& ip : node_.internal_ips)
          if (ip.fam == fam_) {
            cidrs.push_back(Prefix::host(ip).str());
            break;
          }
        continue;
      }
      auto pf = Prefix::parse(a);
      if (pf && pf->addr.fam == fam_) cidrs.push_back(a);
    }
    bool zero = cfg_.node_port_addresses.empty();
    for (auto& cidr : cidrs)
      if (Prefix::parse(cidr)->len == 0) zero = true;
    if (zero) {
      std::string dest = "-m addrtype --dst-type LOCAL";
      if (v6_) dest += " ! -d ::1/128";
      else if (!cfg_.localhost_nodeports) dest += " ! -d 127.0.0.0/8";
      nat_rules_.write("-A", kServices, "-m", "comment", "--comment", np_comment, dest, "-j", kNodePorts);
      return;
    }
    // The node's own addresses inside nodePortAddresses (loopback only on IPv4 with localhost NodePorts).
    std::vector<Addr> addrs(node_.internal_ips.begin(), node_.internal_ips.end());
    addrs.insert(addrs.end(), node_.external_ips.begin(), node_.external_ips.end());
    addrs.push_back(*Addr::parse(v6_ ? "::1" : "127.0.0.1"));
    std::set<std::string> chosen;
    for (auto& a : addrs) {
      if (a.fam != fam_) continue;
      if (a.is_loopback() && (v6_ || !cfg_.localhost_nodeports)) continue;
      for (auto& cidr : cidrs)
        if (Prefix::parse(cidr)->contains(a)) chosen.insert(a.str());
    }
    for (auto& a : chosen) nat_rules_.write("-A", kServices, "-m", "comment", "--comment", np_comment, "-d", a, "-j", kNodePorts);
  }

  // KUBE-FORWARD: drop INVALID, accept marked traffic and its replies.
  void forward_rules() {
    if (!cfg_.tcp_be_liberal) {
      if (cfg_.nfacct)
        filter_rules_.write("-A", kForward, "-m", "conntrack", "--ctstate", "INVALID", "-m", "nfacct", "--nfacct-name",
                            "ct_state_invalid_dropped_pkts", "-j", "DROP");
      else filter_rules_.write("-A", kForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
    }
    filter_rules_.write("-A", kForward, "-m", "comment", "--comment", q("kubernetes forwarding rules"), "-m", "mark", "--mark",
                        mark_ + "/" + mark_, "-j", "ACCEPT");
    filter_rules_.write("-A", kForward, "-m", "comment", "--comment", q("kubernetes forwarding conntrack rule"), "-m",
                        "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT");
  }

  // Large-cluster mode drops the comments of the per-endpoint rules.
  std::string comment(const std::string& text) const { return large_ ? std::string() : "-m comment --comment " + text; }

  const k8s::Node& node_;
  const k8s::ProxyConfig& cfg_;
  Family fam_;
  bool v6_;
  std::vector<ServicePort> sps_;
  std::string mark_;
  bool kube_firewall_ = false;
  std::string if_local_, if_not_local_;
  bool large_ = false;
  const Addr* node_ip_ = nullptr;
  Lines filter_chains_, filter_rules_, nat_chains_, nat_rules_;
};

}  // namespace

std::string restore_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  return Sync(c, node, cfg, fam).run();
}

nf::Ruleset node_ruleset(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  bool kube_firewall = fam == Family::V4 && cfg.localhost_nodeports;
  const std::string nw = "-m conntrack --ctstate NEW ";
  // kube-proxy's EnsureChain/EnsureRule(Prepend) results, top to bottom, then its restore input.
  std::string base = "*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n*filter\n";
  base +=
      ":KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
      ":KUBE-PROXY-FIREWALL - [0:0]\n";
  if (kube_firewall) base += ":KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\n";
  base += "-A INPUT " + nw + "-m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n";
  base += "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n";
  base += "-A INPUT " + nw + "-m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n";
  base += "-A FORWARD " + nw + "-m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n";
  base += "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n";
  base += "-A FORWARD " + nw + "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  base +=
      "-A FORWARD " + nw + "-m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n";
  if (kube_firewall) base += "-A OUTPUT -j KUBE-FIREWALL\n";
  base += "-A OUTPUT " + nw + "-m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n";
  base += "-A OUTPUT " + nw + "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  base += "COMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n";
  base += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  base += "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  base += "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n";
  base += "COMMIT\n";
  nf::Ruleset rs;
  rs.family = fam;
  std::string where = fmt::format("kube-proxy rules for node {}", node.name);
  nf::load_restore(base, where + " (built-in jumps)", rs);
  nf::RestoreOptions noflush;
  noflush.noflush = true;
  nf::load_restore(restore_input(c, node, cfg, fam), where, rs, noflush);
  return rs;
}

}  // namespace svcpath::kube::iptables
