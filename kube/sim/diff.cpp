#include "kube/sim/diff.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace svcpath::sim {

std::string_view reach_name(Reach r) {
  switch (r) {
    case Reach::ClusterIP: return "ClusterIP";
    case Reach::NodePort: return "NodePort on the node's primary address";
    case Reach::NodePortSecondary: return "NodePort on another node address";
    case Reach::NodePortLoopback: return "NodePort on 127.0.0.1";
    case Reach::ExternalIP: return "external IP";
    case Reach::LoadBalancer: return "LoadBalancer ingress IP";
    case Reach::UndeclaredPort: return "ClusterIP on a port the Service does not declare";
    case Reach::PodIP: return "pod IP";
    case Reach::RuleMatch: return "an address and port a rule names";
    case Reach::UnallocatedClusterIP: return "an address of the Service CIDR no Service holds";
  }
  return "?";
}

std::string_view from_name(From f) {
  switch (f) {
    case From::LocalPod: return "a pod on this node";
    case From::RemotePod: return "a pod on another node";
    case From::Host: return "the node itself";
    case From::External: return "an external client";
    case From::ExternalAllowed: return "an external client inside loadBalancerSourceRanges";
    case From::ExternalDenied: return "an external client outside loadBalancerSourceRanges";
  }
  return "?";
}

namespace {

// A host address well inside p that no controller hands out first (.250 of a /24): a client, not
// an endpoint, so no flow is a hairpin by accident.
Addr client_in(const Prefix& p) {
  Addr a = p.addr.masked(p.len);
  unsigned host_bits = unsigned(a.bits()) - p.len;
  unsigned add = host_bits >= 8 ? 250 : host_bits >= 2 ? (1u << host_bits) - 2 : 0;
  a.b[a.is_v4() ? 3 : 15] = uint8_t(a.b[a.is_v4() ? 3 : 15] + add);
  return a;
}

const Prefix* first_of(const std::vector<Prefix>& ps, Family f) {
  for (const Prefix& p : ps)
    if (p.addr.fam == f) return &p;
  return nullptr;
}

const Addr* first_of(const std::vector<Addr>& as, Family f) {
  for (const Addr& a : as)
    if (a.fam == f) return &a;
  return nullptr;
}

// Documentation ranges (RFC 5737, RFC 3849): nothing in a cluster uses them.
Addr external_client(Family f, int n) {
  return *Addr::parse(f == Family::V4 ? fmt::format("203.0.113.{}", 10 + n) : fmt::format("2001:db8:ffff::{}", 10 + n));
}

class FlowMaker {
 public:
  FlowMaker(const k8s::Cluster& c, const k8s::Node& kn, const nf::Node& node) : c_(c), kn_(kn), node_(node) {}

  std::vector<Flow> run() {
    for (const auto& s : c_.services) {
      if (s.type == "ExternalName" || s.headless) continue;
      for (const Addr& vip : s.cluster_ips) service(s, vip);
    }
    late_fin(Family::V4);
    late_fin(Family::V6);
    unallocated();
    return std::move(out_);
  }

 private:
  // ext: an external client's address, when the flow names one (inside or outside the source
  // ranges); other external flows come from the documentation range of dst's family.
  void add(const std::string& svc, Reach r, From f, const Addr& dst, uint16_t dport, uint8_t pr,
           const std::optional<Addr>& ext = std::nullopt) {
    Family fam = dst.fam;
    Flow fl;
    fl.service = svc;
    fl.reach = r;
    fl.from = f;
    fl.pkt.t.proto = pr;
    fl.pkt.t.dst = dst;
    fl.pkt.t.dport = dport;
    fl.pkt.t.sport = uint16_t(40000 + out_.size() % 20000);
    if (pr == proto::TCP) fl.pkt.tcp_flags = tcpflag::SYN;
    switch (f) {
      case From::LocalPod:
      case From::RemotePod: {
        const Prefix* p = f == From::LocalPod ? first_of(kn_.pod_cidrs, fam) : remote_pods(fam);
        if (!p) return;
        fl.pkt.t.src = client_in(*p);
        break;
      }
      case From::Host: {
        fl.local = true;
        const Addr* a = first_of(kn_.internal_ips, fam);
        if (dst.is_loopback()) fl.pkt.t.src = dst;
        else if (a) fl.pkt.t.src = *a;
        else return;
        break;
      }
      case From::External:
      case From::ExternalAllowed:
      case From::ExternalDenied: fl.pkt.t.src = ext ? *ext : external_client(fam, 0); break;
    }
    if (!fl.local) {
      int16_t i = source_interface(node_, fl.pkt.t.src);
      if (i < 0) return;
      fl.in = node_.ifname(i);
    }
    out_.push_back(std::move(fl));
  }

  const Prefix* remote_pods(Family f) const {
    for (const auto& n : c_.nodes)
      if (n.name != kn_.name)
        if (const Prefix* p = first_of(n.pod_cidrs, f)) return p;
    return nullptr;
  }

  // The node's own unicast addresses of a family, primary (its first InternalIP) first; the
  // dummy device IPVS binds Service addresses to is not where NodePorts are meant to be.
  std::vector<Addr> node_addrs(Family f) const {
    std::vector<Addr> v;
    if (const Addr* p = first_of(kn_.internal_ips, f)) v.push_back(*p);
    for (const auto& itf : node_.interfaces()) {
      if (itf.loopback || itf.name == "kube-ipvs0") continue;
      for (const auto& ia : itf.addrs)
        if (ia.addr.fam == f && !ia.addr.is_link_local() && std::find(v.begin(), v.end(), ia.addr) == v.end())
          v.push_back(ia.addr);
    }
    return v;
  }

  void service(const k8s::Service& s, const Addr& vip) {
    Family f = vip.fam;
    std::set<uint16_t> declared;
    for (const auto& sp : s.ports) declared.insert(sp.port);
    for (const auto& sp : s.ports) {
      std::string name = fmt::format("{}/{}:{}", s.ns, s.name, sp.name.empty() ? std::to_string(sp.port) : sp.name);
      for (From fr : {From::LocalPod, From::RemotePod, From::Host}) add(name, Reach::ClusterIP, fr, vip, sp.port, sp.proto);
      if (sp.node_port && (s.type == "NodePort" || s.type == "LoadBalancer")) {
        auto addrs = node_addrs(f);
        for (size_t i = 0; i < addrs.size(); ++i)
          for (From fr : {From::External, From::LocalPod, From::Host})
            add(name, i == 0 ? Reach::NodePort : Reach::NodePortSecondary, fr, addrs[i], sp.node_port, sp.proto);
        if (f == Family::V4) add(name, Reach::NodePortLoopback, From::Host, *Addr::parse("127.0.0.1"), sp.node_port, sp.proto);
      }
      for (const Addr& e : s.external_ips)
        if (e.fam == f)
          for (From fr : {From::External, From::LocalPod, From::Host}) add(name, Reach::ExternalIP, fr, e, sp.port, sp.proto);
      for (const auto& lb : s.lb_ingress) {
        if (lb.ip.fam != f) continue;
        if (s.lb_source_ranges.empty()) {
          add(name, Reach::LoadBalancer, From::External, lb.ip, sp.port, sp.proto);
        } else {
          auto [allowed, denied] = lb_sources(s, f);
          if (allowed) add(name, Reach::LoadBalancer, From::ExternalAllowed, lb.ip, sp.port, sp.proto, allowed);
          add(name, Reach::LoadBalancer, From::ExternalDenied, lb.ip, sp.port, sp.proto, denied);
        }
        add(name, Reach::LoadBalancer, From::LocalPod, lb.ip, sp.port, sp.proto);
        add(name, Reach::LoadBalancer, From::Host, lb.ip, sp.port, sp.proto);
      }
    }
    // One port the Service does not declare, for each protocol it uses.
    std::set<uint8_t> protos;
    for (const auto& sp : s.ports) protos.insert(sp.proto);
    uint16_t probe = 1;
    while (declared.count(probe)) ++probe;
    for (uint8_t pr : protos) add(fmt::format("{}/{}", s.ns, s.name), Reach::UndeclaredPort, From::LocalPod, vip, probe, pr);
  }

  // A client inside the Service's first source range of family f (none when no range is of f),
  // and one outside all of them.
  static std::pair<std::optional<Addr>, Addr> lb_sources(const k8s::Service& s, Family f) {
    std::vector<Prefix> ranges;
    for (const auto& r : s.lb_source_ranges)
      if (auto p = Prefix::parse(r); p && p->addr.fam == f) ranges.push_back(*p);
    std::optional<Addr> allowed;
    if (!ranges.empty()) allowed = client_in(ranges[0]);
    Addr denied = external_client(f, 0);
    for (int n = 1; std::any_of(ranges.begin(), ranges.end(), [&](const Prefix& p) { return p.contains(denied); }); ++n)
      denied = external_client(f, n);
    return {allowed, denied};
  }

  // The last address of each ServiceCIDR that no Service holds, from a pod here.
  void unallocated() {
    std::set<Addr> held;
    for (const auto& s : c_.services) held.insert(s.cluster_ips.begin(), s.cluster_ips.end());
    for (const Prefix& p : c_.service_cidrs) {
      Addr a = p.addr.masked(p.len);
      unsigned host_bits = unsigned(a.bits()) - p.len;
      if (host_bits < 2) continue;
      // The broadcast-most address less one: high bits set from the last byte up.
      for (unsigned bit = 1; bit < host_bits; ++bit) a.b[size_t(a.bits() / 8 - 1 - bit / 8)] |= uint8_t(1u << (bit % 8));
      if (held.count(a)) continue;
      add("", Reach::UnallocatedClusterIP, From::LocalPod, a, 80, proto::TCP);
    }
  }

  // A FIN/ACK from a pod elsewhere to a pod here whose connection conntrack no longer has: INVALID.
  void late_fin(Family f) {
    const Prefix* here = first_of(kn_.pod_cidrs, f);
    if (!here || !remote_pods(f)) return;
    Addr dst = client_in(*here);
    dst.b[dst.is_v4() ? 3 : 15] = uint8_t(dst.b[dst.is_v4() ? 3 : 15] - 1);
    add("", Reach::PodIP, From::RemotePod, dst, 8080, proto::TCP);
    if (out_.empty() || out_.back().reach != Reach::PodIP) return;
    out_.back().pkt.tcp_flags = tcpflag::FIN | tcpflag::ACK;
    out_.back().late_fin = true;
  }

  const k8s::Cluster& c_;
  const k8s::Node& kn_;
  const nf::Node& node_;
  std::vector<Flow> out_;
};

// The destination port a rule asks for, 0 when it names none.
uint16_t rule_dport(const nf::Rule& r) {
  for (const auto& m : r.matches) {
    const nf::PortSpec* ps = nullptr;
    if (auto* t = std::get_if<nf::TcpMatch>(&m)) ps = &t->dport;
    else if (auto* u = std::get_if<nf::UdpMatch>(&m)) ps = &u->dport;
    else if (auto* sc = std::get_if<nf::SctpMatch>(&m)) ps = &sc->dport;
    else if (auto* mp = std::get_if<nf::MultiportMatch>(&m);
             mp && !mp->inv && !mp->ports.empty() && mp->dir != nf::MultiportMatch::Dir::Src)
      return mp->ports[0].lo;
    if (ps && ps->set && !ps->inv) return ps->range.lo;
  }
  return 0;
}

bool reached_backend(const nf::Outcome& o) {
  return (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Delivered || o.kind == nf::OutcomeKind::Bridged) &&
         (o.after.t.dst != o.before.dst || o.after.t.dport != o.before.dport);
}

bool answered(const Behaviour& b) { return b.verdict == "answered"; }

}  // namespace

std::vector<Flow> cluster_flows(const k8s::Cluster& c, const k8s::Node& kn, const nf::Node& node) {
  return FlowMaker(c, kn, node).run();
}

std::vector<Flow> dump_flows(const std::vector<const Lane*>& lanes, size_t limit) {
  std::vector<Flow> out;
  std::set<std::tuple<uint8_t, Addr, Addr, uint16_t, std::string>> seen;
  const nf::Node& node = lanes.front()->node;
  auto add = [&](uint8_t pr, const Addr& src, const Addr& dst, uint16_t dport, std::string in, std::string what) {
    if (out.size() >= limit) return;
    if (in.empty()) {
      int16_t i = source_interface(node, src);
      if (i < 0) return;
      in = node.ifname(i);
    } else if (node.find(in) < 0) {
      return;
    }
    if (!seen.insert({pr, src, dst, dport, in}).second) return;
    Flow f;
    f.service = std::move(what);
    f.reach = Reach::RuleMatch;
    f.from = From::External;
    f.pkt.t = {src, dst, uint16_t(40000 + out.size() % 20000), dport, pr};
    if (pr == proto::TCP) f.pkt.tcp_flags = tcpflag::SYN;
    f.in = std::move(in);
    out.push_back(std::move(f));
  };
  for (const Lane* l : lanes) {
    for (const auto* rs : {l->v4 ? &*l->v4 : nullptr, l->v6 ? &*l->v6 : nullptr}) {
      if (!rs) continue;
      Family fam = rs->family;
      for (const auto& t : rs->tables)
        for (const auto& c : t.chains)
          for (const auto& r : c.rules) {
            if (!r.dst_set && !r.src_set && !r.iif.set && rule_dport(r) == 0) continue;
            uint8_t pr = r.proto_set && !r.proto_inv && proto::has_ports(r.proto) ? r.proto : proto::TCP;
            Addr dst = r.dst_set && !r.dst_inv ? client_in(r.dst) : external_client(fam, 90);
            Addr src = r.src_set && !r.src_inv ? client_in(r.src) : external_client(fam, 0);
            std::string in = r.iif.set && !r.iif.inv && !r.iif.wildcard ? r.iif.name : "";
            uint16_t dport = rule_dport(r);
            add(pr, src, dst, dport ? dport : 80, in, fmt::format("{}:{}", c.name, r.line));
          }
    }
    if (l->engine)
      for (const auto& vs : l->engine->services.all())
        if (!vs->fwmark && proto::has_ports(vs->proto))
          add(vs->proto, external_client(vs->addr.fam, 0), vs->addr, vs->port, "",
              "IPVS " + FiveTuple::endpoint(vs->addr, vs->port, vs->proto));
  }
  return out;
}

std::vector<nf::Outcome> flow_outcomes(Lane& l, const Flow& f, uint16_t& probe_port) {
  nf::Injection inj{f.local, f.local ? kNoIf : l.node.find(f.in)};
  if (!f.local && inj.iif < 0) inj.iif = l.node.find("eth0");
  std::vector<nf::Outcome> outs = l.dp->enumerate(f.pkt, inj);
  const ipvs::Service* vs = l.engine ? l.engine->services.find(f.pkt.t.proto, f.pkt.t.dst, f.pkt.t.dport) : nullptr;
  if (!vs) return outs;
  // The scheduler's state picks one real server per connection and enumeration does not fork
  // it: successive connections from the same client (other source ports) reach the others, each
  // with its own verdict (a policy may admit some backends and not others).
  NullSink quiet;
  for (size_t k = 0; k < 2 * vs->dests.size(); ++k) {
    // A persistent service (ClientIP affinity) pins the client after its first connection; the
    // other side's enumeration is of a client it has not seen, so each probe is one too.
    if (vs->persistent) l.engine->conns.clear();
    Packet p = f.pkt;
    p.t.sport = probe_port;
    probe_port = uint16_t(probe_port == 39999 ? 20000 : probe_port + 1);
    outs.push_back(l.dp->process(p, inj, quiet));
    outs.back().before.sport = f.pkt.t.sport;
  }
  return outs;
}

Behaviour behaviour(const std::vector<nf::Outcome>& outs) {
  Behaviour b;
  std::set<std::string> verdicts, backends, masq;
  for (const auto& o : outs) {
    if (reached_backend(o)) {
      verdicts.insert("answered");
      std::string be = FiveTuple::endpoint(o.after.t.dst, o.after.t.dport, o.after.t.proto);
      backends.insert(be);
      // MASQUERADE to the address the source already had changes nothing on the wire but is
      // still source NAT (and a different port choice): count it as the rule decided.
      if (o.snat || o.after.t.src != o.before.src) masq.insert(be);
      continue;
    }
    switch (o.kind) {
      case nf::OutcomeKind::Delivered: verdicts.insert("delivered to the node"); break;
      case nf::OutcomeKind::Forwarded:
      case nf::OutcomeKind::Bridged: verdicts.insert("forwarded without DNAT"); break;
      case nf::OutcomeKind::Rejected: verdicts.insert("rejected (" + o.reject_with + ")"); break;
      default: verdicts.insert(std::string(nf::outcome_name(o.kind))); break;
    }
  }
  b.verdict = fmt::format("{}", fmt::join(verdicts, " or "));
  b.backends.assign(backends.begin(), backends.end());
  b.masq.assign(masq.begin(), masq.end());
  return b;
}

std::string Behaviour::str() const {
  std::string s = verdict;
  if (!backends.empty()) s += fmt::format(" by {}", fmt::join(backends, ", "));
  if (!masq.empty())
    s += masq.size() == backends.size() ? ", masqueraded" : fmt::format(", masqueraded to {}", fmt::join(masq, ", "));
  return s;
}

size_t DiffResult::changed() const {
  size_t n = 0;
  for (const auto& c : classes) n += c.flows.size();
  return n;
}

namespace {

// The documented differences between kube-proxy modes (kubernetes.io, "Migrating from iptables
// mode to nftables"), recognised from the flow and both behaviours; anything else gets a plain
// sentence naming both behaviours.
DiffClass classify(const FlowChange& ch, const DiffSide& a, const DiffSide& b) {
  const Flow& f = ch.flow;
  // A NodePort kube-proxy does not serve on an address falls to the node's own stack there.
  auto unserved = [](const Behaviour& x) { return x.verdict == "delivered to the node"; };
  bool lost = (answered(ch.a) || !unserved(ch.a)) && unserved(ch.b) && ch.a.verdict != ch.b.verdict,
       gained = unserved(ch.a) && (answered(ch.b) || !unserved(ch.b)) && ch.a.verdict != ch.b.verdict;
  DiffClass c;
  if (f.reach == Reach::NodePortLoopback && (lost || gained)) {
    c.key = "nodeport-loopback";
    const DiffSide& off = lost ? b : a;
    std::string why = off.mode == "nftables" || off.mode == "ipvs"
                          ? fmt::format("{} mode does not support NodePorts on localhost", off.mode)
                          : "localhost NodePorts are off on that side";
    c.sentence = fmt::format("NodePort on 127.0.0.1 {}: {}", lost ? "is no longer served" : "is now served", why);
    if (off.mode == "iptables") c.setting = "iptables.localhostNodePorts: true (--iptables-localhost-nodeports)";
    return c;
  }
  if (f.reach == Reach::NodePortSecondary && (lost || gained)) {
    c.key = "nodeport-secondary";
    const DiffSide& off = lost ? b : a;
    c.sentence = fmt::format("NodePort on the node's other addresses {}: {}", lost ? "is no longer served" : "is now served",
                             off.mode == "nftables" ? "nftables mode listens on the node's primary address only "
                                                      "(nodePortAddresses defaults to primary)"
                                                    : "nodePortAddresses excludes them on that side");
    if (lost) c.setting = "nodePortAddresses: [0.0.0.0/0] (--nodeport-addresses 0.0.0.0/0)";
    return c;
  }
  if (f.late_fin) {
    c.key = "conntrack-invalid";
    bool dropped_a = ch.a.verdict == "dropped", dropped_b = ch.b.verdict == "dropped";
    if (dropped_a != dropped_b) {
      const DiffSide& keeps = dropped_a ? a : b;
      const DiffSide& lacks = dropped_a ? b : a;
      c.sentence = fmt::format(
          "packets conntrack finds INVALID (a late FIN/ACK) are {} dropped: {} installs kube-proxy's workaround for the "
          "pre-6.1 conntrack bug (KUBE-FORWARD drops INVALID), {} does not",
          dropped_a ? "no longer" : "now", keeps.label, lacks.label);
      if (dropped_a) c.setting = "conntrack.tcpBeLiberal: true (--conntrack-tcp-be-liberal) where connections relied on it";
      return c;
    }
  }
  if (f.from == From::Host && (f.reach == Reach::LoadBalancer || f.reach == Reach::ExternalIP) && a.mode == "nftables" &&
      b.mode == "nftables" && (a.release >= 34) != (b.release >= 34) &&
      ((ch.a.verdict == "dropped" && answered(ch.b)) || (answered(ch.a) && ch.b.verdict == "dropped"))) {
    c.key = "nftables-local-to-external";
    c.sentence =
        "the node's own connections to an external address of an externalTrafficPolicy=Local Service without a local "
        "endpoint: dropped before 1.34 (the endpoint check ran before DNAT), short-circuited to the Service's endpoints "
        "since (kubernetes#132456)";
    return c;
  }
  if (f.reach == Reach::UnallocatedClusterIP && ch.a.verdict != ch.b.verdict) {
    c.key = "clusterip-unallocated";
    c.sentence = fmt::format("an address of the Service CIDR no Service holds: {} with {}, {} with {}", ch.a.verdict, a.label,
                             ch.b.verdict, b.label);
    if (b.mode == "nftables" && ch.b.verdict == "dropped")
      c.sentence += " (nftables mode drops traffic to unallocated ClusterIPs of its ServiceCIDRs)";
    return c;
  }
  if (f.reach == Reach::UndeclaredPort && ch.a.verdict != ch.b.verdict) {
    c.key = "clusterip-undeclared-port";
    c.sentence =
        fmt::format("a ClusterIP's undeclared port: {} with {}, {} with {}", ch.a.verdict, a.label, ch.b.verdict, b.label);
    if (b.mode == "nftables" && ch.b.verdict.starts_with("rejected"))
      c.sentence += " (nftables mode rejects ports no Service declares)";
    return c;
  }
  c.key = fmt::format("{}|{}|{}|{}|{}", reach_name(f.reach), from_name(f.from), ch.what, ch.a.verdict, ch.b.verdict);
  if (ch.what == "verdict")
    c.sentence = fmt::format("{} from {}: {} with {}, {} with {}", reach_name(f.reach), from_name(f.from), ch.a.verdict, a.label,
                             ch.b.verdict, b.label);
  else if (ch.what == "backends")
    c.sentence = fmt::format("{} from {}: answered by a different set of backends", reach_name(f.reach), from_name(f.from));
  else
    c.sentence = fmt::format("{} from {}: the source is {} on the way to the backend", reach_name(f.reach), from_name(f.from),
                             ch.b.masq.size() > ch.a.masq.size() ? "now masqueraded" : "no longer masqueraded");
  return c;
}

}  // namespace

DiffResult diff_sides(const DiffSide& a, const DiffSide& b, const std::vector<Flow>& flows) {
  DiffResult r;
  r.a = a.label;
  r.b = b.label;
  std::map<std::string, size_t> index;
  uint16_t probe_a = 20000, probe_b = 20000;
  for (const Flow& f : flows) {
    ++r.flows;
    auto oa = flow_outcomes(*a.lane, f, probe_a), ob = flow_outcomes(*b.lane, f, probe_b);
    FlowChange ch{f, behaviour(oa), behaviour(ob), ""};
    if (ch.a.verdict != ch.b.verdict) ch.what = "verdict";
    else if (ch.a.backends != ch.b.backends) ch.what = "backends";
    else if (ch.a.masq != ch.b.masq) ch.what = "masquerade";
    else continue;
    DiffClass c = classify(ch, a, b);
    auto [it, fresh] = index.try_emplace(c.key, r.classes.size());
    if (fresh) {
      c.example_a = std::move(oa);
      c.example_b = std::move(ob);
      r.classes.push_back(std::move(c));
    }
    r.classes[it->second].flows.push_back(std::move(ch));
  }
  return r;
}

}  // namespace svcpath::sim
