// kube-proxy's IPVS mode (pkg/proxy/ipvs/proxier.go): syncProxyRules' virtual servers and ipset
// entries for each service port, then the ipset and iptables-restore inputs (writeIptablesRules)
// and the node's tables.
#include "kube/proxy/ipvs.hpp"

#include <map>
#include <set>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "kube/proxy/model.hpp"
#include "netfilter/iptables/engine.hpp"
#include "netfilter/iptables/iptables.hpp"

namespace svcpath::kube::ipvs {

namespace {

namespace lvs = svcpath::ipvs;  // the kernel's IPVS tables this mode fills

struct SetInfo {
  const char* name;
  const char* type;
  const char* comment;
};

// pkg/proxy/ipvs: ipsetInfo, in its order.
constexpr SetInfo kSets[] = {
    {"KUBE-LOOP-BACK", "hash:ip,port,ip", "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
    {"KUBE-CLUSTER-IP", "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"},
    {"KUBE-EXTERNAL-IP", "hash:ip,port", "Kubernetes service external ip + port for masquerade and filter purpose"},
    {"KUBE-EXTERNAL-IP-LOCAL", "hash:ip,port", "Kubernetes service external ip + port with externalTrafficPolicy=local"},
    {"KUBE-LOAD-BALANCER", "hash:ip,port", "Kubernetes service lb portal"},
    {"KUBE-LOAD-BALANCER-FW", "hash:ip,port", "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
    {"KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port", "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
    {"KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip",
     "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
    {"KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net",
     "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
    {"KUBE-NODE-PORT-TCP", "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"},
    {"KUBE-NODE-PORT-LOCAL-TCP", "bitmap:port", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
    {"KUBE-NODE-PORT-UDP", "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"},
    {"KUBE-NODE-PORT-LOCAL-UDP", "bitmap:port", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
    {"KUBE-NODE-PORT-SCTP-HASH", "hash:ip,port", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
    {"KUBE-NODE-PORT-LOCAL-SCTP-HASH", "hash:ip,port",
     "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
    {"KUBE-HEALTH-CHECK-NODE-PORT", "bitmap:port", "Kubernetes health check node port"},
    {"KUBE-IPVS-IPS", "hash:ip", "Addresses on the ipvs interface"},
};

// pkg/proxy/ipvs: ipsetWithIptablesChain, in its order: (set, table, from, to, matchType, protocol).
struct Wiring {
  const char* set;
  bool filter;
  const char* from;
  const char* to;
  const char* match;
  const char* proto;
};
constexpr Wiring kWiring[] = {
    {"KUBE-LOOP-BACK", false, "KUBE-POSTROUTING", "MASQUERADE", "dst,dst,src", ""},
    {"KUBE-LOAD-BALANCER", false, "KUBE-SERVICES", "KUBE-LOAD-BALANCER", "dst,dst", ""},
    {"KUBE-LOAD-BALANCER-LOCAL", false, "KUBE-LOAD-BALANCER", "RETURN", "dst,dst", ""},
    {"KUBE-NODE-PORT-LOCAL-TCP", false, "KUBE-NODE-PORT", "RETURN", "dst", "tcp"},
    {"KUBE-NODE-PORT-TCP", false, "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "tcp"},
    {"KUBE-NODE-PORT-LOCAL-UDP", false, "KUBE-NODE-PORT", "RETURN", "dst", "udp"},
    {"KUBE-NODE-PORT-UDP", false, "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "udp"},
    {"KUBE-NODE-PORT-LOCAL-SCTP-HASH", false, "KUBE-NODE-PORT", "RETURN", "dst,dst", "sctp"},
    {"KUBE-NODE-PORT-SCTP-HASH", false, "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst,dst", "sctp"},
    {"KUBE-LOAD-BALANCER-FW", true, "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL", "dst,dst", ""},
    {"KUBE-LOAD-BALANCER-SOURCE-CIDR", true, "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src", ""},
    {"KUBE-LOAD-BALANCER-SOURCE-IP", true, "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src", ""},
};

// IPv6 sets are named KUBE-6-..., truncated to ipset's 31 characters.
std::string set_name(const char* n, Family fam) {
  if (fam == Family::V4) return n;
  std::string s = std::string("KUBE-6-") + (n + 5);
  return s.size() > 31 ? s.substr(0, 31) : s;
}

std::string q(std::string_view s) { return fmt::format("\"{}\"", s); }

// The ipsets' entries by set name, each sorted (kube-proxy's sets.String).
using Entries = std::map<std::string, std::set<std::string>>;

bool empty(const Entries& entries, const char* set) {
  auto it = entries.find(set);
  return it == entries.end() || it->second.empty();
}

std::string comment_of(const char* set) {
  for (auto& x : kSets)
    if (std::string_view(x.name) == set) return q(x.comment);
  return "\"\"";
}

// syncProxyRules' per-service work: virtual servers with their real servers, the VIPs bound to
// kube-ipvs0, and the ipset entries the iptables rules match on.
class Sync {
 public:
  Sync(const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam, lvs::Engine& engine)
      : fam_(fam), engine_(engine), sched_(cfg.ipvs_scheduler.empty() ? "rr" : cfg.ipvs_scheduler) {
    if (!lvs::known_scheduler(sched_))
      throw LoadError({{cfg.loc.file, cfg.loc.line, 0, fmt::format("unknown ipvs.scheduler '{}'", sched_)}});
    // Node addresses NodePorts listen on: every local address but kube-ipvs0's and loopback.
    for (auto* l : {&node.internal_ips, &node.external_ips})
      for (auto& a : *l)
        if (a.fam == fam) node_ips_.push_back(a);
    for (auto& p : node.pod_cidrs)
      if (p.addr.fam == fam) {
        Addr gw = p.addr;
        gw.b[gw.is_v4() ? 3 : 15] |= 1;
        node_ips_.push_back(gw);
      }
    primary_ = node_ips_.empty() ? nullptr : &node_ips_[0];
  }

  void service_port(const ServicePort& sp) {
    const k8s::Service& svc = *sp.svc;
    Categorized cat = categorize(sp);
    auto real = [&](bool only_local) {
      if (only_local) return cat.local.empty() ? cat.cluster : cat.local;  // pods may still reach it (PR 97081)
      return cat.cluster;
    };
    entries["KUBE-CLUSTER-IP"].insert(entry(sp, sp.cluster_ip));
    vips.insert(sp.cluster_ip);
    for (auto& e : sp.endpoints)
      if (e.local) entries["KUBE-LOOP-BACK"].insert(fmt::format("{},{}:{},{}", e.ip.str(), sp.proto, e.port, e.ip.str()));
    add_virtual_server(sp, sp.cluster_ip, sp.port->port, real(svc.itp_local));
    for (auto& eip : sp.external_ips) {
      entries[svc.etp_local ? "KUBE-EXTERNAL-IP-LOCAL" : "KUBE-EXTERNAL-IP"].insert(entry(sp, eip));
      vips.insert(eip);
      add_virtual_server(sp, eip, sp.port->port, real(svc.etp_local));
    }
    for (auto& lb : sp.lb_ips) {
      load_balancer_entries(sp, lb);
      vips.insert(lb);
      add_virtual_server(sp, lb, sp.port->port, real(svc.etp_local));
    }
    if (sp.port->node_port) {
      node_port_entries(sp);
      for (auto& ip : node_ips_) add_virtual_server(sp, ip, sp.port->node_port, real(svc.etp_local));
    }
    if (svc.health_check_node_port && svc.etp_local)
      entries["KUBE-HEALTH-CHECK-NODE-PORT"].insert(std::to_string(svc.health_check_node_port));
  }

  Entries entries;
  std::set<Addr> vips;

 private:
  // "ip,proto:port", the hash:ip,port entry of a service address.
  static std::string entry(const ServicePort& sp, const Addr& a) {
    return fmt::format("{},{}:{}", a.str(), sp.proto, sp.port->port);
  }

  void add_virtual_server(const ServicePort& sp, const Addr& a, uint16_t port, const std::vector<Endpoint>& eps) {
    auto s = std::make_unique<lvs::Service>();
    s->proto = sp.port->proto;
    s->addr = a;
    s->port = port;
    s->netmask = Addr::netmask(fam_, fam_ == Family::V4 ? 32 : 128);
    if (sp.svc->affinity_client_ip) {
      s->persistent = true;
      s->timeout = uint32_t(sp.svc->affinity_timeout);
    }
    s->set_scheduler(sched_);
    lvs::Service* vs = engine_.services.add(std::move(s));
    if (!vs) return;  // the same VIP:port twice (e.g. an external IP equal to a node IP)
    // kube-proxy adds real servers from an unordered set; add them in endpoint order so the
    // kernel list (newest first) is the reverse of it, reproducibly.
    for (auto& e : eps) {
      lvs::Dest d;
      d.addr = e.ip;
      d.port = e.port;
      d.weight = 1;
      vs->add_dest(d);
    }
  }

  // A load-balancer IP, and its loadBalancerSourceRanges firewall entries.
  void load_balancer_entries(const ServicePort& sp, const Addr& lb) {
    std::string en = entry(sp, lb);
    entries["KUBE-LOAD-BALANCER"].insert(en);
    if (sp.svc->etp_local) entries["KUBE-LOAD-BALANCER-LOCAL"].insert(en);
    if (sp.source_ranges.empty()) return;
    entries["KUBE-LOAD-BALANCER-FW"].insert(en);
    bool allow_from_node = false;
    for (auto& r : sp.source_ranges) {
      auto pf = Prefix::parse(r);
      entries["KUBE-LOAD-BALANCER-SOURCE-CIDR"].insert(en + "," + pf->str());
      if (primary_ && pf->contains(*primary_)) allow_from_node = true;
    }
    if (allow_from_node) entries["KUBE-LOAD-BALANCER-SOURCE-IP"].insert(en + "," + lb.str());
  }

  // NodePorts: bitmap:port sets for TCP and UDP, hash:ip,port per node address for SCTP.
  void node_port_entries(const ServicePort& sp) {
    uint16_t np = sp.port->node_port;
    bool local = sp.svc->etp_local;
    if (sp.port->proto == proto::SCTP) {
      for (auto& ip : node_ips_) {
        std::string en = fmt::format("{},sctp:{}", ip.str(), np);
        entries["KUBE-NODE-PORT-SCTP-HASH"].insert(en);
        if (local) entries["KUBE-NODE-PORT-LOCAL-SCTP-HASH"].insert(en);
      }
      return;
    }
    std::string base = sp.port->proto == proto::TCP ? "TCP" : "UDP";
    entries["KUBE-NODE-PORT-" + base].insert(std::to_string(np));
    if (local) entries["KUBE-NODE-PORT-LOCAL-" + base].insert(std::to_string(np));
  }

  Family fam_;
  lvs::Engine& engine_;
  std::string sched_;
  std::vector<Addr> node_ips_;
  const Addr* primary_ = nullptr;
};

// ipset restore input: every set exists, entries as kube-proxy formats them.
std::string ipset_input(const Entries& entries, Family fam) {
  std::string out;
  for (auto& s : kSets) {
    std::string n = set_name(s.name, fam);
    if (std::string_view(s.type) == "bitmap:port") out += fmt::format("create {} bitmap:port range 0-65535\n", n);
    else
      out += fmt::format("create {} {} family {} hashsize 1024 maxelem 65536\n", n, s.type, fam == Family::V4 ? "inet" : "inet6");
  }
  for (auto& s : kSets)
    if (auto it = entries.find(s.name); it != entries.end())
      for (auto& e : it->second) out += fmt::format("add {} {}\n", set_name(s.name, fam), e);
  return out;
}

// writeIptablesRules: the nat and filter rules around the ipsets, in kube-proxy's order.
class IptablesRules {
 public:
  IptablesRules(const Entries& entries, const k8s::ProxyConfig& cfg, const LocalDetector& det, Family fam)
      : entries_(entries), cfg_(cfg), det_(det), fam_(fam), mark_(fmt::format("0x{:08x}", cfg.masquerade_mark())) {}

  std::string run() {
    std::string nat_chains, filter_chains;
    for (const char* ch : {"KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"})
      nat_chains += fmt::format(":{} - [0:0]\n", ch);
    for (const char* ch : {"KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL",
                           "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"})
      filter_chains += fmt::format(":{} - [0:0]\n", ch);
    nat_ += fmt::format("-A KUBE-SERVICES -s {} -j RETURN\n", fam_ == Family::V4 ? "127.0.0.0/8" : "::1/128");
    set_matches();
    cluster_ip_masquerade();
    external_ip_rules();
    nat_ += "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n";
    nat_ += "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n";
    filter_ += "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n";
    for (const char* s : {"KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"})
      if (!empty(entries_, s))
        nat_ += fmt::format("-A KUBE-SERVICES -m set --match-set {} dst,dst -j ACCEPT\n", set_name(s, fam_));
    forward_rules();
    ipvs_filter();
    masquerading();
    return "*filter\n" + filter_chains + filter_ + "COMMIT\n*nat\n" + nat_chains + nat_ + "COMMIT\n";
  }

 private:
  // ipsetWithIptablesChain: one rule per non-empty set.
  void set_matches() {
    for (auto& w : kWiring) {
      if (empty(entries_, w.set)) continue;
      std::string line = fmt::format("-A {}", w.from);
      if (*w.proto) line += fmt::format(" -p {}", w.proto);
      line += fmt::format(" -m comment --comment {} -m set --match-set {} {} -j {}\n", comment_of(w.set), set_name(w.set, fam_),
                          w.match, w.to);
      (w.filter ? filter_ : nat_) += line;
    }
  }

  // Traffic to a ClusterIP: masquerade off-cluster sources (or everything with masqueradeAll).
  void cluster_ip_masquerade() {
    if (empty(entries_, "KUBE-CLUSTER-IP")) return;
    std::string head = fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {}",
                                   comment_of("KUBE-CLUSTER-IP"), set_name("KUBE-CLUSTER-IP", fam_));
    std::string if_not_local = iptables_match(det_, false);
    if (cfg_.masquerade_all) nat_ += head + " dst,dst -j KUBE-MARK-MASQ\n";
    else if (!if_not_local.empty()) nat_ += head + " dst,dst " + if_not_local + " -j KUBE-MARK-MASQ\n";
    else nat_ += head + " src,dst -j KUBE-MARK-MASQ\n";
  }

  // External IPs: masquerade (eTP=Cluster) and accept what is not bridged pod-to-pod traffic.
  void external_ip_rules() {
    auto accept = [&](const std::string& head) {
      nat_ += head + " -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT\n";
      nat_ += head + " -m addrtype --dst-type LOCAL -j ACCEPT\n";
    };
    if (!empty(entries_, "KUBE-EXTERNAL-IP")) {
      std::string head = fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {} dst,dst",
                                     comment_of("KUBE-EXTERNAL-IP"), set_name("KUBE-EXTERNAL-IP", fam_));
      nat_ += head + " -j KUBE-MARK-MASQ\n";
      accept(head);
    }
    if (!empty(entries_, "KUBE-EXTERNAL-IP-LOCAL"))
      accept(fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {} dst,dst",
                         comment_of("KUBE-EXTERNAL-IP-LOCAL"), set_name("KUBE-EXTERNAL-IP-LOCAL", fam_)));
  }

  void forward_rules() {
    filter_ += fmt::format(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {}/{} -j ACCEPT\n", mark_, mark_);
    filter_ +=
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate "
        "RELATED,ESTABLISHED -j ACCEPT\n";
  }

  // KUBE-NODE-PORT's health checks and KUBE-IPVS-FILTER: kube-ipvs0 addresses answer only on
  // service ports.
  void ipvs_filter() {
    filter_ += fmt::format("-A KUBE-NODE-PORT -m comment --comment {} -m set --match-set {} dst -j ACCEPT\n",
                           comment_of("KUBE-HEALTH-CHECK-NODE-PORT"), set_name("KUBE-HEALTH-CHECK-NODE-PORT", fam_));
    for (const char* s : {"KUBE-LOAD-BALANCER", "KUBE-CLUSTER-IP", "KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL"})
      filter_ += fmt::format("-A KUBE-IPVS-FILTER -m set --match-set {} dst,dst -j RETURN\n", set_name(s, fam_));
    filter_ +=
        fmt::format("-A KUBE-IPVS-FILTER -m set --match-set {} dst -j RETURN\n", set_name("KUBE-HEALTH-CHECK-NODE-PORT", fam_));
    filter_ += fmt::format("-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set {} dst -j REJECT\n",
                           set_name("KUBE-IPVS-IPS", fam_));
  }

  // Masquerade what KUBE-MARK-MASQ marked, once, in POSTROUTING.
  void masquerading() {
    nat_ += fmt::format("-A KUBE-POSTROUTING -m mark ! --mark {}/{} -j RETURN\n", mark_, mark_);
    nat_ += fmt::format("-A KUBE-POSTROUTING -j MARK --xor-mark {}\n", mark_);
    nat_ += std::string("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE") +
            (cfg_.random_fully ? " --random-fully\n" : "\n");
    nat_ += fmt::format("-A KUBE-MARK-MASQ -j MARK --or-mark {}\n", mark_);
  }

  const Entries& entries_;
  const k8s::ProxyConfig& cfg_;
  const LocalDetector& det_;
  Family fam_;
  std::string mark_;
  std::string nat_, filter_;
};

// The node's tables: kube-proxy's jumps (EnsureRule Prepend, so the last listed ends up first),
// then its restore input, with the ipsets resolved.
void load_tables(IpvsMode& m, const k8s::Node& node, Family fam) {
  std::string base =
      "*filter\n:KUBE-FORWARD - [0:0]\n:KUBE-NODE-PORT - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-IPVS-FILTER - [0:0]\n"
      ":KUBE-IPVS-OUT-FILTER - [0:0]\n"
      "-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER\n"
      "-A INPUT -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL\n"
      "-A INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT\n"
      "-A FORWARD -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL\n"
      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
      "-A OUTPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-OUT-FILTER\n"
      "COMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
      "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
      "COMMIT\n";
  m.rules.family = fam;
  std::string where = fmt::format("kube-proxy IPVS-mode rules for node {}", node.name);
  nf::load_restore(base, where + " (built-in jumps)", m.rules);
  nf::RestoreOptions noflush;
  noflush.noflush = true;
  nf::load_restore(m.restore_input, where, m.rules, noflush);
  nf::resolve_sets(m.rules, m.sets, where);
}

}  // namespace

IpvsMode build(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  IpvsMode m;
  m.engine = std::make_unique<lvs::Engine>();
  Sync sync(node, cfg, fam, *m.engine);
  for (auto& sp : service_ports(c, node, fam)) sync.service_port(sp);
  for (auto& v : sync.vips) sync.entries["KUBE-IPVS-IPS"].insert(v.str());
  m.vips.assign(sync.vips.begin(), sync.vips.end());
  m.ipset_restore = ipset_input(sync.entries, fam);
  nf::load_ipsets(m.ipset_restore, fmt::format("kube-proxy ipsets for node {}", node.name), m.sets);
  m.restore_input = IptablesRules(sync.entries, cfg, local_detector(cfg, node, fam), fam).run();
  load_tables(m, node, fam);
  return m;
}

void add_to_node(nf::Node& n, const IpvsMode& m) {
  int16_t dev = n.ensure("kube-ipvs0");
  n.iface(dev).kind = "dummy";
  for (auto& v : m.vips) n.add_address(dev, {v, uint8_t(v.bits())});
  n.sys.set("net.ipv4.vs.conntrack", "1");
}

}  // namespace svcpath::kube::ipvs
