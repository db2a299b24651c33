#include "kube/proxy/ipvs.hpp"

#include <map>
#include <set>

#include <fmt/format.h>

#include "netfilter/iptables/engine.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/iptables.hpp"

namespace svcpath::ipvs::kube {

namespace {

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

}  // namespace

IpvsMode build(const k8s::Cluster& c, const k8s::Node& node, const k8s::ProxyConfig& cfg, Family fam) {
  IpvsMode m;
  m.engine = std::make_unique<Engine>();
  std::map<std::string, std::set<std::string>> entries;  // set -> entries (sorted, like sets.String)
  std::set<Addr> vips;
  auto sps = nf::kube::service_ports(c, node, fam);
  std::string sched = cfg.ipvs_scheduler.empty() ? "rr" : cfg.ipvs_scheduler;
  if (!known_scheduler(sched)) throw std::invalid_argument(fmt::format("unknown ipvs.scheduler '{}'", sched));

  // Node addresses NodePorts listen on: every local address but kube-ipvs0's and loopback.
  std::vector<Addr> node_ips;
  for (auto* l : {&node.internal_ips, &node.external_ips})
    for (auto& a : *l)
      if (a.fam == fam) node_ips.push_back(a);
  for (auto& p : node.pod_cidrs)
    if (p.addr.fam == fam) {
      Addr gw = p.addr;
      gw.b[gw.is_v4() ? 3 : 15] |= 1;
      node_ips.push_back(gw);
    }
  const Addr* primary = node_ips.empty() ? nullptr : &node_ips[0];

  auto add_vs = [&](const Addr& a, uint16_t port, uint8_t pr, const k8s::Service& svc,
                    const std::vector<nf::kube::Endpoint>& eps) {
    auto s = std::make_unique<Service>();
    s->proto = pr;
    s->addr = a;
    s->port = port;
    s->netmask = Addr::netmask(fam, fam == Family::V4 ? 32 : 128);
    if (svc.affinity_client_ip) {
      s->persistent = true;
      s->timeout = uint32_t(svc.affinity_timeout);
    }
    s->set_scheduler(sched);
    Service* vs = m.engine->services.add(std::move(s));
    if (!vs) return;  // the same VIP:port twice (e.g. an external IP equal to a node IP)
    // kube-proxy adds real servers from an unordered set; add them in endpoint order so the
    // kernel list (newest first) is the reverse of it, reproducibly.
    for (auto& e : eps) {
      Dest d;
      d.addr = e.ip;
      d.port = e.port;
      d.weight = 1;
      vs->add_dest(d);
    }
  };

  for (auto& sp : sps) {
    const k8s::Service& svc = *sp.svc;
    uint8_t pr = sp.port->proto;
    std::string entry = fmt::format("{},{}:{}", sp.cluster_ip.str(), sp.proto, sp.port->port);
    auto cat = nf::kube::categorize(sp);
    auto real = [&](bool only_local) {
      if (only_local) return cat.local.empty() ? cat.cluster : cat.local;  // pods may still reach it (PR 97081)
      return cat.cluster;
    };
    entries["KUBE-CLUSTER-IP"].insert(entry);
    vips.insert(sp.cluster_ip);
    for (auto& e : sp.endpoints)
      if (e.local) entries["KUBE-LOOP-BACK"].insert(fmt::format("{},{}:{},{}", e.ip.str(), sp.proto, e.port, e.ip.str()));
    add_vs(sp.cluster_ip, sp.port->port, pr, svc, real(svc.itp_local));
    for (auto& eip : sp.external_ips) {
      std::string en = fmt::format("{},{}:{}", eip.str(), sp.proto, sp.port->port);
      entries[svc.etp_local ? "KUBE-EXTERNAL-IP-LOCAL" : "KUBE-EXTERNAL-IP"].insert(en);
      vips.insert(eip);
      add_vs(eip, sp.port->port, pr, svc, real(svc.etp_local));
    }
    for (auto& lb : sp.lb_ips) {
      std::string en = fmt::format("{},{}:{}", lb.str(), sp.proto, sp.port->port);
      entries["KUBE-LOAD-BALANCER"].insert(en);
      if (svc.etp_local) entries["KUBE-LOAD-BALANCER-LOCAL"].insert(en);
      if (!sp.source_ranges.empty()) {
        entries["KUBE-LOAD-BALANCER-FW"].insert(en);
        bool allow_from_node = false;
        for (auto& r : sp.source_ranges) {
          auto pf = Prefix::parse(r);
          entries["KUBE-LOAD-BALANCER-SOURCE-CIDR"].insert(en + "," + pf->str());
          if (primary && pf->contains(*primary)) allow_from_node = true;
        }
        if (allow_from_node) entries["KUBE-LOAD-BALANCER-SOURCE-IP"].insert(en + "," + lb.str());
      }
      vips.insert(lb);
      add_vs(lb, sp.port->port, pr, svc, real(svc.etp_local));
    }
    if (sp.port->node_port) {
      uint16_t np = sp.port->node_port;
      if (pr == proto::SCTP) {
        for (auto& ip : node_ips) {
          std::string en = fmt::format("{},sctp:{}", ip.str(), np);
          entries["KUBE-NODE-PORT-SCTP-HASH"].insert(en);
          if (svc.etp_local) entries["KUBE-NODE-PORT-LOCAL-SCTP-HASH"].insert(en);
        }
      } else {
        std::string base = pr == proto::TCP ? "TCP" : "UDP";
        entries["KUBE-NODE-PORT-" + base].insert(std::to_string(np));
        if (svc.etp_local) entries["KUBE-NODE-PORT-LOCAL-" + base].insert(std::to_string(np));
      }
      for (auto& ip : node_ips) add_vs(ip, np, pr, svc, real(svc.etp_local));
    }
    if (svc.health_check_node_port) entries["KUBE-HEALTH-CHECK-NODE-PORT"].insert(std::to_string(svc.health_check_node_port));
  }
  for (auto& v : vips) entries["KUBE-IPVS-IPS"].insert(v.str());
  m.vips.assign(vips.begin(), vips.end());

  // ipset restore input: every set exists, entries as kube-proxy formats them.
  for (auto& s : kSets) {
    std::string n = set_name(s.name, fam);
    if (std::string_view(s.type) == "bitmap:port") m.ipset_restore += fmt::format("create {} bitmap:port range 0-65535\n", n);
    else
      m.ipset_restore +=
          fmt::format("create {} {} family {} hashsize 1024 maxelem 65536\n", n, s.type, fam == Family::V4 ? "inet" : "inet6");
  }
  for (auto& s : kSets)
    for (auto& e : entries[s.name]) m.ipset_restore += fmt::format("add {} {}\n", set_name(s.name, fam), e);
  nf::load_ipsets(m.ipset_restore, fmt::format("kube-proxy ipsets for node {}", node.name), m.sets);

  // iptables: writeIptablesRules.
  auto empty = [&](const char* s) { return entries[s].empty(); };
  auto comment_of = [&](const char* s) {
    for (auto& x : kSets)
      if (std::string_view(x.name) == s) return q(x.comment);
    return std::string("\"\"");
  };
  std::string mark = fmt::format("0x{:08x}", cfg.masquerade_mark());
  std::string nat_chains, filter_chains, nat, filter;
  for (const char* ch : {"KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"})
    nat_chains += fmt::format(":{} - [0:0]\n", ch);
  for (const char* ch : {"KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL",
                         "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"})
    filter_chains += fmt::format(":{} - [0:0]\n", ch);
  nat += fmt::format("-A KUBE-SERVICES -s {} -j RETURN\n", fam == Family::V4 ? "127.0.0.0/8" : "::1/128");
  for (auto& w : kWiring) {
    if (empty(w.set)) continue;
    std::string line = fmt::format("-A {}", w.from);
    if (*w.proto) line += fmt::format(" -p {}", w.proto);
    line += fmt::format(" -m comment --comment {} -m set --match-set {} {} -j {}\n", comment_of(w.set), set_name(w.set, fam),
                        w.match, w.to);
    (w.filter ? filter : nat) += line;
  }
  auto det = nf::kube::detector(cfg, node, fam);
  if (!empty("KUBE-CLUSTER-IP")) {
    std::string head = fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {}",
                                   comment_of("KUBE-CLUSTER-IP"), set_name("KUBE-CLUSTER-IP", fam));
    if (cfg.masquerade_all) nat += head + " dst,dst -j KUBE-MARK-MASQ\n";
    else if (!det.if_not_local.empty()) nat += head + " dst,dst " + det.if_not_local + " -j KUBE-MARK-MASQ\n";
    else nat += head + " src,dst -j KUBE-MARK-MASQ\n";
  }
  auto external_rules = [&](const std::string& head) {
    nat += head + " -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT\n";
    nat += head + " -m addrtype --dst-type LOCAL -j ACCEPT\n";
  };
  if (!empty("KUBE-EXTERNAL-IP")) {
    std::string head = fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {} dst,dst",
                                   comment_of("KUBE-EXTERNAL-IP"), set_name("KUBE-EXTERNAL-IP", fam));
    nat += head + " -j KUBE-MARK-MASQ\n";
    external_rules(head);
  }
  if (!empty("KUBE-EXTERNAL-IP-LOCAL"))
    external_rules(fmt::format("-A KUBE-SERVICES -m comment --comment {} -m set --match-set {} dst,dst",
                               comment_of("KUBE-EXTERNAL-IP-LOCAL"), set_name("KUBE-EXTERNAL-IP-LOCAL", fam)));
  nat += "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n";
  nat += "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ\n";
  filter += "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP\n";
  for (const char* s : {"KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"})
    if (!empty(s)) nat += fmt::format("-A KUBE-SERVICES -m set --match-set {} dst,dst -j ACCEPT\n", set_name(s, fam));
  filter += fmt::format("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {}/{} -j ACCEPT\n",
                        mark, mark);
  filter +=
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED "
      "-j ACCEPT\n";
  filter += fmt::format("-A KUBE-NODE-PORT -m comment --comment {} -m set --match-set {} dst -j ACCEPT\n",
                        comment_of("KUBE-HEALTH-CHECK-NODE-PORT"), set_name("KUBE-HEALTH-CHECK-NODE-PORT", fam));
  for (const char* s : {"KUBE-LOAD-BALANCER", "KUBE-CLUSTER-IP", "KUBE-EXTERNAL-IP", "KUBE-EXTERNAL-IP-LOCAL"})
    filter += fmt::format("-A KUBE-IPVS-FILTER -m set --match-set {} dst,dst -j RETURN\n", set_name(s, fam));
  filter +=
      fmt::format("-A KUBE-IPVS-FILTER -m set --match-set {} dst -j RETURN\n", set_name("KUBE-HEALTH-CHECK-NODE-PORT", fam));
  filter += fmt::format("-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set {} dst -j REJECT\n",
                        set_name("KUBE-IPVS-IPS", fam));
  nat += fmt::format("-A KUBE-POSTROUTING -m mark ! --mark {}/{} -j RETURN\n", mark, mark);
  nat += fmt::format("-A KUBE-POSTROUTING -j MARK --xor-mark {}\n", mark);
  nat += std::string("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE") +
         (cfg.random_fully ? " --random-fully\n" : "\n");
  nat += fmt::format("-A KUBE-MARK-MASQ -j MARK --or-mark {}\n", mark);
  m.restore_input = "*filter\n" + filter_chains + filter + "COMMIT\n*nat\n" + nat_chains + nat + "COMMIT\n";

  // The node's tables: kube-proxy's jumps (EnsureRule Prepend, so the last listed ends up first).
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
  return m;
}

void add_to_node(nf::Node& n, const IpvsMode& m) {
  int16_t dev = n.ensure("kube-ipvs0");
  n.iface(dev).kind = "dummy";
  for (auto& v : m.vips) n.add_address(dev, {v, uint8_t(v.bits())});
  n.sys.set("net.ipv4.vs.conntrack", "1");
}

}  // namespace svcpath::ipvs::kube
