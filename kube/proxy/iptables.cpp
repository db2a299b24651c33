#include "kube/proxy/iptables.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "netfilter/iptables/iptables.hpp"

namespace svcpath::nf::kube {

std::string chain_hash(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  // RFC 4648 base32 of the first 10 bytes gives exactly the 16 characters kept.
  static constexpr char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint64_t buf = 0;
  int bits = 0;
  for (int i = 0; i < 10; ++i) {
    buf = (buf << 8) | d[i];
    bits += 8;
    while (bits >= 5) {
      out += kAlpha[(buf >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

std::string Endpoint::str() const {
  return ip.is_v4() ? fmt::format("{}:{}", ip.str(), port) : fmt::format("[{}]:{}", ip.str(), port);
}

std::string ServicePort::sep_chain(const Endpoint& e) const { return "KUBE-SEP-" + chain_hash(spn + proto + e.str()); }

namespace {

std::string proto_name(uint8_t p) { return p == proto::TCP ? "tcp" : p == proto::UDP ? "udp" : "sctp"; }

bool fam_of(const Addr& a, Family f) { return a.fam == f; }

}  // namespace

std::vector<ServicePort> service_ports(const k8s::Cluster& c, const k8s::Node& node, Family fam) {
  std::vector<ServicePort> out;
  // Slices by "namespace/service": one pass, so generation stays linear in the cluster's size.
  std::map<std::string, std::vector<const k8s::EndpointSlice*>, std::less<>> slices_of;
  for (auto& sl : c.slices) slices_of[sl.ns + "/" + sl.service_name].push_back(&sl);
  static const std::vector<const k8s::EndpointSlice*> kNone;
  for (auto& svc : c.services) {
    auto found = slices_of.find(svc.ns + "/" + svc.name);
    const auto& my_slices = found == slices_of.end() ? kNone : found->second;
    if (svc.type == "ExternalName" || svc.headless) continue;
    const Addr* cip = nullptr;
    for (auto& a : svc.cluster_ips)
      if (fam_of(a, fam)) cip = &a;
    if (!cip) continue;  // no ClusterIP of this family: nothing for this proxier
    for (auto& p : svc.ports) {
      ServicePort sp;
      sp.svc = &svc;
      sp.port = &p;
      sp.spn = fmt::format("{}/{}{}", svc.ns, svc.name, p.name.empty() ? "" : ":" + p.name);
      sp.proto = proto_name(p.proto);
      sp.cluster_ip = *cip;
      for (auto& a : svc.external_ips)
        if (fam_of(a, fam)) sp.external_ips.push_back(a);
      for (auto& in : svc.lb_ingress)
        if (fam_of(in.ip, fam) && in.ip_mode != "Proxy") sp.lb_ips.push_back(in.ip);
      for (auto& r : svc.lb_source_ranges) {
        auto pf = Prefix::parse(r);
        if (pf && pf->addr.fam == fam) sp.source_ranges.push_back(r);
      }
      std::string h = chain_hash(sp.spn + sp.proto);
      sp.svc_chain = "KUBE-SVC-" + h;
      sp.svl_chain = "KUBE-SVL-" + h;
      sp.ext_chain = "KUBE-EXT-" + h;
      sp.fw_chain = "KUBE-FW-" + h;
      // Endpoints: slices of this service and family, the port with this name and protocol, the
      // first address of each endpoint (kube-proxy ignores the rest).
      std::map<std::string, Endpoint> by_text;
      for (const k8s::EndpointSlice* slp : my_slices) {
        const k8s::EndpointSlice& sl = *slp;
        if (sl.address_type != (fam == Family::V4 ? "IPv4" : "IPv6")) continue;
        for (auto& ep_port : sl.ports) {
          if (ep_port.name != p.name || ep_port.proto != p.proto || !ep_port.port) continue;
          for (auto& e : sl.endpoints) {
            if (e.addresses.empty()) continue;
            Endpoint x;
            x.ip = e.addresses[0];
            x.port = *ep_port.port;
            x.ready = e.is_ready();
            x.serving = e.is_serving();
            x.terminating = e.is_terminating();
            x.local = !e.node_name.empty() && e.node_name == node.name;
            by_text.emplace(x.str(), x);
          }
        }
      }
      for (auto& [text, e] : by_text) sp.endpoints.push_back(e);  // std::map: sorted by text
      out.push_back(std::move(sp));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ServicePort& a, const ServicePort& b) { return a.spn != b.spn ? a.spn < b.spn : a.proto < b.proto; });
  return out;
}

Categorized categorize(const ServicePort& sp) {
  const k8s::Service& s = *sp.svc;
  bool ext = s.externally_accessible();
  bool uses_cluster = !s.itp_local || (ext && !s.etp_local);
  bool uses_local = s.itp_local || (ext && s.etp_local);
  Categorized c;
  auto pick = [&](auto pred) {
    std::vector<Endpoint> v;
    for (auto& e : sp.endpoints)
      if (pred(e)) v.push_back(e);
    return v;
  };
  if (uses_cluster) {
    c.cluster = pick([](const Endpoint& e) { return e.ready; });
    if (c.cluster.empty()) c.cluster = pick([](const Endpoint& e) { return e.serving && e.terminating; });
    if (!c.cluster.empty()) c.has_any = true;
  }
  if (!uses_local) {
    c.all = c.cluster;
    return c;
  }
  bool local_ready = false, local_term = false;
  for (auto& e : sp.endpoints) {
    if (e.ready) {
      c.has_any = true;
      if (e.local) local_ready = true;
    } else if (e.serving && e.terminating) {
      c.has_any = true;
      if (e.local) local_term = true;
    }
  }
  if (local_ready) c.local = pick([](const Endpoint& e) { return e.local && e.ready; });
  else if (local_term) c.local = pick([](const Endpoint& e) { return e.local && e.serving && e.terminating; });
  if (!uses_cluster) {
    c.all = c.local;
    return c;
  }
  // Both in use: the union, still in endpoint order.
  std::set<std::string> seen;
  for (auto& e : sp.endpoints) {
    bool in = false;
    for (auto* v : {&c.cluster, &c.local})
      for (auto& x : *v)
        if (x.str() == e.str()) in = true;
    if (in && seen.insert(e.str()).second) c.all.push_back(e);
  }
  return c;
}

namespace {

// "ClusterCIDR"/"NodeCIDR"/"BridgeInterface"/"InterfaceNamePrefix" local-traffic detectors.
}  // namespace

Detector detector(const k8s::ProxyConfig& cfg, const k8s::Node& node, Family fam) {
  Detector d;
  auto cidr = [&](const std::vector<Prefix>& v) {
    for (auto& p : v)
      if (p.addr.fam == fam) {
        d.if_local = "-s " + p.str();
        d.if_not_local = "! -s " + p.str();
        return;
      }
  };
  if (cfg.detect_local_mode == "ClusterCIDR") cidr(cfg.cluster_cidrs);
  else if (cfg.detect_local_mode == "NodeCIDR") cidr(node.pod_cidrs);
  else if (cfg.detect_local_mode == "BridgeInterface") {
    d.if_local = "-i " + cfg.bridge_interface;
    d.if_not_local = "! -i " + cfg.bridge_interface;
  } else if (cfg.detect_local_mode == "InterfaceNamePrefix") {
    d.if_local = "-i " + cfg.interface_name_prefix + "+";
    d.if_not_local = "! -i " + cfg.interface_name_prefix + "+";
  }
  return d;
}

namespace {

// Like kube-proxy's LineBuffer: words joined by spaces.
struct Lines {
  std::string text;
  size_t n = 0;
  template <class... A>
  void write(A&&... words) {
    std::string line;
    auto add = [&](std::string_view w) {
      if (w.empty()) return;  // an omitted part (e.g. comments in large-cluster mode)
      if (!line.empty()) line += ' ';
      line += w;
    };
    (add(std::string_view(words)), ...);
    text += line;
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

}  // namespace

std::string restore_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  bool v6 = fam == Family::V6;
  bool kube_firewall = !v6 && cfg.localhost_nodeports;
  Lines filter_chains, filter_rules, nat_chains, nat_rules;
  for (const char* ch : {kServices, kExternalServices, kForward, kNodePorts, kProxyFirewall}) filter_chains.chain(ch);
  if (kube_firewall) filter_chains.chain(kFirewall);
  for (const char* ch : {kServices, kNodePorts, kPostrouting, kMarkMasq}) nat_chains.chain(ch);

  // Go's %#08x (kube-proxy's format) pads the digits to 8, then prefixes 0x: 0x00004000.
  std::string mark = fmt::format("0x{:08x}", cfg.masquerade_mark());
  nat_rules.write("-A", kPostrouting, "-m", "mark", "!", "--mark", mark + "/" + mark, "-j", "RETURN");
  nat_rules.write("-A", kPostrouting, "-j", "MARK", "--xor-mark", mark);
  if (cfg.random_fully)
    nat_rules.write("-A", kPostrouting, "-m", "comment", "--comment", q("kubernetes service traffic requiring SNAT"), "-j",
                    "MASQUERADE", "--random-fully");
  else
    nat_rules.write("-A", kPostrouting, "-m", "comment", "--comment", q("kubernetes service traffic requiring SNAT"), "-j",
                    "MASQUERADE");
  nat_rules.write("-A", kMarkMasq, "-j", "MARK", "--or-mark", mark);
  if (kube_firewall)
    filter_rules.write("-A", kFirewall, "-m", "comment", "--comment", q("block incoming localnet connections"), "-d",
                       "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                       "-j", "DROP");

  Detector det = detector(cfg, node, fam);
  auto sps = service_ports(c, node, fam);
  size_t total_endpoints = 0;
  for (auto& sp : sps) total_endpoints += sp.endpoints.size();
  bool large = total_endpoints > 1000;  // largeClusterEndpointsThreshold
  auto comment = [&](std::string text) -> std::string { return large ? std::string() : "-m comment --comment " + text; };
  const Addr* node_ip = nullptr;
  for (auto& a : node.internal_ips)
    if (a.fam == fam) {
      node_ip = &a;
      break;
    }

  for (auto& sp : sps) {
    const k8s::Service& svc = *sp.svc;
    const std::string& pr = sp.proto;
    std::string cip = sp.cluster_ip.str();
    std::string port = std::to_string(sp.port->port);
    Categorized cat = categorize(sp);
    bool uses_cluster_chain = !cat.cluster.empty() && (!svc.itp_local || (svc.externally_accessible() && !svc.etp_local));
    bool uses_local_chain = !cat.local.empty() && (svc.itp_local || (svc.externally_accessible() && svc.etp_local));
    std::string internal_chain = svc.itp_local ? sp.svl_chain : sp.svc_chain;
    bool has_internal = cat.has_any && !(svc.itp_local && cat.local.empty());
    std::string external_policy_chain = svc.etp_local ? sp.svl_chain : sp.svc_chain;
    bool has_external = cat.has_any && !(svc.etp_local && cat.local.empty());
    bool uses_ext_chain = cat.has_any && svc.externally_accessible();
    std::string lb_chain = sp.ext_chain;
    bool uses_fw = cat.has_any && !sp.lb_ips.empty() && !sp.source_ranges.empty();
    if (uses_fw) lb_chain = sp.fw_chain;

    std::string int_target, int_comment, ext_target, ext_comment;
    if (!cat.has_any) {
      int_target = ext_target = "REJECT";
      int_comment = ext_comment = q(sp.spn + " has no endpoints");
    } else {
      if (!has_internal) {
        int_target = "DROP";
        int_comment = q(sp.spn + " has no local endpoints");
      }
      if (!has_external) {
        ext_target = "DROP";
        ext_comment = q(sp.spn + " has no local endpoints");
      }
    }

    if (has_internal)
      nat_rules.write("-A", kServices, "-m", "comment", "--comment", q(sp.spn + " cluster IP"), "-m", pr, "-p", pr, "-d", cip,
                      "--dport", port, "-j", internal_chain);
    else
      filter_rules.write("-A", kServices, "-m", "comment", "--comment", int_comment, "-m", pr, "-p", pr, "-d", cip, "--dport",
                         port, "-j", int_target);

    for (auto& eip : sp.external_ips) {
      if (cat.has_any)
        nat_rules.write("-A", kServices, "-m", "comment", "--comment", q(sp.spn + " external IP"), "-m", pr, "-p", pr, "-d",
                        eip.str(), "--dport", port, "-j", sp.ext_chain);
      if (!has_external)
        filter_rules.write("-A", kExternalServices, "-m", "comment", "--comment", ext_comment, "-m", pr, "-p", pr, "-d",
                           eip.str(), "--dport", port, "-j", ext_target);
    }
    for (auto& lb : sp.lb_ips) {
      if (cat.has_any)
        nat_rules.write("-A", kServices, "-m", "comment", "--comment", q(sp.spn + " loadbalancer IP"), "-m", pr, "-p", pr, "-d",
                        lb.str(), "--dport", port, "-j", lb_chain);
      if (uses_fw)
        filter_rules.write("-A", kProxyFirewall, "-m", "comment", "--comment",
                           q(sp.spn + " traffic not accepted by " + sp.fw_chain), "-m", pr, "-p", pr, "-d", lb.str(), "--dport",
                           port, "-j", "DROP");
    }
    if (!has_external)
      for (auto& lb : sp.lb_ips)
        filter_rules.write("-A", kExternalServices, "-m", "comment", "--comment", ext_comment, "-m", pr, "-p", pr, "-d", lb.str(),
                           "--dport", port, "-j", ext_target);
    if (sp.port->node_port) {
      std::string np = std::to_string(sp.port->node_port);
      if (cat.has_any) {
        if (!v6 && cfg.localhost_nodeports && cfg.nfacct)
          nat_rules.write("-A", kNodePorts, "-m", "comment", "--comment", sp.spn, "-m", pr, "-p", pr, "-d", "127.0.0.0/8",
                          "--dport", np, "-m", "nfacct", "--nfacct-name", "localhost_nps_accepted_pkts", "-j", sp.ext_chain);
        nat_rules.write("-A", kNodePorts, "-m", "comment", "--comment", sp.spn, "-m", pr, "-p", pr, "--dport", np, "-j",
                        sp.ext_chain);
      }
      if (!has_external)
        filter_rules.write("-A", kExternalServices, "-m", "comment", "--comment", ext_comment, "-m", "addrtype", "--dst-type",
                           "LOCAL", "-m", pr, "-p", pr, "--dport", np, "-j", ext_target);
    }
    if (svc.health_check_node_port)
      filter_rules.write("-A", kNodePorts, "-m", "comment", "--comment", q(sp.spn + " health check node port"), "-m", "tcp", "-p",
                         "tcp", "--dport", std::to_string(svc.health_check_node_port), "-j", "ACCEPT");

    // Internal traffic: masquerade off-cluster sources (or everything with masqueradeAll).
    if (has_internal) {
      std::string args =
          fmt::format("-m comment --comment {} -m {} -p {} -d {} --dport {}", q(sp.spn + " cluster IP"), pr, pr, cip, port);
      if (cfg.masquerade_all) nat_rules.write("-A", internal_chain, args, "-j", kMarkMasq);
      else if (!det.if_not_local.empty()) nat_rules.write("-A", internal_chain, args, det.if_not_local, "-j", kMarkMasq);
    }
    if (uses_ext_chain) {
      nat_chains.chain(sp.ext_chain);
      if (!svc.etp_local) {
        nat_rules.write("-A", sp.ext_chain, "-m", "comment", "--comment",
                        q("masquerade traffic for " + sp.spn + " external destinations"), "-j", kMarkMasq);
      } else {
        if (!det.if_local.empty())
          nat_rules.write("-A", sp.ext_chain, "-m", "comment", "--comment",
                          q("pod traffic for " + sp.spn + " external destinations"), det.if_local, "-j", sp.svc_chain);
        nat_rules.write("-A", sp.ext_chain, "-m", "comment", "--comment",
                        q("masquerade LOCAL traffic for " + sp.spn + " external destinations"), "-m", "addrtype", "--src-type",
                        "LOCAL", "-j", kMarkMasq);
        nat_rules.write("-A", sp.ext_chain, "-m", "comment", "--comment",
                        q("route LOCAL traffic for " + sp.spn + " external destinations"), "-m", "addrtype", "--src-type",
                        "LOCAL", "-j", sp.svc_chain);
      }
      if (has_external) nat_rules.write("-A", sp.ext_chain, "-j", external_policy_chain);
    }
    if (uses_fw) {
      nat_chains.chain(sp.fw_chain);
      std::string head = fmt::format("-A {} -m comment --comment {}", sp.fw_chain, q(sp.spn + " loadbalancer IP"));
      bool allow_from_node = false;
      for (auto& src : sp.source_ranges) {
        nat_rules.write(head, "-s", src, "-j", sp.ext_chain);
        auto pf = Prefix::parse(src);
        if (pf && node_ip && pf->contains(*node_ip)) allow_from_node = true;
      }
      if (allow_from_node)
        for (auto& lb : sp.lb_ips) nat_rules.write(head, "-s", lb.str(), "-j", sp.ext_chain);
      nat_rules.write("-A", sp.fw_chain, "-m", "comment", "--comment",
                      q("other traffic to " + sp.spn + " will be dropped by KUBE-PROXY-FIREWALL"));
    }
    auto endpoint_rules = [&](const std::string& chain, const std::vector<Endpoint>& eps) {
      nat_chains.chain(chain);
      if (svc.affinity_client_ip)
        for (auto& e : eps)
          nat_rules.write("-A", chain, comment(q(sp.spn + " -> " + e.str())), "-m", "recent", "--name", sp.sep_chain(e),
                          "--rcheck", "--seconds", std::to_string(svc.affinity_timeout), "--reap", "-j", sp.sep_chain(e));
      size_t n = eps.size();
      for (size_t i = 0; i < n; ++i) {
        if (i + 1 < n)
          nat_rules.write("-A", chain, comment(q(sp.spn + " -> " + eps[i].str())), "-m", "statistic", "--mode", "random",
                          "--probability", fmt::format("{:.10f}", 1.0 / double(n - i)), "-j", sp.sep_chain(eps[i]));
        else nat_rules.write("-A", chain, comment(q(sp.spn + " -> " + eps[i].str())), "-j", sp.sep_chain(eps[i]));
      }
    };
    if (uses_cluster_chain) endpoint_rules(sp.svc_chain, cat.cluster);
    if (uses_local_chain) endpoint_rules(sp.svl_chain, cat.local);
    for (auto& e : cat.all) {
      std::string sep = sp.sep_chain(e);
      nat_chains.chain(sep);
      std::string head = "-A " + sep;
      if (!large) head += " -m comment --comment " + sp.spn;
      nat_rules.write(head, "-s", e.ip.str(), "-j", kMarkMasq);
      std::string dnat = head;
      if (svc.affinity_client_ip) dnat += " -m recent --name " + sep + " --set";
      nat_rules.write(dnat, "-m", pr, "-p", pr, "-j", "DNAT", "--to-destination", e.str());
    }
  }

  // The tail of KUBE-SERVICES: NodePorts on this node's addresses.
  std::string np_comment = q("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
  std::vector<std::string> cidrs;
  for (auto& a : cfg.node_port_addresses) {
    if (a == "primary") {
      for (auto& ip : node.internal_ips)
        if (ip.fam == fam) {
          cidrs.push_back(Prefix::host(ip).str());
          break;
        }
      continue;
    }
    auto pf = Prefix::parse(a);
    if (pf && pf->addr.fam == fam) cidrs.push_back(a);
  }
  bool zero = cfg.node_port_addresses.empty();
  for (auto& cidr : cidrs)
    if (Prefix::parse(cidr)->len == 0) zero = true;
  if (zero) {
    std::string dest = "-m addrtype --dst-type LOCAL";
    if (v6) dest += " ! -d ::1/128";
    else if (!cfg.localhost_nodeports) dest += " ! -d 127.0.0.0/8";
    nat_rules.write("-A", kServices, "-m", "comment", "--comment", np_comment, dest, "-j", kNodePorts);
  } else {
    // The node's own addresses inside nodePortAddresses (loopback only on IPv4 with localhost NodePorts).
    std::vector<Addr> addrs(node.internal_ips.begin(), node.internal_ips.end());
    addrs.insert(addrs.end(), node.external_ips.begin(), node.external_ips.end());
    addrs.push_back(*Addr::parse(v6 ? "::1" : "127.0.0.1"));
    std::set<std::string> chosen;
    for (auto& a : addrs) {
      if (a.fam != fam) continue;
      if (a.is_loopback() && (v6 || !cfg.localhost_nodeports)) continue;
      for (auto& cidr : cidrs)
        if (Prefix::parse(cidr)->contains(a)) chosen.insert(a.str());
    }
    for (auto& a : chosen) nat_rules.write("-A", kServices, "-m", "comment", "--comment", np_comment, "-d", a, "-j", kNodePorts);
  }

  if (!cfg.tcp_be_liberal) {
    if (cfg.nfacct)
      filter_rules.write("-A", kForward, "-m", "conntrack", "--ctstate", "INVALID", "-m", "nfacct", "--nfacct-name",
                         "ct_state_invalid_dropped_pkts", "-j", "DROP");
    else filter_rules.write("-A", kForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
  }
  filter_rules.write("-A", kForward, "-m", "comment", "--comment", q("kubernetes forwarding rules"), "-m", "mark", "--mark",
                     mark + "/" + mark, "-j", "ACCEPT");
  filter_rules.write("-A", kForward, "-m", "comment", "--comment", q("kubernetes forwarding conntrack rule"), "-m", "conntrack",
                     "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT");

  return "*filter\n" + filter_chains.text + filter_rules.text + "COMMIT\n*nat\n" + nat_chains.text + nat_rules.text + "COMMIT\n";
}

Ruleset node_ruleset(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
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
  Ruleset rs;
  rs.family = fam;
  std::string where = fmt::format("kube-proxy rules for node {}", node.name);
  load_restore(base, where + " (built-in jumps)", rs);
  RestoreOptions noflush;
  noflush.noflush = true;
  load_restore(restore_input(c, node, cfg, fam), where, rs, noflush);
  return rs;
}

std::vector<std::pair<std::string, std::string>> sysctls(const k8s::ProxyConfig& cfg) {
  std::vector<std::pair<std::string, std::string>> v = {{"net.ipv4.ip_forward", "1"},
                                                        {"net.ipv6.conf.all.forwarding", "1"},
                                                        {"net.bridge.bridge-nf-call-iptables", "1"},
                                                        {"net.bridge.bridge-nf-call-ip6tables", "1"}};
  if (cfg.localhost_nodeports) v.push_back({"net.ipv4.conf.all.route_localnet", "1"});
  if (cfg.mode == "ipvs") v.push_back({"net.ipv4.vs.conntrack", "1"});
  return v;
}

}  // namespace svcpath::nf::kube
