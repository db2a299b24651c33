#include "netfilter/conntrack.hpp"

#include <algorithm>

#include "core/jhash.hpp"

namespace svcpath::nf {

std::string_view tcp_state_name(TcpState s) {
  constexpr std::string_view n[] = {"NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
                                    "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};
  return n[int(s)];
}

std::optional<FiveTuple> Conntrack::invert(const FiveTuple& t) {
  FiveTuple r{t.dst, t.src, t.dport, t.sport, t.proto};
  if (t.proto == proto::ICMP || t.proto == proto::ICMPV6) {
    // ICMP keeps the id on the source side in both directions and inverts the query type.
    static constexpr uint8_t v4[][2] = {{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15}, {17, 18}, {18, 17}};
    static constexpr uint8_t v6[][2] = {{128, 129}, {129, 128}, {139, 140}, {140, 139}};
    uint8_t type = uint8_t(t.dport >> 8), code = uint8_t(t.dport);
    std::optional<uint8_t> inv;
    if (t.proto == proto::ICMP) {
      for (auto& p : v4)
        if (p[0] == type) inv = p[1];
    } else {
      for (auto& p : v6)
        if (p[0] == type) inv = p[1];
    }
    if (!inv) return std::nullopt;  // errors and unknown types are not tracked on their own
    r.sport = t.sport;
    r.dport = uint16_t(*inv << 8 | code);
  }
  return r;
}

CtEntry* Conntrack::get(uint32_t id) {
  if (id == 0 || id > entries_.size() || entries_[id - 1].id == 0) return nullptr;
  return &entries_[id - 1];
}

const CtEntry* Conntrack::get(uint32_t id) const {
  if (id == 0 || id > entries_.size() || entries_[id - 1].id == 0) return nullptr;
  return &entries_[id - 1];
}

CtLookup Conntrack::find(const FiveTuple& t, uint16_t zone, uint64_t now_ns) {
  auto it = index_.find(Key{t, zone});
  if (it == index_.end()) return {};
  uint32_t id = uint32_t(it->second >> 1);
  CtEntry* e = get(id);
  if (!e) return {};
  if (e->expires_ns && now_ns > e->expires_ns) {
    destroy(id);
    return {};
  }
  return {id, (it->second & 1) ? CtDir::Reply : CtDir::Original};
}

CtEntry* Conntrack::create(const FiveTuple& orig, uint16_t zone) {
  if (live_ >= max_) return nullptr;
  auto rep = invert(orig);
  if (!rep) return nullptr;
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    entries_.emplace_back();
    id = uint32_t(entries_.size());
  }
  CtEntry& e = entries_[id - 1];
  e = CtEntry{};
  e.id = id;
  e.orig = orig;
  e.reply = *rep;
  e.zone = zone;
  ++live_;
  ++created_;
  return &e;
}

bool Conntrack::confirm(uint32_t id) {
  CtEntry* e = get(id);
  if (!e || e->confirmed) return e != nullptr;
  Key ko{e->orig, e->zone}, kr{e->reply, e->zone};
  if (index_.contains(ko) || index_.contains(kr)) return false;  // insert clash
  index_.emplace(ko, uint64_t(id) << 1);
  index_.emplace(kr, uint64_t(id) << 1 | 1);
  e->confirmed = true;
  e->status |= ctstatus::CONFIRMED;
  return true;
}

void Conntrack::destroy(uint32_t id) {
  CtEntry* e = get(id);
  if (!e) return;
  if (e->confirmed) {
    index_.erase(Key{e->orig, e->zone});
    index_.erase(Key{e->reply, e->zone});
  }
  e->id = 0;
  free_.push_back(id);
  --live_;
}

void Conntrack::drop_unconfirmed(uint32_t id) {
  CtEntry* e = get(id);
  if (e && !e->confirmed) destroy(id);
}

bool Conntrack::reply_taken(const FiveTuple& reply, uint16_t zone, uint32_t except) const {
  auto it = index_.find(Key{reply, zone});
  return it != index_.end() && uint32_t(it->second >> 1) != except;
}

namespace {
// nf_conntrack_proto_tcp.c's state table: [dir][flag index][state].
constexpr TcpState sNO = TcpState::None, sSS = TcpState::SynSent, sSR = TcpState::SynRecv, sES = TcpState::Established,
                   sFW = TcpState::FinWait, sCW = TcpState::CloseWait, sLA = TcpState::LastAck, sTW = TcpState::TimeWait,
                   sCL = TcpState::Close, sS2 = TcpState::SynSent2;
constexpr uint8_t sIV = 100, sIG = 101;
constexpr uint8_t T(TcpState s) { return uint8_t(s); }
// Flag index: 0 syn, 1 synack, 2 fin, 3 ack, 4 rst, 5 none.
constexpr uint8_t kTable[2][6][10] = {
    {
        /* syn    */ {T(sSS), T(sSS), sIG, sIG, sIG, sIG, sIG, T(sSS), T(sSS), T(sS2)},
        /* synack */ {sIV, sIV, T(sSR), sIV, sIV, sIV, sIV, sIV, sIV, T(sSR)},
        /* fin    */ {sIV, sIV, T(sFW), T(sFW), T(sLA), T(sLA), T(sLA), T(sTW), T(sCL), sIV},
        /* ack    */ {T(sES), sIV, T(sES), T(sES), T(sCW), T(sCW), T(sTW), T(sTW), T(sCL), sIV},
        /* rst    */ {sIV, T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL)},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        /* syn    */ {sIV, T(sS2), sIV, sIV, sIV, sIV, sIV, T(sSS), sIV, T(sS2)},
        /* synack */ {sIV, T(sSR), sIG, sIG, sIG, sIG, sIG, sIG, sIG, T(sSR)},
        /* fin    */ {sIV, sIV, T(sFW), T(sFW), T(sLA), T(sLA), T(sLA), T(sTW), T(sCL), sIV},
        /* ack    */ {sIV, sIG, T(sSR), T(sES), T(sCW), T(sCW), T(sTW), T(sTW), T(sCL), sIG},
        /* rst    */ {sIV, T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL), T(sCL)},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

int flag_index(uint8_t f) {
  if (f & tcpflag::RST) return 4;
  if (f & tcpflag::SYN) return (f & tcpflag::ACK) ? 1 : 0;
  if (f & tcpflag::FIN) return 2;
  if (f & tcpflag::ACK) return 3;
  return 5;
}
}  // namespace

bool Conntrack::tcp_packet(CtEntry& e, CtDir dir, uint8_t flags, bool loose, bool* reopen) {
  *reopen = false;
  int fi = flag_index(flags);
  uint8_t next = kTable[dir == CtDir::Reply][fi][int(e.tcp)];
  if (e.tcp == TcpState::None) {
    // tcp_new(): only a SYN, or (with nf_conntrack_tcp_loose) an ACK picking up a live connection.
    if (next == sIV || next == sIG || (TcpState(next) == sES && !loose)) return false;
  }
  if (next == sIV) return false;
  if (next == sIG) return true;
  if (dir == CtDir::Original && fi == 0 && (e.tcp == TcpState::TimeWait || e.tcp == TcpState::Close) && e.confirmed) {
    *reopen = true;  // a new SYN on a closed 4-tuple: the kernel kills the old entry and starts over
    return true;
  }
  TcpState old = e.tcp;
  e.tcp = TcpState(next);
  if (old == TcpState::SynRecv && e.tcp == TcpState::Established) e.status |= ctstatus::ASSURED;
  if (old == TcpState::None && e.tcp == TcpState::Established) e.status |= ctstatus::ASSURED;
  return true;
}

uint64_t Conntrack::timeout_ns(const CtEntry& e) {
  constexpr uint64_t s = 1'000'000'000ull;
  if (e.orig.proto == proto::TCP) {
    switch (e.tcp) {
      case TcpState::SynSent:
      case TcpState::SynSent2: return 120 * s;
      case TcpState::SynRecv: return 60 * s;
      case TcpState::Established: return 432000 * s;
      case TcpState::FinWait: return 120 * s;
      case TcpState::CloseWait: return 60 * s;
      case TcpState::LastAck: return 30 * s;
      case TcpState::TimeWait: return 120 * s;
      case TcpState::Close: return 10 * s;
      case TcpState::None: return 120 * s;
    }
  }
  if (e.orig.proto == proto::UDP || e.orig.proto == proto::UDPLITE) return (e.status & ctstatus::SEEN_REPLY) ? 120 * s : 30 * s;
  if (e.orig.proto == proto::ICMP || e.orig.proto == proto::ICMPV6) return 30 * s;
  return 600 * s;
}

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

}  // namespace svcpath::nf
