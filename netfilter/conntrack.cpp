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

CtEntry* Conntrack::alloc() {
  if (live_ >= max_) return nullptr;
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
  ++live_;
  ++created_;
  return &e;
}

CtEntry* Conntrack::create(const FiveTuple& orig, uint16_t zone) {
  if (live_ >= max_) return nullptr;
  auto rep = invert(orig);
  if (!rep) return nullptr;
  CtEntry* e = alloc();
  e->orig = orig;
  e->reply = *rep;
  e->zone = zone;
  return e;
}

bool Conntrack::confirm(uint32_t id) {
  CtEntry* e = get(id);
  if (!e || e->confirmed) return e != nullptr;
  Key ko{e->orig, e->zone}, kr{e->reply, e->zone};
  if (index_.contains(ko) || index_.contains(kr)) return false;  // insert clash
  index_.emplace(ko, uint64_t(id) << 1);
  // A tuple that is its own reply (the same address and port at both ends) puts both hash nodes in
  // one chain, the reply's added last, at the head (__nf_conntrack_hash_insert): every later packet
  // is found as the reply direction, ESTABLISHED, and marks the entry SEEN_REPLY.
  index_.insert_or_assign(kr, uint64_t(id) << 1 | 1);
  e->confirmed = true;
  e->status |= ctstatus::CONFIRMED;
  return true;
}

CtEntry* Conntrack::insert(const CtEntry& src) {
  if (index_.contains(Key{src.orig, src.zone}) || index_.contains(Key{src.reply, src.zone})) return nullptr;
  CtEntry* e = alloc();
  if (!e) return nullptr;
  uint32_t id = e->id;
  *e = src;
  e->id = id;
  e->confirmed = false;
  // IPS_SRC_NAT / IPS_DST_NAT from how the reply tuple differs from the plain inverse.
  if (auto plain = invert(src.orig)) {
    if (src.reply.dst != plain->dst || src.reply.dport != plain->dport) e->status |= ctstatus::SRC_NAT;
    if (src.reply.src != plain->src || src.reply.sport != plain->sport) e->status |= ctstatus::DST_NAT;
  }
  e->nat_done[0] = e->nat_done[1] = true;
  confirm(id);
  return e;
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

void Conntrack::clear() {
  index_.clear();
  entries_.clear();
  free_.clear();
  live_ = 0;
  created_ = 0;
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

}  // namespace svcpath::nf
