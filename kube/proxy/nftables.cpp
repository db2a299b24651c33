#include "kube/proxy/nftables.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "kube/proxy/iptables.hpp"

namespace svcpath::nf::kube {

std::string nft_chain_base(std::string_view name) {
  // chain_hash gives the first 16 base32 characters of the same digest; nftables mode keeps 8.
  std::string s = chain_hash(name).substr(0, 8) + "-" + std::string(name);
  constexpr size_t kMax = 256 - 16;  // knftables.NameLengthMax - chainNamePrefixLengthMax
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

namespace {

// knftables' transaction: one command per line.
struct Tx {
  std::string family, table;
  std::string text;
  std::set<std::string> created;
  template <class... A>
  void line(fmt::format_string<A...> f, A&&... a) {
    text += fmt::format(f, std::forward<A>(a)...);
    text += '\n';
  }
  void chain(const std::string& name) {
    if (!created.insert(name).second) return;
    line("add chain {} {} {}", family, table, name);
    line("flush chain {} {} {}", family, table, name);
  }
  void rule(const std::string& chain, const std::string& r, const std::string& comment = {}) {
    if (comment.empty()) line("add rule {} {} {} {}", family, table, chain, r);
    else line("add rule {} {} {} {} comment \"{}\"", family, table, chain, r, comment);
  }
  void element(const std::string& set, const std::string& key, const std::string& value = {}, const std::string& comment = {}) {
    std::string c = comment.empty() ? "" : fmt::format(" comment \"{}\"", comment);
    if (value.empty()) line("add element {} {} {} {{ {}{} }}", family, table, set, key, c);
    else line("add element {} {} {} {{ {}{} : {} }}", family, table, set, key, c, value);
  }
};

std::string endpoint_base(const ServicePort& sp, const Endpoint& e) {
  std::string ip = e.ip.str();
  std::replace(ip.begin(), ip.end(), ':', '.');
  return nft_chain_base(fmt::format("{}/{}/{}/{}__{}/{}", sp.svc->ns, sp.svc->name, sp.proto, sp.port->name, ip, e.port));
}

}  // namespace

std::string nft_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  bool v6 = fam == Family::V6;
  Tx tx{v6 ? "ip6" : "ip", "kube-proxy", {}, {}};
  const std::string ipx = v6 ? "ip6" : "ip";
  const std::string addr_type = v6 ? "ipv6_addr" : "ipv4_addr";
  const std::string no_localhost = v6 ? "ip6 daddr != ::1" : "ip daddr != 127.0.0.0/8";
  const std::string mark = fmt::format("0x{:08x}", cfg.masquerade_mark());
  const std::string& F = tx.family;
  const std::string& T = tx.table;

  // --nodeport-addresses: nftables mode defaults to the node's primary IP.
  std::vector<std::string> np_addrs = cfg.node_port_addresses;
  if (np_addrs.empty()) np_addrs = {"primary"};
  bool match_all = false;
  std::vector<Addr> nodeport_ips;
  std::vector<Addr> node_ips;
  for (auto* v : {&node.internal_ips, &node.external_ips})
    for (auto& a : *v)
      if (a.fam == fam && std::find(node_ips.begin(), node_ips.end(), a) == node_ips.end()) node_ips.push_back(a);
  for (auto& s : np_addrs) {
    if (s == "primary") {
      if (!node_ips.empty() && std::find(nodeport_ips.begin(), nodeport_ips.end(), node_ips[0]) == nodeport_ips.end())
        nodeport_ips.push_back(node_ips[0]);
      continue;
    }
    auto pf = Prefix::parse(s);
    if (!pf || pf->addr.fam != fam) continue;
    if (pf->len == 0) match_all = true;
    for (auto& a : node_ips)
      if (pf->contains(a) && !a.is_loopback() && std::find(nodeport_ips.begin(), nodeport_ips.end(), a) == nodeport_ips.end())
        nodeport_ips.push_back(a);
  }

  // setupNFTables
  tx.line("add table {} {} {{ comment \"rules for kube-proxy\" ; }}", F, T);
  struct Base {
    const char* name;
    const char* type;
    const char* hook;
    const char* prio;
  };
  static constexpr Base kBase[] = {
      // knftables writes a named priority as a number where nft accepts the name on no other hook.
      {"filter-prerouting", "filter", "prerouting", "dstnat - 10"},
      {"filter-input", "filter", "input", "-110"},
      {"filter-forward", "filter", "forward", "-110"},
      {"filter-output", "filter", "output", "-110"},
      {"filter-output-post-dnat", "filter", "output", "-90"},
      {"nat-prerouting", "nat", "prerouting", "dstnat"},
      {"nat-output", "nat", "output", "-100"},
      {"nat-postrouting", "nat", "postrouting", "srcnat"},
  };
  for (auto& b : kBase) {
    tx.line("add chain {} {} {} {{ type {} hook {} priority {} ; }}", F, T, b.name, b.type, b.hook, b.prio);
    tx.line("flush chain {} {} {}", F, T, b.name);
    tx.created.insert(b.name);
  }
  struct Jump {
    const char* dst;
    const char* src;
    const char* extra;
  };
  static constexpr Jump kJumps[] = {
      {"nodeport-endpoints-check", "filter-input", "ct state new "},
      {"service-endpoints-check", "filter-input", "ct state new "},
      {"service-endpoints-check", "filter-forward", "ct state new "},
      {"service-endpoints-check", "filter-output", "ct state new "},
      {"firewall-check", "filter-prerouting", "ct state new "},
      {"firewall-check", "filter-output", "ct state new "},
      {"services", "nat-output", ""},
      {"services", "nat-prerouting", ""},
      {"masquerading", "nat-postrouting", ""},
      {"cluster-ips-check", "filter-forward", "ct state new "},
      {"cluster-ips-check", "filter-output-post-dnat", "ct state new "},
  };
  for (auto& j : kJumps) {
    tx.chain(j.dst);
    tx.rule(j.src, fmt::format("{}jump {}", j.extra, j.dst));
  }
  for (const char* ch : {"services", "cluster-ips-check", "masquerading", "mark-for-masquerade"}) tx.chain(ch);
  tx.rule("mark-for-masquerade", "mark set mark or " + mark);
  tx.rule("masquerading", fmt::format("mark and {} == 0 return", mark));
  tx.rule("masquerading", "mark set mark xor " + mark);
  tx.rule("masquerading", cfg.random_fully ? "masquerade fully-random" : "masquerade");
  tx.line("add set {} {} cluster-ips {{ type {} ; comment \"Active ClusterIPs\" ; }}", F, T, addr_type);
  tx.rule("cluster-ips-check", ipx + " daddr @cluster-ips reject", "Reject traffic to invalid ports of ClusterIPs");
  tx.line("add set {} {} nodeport-ips {{ type {} ; comment \"IPs that accept NodePort traffic\" ; }}", F, T, addr_type);
  if (match_all) {
    tx.line("delete set {} {} nodeport-ips", F, T);
  } else {
    tx.line("flush set {} {} nodeport-ips", F, T);
    for (auto& a : nodeport_ips) tx.element("nodeport-ips", a.str());
  }
  tx.line(
      "add map {} {} no-endpoint-services {{ type {} . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject "
      "packets to services with no endpoints\" ; }}",
      F, T, addr_type);
  tx.line(
      "add map {} {} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject "
      "packets to service nodeports with no endpoints\" ; }}",
      F, T);
  tx.line("add chain {} {} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}", F, T);
  tx.line("flush chain {} {} reject-chain", F, T);
  tx.rule("reject-chain", "reject");
  tx.rule("service-endpoints-check", ipx + " daddr . meta l4proto . th dport vmap @no-endpoint-services");
  if (match_all) tx.rule("nodeport-endpoints-check", no_localhost + " meta l4proto . th dport vmap @no-endpoint-nodeports");
  else tx.rule("nodeport-endpoints-check", ipx + " daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports");
  tx.line(
      "add map {} {} firewall-ips {{ type {} . inet_proto . inet_service : verdict ; comment \"destinations that are subject to "
      "LoadBalancerSourceRanges\" ; }}",
      F, T, addr_type);
  tx.chain("firewall-check");
  tx.rule("firewall-check", ipx + " daddr . meta l4proto . th dport vmap @firewall-ips");
  tx.line(
      "add map {} {} service-ips {{ type {} . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and "
      "LoadBalancer IP traffic\" ; }}",
      F, T, addr_type);
  tx.line("add map {} {} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}", F,
          T);
  tx.rule("services", ipx + " daddr . meta l4proto . th dport vmap @service-ips");
  if (match_all) tx.rule("services", "fib daddr type local " + no_localhost + " meta l4proto . th dport vmap @service-nodeports");
  else tx.rule("services", ipx + " daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports");
  tx.line("flush set {} {} cluster-ips", F, T);
  for (const char* m : {"service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"})
    tx.line("flush map {} {} {}", F, T, m);

  // syncProxyRules: one block per service port.
  Detector det = detector(cfg, node, fam);
  auto nftify = [&](const std::string& ipt) -> std::string {
    // kube-proxy's detectors print the same test in nft words.
    if (ipt.empty()) return {};
    bool neg = ipt.starts_with("! ");
    std::string_view s = neg ? std::string_view(ipt).substr(2) : std::string_view(ipt);
    if (s.starts_with("-s ")) return fmt::format("{} saddr {}{}", ipx, neg ? "!= " : "", s.substr(3));
    if (s.starts_with("-i ")) {
      std::string ifn(s.substr(3));
      if (!ifn.empty() && ifn.back() == '+') ifn.back() = '*';
      return fmt::format("iifname {}\"{}\"", neg ? "!= " : "", ifn);
    }
    return {};
  };
  std::string if_local = nftify(det.if_local), if_not_local = nftify(det.if_not_local);
  const Addr* node_ip = node_ips.empty() ? nullptr : &node_ips[0];

  for (auto& sp : service_ports(c, node, fam)) {
    const k8s::Service& svc = *sp.svc;
    const std::string& pr = sp.proto;
    std::string port = std::to_string(sp.port->port);
    std::string base = nft_chain_base(fmt::format("{}/{}/{}/{}", svc.ns, svc.name, pr, sp.port->name));
    std::string cluster_chain = "service-" + base, local_chain = "local-" + base, ext_chain = "external-" + base,
                fw_chain = "firewall-" + base;
    Categorized cat = categorize(sp);
    for (auto& e : cat.all) tx.chain("endpoint-" + endpoint_base(sp, e));
    bool uses_cluster = !cat.cluster.empty() && (!svc.itp_local || (svc.externally_accessible() && !svc.etp_local));
    if (uses_cluster) tx.chain(cluster_chain);
    bool uses_local = !cat.local.empty() && (svc.itp_local || (svc.externally_accessible() && svc.etp_local));
    if (uses_local) tx.chain(local_chain);
    std::string internal_chain = svc.itp_local ? local_chain : cluster_chain;
    bool has_internal = cat.has_any && !(svc.itp_local && cat.local.empty());
    std::string external_policy = svc.etp_local ? local_chain : cluster_chain;
    bool has_external = cat.has_any && !(svc.etp_local && cat.local.empty());
    bool uses_ext = cat.has_any && svc.externally_accessible();
    if (uses_ext) tx.chain(ext_chain);
    std::string int_verdict, ext_verdict;
    if (!cat.has_any) {
      int_verdict = ext_verdict = "goto reject-chain";
    } else {
      if (!has_internal) int_verdict = "drop";
      if (!has_external) ext_verdict = "drop";
    }
    std::string cip = sp.cluster_ip.str();
    tx.element("cluster-ips", cip);
    if (has_internal) tx.element("service-ips", fmt::format("{} . {} . {}", cip, pr, port), "goto " + internal_chain);
    else tx.element("no-endpoint-services", fmt::format("{} . {} . {}", cip, pr, port), int_verdict, sp.spn);
    for (auto& eip : sp.external_ips) {
      if (cat.has_any) tx.element("service-ips", fmt::format("{} . {} . {}", eip.str(), pr, port), "goto " + ext_chain);
      if (!has_external)
        tx.element("no-endpoint-services", fmt::format("{} . {} . {}", eip.str(), pr, port), ext_verdict, sp.spn);
    }
    bool uses_fw = !sp.lb_ips.empty() && !sp.source_ranges.empty();
    if (uses_fw) tx.chain(fw_chain);
    for (auto& lb : sp.lb_ips) {
      if (cat.has_any) tx.element("service-ips", fmt::format("{} . {} . {}", lb.str(), pr, port), "goto " + ext_chain);
      if (uses_fw) tx.element("firewall-ips", fmt::format("{} . {} . {}", lb.str(), pr, port), "goto " + fw_chain);
    }
    if (!has_external)
      for (auto& lb : sp.lb_ips)
        tx.element("no-endpoint-services", fmt::format("{} . {} . {}", lb.str(), pr, port), ext_verdict, sp.spn);
    if (sp.port->node_port) {
      std::string np = std::to_string(sp.port->node_port);
      if (cat.has_any) tx.element("service-nodeports", fmt::format("{} . {}", pr, np), "goto " + ext_chain);
      if (!has_external) tx.element("no-endpoint-nodeports", fmt::format("{} . {}", pr, np), ext_verdict, sp.spn);
    }

    if (has_internal) {
      if (cfg.masquerade_all)
        tx.rule(internal_chain, fmt::format("{} daddr {} {} dport {} jump mark-for-masquerade", ipx, cip, pr, port));
      else if (!if_not_local.empty())
        tx.rule(internal_chain,
                fmt::format("{} daddr {} {} dport {} {} jump mark-for-masquerade", ipx, cip, pr, port, if_not_local));
    }
    if (uses_ext) {
      if (!svc.etp_local) {
        tx.rule(ext_chain, "jump mark-for-masquerade");
      } else {
        if (!if_local.empty())
          tx.rule(ext_chain, fmt::format("{} goto {}", if_local, cluster_chain), "short-circuit pod traffic");
        tx.rule(ext_chain, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic");
        tx.rule(ext_chain, "fib saddr type local goto " + cluster_chain, "short-circuit local traffic");
      }
      if (has_external) tx.rule(ext_chain, "goto " + external_policy);
    }
    if (uses_fw) {
      std::string sources;
      bool allow_from_node = false;
      for (auto& src : sp.source_ranges) {
        auto pf = Prefix::parse(src);
        if (!pf) continue;
        sources += (sources.empty() ? "" : ", ") + pf->str();
        if (node_ip && pf->contains(*node_ip)) allow_from_node = true;
      }
      if (allow_from_node)
        for (auto& lb : sp.lb_ips) sources += ", " + lb.str();
      tx.rule(fw_chain, fmt::format("{} saddr != {{ {} }} drop", ipx, sources));
    }
    if (svc.affinity_client_ip)
      for (auto& e : cat.all)
        tx.line("add set {} {} affinity-{} {{ type {} ; flags dynamic,timeout ; timeout {}s ; }}", F, T, endpoint_base(sp, e),
                addr_type, svc.affinity_timeout);
    auto lb_rules = [&](const std::string& chain, const std::vector<Endpoint>& eps) {
      if (svc.affinity_client_ip)
        for (auto& e : eps)
          tx.rule(chain, fmt::format("{} saddr @affinity-{} goto endpoint-{}", ipx, endpoint_base(sp, e), endpoint_base(sp, e)));
      std::string elems;
      for (size_t i = 0; i < eps.size(); ++i)
        elems += fmt::format("{}{} : goto endpoint-{}", i ? " , " : "", i, endpoint_base(sp, eps[i]));
      tx.rule(chain, fmt::format("numgen random mod {} vmap {{ {} }}", eps.size(), elems));
    };
    if (uses_cluster) lb_rules(cluster_chain, cat.cluster);
    if (uses_local) lb_rules(local_chain, cat.local);
    for (auto& e : cat.all) {
      std::string ep = "endpoint-" + endpoint_base(sp, e);
      tx.rule(ep, fmt::format("{} saddr {} jump mark-for-masquerade", ipx, e.ip.str()));
      if (svc.affinity_client_ip) tx.rule(ep, fmt::format("update @affinity-{} {{ {} saddr }}", endpoint_base(sp, e), ipx));
      tx.rule(ep, fmt::format("meta l4proto {} dnat to {}", pr, e.str()));
    }
  }
  return tx.text;
}

}  // namespace svcpath::nf::kube
