// kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go): setupNFTables' fixed table, then
// syncProxyRules' map elements and chains for each service port, as one `nft -f` transaction.
#include "kube/proxy/nftables.hpp"

#include <algorithm>
#include <set>
#include <span>

#include <fmt/format.h>

#include "kube/proxy/model.hpp"

namespace svcpath::kube::nftables {

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

// The detector in nft words (IfLocalNFT / IfNotLocalNFT): "ip saddr 10.244.0.0/16",
// "iifname != \"cni0\"", "iifname \"veth*\""; empty when not implemented.
std::string nft_match(const LocalDetector& d, bool local, std::string_view ipx) {
  std::string_view neg = local ? "" : "!= ";
  switch (d.kind) {
    case LocalDetector::Kind::None: return {};
    case LocalDetector::Kind::Cidr: return fmt::format("{} saddr {}{}", ipx, neg, d.cidr.str());
    case LocalDetector::Kind::Interface: return fmt::format("iifname {}\"{}\"", neg, d.iface);
    case LocalDetector::Kind::InterfacePrefix: return fmt::format("iifname {}\"{}*\"", neg, d.iface);
  }
  return {};
}

// --nodeport-addresses resolved on this node: nftables mode defaults to the node's primary IP.
struct NodePortAddresses {
  bool match_all = false;      // a /0 was given: every local address but loopback
  std::vector<Addr> ips;       // the @nodeport-ips set otherwise
  std::vector<Addr> node_ips;  // the node's addresses of the family, primary first
};

NodePortAddresses node_port_addresses(const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  NodePortAddresses r;
  std::vector<std::string> np_addrs = cfg.node_port_addresses;
  if (np_addrs.empty()) np_addrs = {"primary"};
  for (auto* v : {&node.internal_ips, &node.external_ips})
    for (auto& a : *v)
      if (a.fam == fam && std::find(r.node_ips.begin(), r.node_ips.end(), a) == r.node_ips.end()) r.node_ips.push_back(a);
  for (auto& s : np_addrs) {
    if (s == "primary") {
      if (!r.node_ips.empty() && std::find(r.ips.begin(), r.ips.end(), r.node_ips[0]) == r.ips.end())
        r.ips.push_back(r.node_ips[0]);
      continue;
    }
    auto pf = Prefix::parse(s);
    if (!pf || pf->addr.fam != fam) continue;
    if (pf->len == 0) r.match_all = true;
    for (auto& a : r.node_ips)
      if (pf->contains(a) && !a.is_loopback() && std::find(r.ips.begin(), r.ips.end(), a) == r.ips.end()) r.ips.push_back(a);
  }
  return r;
}

// A service port's chain names: "<prefix>" + hashAndTruncate("ns/name/proto/portName").
struct Chains {
  std::string cluster, local, ext, fw;
  explicit Chains(const ServicePort& sp) {
    std::string base = nft_chain_base(fmt::format("{}/{}/{}/{}", sp.svc->ns, sp.svc->name, sp.proto, sp.port->name));
    cluster = "service-" + base;
    local = "local-" + base;
    ext = "external-" + base;
    fw = "firewall-" + base;
  }
};

// One service port as syncProxyRules sees it.
struct Port {
  const ServicePort& sp;
  const k8s::Service& svc;
  Chains ch;
  Categorized cat;
  std::string cip, port;
  std::string internal_chain, external_policy;
  bool uses_fw;
  std::string int_verdict, ext_verdict;  // of the no-endpoint map elements

  explicit Port(const ServicePort& s)
      : sp(s), svc(*s.svc), ch(s), cat(categorize(s)), cip(s.cluster_ip.str()), port(std::to_string(s.port->port)) {
    internal_chain = svc.itp_local ? ch.local : ch.cluster;
    external_policy = svc.etp_local ? ch.local : ch.cluster;
    uses_fw = !sp.lb_ips.empty() && !sp.source_ranges.empty();
    if (!cat.has_any) {
      int_verdict = ext_verdict = "goto reject-chain";
    } else {
      if (!cat.has_internal) int_verdict = "drop";
      if (!cat.has_external) ext_verdict = "drop";
    }
  }
  // "addr . proto . port", the key of service-ips, firewall-ips and no-endpoint-services.
  std::string key(const Addr& a) const { return fmt::format("{} . {} . {}", a.str(), sp.proto, port); }
};

class Sync {
 public:
  Sync(const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam)
      : cfg_(cfg),
        v6_(fam == Family::V6),
        tx_{v6_ ? "ip6" : "ip", "kube-proxy", {}, {}},
        ipx_(v6_ ? "ip6" : "ip"),
        addr_type_(v6_ ? "ipv6_addr" : "ipv4_addr"),
        no_localhost_(v6_ ? "ip6 daddr != ::1" : "ip daddr != 127.0.0.0/8"),
        mark_(fmt::format("0x{:08x}", cfg.masquerade_mark())),
        np_(node_port_addresses(node, cfg, fam)) {
    LocalDetector det = local_detector(cfg, node, fam);
    if_local_ = nft_match(det, true, ipx_);
    if_not_local_ = nft_match(det, false, ipx_);
  }

  // setupNFTables: the table, base chains and jumps, masquerading, and the sets and maps.
  void setup(const std::vector<Prefix>& service_cidrs) {
    tx_.line("add table {} {} {{ comment \"rules for kube-proxy\" ; }}", F(), T());
    base_chains();
    masquerade_chains();
    cluster_ips_check(service_cidrs);
    no_endpoint_checks();
    firewall_check();
    services_maps();
  }

  // syncProxyRules: one block per service port.
  void service_port(const Port& p) {
    for (auto& e : p.cat.all) tx_.chain("endpoint-" + endpoint_base(p.sp, e));
    if (p.cat.uses_cluster) tx_.chain(p.ch.cluster);
    if (p.cat.uses_local) tx_.chain(p.ch.local);
    if (p.cat.uses_external) tx_.chain(p.ch.ext);
    map_elements(p);
    internal_masquerade(p);
    external_chain(p);
    firewall_chain(p);
    affinity_sets(p);
    if (p.cat.uses_cluster) load_balance(p, p.ch.cluster, p.cat.cluster);
    if (p.cat.uses_local) load_balance(p, p.ch.local, p.cat.local);
    endpoint_chains(p);
  }

  std::string text() && { return std::move(tx_.text); }

 private:
  const std::string& F() const { return tx_.family; }
  const std::string& T() const { return tx_.table; }

  struct Base {
    const char* name;
    const char* type;
    const char* hook;
    const char* prio;
  };
  struct Jump {
    const char* dst;
    const char* src;
    const char* extra;
  };

  void base_chains() {
    // knftables writes a named priority as a number where nft accepts the name on no other hook.
    // Up to 1.33 the filter chains ran before DNAT (-110), cluster-ips-check after it on output
    // (filter-output-post-dnat); 1.34 runs the endpoint and ClusterIP checks at filter priority,
    // after DNAT, and only the firewall check before it (filter-*-pre-dnat).
    static constexpr Base kBase133[] = {
        {"filter-prerouting", "filter", "prerouting", "dstnat - 10"},
        {"filter-input", "filter", "input", "-110"},
        {"filter-forward", "filter", "forward", "-110"},
        {"filter-output", "filter", "output", "-110"},
        {"filter-output-post-dnat", "filter", "output", "-90"},
        {"nat-prerouting", "nat", "prerouting", "dstnat"},
        {"nat-output", "nat", "output", "-100"},
        {"nat-postrouting", "nat", "postrouting", "srcnat"},
    };
    static constexpr Base kBase134[] = {
        {"filter-prerouting-pre-dnat", "filter", "prerouting", "dstnat - 10"},
        {"filter-output-pre-dnat", "filter", "output", "-110"},
        {"filter-forward", "filter", "forward", "filter"},
        {"filter-input", "filter", "input", "filter"},
        {"filter-output", "filter", "output", "filter"},
        {"nat-prerouting", "nat", "prerouting", "dstnat"},
        {"nat-output", "nat", "output", "-100"},
        {"nat-postrouting", "nat", "postrouting", "srcnat"},
    };
    static constexpr Jump kJumps133[] = {
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
    static constexpr Jump kJumps134[] = {
        {"firewall-check", "filter-prerouting-pre-dnat", "ct state new "},
        {"firewall-check", "filter-output-pre-dnat", "ct state new "},
        {"nodeport-endpoints-check", "filter-input", "ct state new "},
        {"service-endpoints-check", "filter-input", "ct state new "},
        {"service-endpoints-check", "filter-forward", "ct state new "},
        {"cluster-ips-check", "filter-forward", "ct state new "},
        {"service-endpoints-check", "filter-output", "ct state new "},
        {"cluster-ips-check", "filter-output", "ct state new "},
        {"services", "nat-output", ""},
        {"services", "nat-prerouting", ""},
        {"masquerading", "nat-postrouting", ""},
    };
    bool v134 = cfg_.release >= 34;
    for (auto& b : v134 ? std::span<const Base>(kBase134) : std::span<const Base>(kBase133)) {
      tx_.line("add chain {} {} {} {{ type {} hook {} priority {} ; }}", F(), T(), b.name, b.type, b.hook, b.prio);
      tx_.line("flush chain {} {} {}", F(), T(), b.name);
      tx_.created.insert(b.name);
    }
    for (auto& j : v134 ? std::span<const Jump>(kJumps134) : std::span<const Jump>(kJumps133)) {
      tx_.chain(j.dst);
      tx_.rule(j.src, fmt::format("{}jump {}", j.extra, j.dst));
    }
    for (const char* ch : {"services", "cluster-ips-check", "masquerading", "mark-for-masquerade"}) tx_.chain(ch);
  }

  void masquerade_chains() {
    tx_.rule("mark-for-masquerade", "mark set mark or " + mark_);
    tx_.rule("masquerading", fmt::format("mark and {} == 0 return", mark_));
    tx_.rule("masquerading", "mark set mark xor " + mark_);
    tx_.rule("masquerading", cfg_.random_fully ? "masquerade fully-random" : "masquerade");
  }

  // Known Service CIDRs (ServiceCIDR objects) also drop traffic to addresses no Service holds.
  void cluster_ips_check(const std::vector<Prefix>& service_cidrs) {
    tx_.line("add set {} {} cluster-ips {{ type {} ; comment \"Active ClusterIPs\" ; }}", F(), T(), addr_type_);
    tx_.rule("cluster-ips-check", ipx_ + " daddr @cluster-ips reject", "Reject traffic to invalid ports of ClusterIPs");
    std::string cidrs;
    for (const Prefix& p : service_cidrs)
      if (p.addr.fam == (v6_ ? Family::V6 : Family::V4)) cidrs += (cidrs.empty() ? "" : ", ") + p.str();
    if (!cidrs.empty())
      tx_.rule("cluster-ips-check", fmt::format("{} daddr {{ {} }} drop", ipx_, cidrs), "Drop traffic to unallocated ClusterIPs");
  }

  // @nodeport-ips, and the no-endpoint verdict maps with their reject-chain.
  void no_endpoint_checks() {
    tx_.line("add set {} {} nodeport-ips {{ type {} ; comment \"IPs that accept NodePort traffic\" ; }}", F(), T(), addr_type_);
    if (np_.match_all) {
      tx_.line("delete set {} {} nodeport-ips", F(), T());
    } else {
      tx_.line("flush set {} {} nodeport-ips", F(), T());
      for (auto& a : np_.ips) tx_.element("nodeport-ips", a.str());
    }
    tx_.line(
        "add map {} {} no-endpoint-services {{ type {} . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject "
        "packets to services with no endpoints\" ; }}",
        F(), T(), addr_type_);
    tx_.line(
        "add map {} {} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject "
        "packets to service nodeports with no endpoints\" ; }}",
        F(), T());
    tx_.line("add chain {} {} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}", F(),
             T());
    tx_.line("flush chain {} {} reject-chain", F(), T());
    tx_.rule("reject-chain", "reject");
    tx_.rule("service-endpoints-check", ipx_ + " daddr . meta l4proto . th dport vmap @no-endpoint-services");
    if (np_.match_all)
      tx_.rule("nodeport-endpoints-check", no_localhost_ + " meta l4proto . th dport vmap @no-endpoint-nodeports");
    else tx_.rule("nodeport-endpoints-check", ipx_ + " daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports");
  }

  void firewall_check() {
    tx_.line(
        "add map {} {} firewall-ips {{ type {} . inet_proto . inet_service : verdict ; comment \"destinations that are subject "
        "to LoadBalancerSourceRanges\" ; }}",
        F(), T(), addr_type_);
    tx_.chain("firewall-check");
    tx_.rule("firewall-check", ipx_ + " daddr . meta l4proto . th dport vmap @firewall-ips");
  }

  // The services chain's two verdict maps; then every set and map starts empty for the sync.
  void services_maps() {
    tx_.line(
        "add map {} {} service-ips {{ type {} . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and "
        "LoadBalancer IP traffic\" ; }}",
        F(), T(), addr_type_);
    tx_.line("add map {} {} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}",
             F(), T());
    tx_.rule("services", ipx_ + " daddr . meta l4proto . th dport vmap @service-ips");
    if (np_.match_all)
      tx_.rule("services", "fib daddr type local " + no_localhost_ + " meta l4proto . th dport vmap @service-nodeports");
    else tx_.rule("services", ipx_ + " daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports");
    tx_.line("flush set {} {} cluster-ips", F(), T());
    for (const char* m : {"service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"})
      tx_.line("flush map {} {} {}", F(), T(), m);
  }

  // The service's entries in cluster-ips, service-ips, firewall-ips, service-nodeports and the
  // no-endpoint maps.
  void map_elements(const Port& p) {
    const std::string& spn = p.sp.spn;
    tx_.element("cluster-ips", p.cip);
    if (p.cat.has_internal) tx_.element("service-ips", p.key(p.sp.cluster_ip), "goto " + p.internal_chain);
    else tx_.element("no-endpoint-services", p.key(p.sp.cluster_ip), p.int_verdict, spn);
    for (auto& eip : p.sp.external_ips) {
      if (p.cat.has_any) tx_.element("service-ips", p.key(eip), "goto " + p.ch.ext);
      if (!p.cat.has_external) tx_.element("no-endpoint-services", p.key(eip), p.ext_verdict, spn);
    }
    if (p.uses_fw) tx_.chain(p.ch.fw);
    for (auto& lb : p.sp.lb_ips) {
      if (p.cat.has_any) tx_.element("service-ips", p.key(lb), "goto " + p.ch.ext);
      if (p.uses_fw) tx_.element("firewall-ips", p.key(lb), "goto " + p.ch.fw);
    }
    if (!p.cat.has_external)
      for (auto& lb : p.sp.lb_ips) tx_.element("no-endpoint-services", p.key(lb), p.ext_verdict, spn);
    if (p.sp.port->node_port) {
      std::string key = fmt::format("{} . {}", p.sp.proto, p.sp.port->node_port);
      if (p.cat.has_any) tx_.element("service-nodeports", key, "goto " + p.ch.ext);
      if (!p.cat.has_external) tx_.element("no-endpoint-nodeports", key, p.ext_verdict, spn);
    }
  }

  // Internal traffic: masquerade off-cluster sources (or everything with masqueradeAll).
  void internal_masquerade(const Port& p) {
    if (!p.cat.has_internal) return;
    std::string dest = fmt::format("{} daddr {} {} dport {}", ipx_, p.cip, p.sp.proto, p.port);
    if (cfg_.masquerade_all) tx_.rule(p.internal_chain, dest + " jump mark-for-masquerade");
    else if (!if_not_local_.empty()) tx_.rule(p.internal_chain, dest + " " + if_not_local_ + " jump mark-for-masquerade");
  }

  // external-: masquerade external traffic, or (eTP=Local) short-circuit pod and node traffic.
  void external_chain(const Port& p) {
    if (!p.cat.uses_external) return;
    const std::string& ext = p.ch.ext;
    if (!p.svc.etp_local) {
      tx_.rule(ext, "jump mark-for-masquerade");
    } else {
      if (!if_local_.empty()) tx_.rule(ext, fmt::format("{} goto {}", if_local_, p.ch.cluster), "short-circuit pod traffic");
      tx_.rule(ext, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic");
      tx_.rule(ext, "fib saddr type local goto " + p.ch.cluster, "short-circuit local traffic");
    }
    if (p.cat.has_external) tx_.rule(ext, "goto " + p.external_policy);
  }

  // firewall-: drop sources outside loadBalancerSourceRanges.
  void firewall_chain(const Port& p) {
    if (!p.uses_fw) return;
    const Addr* node_ip = np_.node_ips.empty() ? nullptr : &np_.node_ips[0];
    std::string sources;
    bool allow_from_node = false;
    for (auto& src : p.sp.source_ranges) {
      auto pf = Prefix::parse(src);
      if (!pf) continue;
      sources += (sources.empty() ? "" : ", ") + pf->str();
      if (node_ip && pf->contains(*node_ip)) allow_from_node = true;
    }
    if (allow_from_node)
      for (auto& lb : p.sp.lb_ips) sources += ", " + lb.str();
    tx_.rule(p.ch.fw, fmt::format("{} saddr != {{ {} }} drop", ipx_, sources));
  }

  // sessionAffinity ClientIP: one dynamic set of recent clients per endpoint.
  void affinity_sets(const Port& p) {
    if (!p.svc.affinity_client_ip) return;
    for (auto& e : p.cat.all)
      tx_.line("add set {} {} affinity-{} {{ type {} ; flags dynamic,timeout ; timeout {}s ; }}", F(), T(),
               endpoint_base(p.sp, e), addr_type_, p.svc.affinity_timeout);
  }

  // service- / local-: affinity first, then numgen over the endpoints.
  void load_balance(const Port& p, const std::string& chain, const std::vector<Endpoint>& eps) {
    if (p.svc.affinity_client_ip)
      for (auto& e : eps)
        tx_.rule(chain,
                 fmt::format("{} saddr @affinity-{} goto endpoint-{}", ipx_, endpoint_base(p.sp, e), endpoint_base(p.sp, e)));
    std::string elems;
    for (size_t i = 0; i < eps.size(); ++i)
      elems += fmt::format("{}{} : goto endpoint-{}", i ? " , " : "", i, endpoint_base(p.sp, eps[i]));
    tx_.rule(chain, fmt::format("numgen random mod {} vmap {{ {} }}", eps.size(), elems));
  }

  // endpoint-: hairpin masquerade, affinity update, DNAT.
  void endpoint_chains(const Port& p) {
    for (auto& e : p.cat.all) {
      std::string ep = "endpoint-" + endpoint_base(p.sp, e);
      tx_.rule(ep, fmt::format("{} saddr {} jump mark-for-masquerade", ipx_, e.ip.str()));
      if (p.svc.affinity_client_ip) tx_.rule(ep, fmt::format("update @affinity-{} {{ {} saddr }}", endpoint_base(p.sp, e), ipx_));
      tx_.rule(ep, fmt::format("meta l4proto {} dnat to {}", p.sp.proto, e.str()));
    }
  }

  const k8s::ProxyConfig& cfg_;
  bool v6_;
  Tx tx_;
  std::string ipx_, addr_type_, no_localhost_, mark_;
  NodePortAddresses np_;
  std::string if_local_, if_not_local_;
};

}  // namespace

std::string nft_input(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  Sync s(node, cfg, fam);
  s.setup(c.service_cidrs);
  for (auto& sp : service_ports(c, node, fam)) s.service_port(Port(sp));
  return std::move(s).text();
}

}  // namespace svcpath::kube::nftables
