#include "netfilter/nat.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/jhash.hpp"
#include "netfilter/node.hpp"

namespace svcpath::nf {

namespace {

// The address as the kernel's union nf_inet_addr words: raw network-order bytes read as
// little-endian u32 (x86), so hashes match the kernel's on the machines it runs on.
void words(const Addr& a, uint32_t w[4]) {
  for (int i = 0; i < 4; ++i)
    w[i] = uint32_t(a.b[4 * i]) | uint32_t(a.b[4 * i + 1]) << 8 | uint32_t(a.b[4 * i + 2]) << 16 | uint32_t(a.b[4 * i + 3]) << 24;
}
uint32_t ntohl_word(uint32_t w) { return __builtin_bswap32(w); }

// find_best_ips_proto: a deterministic choice within the address range.
Addr best_ip(const FiveTuple& t, Manip manip, const Addr& lo, const Addr& hi, bool persistent) {
  if (lo == hi) return lo;
  unsigned max = t.src.is_v4() ? 0 : 3;
  uint32_t srcw[4], dstw[4], low[4], hiw[4], out[4];
  words(t.src, srcw);
  words(t.dst, dstw);
  words(lo, low);
  words(hi, hiw);
  const Addr& var = manip == Manip::Src ? t.src : t.dst;
  words(var, out);
  uint32_t j = jhash2(srcw, 4, persistent ? 0 : dstw[max]);
  bool full = false;
  for (unsigned i = 0; i <= max; ++i) {
    uint32_t minip, dist;
    if (!full) {
      minip = ntohl_word(low[i]);
      uint32_t maxip = ntohl_word(hiw[i]);
      dist = maxip - minip + 1;
    } else {
      minip = 0;
      dist = ~0u;
    }
    uint32_t v = minip + uint32_t((uint64_t(j) * dist) >> 32);
    out[i] = ntohl_word(v);
    if (out[i] != hiw[i]) full = true;
    if (!persistent) j ^= dstw[i];
  }
  Addr r = var;
  for (int i = 0; i < 4; ++i) {
    r.b[4 * i] = uint8_t(out[i]);
    r.b[4 * i + 1] = uint8_t(out[i] >> 8);
    r.b[4 * i + 2] = uint8_t(out[i] >> 16);
    r.b[4 * i + 3] = uint8_t(out[i] >> 24);
  }
  if (r.is_v4())
    for (int i = 4; i < 16; ++i) r.b[i] = 0;
  return r;
}

bool used(const Conntrack& ct, const FiveTuple& t, uint16_t zone, uint32_t self) {
  auto rep = Conntrack::invert(t);
  return rep && ct.reply_taken(*rep, zone, self);
}

}  // namespace

bool nat_setup(Conntrack& ct, CtEntry& e, Manip manip, const NatTarget* range, const Addr* map_to, Chooser& choose) {
  auto cur = Conntrack::invert(e.reply);
  if (!cur) return false;
  FiveTuple t = *cur;
  bool random_all = range && (range->random || range->random_fully);
  bool proto_specified = range && range->port_set;
  if (map_to) {
    (manip == Manip::Src ? t.src : t.dst) = *map_to;
  } else if (range && range->addr_set) {
    (manip == Manip::Src ? t.src : t.dst) = best_ip(t, manip, range->min, range->max, range->persistent);
  }
  bool icmp = t.proto == proto::ICMP || t.proto == proto::ICMPV6;
  uint16_t* key = nullptr;
  if (icmp) key = &t.sport;  // the echo id, the same in either direction
  else if (proto::has_ports(t.proto)) key = manip == Manip::Src ? &t.sport : &t.dport;

  bool done = false;
  if (!random_all) {
    if (proto_specified && key) {
      bool in_range = *key >= range->ports.lo && *key <= range->ports.hi;
      if (in_range && (range->ports.single() || !used(ct, t, e.zone, e.id))) done = true;
    } else if (!used(ct, t, e.zone, e.id)) {
      done = true;
    }
  }
  if (!done && key) {
    // nf_nat_l4proto_unique_tuple.
    uint32_t min, range_size;
    bool skip = false;
    if (!proto_specified) {
      if (manip == Manip::Dst && !icmp) skip = true;  // can't change a DNAT port nobody asked for
      if (icmp) {
        min = 0;
        range_size = 65536;
      } else if (*key < 1024) {
        if (*key < 512) min = 1, range_size = 511;
        else min = 600, range_size = 1023 - 600 + 1;
      } else {
        min = 1024;
        range_size = 65535 - 1024 + 1;
      }
    } else {
      min = range->ports.lo;
      range_size = uint32_t(range->ports.hi) - range->ports.lo + 1;
    }
    if (!skip) {
      uint16_t off = (random_all || manip != Manip::Dst) ? uint16_t(choose.incidental_u32()) : 0;
      uint32_t attempts = std::min<uint32_t>(range_size, 128);
      for (;;) {
        bool found = false;
        for (uint32_t i = 0; i < attempts; ++i, ++off) {
          *key = uint16_t(min + off % range_size);
          if (!used(ct, t, e.zone, e.id)) {
            found = true;
            break;
          }
        }
        if (found || attempts >= range_size || attempts < 16) break;
        attempts /= 2;
        off = uint16_t(choose.incidental_u32());
      }
    }
  }
  if (!(t == *cur)) {
    auto rep = Conntrack::invert(t);
    if (!rep) return false;
    e.reply = *rep;
    e.status |= manip == Manip::Src ? ctstatus::SRC_NAT : ctstatus::DST_NAT;
  }
  e.nat_done[int(manip)] = true;
  return true;
}

bool nat_apply(const CtEntry& e, CtDir dir, Manip manip, Packet& p) {
  uint32_t bit = manip == Manip::Src ? ctstatus::SRC_NAT : ctstatus::DST_NAT;
  if (dir == CtDir::Reply) bit = bit == ctstatus::SRC_NAT ? ctstatus::DST_NAT : ctstatus::SRC_NAT;
  if (!(e.status & bit)) return false;
  // The packet is made to look like the inverse of the other direction's tuple.
  auto target = Conntrack::invert(dir == CtDir::Original ? e.reply : e.orig);
  if (!target) return false;
  bool icmp = p.is_icmp();
  if (manip == Manip::Src) {
    p.t.src = target->src;
    if (icmp) p.t.sport = target->sport;
    else if (proto::has_ports(p.t.proto)) p.t.sport = target->sport;
  } else {
    p.t.dst = target->dst;
    if (icmp) p.t.sport = target->sport;
    else if (proto::has_ports(p.t.proto)) p.t.dport = target->dport;
  }
  return true;
}

bool nat_icmp_apply(const CtEntry& e, CtDir dir, Manip manip, Packet& p) {
  uint32_t bit = manip == Manip::Src ? ctstatus::SRC_NAT : ctstatus::DST_NAT;
  if (dir == CtDir::Reply) bit = bit == ctstatus::SRC_NAT ? ctstatus::DST_NAT : ctstatus::SRC_NAT;
  if (!(e.status & bit)) return false;
  // The quoted packet travelled the other way: it takes that direction's tuple, for the other manip.
  const FiveTuple& other = dir == CtDir::Original ? e.reply : e.orig;
  FiveTuple& in = p.inner;
  bool icmp = in.proto == proto::ICMP || in.proto == proto::ICMPV6;
  if (manip == Manip::Dst) {
    in.src = other.src;
    if (icmp || proto::has_ports(in.proto)) in.sport = other.sport;
    p.t.dst = other.src;
  } else {
    in.dst = other.dst;
    if (icmp) in.sport = other.sport;
    else if (proto::has_ports(in.proto)) in.dport = other.dport;
    p.t.src = other.dst;
  }
  return true;
}

std::optional<Addr> nat_local_address(const Node& node, NatTarget::Kind kind, Hook h, const Packet& p, Family fam) {
  if (kind == NatTarget::Kind::Masquerade) {
    // nf_nat_masquerade: the address inet_select_addr picks for the way out.
    auto rt = node.lookup(p.t.dst);
    return node.select_source(p.oif, rt.nexthop);
  }
  if (h == Hook::LocalOut) return loopback_address(fam);
  // REDIRECT from PREROUTING: the receiving interface's first address of the family.
  if (p.iif >= 0)
    for (auto& a : node.iface(p.iif).addrs)
      if (a.addr.fam == fam) return a.addr;
  return std::nullopt;
}

Verdict nat_target(const NatTarget& tg, Hook h, Packet& p, const Node& node, Conntrack& ct, Chooser& choose) noexcept {
  CtEntry* e = p.ct ? ct.get(p.ct) : nullptr;
  if (!e) return Verdict::accept();  // the nat core consults its lookups only for tracked packets
  using K = NatTarget::Kind;
  Manip manip = (tg.kind == K::Snat || tg.kind == K::Masquerade) ? Manip::Src : Manip::Dst;
  // xt_NETMAP: the destination where DNAT happens (PREROUTING, OUTPUT), the source elsewhere.
  if (tg.kind == K::Netmap) manip = (h == Hook::PreRouting || h == Hook::LocalOut) ? Manip::Dst : Manip::Src;
  if (e->nat_done[int(manip)]) return Verdict::accept();
  Addr to;
  const Addr* map_to = nullptr;
  if (tg.kind == K::Netmap) {
    // The range's network part replaces the address's; its host part stays (netmask = ~(min ^ max)).
    to = manip == Manip::Src ? p.t.src : p.t.dst;
    for (size_t i = 0; i < 16; ++i) {
      uint8_t m = uint8_t(~(tg.min.b[i] ^ tg.max.b[i]));
      to.b[i] = uint8_t((to.b[i] & ~m) | (tg.min.b[i] & m));
    }
    NatTarget plain;  // MAP_IPS only: the port stays unless it clashes
    nat_setup(ct, *e, manip, &plain, &to, choose);
    return Verdict::accept();
  }
  if (tg.kind == K::Masquerade || tg.kind == K::Redirect) {
    auto a = nat_local_address(node, tg.kind, h, p, p.t.src.fam);
    if (!a) return Verdict::drop(DropReason::NatNoAddress);
    to = *a;
    map_to = &to;
  }
  nat_setup(ct, *e, manip, &tg, map_to, choose);
  return Verdict::accept();
}

void NatCore::add(Hook h, int priority, NatLookup* l) {
  auto& v = lookups_[int(h)];
  auto it = std::upper_bound(v.begin(), v.end(), priority, [](int p, const Lookup& x) { return p < x.priority; });
  v.insert(it, Lookup{priority, l});
}

namespace {

// A rewrite from the conntrack binding, as the trace shows it: DNAT/SNAT for the original
// direction, un-SNAT/un-DNAT for the reply.
void note_rewrite(TraceSink& s, Hook h, Manip manip, const Packet& p, const FiveTuple& before, std::string detail) {
  TraceEvent ev;
  ev.hook = h;
  ev.kind = TraceKind::Nat;
  ev.table = "nat";
  bool undo = p.dir == CtDir::Reply;
  ev.target = manip == Manip::Dst ? (undo ? "un-SNAT" : "DNAT") : (undo ? "un-DNAT" : "SNAT");
  ev.detail = std::move(detail);
  ev.rewritten = true;
  ev.before = before;
  ev.after = p.t;
  s.event(std::move(ev));
}

}  // namespace

Verdict NatCore::run(Hook h, Packet& p, HookContext& ctx) noexcept {
  const Family fam = p.t.src.fam;
  // nf_nat_register_fn registers the family's nat hooks at every hook once any nat table or chain
  // exists: a hook without a chain of its own still sets up null bindings and rewrites packets
  // (an nft ruleset with only a prerouting nat chain still un-DNATs at postrouting).
  bool here = false, any = false;
  for (auto& l : lookups_[int(h)]) here |= l.lookup->applies(fam);
  for (int k = 0; k < kNumHooks && !here && !any; ++k)
    for (auto& l : lookups_[k]) any |= l.lookup->applies(fam);
  if (!here && !any) return Verdict::accept();
  if (!p.ct || p.ctinfo == CtInfo::Untracked || p.ctinfo == CtInfo::Invalid) return Verdict::accept();
  Manip manip = (h == Hook::PreRouting || h == Hook::LocalOut) ? Manip::Dst : Manip::Src;
  CtEntry* e = ctx.ct.get(p.ct);
  if (!e) return Verdict::accept();
  TraceSink& s = ctx.sink;
  if (p.ctinfo == CtInfo::Related && p.is_icmp()) {
    // nf_nat_inet_fn: a RELATED ICMP error never consults the nat table nor sets up a binding.
    FiveTuple before = p.t, inner = p.inner;
    if (nat_icmp_apply(*e, p.dir, manip, p)) {
      ++ctx.ctr.nat_rewrites;
      if (s.enabled())
        note_rewrite(
            s, h, manip, p, before,
            fmt::format("ICMP error translated from the conntrack binding; quoted packet {} => {}", inner.str(), p.inner.str()));
    }
    return Verdict::accept();
  }
  // A RELATED packet that is not ICMP (a REJECT's reset) walks the table like a first packet when
  // this manip has no binding yet (nf_nat_inet_fn falls through to the NEW case).
  bool first = p.ctinfo == CtInfo::New || p.ctinfo == CtInfo::Related;
  if (first && !e->nat_done[int(manip)]) {
    if (here) ++ctx.ctr.nat_table_runs;
    for (auto& l : lookups_[int(h)]) {
      if (!l.lookup->applies(fam)) continue;
      Verdict v = l.lookup->run(h, p, ctx);
      if (v.kind != VerdictKind::Accept) return v;
      e = ctx.ct.get(p.ct);
      if (e->nat_done[int(manip)]) break;
    }
    e = ctx.ct.get(p.ct);
    if (!e->nat_done[int(manip)]) nat_setup(ctx.ct, *e, manip, nullptr, nullptr, ctx.chooser);
  } else if (here && s.enabled()) {
    TraceEvent ev;
    ev.hook = h;
    ev.kind = TraceKind::Nat;
    ev.table = "nat";
    ev.target = "skipped";
    ev.detail = p.ctinfo == CtInfo::New ? fmt::format("table not consulted ({} binding already set up for this connection)",
                                                      manip == Manip::Dst ? "destination" : "source")
                                        : fmt::format("table not consulted (conntrack: {} packet follows the stored binding)",
                                                      p.dir == CtDir::Reply ? "reply" : "established");
    s.event(std::move(ev));
  }
  FiveTuple before = p.t;
  if (nat_apply(*e, p.dir, manip, p)) {
    ++ctx.ctr.nat_rewrites;
    if (s.enabled()) note_rewrite(s, h, manip, p, before, "rewritten from the conntrack binding");
  }
  return Verdict::accept();
}

}  // namespace svcpath::nf
