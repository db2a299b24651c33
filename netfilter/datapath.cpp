#include "netfilter/datapath.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "netfilter/iptables/iptables.hpp"

namespace svcpath::nf {

std::string_view outcome_name(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::Delivered: return "delivered";
    case OutcomeKind::Forwarded: return "forwarded";
    case OutcomeKind::Bridged: return "bridged";
    case OutcomeKind::Dropped: return "dropped";
    case OutcomeKind::Rejected: return "rejected";
    case OutcomeKind::Queued: return "queued";
    case OutcomeKind::Stolen: return "stolen";
  }
  return "dropped";
}

namespace {

void note(TraceSink& s, Hook h, TraceKind k, std::string_view table, std::string target, std::string detail) {
  if (!s.enabled()) return;
  TraceEvent e;
  e.hook = h;
  e.kind = k;
  e.table = table;
  e.target = std::move(target);
  e.detail = std::move(detail);
  s.event(std::move(e));
}

// nf_conntrack_in at PREROUTING / OUTPUT (-200).
class ConntrackIn final : public Stage {
 public:
  std::string name() const override { return "conntrack"; }
  Verdict run(Hook h, Packet& p, Datapath& dp) noexcept override {
    TraceSink& s = dp.sink();
    if (p.notrack) {
      p.ct = 0;
      p.ctinfo = CtInfo::Untracked;
      note(s, h, TraceKind::Conntrack, "conntrack", "UNTRACKED", "NOTRACK: conntrack skips this packet");
      return Verdict::accept();
    }
    if (p.ct) {
      // Loopback re-entry keeps the entry the packet was given on the way out (nf_conntrack_in ignores it).
      note(s, h, TraceKind::Conntrack, "conntrack", "seen", "already tracked (looped back or re-injected)");
      return Verdict::accept();
    }
    Conntrack& ct = dp.conntrack();
    ++dp.counters().ct_lookups;
    CtLookup l = ct.find(p.t, p.ct_zone, p.ts_ns);
    CtEntry* e = l.id ? ct.get(l.id) : nullptr;
    bool reopen = false;
    if (e && p.t.proto == proto::TCP && !ct.tcp_packet(*e, l.dir, p.tcp_flags, dp.node().sys.tcp_loose, &reopen)) {
      p.ct = 0;
      p.ctinfo = CtInfo::Invalid;
      if (s.enabled())
        note(s, h, TraceKind::Conntrack, "conntrack", "INVALID",
             fmt::format("TCP flags invalid in state {}", tcp_state_name(e->tcp)));
      return Verdict::accept();
    }
    if (e && reopen) {
      note(s, h, TraceKind::Conntrack, "conntrack", "reopen", "SYN on a closed connection: old entry destroyed");
      ct.destroy(e->id);
      e = nullptr;
    }
    if (e) {
      p.ct = e->id;
      p.dir = l.dir;
      if (l.dir == CtDir::Reply) {
        e->status |= ctstatus::SEEN_REPLY;
        p.ctinfo = CtInfo::Established;
      } else {
        if ((e->status & ctstatus::SEEN_REPLY) && (e->orig.proto == proto::UDP || e->orig.proto == proto::UDPLITE))
          e->status |= ctstatus::ASSURED;
        p.ctinfo = (e->status & ctstatus::SEEN_REPLY) ? CtInfo::Established : CtInfo::New;
      }
      e->packets[int(l.dir)]++;
      e->expires_ns = p.ts_ns + Conntrack::timeout_ns(*e);
      if (s.enabled())
        note(s, h, TraceKind::Conntrack, "conntrack", p.ctinfo == CtInfo::New ? "NEW" : "ESTABLISHED",
             fmt::format("entry {} found, {} direction: orig {} reply {}", e->id, l.dir == CtDir::Reply ? "reply" : "original",
                         e->orig.str(), e->reply.str()));
      return Verdict::accept();
    }
    CtEntry* n = ct.create(p.t, p.ct_zone);
    if (!n) {
      if (!Conntrack::invert(p.t)) {
        p.ct = 0;
        p.ctinfo = CtInfo::Invalid;
        note(s, h, TraceKind::Conntrack, "conntrack", "INVALID", "no tuple (ICMP error or unknown type)");
        return Verdict::accept();
      }
      return Verdict::drop(DropReason::CtTableFull);
    }
    if (p.t.proto == proto::TCP && !ct.tcp_packet(*n, CtDir::Original, p.tcp_flags, dp.node().sys.tcp_loose, &reopen)) {
      ct.drop_unconfirmed(n->id);
      p.ct = 0;
      p.ctinfo = CtInfo::Invalid;
      note(s, h, TraceKind::Conntrack, "conntrack", "INVALID", "TCP packet cannot start a connection");
      return Verdict::accept();
    }
    ++dp.counters().ct_created;
    n->expires_ns = p.ts_ns + Conntrack::timeout_ns(*n);
    n->packets[0] = 1;
    p.ct = n->id;
    p.dir = CtDir::Original;
    p.ctinfo = CtInfo::New;
    if (s.enabled())
      note(s, h, TraceKind::Conntrack, "conntrack", "NEW",
           fmt::format("new entry {}: orig {} reply {}", n->id, n->orig.str(), n->reply.str()));
    return Verdict::accept();
  }
};

// nf_conntrack_confirm at POSTROUTING / INPUT (INT_MAX).
class ConntrackConfirm final : public Stage {
 public:
  std::string name() const override { return "conntrack-confirm"; }
  Verdict run(Hook h, Packet& p, Datapath& dp) noexcept override {
    if (!p.ct || p.ctinfo == CtInfo::Untracked || p.ctinfo == CtInfo::Invalid) return Verdict::accept();
    CtEntry* e = dp.conntrack().get(p.ct);
    if (!e || e->confirmed) return Verdict::accept();
    if (!dp.conntrack().confirm(p.ct)) {
      note(dp.sink(), h, TraceKind::Conntrack, "conntrack", "DROP", "confirm: the tuple is already taken (insert clash)");
      dp.conntrack().drop_unconfirmed(p.ct);
      p.ct = 0;
      return Verdict::drop(DropReason::CtInsertClash);
    }
    if (dp.sink().enabled())
      note(dp.sink(), h, TraceKind::Conntrack, "conntrack", "confirmed",
           fmt::format("entry {} confirmed: reply {}", e->id, e->reply.str()));
    return Verdict::accept();
  }
};

// A table other than nat at one hook.
class TableStage final : public Stage {
 public:
  explicit TableStage(TableId t) : t_(t) {}
  std::string name() const override { return std::string(table_name(t_)); }
  Verdict run(Hook h, Packet& p, Datapath& dp) noexcept override {
    const Ruleset* rs = dp.ruleset(p.t.src.fam);
    const Table* t = rs ? rs->table(t_) : nullptr;
    if (!t) return Verdict::accept();
    EvalEnv env = dp.env(p.t.src.fam, dp.sink());
    Verdict v = run_table(*t, h, p, env);
    if (v.kind != VerdictKind::Accept) dp.record_hit(*t, env);
    return v;
  }

 private:
  TableId t_;
};

// An nftables base chain of type filter or route.
class NftChainStage final : public Stage {
 public:
  NftChainStage(const nft::Table& t, const nft::Chain& c) : t_(t), c_(c) {}
  std::string name() const override { return t_.label + " " + c_.name; }
  Verdict run(Hook h, Packet& p, Datapath& dp) noexcept override {
    if (!t_.matches(p.t.src.fam)) return Verdict::accept();
    return dp.run_nft(t_, c_, h, p);
  }

 private:
  const nft::Table& t_;
  const nft::Chain& c_;
};

}  // namespace

// nf_nat_inet_fn: the nat lookups (the iptables nat table and nftables nat chains, in priority order)
// only for a connection's first packet until one sets up a binding; bindings applied always.
class NatCore final : public Stage {
 public:
  struct Lookup {
    int priority;
    const nft::Table* table;  // nullptr: the iptables nat table
    const nft::Chain* chain;
  };
  std::string name() const override { return "nat"; }
  void add(Hook h, Lookup l) {
    auto& v = lookups_[int(h)];
    auto it = std::upper_bound(v.begin(), v.end(), l, [](const Lookup& a, const Lookup& b) { return a.priority < b.priority; });
    v.insert(it, l);
  }
  Verdict run(Hook h, Packet& p, Datapath& dp) noexcept override {
    const Ruleset* rs = dp.ruleset(p.t.src.fam);
    const Table* t = rs ? rs->table(TableId::Nat) : nullptr;
    bool any = false;
    for (auto& l : lookups_[int(h)]) any |= l.table ? l.table->matches(p.t.src.fam) : t != nullptr;
    if (!any) return Verdict::accept();
    if (!p.ct || p.ctinfo == CtInfo::Untracked || p.ctinfo == CtInfo::Invalid) return Verdict::accept();
    Manip manip = (h == Hook::PreRouting || h == Hook::LocalOut) ? Manip::Dst : Manip::Src;
    CtEntry* e = dp.conntrack().get(p.ct);
    if (!e) return Verdict::accept();
    TraceSink& s = dp.sink();
    if (p.ctinfo == CtInfo::New && !e->nat_done[int(manip)]) {
      ++dp.counters().nat_table_runs;
      for (auto& l : lookups_[int(h)]) {
        Verdict v;
        if (!l.table) {
          if (!t) continue;
          EvalEnv env = dp.env(p.t.src.fam, s);
          v = run_table(*t, h, p, env);
          if (v.kind != VerdictKind::Accept) dp.record_hit(*t, env);
        } else {
          if (!l.table->matches(p.t.src.fam)) continue;
          v = dp.run_nft(*l.table, *l.chain, h, p);
        }
        if (v.kind != VerdictKind::Accept) return v;
        e = dp.conntrack().get(p.ct);
        if (e->nat_done[int(manip)]) break;
      }
      e = dp.conntrack().get(p.ct);
      if (!e->nat_done[int(manip)]) nat_setup(dp.conntrack(), *e, manip, nullptr, nullptr, dp.chooser());
    } else if (s.enabled()) {
      note(s, h, TraceKind::Nat, "nat", "skipped",
           p.ctinfo == CtInfo::New ? fmt::format("table not consulted ({} binding already set up for this connection)",
                                                 manip == Manip::Dst ? "destination" : "source")
                                   : fmt::format("table not consulted (conntrack: {} packet follows the stored binding)",
                                                 p.dir == CtDir::Reply ? "reply" : "established"));
    }
    FiveTuple before = p.t;
    if (nat_apply(*e, p.dir, manip, p)) {
      ++dp.counters().nat_rewrites;
      if (s.enabled()) {
        TraceEvent ev;
        ev.hook = h;
        ev.kind = TraceKind::Nat;
        ev.table = "nat";
        bool undo = p.dir == CtDir::Reply;
        ev.target = manip == Manip::Dst ? (undo ? "un-SNAT" : "DNAT") : (undo ? "un-DNAT" : "SNAT");
        ev.detail = "rewritten from the conntrack binding";
        ev.rewritten = true;
        ev.before = before;
        ev.after = p.t;
        s.event(std::move(ev));
      }
    }
    return Verdict::accept();
  }

 private:
  std::vector<Lookup> lookups_[kNumHooks];
};

Datapath::Datapath(const Node& node, const Ruleset* v4, const Ruleset* v6, const IpSets* sets, uint64_t seed)
    : node_(node), v4_(v4), v6_(v6), sets_(sets), chooser_(st_.rng) {
  st_.rng.reseed(seed);
  if (v4_) st_.rs4.reset(*v4_);
  if (v6_) st_.rs6.reset(*v6_);
  auto own = [&](Stage* s) {
    owned_.emplace_back(s);
    return s;
  };
  using enum Hook;
  Stage* ct_in = own(new ConntrackIn);
  Stage* confirm = own(new ConntrackConfirm);
  nat_ = static_cast<NatCore*>(own(new NatCore));
  for (Hook h : {PreRouting, LocalOut}) add_stage(h, prio::CONNTRACK, ct_in);
  for (Hook h : {PostRouting, LocalIn}) add_stage(h, prio::CONNTRACK_CONFIRM, confirm);
  for (Hook h : {PreRouting, LocalOut, PostRouting, LocalIn}) {
    add_stage(h, table_priority(TableId::Nat, h), nat_);
    nat_->add(h, {table_priority(TableId::Nat, h), nullptr, nullptr});
  }
  for (TableId t : {TableId::Raw, TableId::Mangle, TableId::Filter, TableId::Security}) {
    Stage* s = own(new TableStage(t));
    for (int h = 0; h < kNumHooks; ++h)
      if (table_hooks(t) & hook_bit(Hook(h))) add_stage(Hook(h), table_priority(t, Hook(h)), s);
  }
}

Datapath::~Datapath() = default;

void Datapath::add_nft(const nft::Ruleset& rs) {
  nft_ = &rs;
  st_.nft.reset(rs);
  for (auto& t : rs.tables)
    for (auto& c : t->chains) {
      if (!c.base) continue;
      if (c.type == nft::ChainType::Nat) {
        nat_->add(c.hook, {c.priority, t.get(), &c});
      } else {
        owned_.emplace_back(new NftChainStage(*t, c));
        add_stage(c.hook, c.priority, owned_.back().get());
      }
    }
}

Verdict Datapath::run_nft(const nft::Table& t, const nft::Chain& c, Hook h, Packet& p) {
  nft::Env env{node_, st_.ct, chooser_, *sink_, st_.ctr, st_.nft, {}};
  Verdict v = nft::run_chain(t, c, h, p, env);
  if (v.kind != VerdictKind::Accept) {
    last_hit.nft = env.hit;
    last_hit.chain = nullptr;
    last_hit.rule = nullptr;
  }
  return v;
}

void Datapath::add_stage(Hook h, int priority, Stage* s) {
  auto& v = hooks_[int(h)];
  Registration r{h, priority, s};
  // Stable: equal priorities keep registration order, as nf_register_net_hook does.
  auto it = std::upper_bound(v.begin(), v.end(), r,
                             [](const Registration& a, const Registration& b) { return a.priority < b.priority; });
  v.insert(it, r);
}

void Datapath::record_hit(const Table& t, const EvalEnv& env) {
  last_hit.rule = env.hit_rule;
  last_hit.nft = {};
  if (!env.hit_chain) return;
  // Label the verdict the way the trace (and the kernel's TRACE) labels it.
  std::string_view kind = "policy";
  if (const Rule* r = env.hit_rule) {
    bool tail_like = r->unconditional() && std::holds_alternative<StandardTarget>(r->target);
    kind = !tail_like ? "rule" : env.hit_chain->builtin ? "policy" : "return";
  }
  last_hit.chain = env.hit_chain;
  last_hit.table = t.id;
  last_hit.kind = kind;
  last_hit.num = env.hit_num;
}

std::string Datapath::RuleHit::where() const {
  if (chain) return fmt::format("{}:{}:{}:{}", table_name(table), chain->name, kind, num);
  if (nft.chain) return fmt::format("{}:{}:{}:{}", nft.table->label, nft.chain->name, nft.policy ? "policy" : "rule", nft.num);
  return std::string();
}

EvalEnv Datapath::env(Family f, TraceSink& sink) {
  return EvalEnv{node_, sets_, st_.ct, chooser_, sink, st_.ctr, f == Family::V4 ? st_.rs4 : st_.rs6, f};
}

void Datapath::route_note(Hook h, std::string text) { note(*sink_, h, TraceKind::Route, "routing", "", std::move(text)); }

Verdict Datapath::run_hook(Hook h, Packet& p, Outcome& o) {
  o.last_hook = h;
  for (auto& r : hooks_[int(h)]) {
    Verdict v = r.stage->run(h, p, *this);
    if (v.kind == VerdictKind::Repeat) continue;
    if (v.kind != VerdictKind::Accept) {
      o.where = last_hit.chain || last_hit.nft.chain ? last_hit.where() : fmt::format("{} {}", hook_name(h), r.stage->name());
      return v;
    }
  }
  return Verdict::accept();
}

void Datapath::finish(Outcome& o, const Packet& p, OutcomeKind k, Verdict v) {
  o.kind = k;
  o.after = p;
  if (p.phys_out >= 0) o.port = std::string(node_.ifname(p.phys_out));
  o.reason = v.reason;
  if (v.kind == VerdictKind::Drop) {
    o.kind =
        v.reason == DropReason::RuleReject || v.reason == DropReason::IpvsNoDest ? OutcomeKind::Rejected : OutcomeKind::Dropped;
    if (v.reason == DropReason::IpvsNoDest) o.reject_with = "icmp-port-unreachable";
    if (last_hit.rule)
      if (auto* rj = std::get_if<RejectTarget>(&last_hit.rule->target)) o.reject_with = rj->with;
    if (last_hit.nft.chain && !last_hit.nft.reject_with.empty()) o.reject_with = std::string(last_hit.nft.reject_with);
  } else if (v.kind == VerdictKind::Queue) {
    o.kind = OutcomeKind::Queued;
  } else if (v.kind == VerdictKind::Stolen) {
    o.kind = OutcomeKind::Stolen;
  }
  bool dst_changed = !(p.t.dst == o.before.dst) || (p.t.dport != o.before.dport && proto::has_ports(p.t.proto));
  bool src_changed = !(p.t.src == o.before.src) || (p.t.sport != o.before.sport && proto::has_ports(p.t.proto));
  // A reply's source is rewritten by the connection's DNAT (un-DNAT) and its destination by its SNAT.
  bool reply = p.ct && p.dir == CtDir::Reply;
  o.dnat = reply ? src_changed : dst_changed;
  o.snat = reply ? dst_changed : src_changed;
  if (p.ct && (o.kind == OutcomeKind::Dropped || o.kind == OutcomeKind::Rejected || o.kind == OutcomeKind::Queued))
    st_.ct.drop_unconfirmed(p.ct);
}

Outcome Datapath::run(const Packet& in_pkt, const Injection& in, TraceSink& sink) {
  sink_ = &sink;
  last_hit = {};
  reinject_ = false;
  Outcome o;
  Packet p = in_pkt;
  o.before = p.t;
  ++st_.ctr.packets;
  const Sysctls& sys = node_.sys;
  auto drop = [&](DropReason r, Hook h) {
    o.last_hook = h;
    o.where = std::string(hook_name(h));
    note(sink, h, TraceKind::Verdict, "routing", "DROP", std::string(drop_reason_name(r)));
    finish(o, p, OutcomeKind::Dropped, Verdict::drop(r));
    return o;
  };
  auto verdict_out = [&](Verdict v) {
    finish(o, p, OutcomeKind::Dropped, v);
    return o;
  };
  auto localnet_ok = [&](int16_t oif) {
    return !p.t.src.is_v4() || !p.t.src.is_loopback() || node_.iface(oif).loopback ||
           sys.route_localnet_for(node_.iface(oif).name);
  };

  if (in.local) {
    p.local_out = true;
    p.iif = kNoIf;
    p.pkt_type = PktType::Host;
    ++st_.ctr.route_lookups;
    RouteResult r = node_.lookup(p.t.dst);
    if (r.type == RouteType::Unreachable || r.oif < 0) return drop(DropReason::NoRoute, Hook::LocalOut);
    if (r.type == RouteType::Blackhole || r.type == RouteType::Prohibit) return drop(DropReason::Blackhole, Hook::LocalOut);
    p.oif = r.oif;
    if (p.t.src.is_unspecified()) {
      if (r.type == RouteType::Local)
        p.t.src = p.t.dst.is_loopback() ? *Addr::parse(p.t.dst.is_v4() ? "127.0.0.1" : "::1") : p.t.dst;
      else if (auto a = r.src ? r.src : node_.select_source(r.oif, r.nexthop)) p.t.src = *a;
      o.before = p.t;
    }
    if (sink_->enabled())
      route_note(Hook::LocalOut,
                 fmt::format("output route: {} via {}", r.type == RouteType::Local ? "local" : "unicast", node_.ifname(p.oif)));
    if (!localnet_ok(p.oif)) return drop(DropReason::LocalnetOut, Hook::LocalOut);
    Addr dst0 = p.t.dst;
    uint32_t mark0 = p.mark;
    Verdict v = run_hook(Hook::LocalOut, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    if (!(p.t.dst == dst0) || p.mark != mark0) {
      // ip_route_me_harder: the destination (or the mark) changed, route again.
      ++st_.ctr.route_lookups;
      r = node_.lookup(p.t.dst);
      if (r.type == RouteType::Unreachable || r.oif < 0) return drop(DropReason::NoRoute, Hook::LocalOut);
      p.oif = r.oif;
      if (sink_->enabled())
        route_note(Hook::LocalOut, fmt::format("re-route after OUTPUT: {} via {}",
                                               r.type == RouteType::Local ? "local" : "unicast", node_.ifname(p.oif)));
      if (!localnet_ok(p.oif)) return drop(DropReason::LocalnetOut, Hook::LocalOut);
    }
    v = run_hook(Hook::PostRouting, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    if (r.type != RouteType::Local) {
      o.out = std::string(node_.ifname(p.oif));
      finish(o, p, OutcomeKind::Forwarded);
      return o;
    }
    // Sent to a local address: the packet loops back through lo, PREROUTING and INPUT.
    p.iif = node_.find("lo");
    p.oif = kNoIf;
    p.local_out = false;
    route_note(Hook::PostRouting, "loopback: re-enters through lo");
    v = run_hook(Hook::PreRouting, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    v = run_hook(Hook::LocalIn, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    o.out = "lo";
    finish(o, p, OutcomeKind::Delivered);
    return o;
  }

  // ---- ingress
  p.iif = in.iif >= 0 ? in.iif : node_.find("eth0");
  if (p.iif < 0) return drop(DropReason::NoRoute, Hook::PreRouting);
  p.pkt_type = node_.pkt_type_for(p.t.dst);
  int16_t bridge = node_.iface(p.iif).master;
  if (bridge >= 0) {
    p.phys_in = p.iif;
    p.iif = bridge;
  }
  const std::string& iifname = node_.iface(p.iif).name;
  bool from_lo = node_.iface(p.iif).loopback;
  if (!from_lo && p.t.src.is_v4() && p.t.src.is_loopback() && !sys.route_localnet_for(iifname))
    return drop(DropReason::MartianSource, Hook::PreRouting);

  // A bridged frame (both ends behind the same bridge) only meets iptables with br_netfilter on.
  bool bridged = false;
  if (bridge >= 0 && !node_.is_local(p.t.dst)) {
    RouteResult r = node_.lookup(p.t.dst);
    if (r.type == RouteType::Unicast && r.oif == bridge && r.nexthop == p.t.dst) bridged = true;
  }
  if (bridged) {
    auto nb = node_.neighbors.find(p.t.dst);
    int16_t port = nb == node_.neighbors.end() ? kNoIf : nb->second;
    bool call = p.t.src.is_v4() ? sys.bridge_nf_call_iptables : sys.bridge_nf_call_ip6tables;
    if (!call) {
      route_note(Hook::PreRouting, "bridged frame: bridge-nf-call-iptables=0, iptables never sees it");
      p.phys_out = port;
      o.out = port >= 0 ? node_.iface(port).name : node_.iface(bridge).name;
      finish(o, p, OutcomeKind::Bridged);
      return o;
    }
    Addr dst0 = p.t.dst;
    Verdict v = run_hook(Hook::PreRouting, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    if (p.t.dst == dst0) {
      p.oif = bridge;
      p.phys_out = port;
      if (sink_->enabled())
        route_note(Hook::PreRouting, fmt::format("bridged frame on {} (br_netfilter): FORWARD and POSTROUTING with physdev",
                                                 node_.iface(bridge).name));
      v = run_hook(Hook::Forward, p, o);
      if (v.kind != VerdictKind::Accept) return verdict_out(v);
      v = run_hook(Hook::PostRouting, p, o);
      if (v.kind != VerdictKind::Accept) return verdict_out(v);
      o.out = port >= 0 ? node_.iface(port).name : node_.iface(bridge).name;
      finish(o, p, OutcomeKind::Bridged);
      return o;
    }
    route_note(Hook::PreRouting, "DNAT moved the destination off the bridge: routed");
    goto routed;
  }
  {
    Verdict v = run_hook(Hook::PreRouting, p, o);
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
  }
routed : {
  // ip_route_input: martians, the local/forward decision, reverse-path filtering.
  if (!from_lo && p.t.dst.is_v4() && p.t.dst.is_loopback() && !sys.route_localnet_for(iifname))
    return drop(DropReason::MartianDest, Hook::PreRouting);
  ++st_.ctr.route_lookups;
  RouteResult r = node_.lookup(p.t.dst);
  bool local = p.tproxied || r.type == RouteType::Local || r.type == RouteType::Broadcast || p.t.dst.is_multicast();
  if (!from_lo) {
    int mode = p.t.src.is_v4() ? sys.rp_filter_for(iifname) : 0;
    if (mode) {
      RouteResult back = node_.lookup(p.t.src);
      bool ok = back.type == RouteType::Unicast && (mode == 2 || back.oif == p.iif);
      if (!ok) return drop(DropReason::RpFilter, Hook::PreRouting);
    }
  }
  if (local) {
    route_note(Hook::PreRouting, p.tproxied ? "input route: local (TPROXY socket)" : "input route: local delivery");
    Verdict v = run_hook(Hook::LocalIn, p, o);
    if (v.kind == VerdictKind::Stolen && reinject_) {
      // IPVS rewrote the packet at LOCAL_IN and sends it again: LOCAL_OUT, then POSTROUTING.
      reinject_ = false;
      if (sink_->enabled())
        route_note(Hook::LocalIn, fmt::format("re-injected at LOCAL_OUT towards {} via {}", p.t.dst.str(), node_.ifname(p.oif)));
      bool to_local = node_.is_local(p.t.dst);
      v = run_hook(Hook::LocalOut, p, o);
      if (v.kind != VerdictKind::Accept) return verdict_out(v);
      v = run_hook(Hook::PostRouting, p, o);
      if (v.kind != VerdictKind::Accept) return verdict_out(v);
      if (to_local) {
        o.out = "lo";
        finish(o, p, OutcomeKind::Delivered);
        return o;
      }
      o.out = std::string(node_.ifname(p.oif));
      if (p.oif >= 0 && node_.iface(p.oif).bridge) {
        auto nb = node_.neighbors.find(p.t.dst);
        if (nb != node_.neighbors.end()) p.phys_out = nb->second;
      }
      finish(o, p, OutcomeKind::Forwarded);
      return o;
    }
    if (v.kind != VerdictKind::Accept) return verdict_out(v);
    o.out = iifname;
    finish(o, p, OutcomeKind::Delivered);
    return o;
  }
  if (r.type == RouteType::Unreachable || r.oif < 0) return drop(DropReason::NoRoute, Hook::PreRouting);
  if (r.type == RouteType::Blackhole || r.type == RouteType::Prohibit) return drop(DropReason::Blackhole, Hook::PreRouting);
  bool fwd = p.t.src.is_v4() ? sys.ip_forward : sys.ip6_forward;
  if (!fwd) {
    if (sink_->enabled())
      route_note(Hook::PreRouting, fmt::format("input route: forward via {}, but forwarding is off", node_.ifname(r.oif)));
    return drop(DropReason::ForwardingOff, Hook::PreRouting);
  }
  if (p.ttl <= 1) return drop(DropReason::NoRoute, Hook::Forward);
  --p.ttl;
  p.oif = r.oif;
  if (sink_->enabled()) route_note(Hook::PreRouting, fmt::format("input route: forward via {}", node_.ifname(p.oif)));
  Verdict v = run_hook(Hook::Forward, p, o);
  if (v.kind != VerdictKind::Accept) return verdict_out(v);
  v = run_hook(Hook::PostRouting, p, o);
  if (v.kind != VerdictKind::Accept) return verdict_out(v);
  o.out = std::string(node_.ifname(p.oif));
  if (node_.iface(p.oif).bridge) {
    // Routed onto a bridge: the frame leaves through the port the neighbour sits behind.
    auto nb = node_.neighbors.find(p.t.dst);
    if (nb != node_.neighbors.end()) p.phys_out = nb->second;
  }
  finish(o, p, OutcomeKind::Forwarded);
  return o;
}
}

Outcome Datapath::process(const Packet& p, const Injection& in, TraceSink& sink) { return run(p, in, sink); }

std::vector<Outcome> Datapath::enumerate(const Packet& p, const Injection& in, size_t max_outcomes) {
  State saved = st_;
  std::vector<std::pair<Stage*, std::shared_ptr<void>>> stage_state;
  for (auto& regs : hooks_)
    for (auto& r : regs)
      if (auto snap = r.stage->snapshot()) stage_state.push_back({r.stage, snap});
  auto restore_stages = [&]() {
    for (auto& [stage, snap] : stage_state) stage->restore(snap);
  };
  Chooser enumerating(st_.rng);
  std::swap(chooser_, enumerating);
  chooser_.begin_enumeration();
  std::vector<Outcome> out;
  do {
    st_ = saved;
    restore_stages();
    VectorSink sink;
    Outcome o = run(p, in, sink);
    o.trace = std::move(sink.events);
    o.probability = chooser_.path_probability();
    out.push_back(std::move(o));
  } while (out.size() < max_outcomes && chooser_.next_path());
  std::swap(chooser_, enumerating);
  st_ = std::move(saved);
  restore_stages();
  return out;
}

}  // namespace svcpath::nf
