#include "ipvs/engine.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace svcpath::ipvs {

namespace {

// Views, not strings: an untraced packet builds no text for a note it will not keep.
void note(TraceSink& s, Hook h, std::string_view target, std::string_view detail, const FiveTuple* before = nullptr,
          const FiveTuple* after = nullptr) {
  if (!s.enabled()) return;
  TraceEvent e;
  e.hook = h;
  e.kind = TraceKind::Ipvs;
  e.table = "ipvs";
  e.target = std::string(target);
  e.detail = std::string(detail);
  if (before && after) {
    e.rewritten = true;
    e.before = *before;
    e.after = *after;
  }
  s.event(std::move(e));
}

bool ipvs_proto(uint8_t p) { return p == proto::TCP || p == proto::UDP || p == proto::SCTP; }

struct Snapshot {
  ServiceTable services;
  ConnTable conns;
};

}  // namespace

class Engine::InStage final : public nf::Stage {
 public:
  explicit InStage(Engine& e) : e_(e) {}
  std::string name() const override { return "ipvs in"; }
  Verdict run(Hook h, Packet& p, nf::HookContext& ctx) noexcept override { return e_.in(h, p, ctx); }
  std::shared_ptr<void> snapshot() const override { return std::make_shared<Snapshot>(Snapshot{e_.services.clone(), e_.conns}); }
  void restore(const std::shared_ptr<void>& v) override {
    auto* s = static_cast<Snapshot*>(v.get());
    e_.services = s->services.clone();
    e_.conns = s->conns;
  }

 private:
  Engine& e_;
};

class Engine::OutStage final : public nf::Stage {
 public:
  explicit OutStage(Engine& e) : e_(e) {}
  std::string name() const override { return "ipvs out"; }
  Verdict run(Hook h, Packet& p, nf::HookContext& ctx) noexcept override { return e_.out(h, p, ctx); }

 private:
  Engine& e_;
};

void Engine::attach(nf::Datapath& dp) {
  auto* in_s = stages_.emplace_back(std::make_unique<InStage>(*this)).get();
  auto* out_s = stages_.emplace_back(std::make_unique<OutStage>(*this)).get();
  dp.add_stage(Hook::LocalIn, prio::OUT_LOCAL_IN, out_s);
  dp.add_stage(Hook::LocalIn, prio::IN_LOCAL_IN, in_s);
  dp.add_stage(Hook::LocalOut, prio::OUT_LOCAL_OUT, out_s);
  dp.add_stage(Hook::LocalOut, prio::IN_LOCAL_OUT, in_s);
  dp.add_stage(Hook::Forward, prio::OUT_FORWARD, out_s);
  // FTP-NAT needs conntrack to mangle the control connection: a masq destination of a port-21
  // service attaches it for the service's family (__ip_vs_update_dest); nothing else in IPVS does.
  for (auto& svc : services.all())
    if (svc->port == 21 && std::any_of(svc->dests.begin(), svc->dests.end(), [](const Dest& d) { return d.fwd == Fwd::Masq; }))
      dp.conntrack().engage(svc->addr.fam);
}

void Engine::set_state(Conn& c, Service& s, ConnState next) {
  int d = s.find_dest(c.dest_addr, c.dest_port);
  if (d >= 0 && !c.is_template) {
    Dest& dest = s.dests[size_t(d)];
    bool was_active = !c.inactive, now_active = state_active(next);
    if (was_active != now_active) {
      if (now_active) {
        if (dest.inactconns) --dest.inactconns;
        ++dest.activeconns;
      } else {
        if (dest.activeconns) --dest.activeconns;
        ++dest.inactconns;
      }
      c.inactive = !now_active;
    }
  }
  c.state = next;
}

void Engine::expire(Conn& c) {
  if (Service* s = services.at(c.svc)) {
    int d = s->find_dest(c.dest_addr, c.dest_port);
    if (d >= 0) {
      Dest& dest = s->dests[size_t(d)];
      if (c.is_template) {
        if (dest.persistconns) --dest.persistconns;
      } else if (c.inactive) {
        if (dest.inactconns) --dest.inactconns;
      } else if (dest.activeconns) {
        --dest.activeconns;
      }
      // ip_vs_dest_totalconns dropped: clear OVERLOAD below the lower threshold.
      uint32_t total = dest.activeconns + dest.inactconns;
      uint32_t low = dest.l_threshold ? dest.l_threshold : dest.u_threshold * 3 / 4;
      if (dest.overloaded && total < low) dest.overloaded = false;
    }
  }
  conns.expire(c.id);
}

Verdict Engine::in(Hook h, Packet& p, nf::HookContext& ctx) noexcept {
  if (p.ipvs_property || p.fragment || !ipvs_proto(p.t.proto)) return Verdict::accept();
  if (h == Hook::LocalOut && !p.local_out) return Verdict::accept();
  Counters& ctr = ctx.ctr;
  uint64_t now = p.ts_ns;
  ++ctr.ipvs_conn_lookups;
  uint64_t walked = 0;
  Conn* c = conns.in_get(p.t.proto, p.t.src, p.t.sport, p.t.dst, p.t.dport, now, &walked);
  ctr.ipvs_conn_entries_walked += walked;
  if (!c) {
    // An expired entry for the same tuple goes now (the kernel's timer would have removed it).
    uint64_t w2 = 0;
    for (Conn* old = conns.in_get(p.t.proto, p.t.src, p.t.sport, p.t.dst, p.t.dport, 0, &w2); old;
         old = conns.in_get(p.t.proto, p.t.src, p.t.sport, p.t.dst, p.t.dport, 0, &w2)) {
      if (old->expires_ns == 0 || now <= old->expires_ns) break;
      expire(*old);
    }
  }
  Service* svc = nullptr;
  if (c) {
    svc = services.at(c->svc);
    if (ctx.sink.enabled())
      note(ctx.sink, h, "conn",
           fmt::format("connection {} found ({} entries compared in bucket {} of {}): {} -> {}", c->id, walked,
                       conns.bucket(p.t.proto, p.t.src, p.t.sport), 1u << conns.bits(), conn_state_name(c->state),
                       FiveTuple::endpoint(c->daddr, c->dport, c->proto)));
  } else {
    ++ctr.ipvs_svc_lookups;
    uint64_t sw = 0;
    if (p.mark) svc = services.find_fwmark(p.mark, p.t.src.fam, &sw);
    if (!svc) svc = services.find(p.t.proto, p.t.dst, p.t.dport, &sw);
    if (!svc && p.t.proto != proto::UDP) svc = services.find(p.t.proto, p.t.dst, 0, &sw);  // port-zero services
    ctr.ipvs_svc_buckets_walked += sw;
    unsigned bucket = ServiceTable::hash(p.t.proto, p.t.dst, p.t.dport);
    if (!svc) {
      if (ctx.sink.enabled() && services.size())
        if (ctx.sink.enabled())
          note(ctx.sink, h, "no service",
               fmt::format("service lookup: bucket {} of 256, {} entries compared, no virtual service", bucket, sw));
      return Verdict::accept();
    }
    if (ctx.sink.enabled())
      note(ctx.sink, h, "service",
           fmt::format("service lookup: bucket {} of 256, {} entries compared: {} ({})", bucket, sw, svc->key(),
                       svc->sched_name()));
    if (p.t.proto == proto::TCP && (!(p.tcp_flags & tcpflag::SYN) || (p.tcp_flags & tcpflag::RST))) {
      note(ctx.sink, h, "pass", "not a SYN and no connection: IPVS does not schedule it; it continues to the local stack");
      return Verdict::accept();
    }
    int svc_index = services.index_of(svc);
    int d = -1;
    std::string why;
    Conn* tmpl = nullptr;
    Addr masked;
    if (svc->persistent) {
      masked = p.t.src & svc->netmask;
      tmpl = conns.template_get(svc->fwmark ? 0 : p.t.proto, masked, svc->addr, svc->port, now);
      if (tmpl) {
        int td = svc->find_dest(tmpl->dest_addr, tmpl->dest_port);
        if (td >= 0 && !svc->dests[size_t(td)].unavailable()) {
          d = td;
          if (ctx.sink.enabled())
            why = fmt::format("persistence: template for {} -> {}", masked.str(),
                              FiveTuple::endpoint(tmpl->daddr, tmpl->dport, p.t.proto));
        } else {
          expire(*tmpl);
          tmpl = nullptr;
        }
      }
    }
    if (d < 0) {
      uint64_t scanned = 0;
      d = svc->scheduler().schedule(*svc, p, ctx.sink.enabled() ? &why : nullptr, &scanned);
      ctr.ipvs_sched_dests_scanned += scanned;
    }
    note(ctx.sink, h, "schedule", why);
    if (d < 0) return Verdict::drop(DropReason::IpvsNoDest);  // ip_vs_leave: ICMP port unreachable
    Dest& dest = svc->dests[size_t(d)];
    if (svc->persistent && !tmpl) {
      Conn t;
      t.proto = svc->fwmark ? 0 : p.t.proto;
      t.caddr = masked;
      t.vaddr = svc->addr;
      t.vport = svc->port;
      t.daddr = dest.addr;
      t.dport = dest.port;
      t.dest_addr = dest.addr;
      t.dest_port = dest.port;
      t.svc = svc_index;
      t.is_template = true;
      t.expires_ns = now + uint64_t(svc->timeout) * 1'000'000'000ull;
      tmpl = conns.create(t);
      ++dest.persistconns;
    } else if (tmpl) {
      tmpl->expires_ns = now + uint64_t(svc->timeout) * 1'000'000'000ull;
    }
    Conn n;
    n.proto = p.t.proto;
    n.caddr = p.t.src;
    n.cport = p.t.sport;
    n.vaddr = p.t.dst;
    n.vport = p.t.dport;
    n.daddr = dest.addr;
    n.dport = dest.port ? dest.port : p.t.dport;
    n.dest_addr = dest.addr;
    n.dest_port = dest.port;
    n.svc = svc_index;
    n.control = tmpl ? tmpl->id : 0;
    n.state = p.t.proto == proto::TCP ? ConnState::None : ConnState::Udp;
    c = conns.create(n);
    ++dest.inactconns;  // bound inactive; the first state change may make it active
    ++dest.conns;
    ++svc->conns;
    if (dest.u_threshold && dest.activeconns + dest.inactconns >= dest.u_threshold) dest.overloaded = true;
    if (ctx.sink.enabled())
      note(ctx.sink, h, "conn",
           fmt::format("new connection {}: {} -> {} -> {}", c->id, FiveTuple::endpoint(n.caddr, n.cport, n.proto),
                       FiveTuple::endpoint(n.vaddr, n.vport, n.proto), FiveTuple::endpoint(n.daddr, n.dport, n.proto)));
  }
  // State and timeout.
  if (c->proto == proto::TCP) set_state(*c, *svc, tcp_next(c->state, true, p.tcp_flags));
  c->expires_ns = now + state_timeout_ns(c->state, c->proto, timeouts);
  ++svc->inpkts;
  // ip_vs_nat_xmit: rewrite the destination, tell conntrack the real reply tuple, mark the packet.
  FiveTuple before = p.t;
  p.t.dst = c->daddr;
  p.t.dport = c->dport;
  p.ipvs_property = true;
  if (p.ct && p.dir == CtDir::Original) {
    nf::CtEntry* e = ctx.ct.get(p.ct);
    if (e && !e->confirmed) {
      e->reply.src = c->daddr;  // net.ipv4.vs.conntrack=1: the reply will come from the real server
      e->reply.sport = c->dport;
    }
  }
  auto r = ctx.node.lookup(p.t.dst);
  ++ctr.route_lookups;
  p.oif = r.oif;
  if (ctx.sink.enabled())
    note(ctx.sink, h, "DNAT",
         fmt::format("masq to the real server, {} ({})", h == Hook::LocalIn ? "re-injected at LOCAL_OUT" : "continues in OUTPUT",
                     conn_state_name(c->state)),
         &before, &p.t);
  if (h == Hook::LocalIn) {
    ctx.reinject = true;
    return {VerdictKind::Stolen, DropReason::None, 0};
  }
  return Verdict::accept();
}

Verdict Engine::out(Hook h, Packet& p, nf::HookContext& ctx) noexcept {
  if (p.ipvs_property || p.fragment || !ipvs_proto(p.t.proto) || conns.size() == 0) return Verdict::accept();
  Counters& ctr = ctx.ctr;
  ++ctr.ipvs_conn_lookups;
  uint64_t walked = 0;
  Conn* c = conns.out_get(p.t.proto, p.t.src, p.t.sport, p.t.dst, p.t.dport, p.ts_ns, &walked);
  ctr.ipvs_conn_entries_walked += walked;
  if (!c) return Verdict::accept();
  Service* svc = services.at(c->svc);
  if (svc && c->proto == proto::TCP) set_state(*c, *svc, tcp_next(c->state, false, p.tcp_flags));
  c->expires_ns = p.ts_ns + state_timeout_ns(c->state, c->proto, timeouts);
  if (svc) ++svc->outpkts;
  FiveTuple before = p.t;
  p.t.src = c->vaddr;
  p.t.sport = c->vport;
  p.ipvs_property = true;
  if (ctx.sink.enabled())
    note(ctx.sink, h, "un-DNAT", fmt::format("reply of connection {} ({})", c->id, conn_state_name(c->state)), &before, &p.t);
  return Verdict::accept();
}

}  // namespace svcpath::ipvs
