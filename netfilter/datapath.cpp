#include "netfilter/datapath.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "netfilter/reject.hpp"
#include "core/bytes.hpp"
#include "core/ipv6_ext.hpp"

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
    case OutcomeKind::Unsimulated: return "unsimulated";
  }
  return "dropped";
}

std::string RuleHit::where() const {
  if (chain.empty()) return std::string();
  return fmt::format("{}:{}:{}:{}", table, chain, kind, num);
}

namespace {

// Views, not strings: an untraced packet builds no text for a note it will not keep (callers that
// format guard the call with enabled()).
void note(TraceSink& s, Hook h, TraceKind k, std::string_view table, std::string_view target, std::string_view detail) {
  if (!s.enabled()) return;
  TraceEvent e;
  e.hook = h;
  e.kind = k;
  e.table = table;
  e.target = std::string(target);
  e.detail = std::string(detail);
  s.event(std::move(e));
}

// nf_defrag_ipv4 / nf_defrag_ipv6 at PREROUTING / OUTPUT (-400), before raw. svcpath sees each
// packet alone, so a fragment is a lone one and meets a fresh reassembly queue. IPv4 (ip_defrag)
// keeps every lone fragment. IPv6 (nf_ct_frag6_gather) keeps it too, except: a first fragment
// without its whole transport header, and a fragment with More Fragments whose length is not a
// multiple of 8 (-EPROTO), go on as they are; an empty one or one reaching past 64 KiB is dropped;
// an atomic one (offset 0, no More Fragments) is whole and goes on without its fragment header.
// Verified in a namespace; tests/kernel/differential.py replays each case.
class Defrag final : public Stage {
 public:
  std::string name() const override { return "defrag"; }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override {
    if (h == Hook::LocalIn) {
      // Without nf_defrag an IPv4 fragment walks PREROUTING as it is, but ip_local_deliver
      // reassembles before LOCAL_IN, so a lone one never reaches INPUT (IPv6 reassembles after it).
      if (p.t.src.is_v4() && !ctx.ct.defrag(Family::V4) && (p.fragment || p.more_fragments)) return held(h, ctx);
      return Verdict::accept();
    }
    // nf_defrag_ipv4/6 are registered with conntrack (or alone, for socket/TPROXY): without them a
    // fragment walks the hooks as it is. A looped-back packet is whole already.
    if (p.ct || !ctx.ct.defrag(p.t.src.fam)) return Verdict::accept();
    if (p.t.src.is_v4()) {
      if (!p.fragment && !p.more_fragments) return Verdict::accept();
      return held(h, ctx);
    }
    unsigned fh = 0;
    if (!p.ext_len || ext6::find_hdr(p, ext6::FRAGMENT, &fh) < 0) return Verdict::accept();
    unsigned fo = be16(p.ext + (fh - 40) + 2) & ~7u;
    bool more = p.ext[fh - 40 + 3] & 1;
    if (fo == 0) {  // ipv6frag_thdr_truncated
      unsigned off = 0;
      int up = ext6::find_hdr(p, -1, &off);
      unsigned need = up == proto::TCP ? 20 : (up == proto::UDP || up == proto::ICMPV6) ? 8 : 1;
      if (up >= 0 && up != ext6::NONE && off + need > p.len)
        return as_is(h, ctx, "a first fragment without its whole transport header goes on unreassembled");
    }
    unsigned end = fo + p.len - fh - 8;
    if (end > 65535 || end == fo) {
      note(ctx.sink, h, TraceKind::Conntrack, "defrag", "DROP",
           "a fragment reaching past 64 KiB, or empty: reassembly refuses it");
      return Verdict::drop(DropReason::FragInvalid);
    }
    if (more && (end & 7))
      return as_is(h, ctx, "a fragment with More Fragments whose length is not a multiple of 8 goes on unreassembled");
    if (fo == 0 && !more) {
      ext6::remove_header(p, fh);
      note(ctx.sink, h, TraceKind::Conntrack, "defrag", "whole",
           "an atomic fragment (offset 0, no more fragments): its fragment header is removed");
      return Verdict::accept();
    }
    return held(h, ctx);
  }

 private:
  static Verdict held(Hook h, HookContext& ctx) {
    note(ctx.sink, h, TraceKind::Conntrack, "defrag", "HELD",
         "a fragment is held for reassembly and the others never arrive: no table sees it");
    return Verdict::drop(DropReason::FragHeld);
  }
  static Verdict as_is(Hook h, HookContext& ctx, const char* why) {
    note(ctx.sink, h, TraceKind::Conntrack, "defrag", "as is", why);
    return Verdict::accept();
  }
};

// nf_conntrack_in at PREROUTING / OUTPUT (-200).
class ConntrackIn final : public Stage {
 public:
  std::string name() const override { return "conntrack"; }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override {
    TraceSink& s = ctx.sink;
    if (!ctx.ct.engaged(p.t.src.fam)) {
      // The kernel has no conntrack hook here at all; the trace says why nothing is tracked.
      if (s.enabled())
        note(s, h, TraceKind::Conntrack, "conntrack", "off",
             fmt::format("conntrack not engaged for {}: no rule needs it", p.t.src.is_v4() ? "IPv4" : "IPv6"));
      return Verdict::accept();
    }
    if (p.notrack) {
      p.ct = 0;
      p.ctinfo = CtInfo::Untracked;
      note(s, h, TraceKind::Conntrack, "conntrack", "UNTRACKED", "NOTRACK: conntrack skips this packet");
      return Verdict::accept();
    }
    if (p.fragment || (!p.t.src.is_v4() && p.t.proto == ext6::NONE)) {
      // A later fragment defrag let through, or IPv6 "no next header": no transport header to
      // track (nf_conntrack_in finds no protocol, as ipv6_skip_exthdr stops).
      p.ctinfo = CtInfo::Invalid;
      note(s, h, TraceKind::Conntrack, "conntrack", "INVALID", "no transport header to track");
      return Verdict::accept();
    }
    if (p.ct) {
      // Loopback re-entry keeps the entry the packet was given on the way out (nf_conntrack_in
      // ignores it), as does a REJECT's answer, attached to the rejected packet's (nf_ct_attach).
      if (p.ctinfo == CtInfo::Related && h == Hook::LocalOut && s.enabled())
        note(s, h, TraceKind::Conntrack, "conntrack", "RELATED",
             fmt::format("attached to entry {}, {} direction", p.ct, p.dir == CtDir::Reply ? "reply" : "original"));
      else note(s, h, TraceKind::Conntrack, "conntrack", "seen", "already tracked (looped back or re-injected)");
      return Verdict::accept();
    }
    Conntrack& ct = ctx.ct;
    ++ctx.ctr.ct_lookups;
    CtLookup l = ct.find(p.t, p.ct_zone, p.ts_ns);
    CtEntry* e = l.id ? ct.get(l.id) : nullptr;
    bool reopen = false;
    if (e && p.t.proto == proto::TCP && !ct.tcp_packet(*e, l.dir, p.tcp_flags, ctx.node.sys.tcp_loose, &reopen)) {
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
    if (p.t.proto == proto::TCP && !ct.tcp_packet(*n, CtDir::Original, p.tcp_flags, ctx.node.sys.tcp_loose, &reopen)) {
      ct.drop_unconfirmed(n->id);
      p.ct = 0;
      p.ctinfo = CtInfo::Invalid;
      note(s, h, TraceKind::Conntrack, "conntrack", "INVALID", "TCP packet cannot start a connection");
      return Verdict::accept();
    }
    ++ctx.ctr.ct_created;
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
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override {
    if (!p.ct || p.ctinfo == CtInfo::Untracked || p.ctinfo == CtInfo::Invalid) return Verdict::accept();
    CtEntry* e = ctx.ct.get(p.ct);
    if (!e || e->confirmed) return Verdict::accept();
    // __nf_conntrack_confirm confirms only from the original direction: a REJECT's answer rides the
    // rejected packet's unconfirmed entry the other way and leaves it unconfirmed.
    if (p.dir == CtDir::Reply) return Verdict::accept();
    if (!ctx.ct.confirm(p.ct)) {
      note(ctx.sink, h, TraceKind::Conntrack, "conntrack", "DROP", "confirm: the tuple is already taken (insert clash)");
      ctx.ct.drop_unconfirmed(p.ct);
      p.ct = 0;
      return Verdict::drop(DropReason::CtInsertClash);
    }
    if (ctx.sink.enabled())
      note(ctx.sink, h, TraceKind::Conntrack, "conntrack", "confirmed",
           fmt::format("entry {} confirmed: reply {}", e->id, e->reply.str()));
    return Verdict::accept();
  }
};

// Marks every step of a REJECT's answer as the answer's, so a trace shows both packets in order.
class AnswerSink final : public TraceSink {
 public:
  explicit AnswerSink(TraceSink& s) : s_(s) {}
  bool enabled() const override { return s_.enabled(); }
  void event(TraceEvent&& e) override {
    e.answer = true;
    s_.event(std::move(e));
  }

 private:
  TraceSink& s_;
};

}  // namespace

// One packet's way through the node: the packet as it is now, the outcome being filled in, and
// whether the walk has ended (an outcome was decided).
struct Datapath::Walk {
  Packet p;
  Outcome o;
  bool done = false;
  bool copy = false;  // a clone the kernel loops back; its fate is not the packet's outcome
};

Datapath::Datapath(const Node& node, uint64_t seed) : node_(node), chooser_(st_.rng) {
  st_.rng.reseed(seed);
  // A node whose table already counts entries has conntrack attached (for a family its rules may
  // not show, e.g. a dump of one table only).
  if (node.sys.ct_count > 0)
    for (Family f : {Family::V4, Family::V6}) st_.ct.engage(f);
  using enum Hook;
  Stage& defrag = own(std::make_unique<Defrag>());
  Stage& ct_in = own(std::make_unique<ConntrackIn>());
  Stage& confirm = own(std::make_unique<ConntrackConfirm>());
  nat_ = &own(std::make_unique<NatCore>());
  for (Hook h : {PreRouting, LocalOut, LocalIn}) add_stage(h, prio::CONNTRACK_DEFRAG, &defrag);
  for (Hook h : {PreRouting, LocalOut}) add_stage(h, prio::CONNTRACK, &ct_in);
  for (Hook h : {PostRouting, LocalIn}) add_stage(h, prio::CONNTRACK_CONFIRM, &confirm);
  for (Hook h : {PreRouting, LocalOut}) add_stage(h, prio::NAT_DST, nat_);
  for (Hook h : {PostRouting, LocalIn}) add_stage(h, prio::NAT_SRC, nat_);
}

Datapath::~Datapath() = default;

void Datapath::add_stage(Hook h, int priority, Stage* s) {
  auto& v = hooks_[int(h)];
  Registration r{h, priority, s};
  // Stable: equal priorities keep registration order, as nf_register_net_hook does.
  auto it = std::upper_bound(v.begin(), v.end(), r,
                             [](const Registration& a, const Registration& b) { return a.priority < b.priority; });
  v.insert(it, r);
}

void Datapath::route_note(Hook h, std::string_view text) { note(*sink_, h, TraceKind::Route, "routing", "", text); }

// nf_hook_slow: every registration in priority order until one does not accept. False: the walk
// ended here (the outcome is set), or — with reinject — a stage stole the packet to send it again.
bool Datapath::hook(Walk& w, Hook h, bool reinject) {
  w.o.last_hook = h;
  HookContext ctx{node_, st_.ct, st_.ctr, *sink_, chooser_, hit_, reinject_};
  for (auto& r : hooks_[int(h)]) {
    Verdict v = r.stage->run(h, w.p, ctx);
    if (v.kind == VerdictKind::Repeat) continue;
    if (v.kind != VerdictKind::Accept) {
      w.o.where = !hit_.chain.empty() ? hit_.where() : fmt::format("{} {}", hook_name(h), r.stage->name());
      if (reinject && v.kind == VerdictKind::Stolen && reinject_) return false;
      finish(w, OutcomeKind::Dropped, v);
      return false;
    }
  }
  return true;
}

void Datapath::drop(Walk& w, DropReason r, Hook h) {
  w.o.last_hook = h;
  w.o.where = std::string(hook_name(h));
  note(*sink_, h, TraceKind::Verdict, "routing", "DROP", drop_reason_name(r));
  finish(w, OutcomeKind::Dropped, Verdict::drop(r));
}

void Datapath::finish(Walk& w, OutcomeKind k, Verdict v) {
  const Packet& p = w.p;
  Outcome& o = w.o;
  w.done = true;
  o.kind = k;
  o.after = p;
  if (p.phys_out >= 0) o.port = std::string(node_.ifname(p.phys_out));
  o.reason = v.reason;
  if (v.kind == VerdictKind::Drop) {
    bool answered =
        v.reason == DropReason::RuleReject || v.reason == DropReason::IpvsNoDest || v.reason == DropReason::BeyondScope;
    o.kind = answered ? OutcomeKind::Rejected : OutcomeKind::Dropped;
    if (v.reason == DropReason::IpvsNoDest) o.reject_with = "icmp-port-unreachable";
    if (!hit_.reject_with.empty()) o.reject_with = std::string(hit_.reject_with);
    if (v.reason == DropReason::BeyondScope) o.reject_with = "icmp6-beyond-scope";
  } else if (v.kind == VerdictKind::Queue) {
    o.kind = OutcomeKind::Queued;
  } else if (v.kind == VerdictKind::Stolen) {
    o.kind = OutcomeKind::Stolen;
  } else if (v.kind == VerdictKind::Unsimulated) {
    o.kind = OutcomeKind::Unsimulated;
  }
  bool dst_changed = !(p.t.dst == o.before.dst) || (p.t.dport != o.before.dport && proto::has_ports(p.t.proto));
  bool src_changed = !(p.t.src == o.before.src) || (p.t.sport != o.before.sport && proto::has_ports(p.t.proto));
  // A reply's source is rewritten by the connection's DNAT (un-DNAT) and its destination by its SNAT.
  bool reply = p.ct && p.dir == CtDir::Reply;
  o.dnat = reply ? src_changed : dst_changed;
  o.snat = reply ? dst_changed : src_changed;
  // The REJECT target sends its answer before the packet is freed (its entry still attached).
  if (o.kind == OutcomeKind::Rejected && !w.copy && !answering_) send_answer(w);
  if (p.ct && !w.copy && (o.kind == OutcomeKind::Dropped || o.kind == OutcomeKind::Rejected || o.kind == OutcomeKind::Queued))
    st_.ct.drop_unconfirmed(p.ct);
}

// POSTROUTING and out of the interface routing chose. report_port: a frame routed onto a bridge
// leaves through the port its neighbour sits behind (not looked up for a local process's packets).
void Datapath::leave(Walk& w, bool report_port) {
  if (!hook(w, Hook::PostRouting)) return;
  Packet& p = w.p;
  w.o.out = std::string(node_.ifname(p.oif));
  if (report_port && p.oif >= 0 && node_.iface(p.oif).bridge) {
    auto nb = node_.neighbors.find(p.t.dst);
    if (nb != node_.neighbors.end()) p.phys_out = nb->second;
  }
  finish(w, OutcomeKind::Forwarded);
}

// ip_local_out: the output route, OUTPUT, the re-route when OUTPUT changed the destination or the
// mark (ip_route_me_harder), POSTROUTING, then out — or back in through lo for a local address.
void Datapath::local_out(Walk& w) {
  Packet& p = w.p;
  const Sysctls& sys = node_.sys;
  p.local_out = true;
  p.iif = kNoIf;
  p.pkt_type = PktType::Host;
  auto localnet_ok = [&](int16_t oif) {
    return !p.t.src.is_v4() || !p.t.src.is_loopback() || node_.iface(oif).loopback ||
           sys.route_localnet_for(node_.iface(oif).name);
  };
  ++st_.ctr.route_lookups;
  int16_t bound = p.oif;
  Node::RouteKey key{p.t.src, "lo", p.mark};
  RouteResult r = node_.lookup(p.t.dst, &key);
  if (answering_ && bound >= 0) {
    // icmp6_send towards a link-local source: out of the interface the packet came in on (icmp6_iif).
    r = RouteResult{RouteType::Unicast, bound, p.t.dst, std::nullopt};
  } else if (p.t.dst.is_v4() && p.t.dst.is_unspecified()) {
    // ip_route_output_key_hash_rcu: no destination means this host, through lo.
    r = RouteResult{RouteType::Local, node_.find("lo"), p.t.dst, std::nullopt};
  } else if (p.t.dst.is_v4() && (p.t.dst.is_limited_broadcast() || p.t.dst.is_multicast()) && !p.t.src.is_unspecified()) {
    // ip_route_output_key_hash_rcu: limited broadcast and multicast leave through the device that
    // owns the source address (__ip_dev_find).
    if (auto it = std::find_if(node_.interfaces().begin(), node_.interfaces().end(),
                               [&](const Interface& i) {
                                 return std::any_of(i.addrs.begin(), i.addrs.end(),
                                                    [&](const IfAddr& a) { return a.addr == p.t.src; });
                               });
        it != node_.interfaces().end() && !it->loopback)
      r = RouteResult{RouteType::Unicast, it->index, p.t.dst, std::nullopt};
  }
  if (r.type == RouteType::Unreachable || r.oif < 0) return drop(w, DropReason::NoRoute, Hook::LocalOut);
  if (r.type == RouteType::Blackhole || r.type == RouteType::Prohibit) return drop(w, DropReason::Blackhole, Hook::LocalOut);
  p.oif = r.oif;
  if (p.t.src.is_unspecified()) {
    if (r.type == RouteType::Local) p.t.src = p.t.dst.is_loopback() ? loopback_address(p.t.dst.fam) : p.t.dst;
    else if (auto a = r.src ? r.src : node_.select_source(r.oif, r.nexthop)) p.t.src = *a;
    w.o.before = p.t;
  }
  if (sink_->enabled())
    route_note(Hook::LocalOut,
               fmt::format("output route: {} via {}", r.type == RouteType::Local ? "local" : "unicast", node_.ifname(p.oif)));
  if (!localnet_ok(p.oif)) return drop(w, DropReason::LocalnetOut, Hook::LocalOut);
  Addr dst0 = p.t.dst;
  uint32_t mark0 = p.mark;
  if (!hook(w, Hook::LocalOut)) return;
  if (!(p.t.dst == dst0) || p.mark != mark0) {
    // ip_route_me_harder: the destination (or the mark) changed, route again.
    ++st_.ctr.route_lookups;
    key = Node::RouteKey{p.t.src, "lo", p.mark};
    r = node_.lookup(p.t.dst, &key);
    if (r.type == RouteType::Unreachable || r.oif < 0) return drop(w, DropReason::NoRoute, Hook::LocalOut);
    p.oif = r.oif;
    if (sink_->enabled())
      route_note(Hook::LocalOut, fmt::format("re-route after OUTPUT: {} via {}", r.type == RouteType::Local ? "local" : "unicast",
                                             node_.ifname(p.oif)));
    if (!localnet_ok(p.oif)) return drop(w, DropReason::LocalnetOut, Hook::LocalOut);
  }
  if (r.type != RouteType::Local) {
    // ip_mc_output: a broadcast, or multicast to a group joined on the way out, is cloned and the
    // clone looped back to the host after its own POSTROUTING (dev_loopback_xmit).
    bool v4 = p.t.dst.is_v4();
    if (v4 && !node_.iface(p.oif).loopback &&
        (r.type == RouteType::Broadcast || p.t.dst.is_limited_broadcast() ||
         (p.t.dst.is_multicast() && node_.joined(p.oif, p.t.dst))))
      loop_copy(w);
    return leave(w, false);
  }
  if (!hook(w, Hook::PostRouting)) return;
  // Sent to a local address: the packet loops back through lo, PREROUTING and INPUT.
  p.iif = node_.find("lo");
  p.oif = kNoIf;
  p.local_out = false;
  route_note(Hook::PostRouting, "loopback: re-enters through lo");
  if (!hook(w, Hook::PreRouting)) return;
  if (!hook(w, Hook::LocalIn)) return;
  w.o.out = "lo";
  finish(w, OutcomeKind::Delivered);
}

// The looped-back clone: POSTROUTING, then in again on the same device (pkt_type LOOPBACK, which
// -m pkttype reads as broadcast or multicast), PREROUTING with its connection already attached
// (conntrack lets it pass as seen), and INPUT to the local socket. It runs before the original's
// POSTROUTING, as netif_rx processes it on the spot; the outcome stays the original's.
void Datapath::loop_copy(const Walk& w) {
  Walk c{w.p, w.o, false, true};
  RuleHit saved = hit_;
  route_note(Hook::PostRouting, "broadcast/multicast: a copy loops back to this host (ip_mc_output)");
  if (hook(c, Hook::PostRouting)) {
    Packet& p = c.p;
    p.iif = p.oif;
    p.oif = kNoIf;
    p.local_out = false;
    p.looped = true;
    p.pkt_type = p.t.dst.is_multicast() ? PktType::Multicast : PktType::Broadcast;
    if (hook(c, Hook::PreRouting) && hook(c, Hook::LocalIn))
      route_note(Hook::LocalIn, fmt::format("the copy is delivered locally on {}", node_.ifname(p.iif)));
  }
  hit_ = saved;
}

// nf_send_reset / nf_send_unreach: the answer is built from the packet as it is at the REJECT,
// routed and sent with ip_local_out — OUTPUT, POSTROUTING and out, or back in through lo when it
// goes to one of our addresses — as a packet of its own. Its steps join the trace marked as the
// answer's; the packet's outcome keeps kind Rejected and records where the answer went.
void Datapath::send_answer(Walk& w) {
  const Packet& p = w.p;
  Hook h = w.o.last_hook;
  RejectKind k = reject_kind(w.o.reject_with, p.t.src.fam);
  std::string_view why;
  std::optional<Packet> a = p.t.src.is_v4() ? reject_answer_v4(p, k, h, node_, &why) : reject_answer_v6(p, k, h, node_, &why);
  if (!a) {
    note(*sink_, h, TraceKind::Note, "reject", "no answer", why);
    return;
  }
  Answer ans;
  ans.what = answer_name(*a);
  ans.sent = a->t;
  Walk aw{*a, Outcome{}, false, true};
  aw.o.before = aw.p.t;
  AnswerSink marked(*sink_);
  TraceSink* outer = sink_;
  RuleHit hit = hit_;
  sink_ = &marked;
  hit_ = {};
  answering_ = true;
  if (sink_->enabled())
    note(*sink_, Hook::LocalOut, TraceKind::Note, "reject", "answer",
         fmt::format("{} sent back to {}{}{}", ans.what, FiveTuple::endpoint(a->t.dst, a->t.dport, a->t.proto),
                     a->t.src.is_unspecified() ? " (its source from the output route)"
                                               : " from " + FiveTuple::endpoint(a->t.src, a->t.sport, a->t.proto),
                     a->ct ? "" : " (no connection to attach it to)"));
  local_out(aw);
  answering_ = false;
  sink_ = outer;
  hit_ = hit;
  ans.kind = aw.o.kind;
  ans.after = aw.o.after;
  ans.out = aw.o.out;
  ans.reason = aw.o.reason;
  if (aw.o.kind == OutcomeKind::Dropped) ans.where = aw.o.where;
  w.o.answer = std::move(ans);
}

// ip_rcv: the receiving interface (a bridge port's frames arrive on the bridge), IPv6's header
// sanity checks, a bridged frame's own path, PREROUTING, then the input route.
void Datapath::ingress(Walk& w) {
  Packet& p = w.p;
  p.pkt_type = node_.pkt_type_for(p.t.dst);
  int16_t bridge = node_.iface(p.iif).master;
  if (bridge >= 0) {
    p.phys_in = p.iif;
    p.iif = bridge;
  }
  // IPv6 refuses these in ip6_rcv_core, before PREROUTING; IPv4's martians are refused later, by
  // the input route (ip_route_input_slow), after PREROUTING has seen them.
  if (!p.t.src.is_v4()) {
    if (DropReason r = v6_header_martian(p); r != DropReason::None) return drop(w, r, Hook::PreRouting);
  }
  if (bridge >= 0 && bridged(w, bridge)) return;
  if (!hook(w, Hook::PreRouting)) return;
  route_input(w);
}

// ip6_rcv_core: multicast sources, loopback addresses and interface-local multicast from the
// wire, multicast scope 0. (IPv4-mapped sources pass: 6.18 delivers them.)
DropReason Datapath::v6_header_martian(const Packet& p) const {
  const Addr &s = p.t.src, &d = p.t.dst;
  bool from_lo = node_.iface(p.iif).loopback;
  if (s.is_multicast() || (!from_lo && s.is_loopback())) return DropReason::MartianSource;
  if (!from_lo && (d.is_loopback() || (d.is_multicast() && (d.b[1] & 0x0f) == 1))) return DropReason::MartianDest;
  if (d.is_multicast() && (d.b[1] & 0x0f) == 0) return DropReason::MartianDest;
  return DropReason::None;
}

// A frame between two ports of one bridge only meets iptables with br_netfilter on. True when it
// stayed on the bridge (the outcome is set); false when DNAT moved it off and it must be routed.
bool Datapath::bridged(Walk& w, int16_t bridge) {
  Packet& p = w.p;
  if (node_.is_local(p.t.dst)) return false;
  RouteResult r = node_.lookup(p.t.dst);
  if (!(r.type == RouteType::Unicast && r.oif == bridge && r.nexthop == p.t.dst)) return false;
  auto nb = node_.neighbors.find(p.t.dst);
  int16_t port = nb == node_.neighbors.end() ? kNoIf : nb->second;
  bool call = p.t.src.is_v4() ? node_.sys.bridge_nf_call_iptables : node_.sys.bridge_nf_call_ip6tables;
  auto out = [&] { w.o.out = port >= 0 ? node_.iface(port).name : node_.iface(bridge).name; };
  if (!call) {
    route_note(Hook::PreRouting, "bridged frame: bridge-nf-call-iptables=0, iptables never sees it");
    p.phys_out = port;
    out();
    finish(w, OutcomeKind::Bridged);
    return true;
  }
  Addr dst0 = p.t.dst;
  if (!hook(w, Hook::PreRouting)) return true;
  if (!(p.t.dst == dst0)) {
    route_note(Hook::PreRouting, "DNAT moved the destination off the bridge: routed");
    route_input(w);
    return true;
  }
  p.oif = bridge;
  p.phys_out = port;
  if (sink_->enabled())
    route_note(Hook::PreRouting,
               fmt::format("bridged frame on {} (br_netfilter): FORWARD and POSTROUTING with physdev", node_.iface(bridge).name));
  if (!hook(w, Hook::Forward)) return true;
  if (!hook(w, Hook::PostRouting)) return true;
  out();
  finish(w, OutcomeKind::Bridged);
  return true;
}

// fib_validate_source: a local address as the source is a martian (unless accept_local), then
// reverse-path filtering. True when the source is acceptable.
bool Datapath::source_valid(Walk& w) {
  Packet& p = w.p;
  const Sysctls& sys = node_.sys;
  const std::string& iifname = node_.iface(p.iif).name;
  if (node_.iface(p.iif).loopback) return true;
  if (p.t.src.is_v4() && node_.has_address(p.t.src) && !sys.accept_local_for(iifname)) {
    drop(w, DropReason::MartianSource, Hook::PreRouting);
    return false;
  }
  int mode = p.t.src.is_v4() ? sys.rp_filter_for(iifname) : 0;
  if (mode) {
    RouteResult back = node_.lookup(p.t.src);
    bool ok = back.type == RouteType::Unicast && (mode == 2 || back.oif == p.iif);
    if (!ok) {
      drop(w, DropReason::RpFilter, Hook::PreRouting);
      return false;
    }
  }
  return true;
}

// ip_route_input_noref: multicast (ip_route_input_mc, ip6_mc_input), the martians of
// ip_route_input_slow, the local/broadcast/forward decision, fib_validate_source.
void Datapath::route_input(Walk& w) {
  Packet& p = w.p;
  const Sysctls& sys = node_.sys;
  const std::string& iifname = node_.iface(p.iif).name;
  const Addr &src = p.t.src, &dst = p.t.dst;
  bool v4 = dst.is_v4();
  bool localnet = node_.iface(p.iif).loopback || sys.route_localnet_for(iifname);
  ++st_.ctr.route_lookups;
  if (dst.is_multicast() && !p.tproxied) {
    // Only groups joined on the receiving interface are delivered (ip_check_mc_rcu,
    // ipv6_chk_mcast_addr); without a multicast routing daemon (mc_forwarding 0) nothing else.
    if (!node_.joined(p.iif, dst)) return drop(w, DropReason::McastNotJoined, Hook::PreRouting);
    if (v4) {
      // ip_route_input_mc: a zero source only towards 224.0.0.0/24 or in IGMP.
      bool zero_ok = (dst.host4() >> 8) == 0xe00000u || p.t.proto == 2;
      if (src.is_multicast() || src.is_limited_broadcast() || (src.is_loopback() && !localnet) ||
          (src.is_unspecified() && !zero_ok))
        return drop(w, DropReason::MartianSource, Hook::PreRouting);
      if (!src.is_unspecified() && !source_valid(w)) return;
    }
    route_note(Hook::PreRouting, "input route: multicast, group joined: local delivery");
    return local_in(w);
  }
  if (v4) {
    // ip_route_input_slow, in its order. 0.0.0.0/8 other than 0.0.0.0 itself has been an ordinary
    // address since Linux 5.3 (commit 96125bf9985a).
    if (src.is_multicast() || src.is_limited_broadcast()) return drop(w, DropReason::MartianSource, Hook::PreRouting);
    bool brd = dst.is_limited_broadcast() || (src.is_unspecified() && dst.is_unspecified());
    if (brd) {
      if (!src.is_unspecified() && !source_valid(w)) return;
      route_note(Hook::PreRouting, "input route: limited broadcast: local delivery");
      return local_in(w);
    }
    if (src.is_unspecified()) return drop(w, DropReason::MartianSource, Hook::PreRouting);
    if (dst.is_unspecified()) return drop(w, DropReason::MartianDest, Hook::PreRouting);
    if (dst.is_loopback() && !localnet) return drop(w, DropReason::MartianDest, Hook::PreRouting);
    if (!dst.is_loopback() && src.is_loopback() && !localnet) return drop(w, DropReason::MartianSource, Hook::PreRouting);
  }
  if (!v4 && dst.is_link_local() && !p.tproxied && !node_.is_local(dst)) {
    // rt6_need_strict: a link-local destination is looked up on the arrival interface alone, which
    // (as every IPv6 interface) holds fe80::/64 — so it goes back out where it came from.
    if (!sys.ip6_forward) return drop(w, DropReason::ForwardingOff, Hook::PreRouting);
    return forward(w, p.iif);
  }
  Node::RouteKey key{src, node_.ifname(p.iif), p.mark};
  RouteResult r = node_.lookup(dst, &key);
  bool local = p.tproxied || r.type == RouteType::Local || r.type == RouteType::Broadcast;
  if (local) {
    if (!source_valid(w)) return;
    route_note(Hook::PreRouting, p.tproxied                       ? "input route: local (TPROXY socket)"
                                 : r.type == RouteType::Broadcast ? "input route: broadcast: local delivery"
                                                                  : "input route: local delivery");
    return local_in(w);
  }
  if (r.type == RouteType::Unreachable || r.oif < 0) return drop(w, DropReason::NoRoute, Hook::PreRouting);
  if (r.type == RouteType::Blackhole || r.type == RouteType::Prohibit) return drop(w, DropReason::Blackhole, Hook::PreRouting);
  bool fwd = v4 ? sys.ip_forward : sys.ip6_forward;
  if (!fwd) {
    if (sink_->enabled())
      route_note(Hook::PreRouting, fmt::format("input route: forward via {}, but forwarding is off", node_.ifname(r.oif)));
    return drop(w, DropReason::ForwardingOff, Hook::PreRouting);
  }
  if (!source_valid(w)) return;
  forward(w, r.oif);
}

// ip_local_deliver: INPUT. IPVS may steal the packet there and send it again from LOCAL_OUT.
void Datapath::local_in(Walk& w) {
  Packet& p = w.p;
  if (hook(w, Hook::LocalIn, true)) {
    w.o.out = node_.iface(p.iif).name;
    return finish(w, OutcomeKind::Delivered);
  }
  if (w.done) return;
  // IPVS rewrote the packet at LOCAL_IN and sends it again: LOCAL_OUT, then POSTROUTING.
  reinject_ = false;
  if (sink_->enabled())
    route_note(Hook::LocalIn, fmt::format("re-injected at LOCAL_OUT towards {} via {}", p.t.dst.str(), node_.ifname(p.oif)));
  bool to_local = node_.is_local(p.t.dst);
  if (!hook(w, Hook::LocalOut)) return;
  if (!to_local) return leave(w, true);
  if (!hook(w, Hook::PostRouting)) return;
  w.o.out = "lo";
  finish(w, OutcomeKind::Delivered);
}

// ip_forward: the TTL, FORWARD, then out.
void Datapath::forward(Walk& w, int16_t oif) {
  Packet& p = w.p;
  if (p.ttl <= 1) return drop(w, DropReason::NoRoute, Hook::Forward);
  if (!p.t.src.is_v4() && oif != p.iif) {
    // ip6_forward, before FORWARD, on the way to another link (out of the arrival interface the
    // kernel would send a redirect instead and checks nothing): no unspecified, multicast or
    // loopback source; a link-local source is answered with ICMPv6 unreachable, beyond scope.
    const Addr& s = p.t.src;
    if (s.is_unspecified() || s.is_multicast() || s.is_loopback()) return drop(w, DropReason::MartianSource, Hook::Forward);
    if (s.is_link_local()) return drop(w, DropReason::BeyondScope, Hook::Forward);
  }
  --p.ttl;
  p.oif = oif;
  if (sink_->enabled()) route_note(Hook::PreRouting, fmt::format("input route: forward via {}", node_.ifname(p.oif)));
  if (!hook(w, Hook::Forward)) return;
  leave(w, true);
}

Outcome Datapath::run(const Packet& in_pkt, const Injection& in, TraceSink& sink) {
  sink_ = &sink;
  hit_ = {};
  reinject_ = false;
  Walk w;
  w.p = in_pkt;
  w.o.before = w.p.t;
  ++st_.ctr.packets;
  if (in.local) {
    local_out(w);
  } else {
    w.p.iif = in.iif >= 0 ? in.iif : node_.find("eth0");
    if (w.p.iif < 0) drop(w, DropReason::NoRoute, Hook::PreRouting);
    else ingress(w);
  }
  return std::move(w.o);
}

Outcome Datapath::process(const Packet& p, const Injection& in, TraceSink& sink) { return run(p, in, sink); }

std::vector<Outcome> Datapath::enumerate(const Packet& p, const Injection& in, size_t max_outcomes) {
  return branches(p, in, max_outcomes, nullptr);
}

std::optional<Outcome> Datapath::process_if(const Packet& p, const Injection& in, const std::function<bool(const Outcome&)>& want,
                                            size_t max_outcomes) {
  auto v = branches(p, in, max_outcomes, &want);
  if (v.empty()) return std::nullopt;
  v.front().probability = 1.0;  // as process reports it: this run is the packet's only one
  return std::move(v.front());
}

// The packet down each branch of its random choices, every run from the same saved state. With
// want: the first run it accepts is the only one returned and keeps its state (conntrack, IPVS,
// counters), as process would have; when none is accepted the result is empty and state as it was.
std::vector<Outcome> Datapath::branches(const Packet& p, const Injection& in, size_t max_outcomes,
                                        const std::function<bool(const Outcome&)>* want) {
  State saved = st_;
  // Each stage once, though it may be registered at several hooks.
  std::vector<std::pair<Stage*, std::shared_ptr<void>>> stage_state;
  for (auto& regs : hooks_)
    for (auto& r : regs)
      if (std::none_of(stage_state.begin(), stage_state.end(), [&](auto& x) { return x.first == r.stage; }))
        if (auto snap = r.stage->snapshot()) stage_state.push_back({r.stage, snap});
  std::vector<std::shared_ptr<void>> kept;
  for (auto& s : states_) kept.push_back(s->snapshot());
  auto restore_stages = [&]() {
    for (auto& [stage, snap] : stage_state) stage->restore(snap);
    for (size_t i = 0; i < states_.size(); ++i) states_[i]->restore(kept[i]);
  };
  Chooser enumerating(st_.rng);
  std::swap(chooser_, enumerating);
  chooser_.begin_enumeration();
  std::vector<Outcome> out;
  size_t runs = 0;
  do {
    st_ = saved;
    restore_stages();
    VectorSink sink;
    Outcome o = run(p, in, sink);
    o.trace = std::move(sink.events);
    o.probability = chooser_.path_probability();
    ++runs;
    if (want && (*want)(o)) {
      std::swap(chooser_, enumerating);
      return {std::move(o)};
    }
    if (!want) out.push_back(std::move(o));
  } while (runs < max_outcomes && chooser_.next_path());
  std::swap(chooser_, enumerating);
  st_ = std::move(saved);
  restore_stages();
  return out;
}

}  // namespace svcpath::nf
