// The connection table and per-connection state: chained buckets hashed with jhash, the TCP state
// machine and the per-state timeouts (net/netfilter/ipvs/ip_vs_conn.c, ip_vs_proto_tcp.c).
#include "ipvs/ipvs.hpp"

#include <algorithm>

#include "core/jhash.hpp"

namespace svcpath::ipvs {

std::string_view conn_state_name(ConnState s) {
  constexpr std::string_view n[] = {"NONE",  "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
                                    "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "SYNACK",   "UDP"};
  return n[int(s)];
}

namespace {
using S = ConnState;
constexpr S sNO = S::None, sES = S::Established, sSS = S::SynSent, sSR = S::SynRecv, sFW = S::FinWait, sTW = S::TimeWait,
            sCL = S::Close, sCW = S::CloseWait, sLA = S::LastAck, sLI = S::Listen, sSA = S::SynAck;
// ip_vs_proto_tcp.c tcp_states: [direction][syn, fin, ack, rst][state].
constexpr S kTcp[2][4][11] = {
    {
        /* INPUT  syn */ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
        /*        fin */ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
        /*        ack */ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
        /*        rst */ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
    },
    {
        /* OUTPUT syn */ {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
        /*        fin */ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
        /*        ack */ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
        /*        rst */ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
    },
};
}  // namespace

ConnState tcp_next(ConnState s, bool from_client, uint8_t f) {
  int idx = (f & tcpflag::RST) ? 3 : (f & tcpflag::SYN) ? 0 : (f & tcpflag::FIN) ? 1 : (f & tcpflag::ACK) ? 2 : -1;
  if (idx < 0 || s == ConnState::Udp) return s;
  return kTcp[from_client ? 0 : 1][idx][int(s)];
}

bool state_active(ConnState s) {
  return s == ConnState::Established || s == ConnState::SynSent || s == ConnState::SynRecv || s == ConnState::SynAck;
}

uint64_t state_timeout_ns(ConnState s, uint8_t proto, const Timeouts& t) {
  constexpr uint64_t sec = 1'000'000'000ull;
  if (proto != proto::TCP) return uint64_t(t.udp) * sec;
  switch (s) {
    case S::None: return 2 * sec;
    case S::Established: return uint64_t(t.tcp) * sec;
    case S::SynSent: return 120 * sec;
    case S::SynRecv: return 60 * sec;
    case S::FinWait: return uint64_t(t.tcpfin) * sec;
    case S::TimeWait: return 120 * sec;
    case S::Close: return 10 * sec;
    case S::CloseWait: return 60 * sec;
    case S::LastAck: return 30 * sec;
    case S::Listen: return 120 * sec;
    case S::SynAck: return 120 * sec;
    case S::Udp: return uint64_t(t.udp) * sec;
  }
  return 60 * sec;
}

ConnTable::ConnTable(unsigned bits, uint32_t rnd) : bits_(bits), rnd_(rnd), heads_(1u << bits, 0) {}

unsigned ConnTable::bucket(uint8_t proto, const Addr& a, uint16_t port) const {
  uint32_t addr;
  if (a.is_v4()) {
    addr = uint32_t(a.b[0]) | uint32_t(a.b[1]) << 8 | uint32_t(a.b[2]) << 16 | uint32_t(a.b[3]) << 24;  // raw be32
  } else {
    uint32_t w[4];
    for (int i = 0; i < 4; ++i)
      w[i] =
          uint32_t(a.b[4 * i]) | uint32_t(a.b[4 * i + 1]) << 8 | uint32_t(a.b[4 * i + 2]) << 16 | uint32_t(a.b[4 * i + 3]) << 24;
    addr = jhash2(w, 4, rnd_);
  }
  uint32_t port_be = uint32_t(uint16_t(port << 8 | port >> 8));
  return jhash_3words(addr, port_be, proto, rnd_) & ((1u << bits_) - 1);
}

Conn* ConnTable::get(uint32_t id) {
  if (id == 0 || id > conns_.size() || conns_[id - 1].id == 0) return nullptr;
  return &conns_[id - 1];
}

Conn* ConnTable::create(const Conn& c) {
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    conns_.emplace_back();
    id = uint32_t(conns_.size());
  }
  Conn& x = conns_[id - 1];
  x = c;
  x.id = id;
  uint32_t& head = heads_[bucket(c.proto, c.caddr, c.cport)];
  x.hprev = 0;
  x.hnext = head;
  if (head) conns_[head - 1].hprev = id;
  head = id;
  ++live_;
  return &x;
}

void ConnTable::unlink(Conn& c) {
  if (c.hprev) conns_[c.hprev - 1].hnext = c.hnext;
  else heads_[bucket(c.proto, c.caddr, c.cport)] = c.hnext;
  if (c.hnext) conns_[c.hnext - 1].hprev = c.hprev;
  c.hnext = c.hprev = 0;
}

void ConnTable::clear() {
  std::fill(heads_.begin(), heads_.end(), 0u);
  conns_.clear();
  free_.clear();
  live_ = 0;
}

void ConnTable::expire(uint32_t id) {
  Conn* c = get(id);
  if (!c) return;
  unlink(*c);
  c->id = 0;
  free_.push_back(id);
  --live_;
}

Conn* ConnTable::in_get(uint8_t proto, const Addr& caddr, uint16_t cport, const Addr& vaddr, uint16_t vport, uint64_t now,
                        uint64_t* walked) {
  for (uint32_t id = heads_[bucket(proto, caddr, cport)]; id; id = conns_[id - 1].hnext) {
    Conn& c = conns_[id - 1];
    if (walked) ++*walked;
    if (c.is_template || c.proto != proto || c.cport != cport || c.vport != vport || c.caddr != caddr || c.vaddr != vaddr)
      continue;
    if (c.expires_ns && now > c.expires_ns) return nullptr;  // the caller expires it
    return &c;
  }
  return nullptr;
}

Conn* ConnTable::out_get(uint8_t proto, const Addr& daddr, uint16_t dport, const Addr& caddr, uint16_t cport, uint64_t now,
                         uint64_t* walked) {
  for (uint32_t id = heads_[bucket(proto, caddr, cport)]; id; id = conns_[id - 1].hnext) {
    Conn& c = conns_[id - 1];
    if (walked) ++*walked;
    if (c.is_template || c.proto != proto || c.cport != cport || c.dport != dport || c.caddr != caddr || c.daddr != daddr)
      continue;
    if (c.expires_ns && now > c.expires_ns) return nullptr;
    return &c;
  }
  return nullptr;
}

Conn* ConnTable::template_get(uint8_t proto, const Addr& caddr, const Addr& vaddr, uint16_t vport, uint64_t now) {
  for (uint32_t id = heads_[bucket(proto, caddr, 0)]; id; id = conns_[id - 1].hnext) {
    Conn& c = conns_[id - 1];
    if (!c.is_template || c.proto != proto || c.vport != vport || c.caddr != caddr || c.vaddr != vaddr) continue;
    if (c.expires_ns && now > c.expires_ns) {
      expire(c.id);
      return nullptr;
    }
    return &c;
  }
  return nullptr;
}

}  // namespace svcpath::ipvs
