// iptables-restore's match modules: one option parser per module (libxt_*'s parse), the table of
// modules -m loads, their final checks, and the protocol checks the kernel makes at load.
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "netfilter/iptables/names.hpp"
#include "netfilter/iptables/parse.hpp"

namespace svcpath::nf::restore {
namespace {

Res port_opt(PortSpec& ps, bool inv, ParseCtx& p) {
  auto a = p.arg();
  if (!a) return Fail;
  auto r = p.ports(*a, ':');
  if (!r) return Fail;
  ps.range = *r;
  ps.set = true;
  ps.inv = inv;
  return Ok;
}

// ------------------------------------------------------------------------------ match options
Res opt(TcpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  if (o == "--syn") {
    m.flags_set = true;
    m.flags_inv = inv;
    m.flg_mask = tcpflag::FIN | tcpflag::SYN | tcpflag::RST | tcpflag::ACK;
    m.flg_cmp = tcpflag::SYN;
    return Ok;
  }
  if (o == "--tcp-flags") {
    auto a = p.arg();
    if (!a) return Fail;
    auto b = p.arg();
    if (!b) return Fail;
    auto mask = names::tcp_flags(*a), cmp = names::tcp_flags(*b);
    if (!mask || !cmp) {
      p.err(fmt::format("bad TCP flag list '{}' (names: FIN,SYN,RST,PSH,ACK,URG,ALL,NONE)", !mask ? *a : *b));
      return Fail;
    }
    m.flags_set = true;
    m.flags_inv = inv;
    m.flg_mask = *mask;
    m.flg_cmp = *cmp;
    return Ok;
  }
  if (o == "--tcp-option") {
    auto a = p.arg();
    if (!a) return Fail;
    auto v = p.num(*a, 255, "TCP option", false);
    if (!v) return Fail;
    m.option_set = true;
    m.option_inv = inv;
    m.option = uint8_t(*v);
    return Ok;
  }
  return Unknown;
}

Res opt(UdpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  return Unknown;
}

Res opt(SctpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  return Unknown;
}

Res opt(MultiportMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  MultiportMatch::Dir dir;
  if (o == "--sports" || o == "--source-ports") dir = MultiportMatch::Dir::Src;
  else if (o == "--dports" || o == "--destination-ports") dir = MultiportMatch::Dir::Dst;
  else if (o == "--ports") dir = MultiportMatch::Dir::Any;
  else return Unknown;
  // Like iptables, the protocol must already be known when the option is parsed.
  if (!p.rule->proto_set || p.rule->proto_inv || !proto::has_ports(p.rule->proto)) {
    p.err("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp' before it");
    return Fail;
  }
  auto a = p.arg();
  if (!a) return Fail;
  m.dir = dir;
  m.inv = inv;
  m.ports.clear();
  unsigned slots = 0;
  std::string_view s = *a;
  while (true) {
    auto comma = s.find(',');
    auto part = s.substr(0, comma);
    auto r = p.ports(std::string(part), ':');
    if (!r) return Fail;
    m.ports.push_back(*r);
    slots += r->single() ? 1 : 2;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (slots > 15) {
    p.err("multiport: too many ports specified (at most 15, a range counts as two)");
    return Fail;
  }
  return Ok;
}

Res opt(IcmpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if ((!m.v6 && o != "--icmp-type") || (m.v6 && o != "--icmpv6-type")) return Unknown;
  auto a = p.arg();
  if (!a) return Fail;
  auto ty = m.v6 ? names::icmp6_type(*a) : names::icmp_type(*a);
  if (!ty) {
    p.err(fmt::format("invalid ICMP{} type '{}'", m.v6 ? "v6" : "", *a));
    return Fail;
  }
  m.any = ty->any;
  m.type = ty->type;
  m.code_lo = ty->code_lo;
  m.code_hi = ty->code_hi;
  m.inv = inv;
  return Ok;
}

Res opt(CommentMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--comment") return Unknown;
  if (inv) {
    p.err("comment: option \"--comment\" cannot be inverted");
    return Fail;
  }
  auto a = p.arg();
  if (!a) return Fail;
  if (a->size() > 255) {
    p.err(fmt::format("comment is {} bytes; the kernel allows at most 255", a->size()));
    return Fail;
  }
  m.text = *a;
  return Ok;
}

Res opt(MarkMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--mark") return Unknown;
  auto a = p.arg();
  if (!a || !p.value_mask(*a, m.value, m.mask, 0xffffffff)) return Fail;
  m.inv = inv;
  return Ok;
}

Res opt(ConnmarkMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--mark") return Unknown;
  auto a = p.arg();
  if (!a || !p.value_mask(*a, m.value, m.mask, 0xffffffff)) return Fail;
  m.inv = inv;
  return Ok;
}

Res ctstate_list(const std::string& s, uint16_t& mask, ParseCtx& p) {
  auto v = names::ctstates(s);
  if (!v) {
    p.err(fmt::format("bad state '{}' (INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT, DNAT)", s));
    return Fail;
  }
  mask = *v;
  return Ok;
}

Res opt(ConntrackMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  auto addr_opt = [&](ConntrackMatch::AddrSpec& a) {
    auto s = p.arg();
    if (!s) return Fail;
    auto pf = p.prefix(*s);
    if (!pf) return Fail;
    a.p = *pf;
    a.set = true;
    a.inv = inv;
    return Ok;
  };
  if (o == "--ctstate") {
    auto s = p.arg();
    if (!s || ctstate_list(*s, m.state_mask, p) == Fail) return Fail;
    m.state_set = true;
    m.state_inv = inv;
    return Ok;
  }
  if (o == "--ctstatus") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = names::ctstatus(*s);
    if (!v) {
      p.err(fmt::format("bad status '{}' (NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED)", *s));
      return Fail;
    }
    m.status_mask = *v;
    m.status_set = true;
    m.status_inv = inv;
    return Ok;
  }
  if (o == "--ctproto") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = proto::parse(*s);
    if (!v) {
      p.err(fmt::format("unknown protocol '{}'", *s));
      return Fail;
    }
    m.l4proto = *v;
    m.proto_set = true;
    m.proto_inv = inv;
    return Ok;
  }
  if (o == "--ctorigsrc") return addr_opt(m.origsrc);
  if (o == "--ctorigdst") return addr_opt(m.origdst);
  if (o == "--ctreplsrc") return addr_opt(m.replsrc);
  if (o == "--ctrepldst") return addr_opt(m.repldst);
  if (o == "--ctorigsrcport") return port_opt(m.origsrcport, inv, p);
  if (o == "--ctorigdstport") return port_opt(m.origdstport, inv, p);
  if (o == "--ctreplsrcport") return port_opt(m.replsrcport, inv, p);
  if (o == "--ctrepldstport") return port_opt(m.repldstport, inv, p);
  if (o == "--ctexpire") {
    auto s = p.arg();
    if (!s) return Fail;
    auto colon = s->find(':');
    auto lo = parse_uint(std::string_view(*s).substr(0, colon), 0xffffffff);
    auto hi = colon == std::string::npos ? lo : parse_uint(std::string_view(*s).substr(colon + 1), 0xffffffff);
    if (!lo || !hi || *lo > *hi) {
      p.err(fmt::format("bad --ctexpire range '{}'", *s));
      return Fail;
    }
    m.expire_set = true;
    m.expire_inv = inv;
    m.expire_lo = uint32_t(*lo);
    m.expire_hi = uint32_t(*hi);
    return Ok;
  }
  if (o == "--ctdir") {
    auto s = p.arg();
    if (!s) return Fail;
    if (*s == "ORIGINAL") m.dir_reply = false;
    else if (*s == "REPLY") m.dir_reply = true;
    else {
      p.err(fmt::format("--ctdir takes ORIGINAL or REPLY, not '{}'", *s));
      return Fail;
    }
    if (inv) {
      p.err("conntrack: option \"--ctdir\" cannot be inverted");
      return Fail;
    }
    m.dir_set = true;
    return Ok;
  }
  return Unknown;
}

Res opt(StateMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--state") return Unknown;
  auto s = p.arg();
  if (!s || ctstate_list(*s, m.state_mask, p) == Fail) return Fail;
  if (m.state_mask & (ctstate::SNAT | ctstate::DNAT)) {
    p.err("state: SNAT/DNAT are only valid with -m conntrack --ctstate");
    return Fail;
  }
  m.inv = inv;
  return Ok;
}

Res opt(AddrtypeMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  auto types = [&](uint16_t& dst, bool& dinv) {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = names::addrtypes(*s);
    if (!v) {
      p.err(fmt::format("bad address type '{}'", *s));
      return Fail;
    }
    dst = *v;
    dinv = inv;
    return Ok;
  };
  if (o == "--src-type") return types(m.src, m.src_inv);
  if (o == "--dst-type") return types(m.dst, m.dst_inv);
  if (o == "--limit-iface-in") {
    m.limit_in = true;
    return Ok;
  }
  if (o == "--limit-iface-out") {
    m.limit_out = true;
    return Ok;
  }
  return Unknown;
}

enum : uint8_t { kSeenMode = 1, kSeenProb = 2, kSeenEvery = 4, kSeenPacket = 8 };

Res opt(StatisticMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--mode") {
    if (inv) {
      p.err("statistic: option \"--mode\" cannot be inverted.");
      return Fail;
    }
    auto s = p.arg();
    if (!s) return Fail;
    if (*s == "random") m.nth = false;
    else if (*s == "nth") m.nth = true;
    else {
      p.err(fmt::format("statistic: bad mode '{}' (random or nth)", *s));
      return Fail;
    }
    m.seen |= kSeenMode;
    return Ok;
  }
  if (o == "--probability") {
    auto s = p.arg();
    if (!s) return Fail;
    char* end = nullptr;
    double v = std::strtod(s->c_str(), &end);
    if (s->empty() || end != s->c_str() + s->size() || !(v >= 0.0 && v <= 1.0)) {
      p.err(fmt::format("statistic: probability '{}' is not a number in [0, 1]", *s));
      return Fail;
    }
    // libxt_statistic: lround(0x80000000 * prob).
    m.p31 = uint32_t(std::lround(2147483648.0 * v));
    m.seen |= kSeenProb;
    if (inv) m.inv = true;
    return Ok;
  }
  if (o == "--every" || o == "--packet") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = parse_uint(*s, 0x7fffffff);
    if (!v || (o == "--every" && *v == 0)) {
      p.err(fmt::format("statistic: {} '{}' must be a {} number", o, *s, o == "--every" ? "positive" : "non-negative"));
      return Fail;
    }
    if (o == "--every") {
      m.every = uint32_t(*v - 1);  // the kernel stores n-1
      m.seen |= kSeenEvery;
      if (inv) m.inv = true;
    } else {
      m.packet = uint32_t(*v);
      m.seen |= kSeenPacket;
    }
    return Ok;
  }
  return Unknown;
}

Res opt(RecentMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  auto mode = [&](uint8_t md) {
    if (m.mode) {
      p.err("recent: only one of `--set', `--rcheck', `--update' or `--remove' may be given");
      return Fail;
    }
    m.mode = md;
    m.inv = inv;
    return Ok;
  };
  if (o == "--set") return mode(RecentMatch::Set);
  if (o == "--rcheck") return mode(RecentMatch::Check);
  if (o == "--update") return mode(RecentMatch::Update);
  if (o == "--remove") return mode(RecentMatch::Remove);
  if (o == "--seconds" || o == "--hitcount") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 0xffffffff, o == "--seconds" ? "recent: --seconds" : "recent: --hitcount", false);
    if (!v) return Fail;
    (o == "--seconds" ? m.seconds : m.hitcount) = uint32_t(*v);
    return Ok;
  }
  if (o == "--reap") {
    m.reap = true;
    return Ok;
  }
  if (o == "--rttl") {
    m.rttl = true;
    return Ok;
  }
  if (o == "--name") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->empty() || s->size() > 199) {
      p.err("recent: --name must be 1..199 characters");
      return Fail;
    }
    m.name = *s;
    return Ok;
  }
  if (o == "--mask") {
    auto s = p.arg();
    if (!s) return Fail;
    auto a = p.addr(*s);
    if (!a) return Fail;
    m.mask = *a;
    m.mask_set = true;
    return Ok;
  }
  if (o == "--rsource") {
    m.rdest = false;
    return Ok;
  }
  if (o == "--rdest") {
    m.rdest = true;
    return Ok;
  }
  return Unknown;
}

Res opt(SetMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--match-set" || o == "--set") {
    auto n = p.arg();
    if (!n) return Fail;
    auto f = p.arg();
    if (!f) return Fail;
    if (n->empty() || n->size() > 31) {
      p.err(fmt::format("set name '{}' must be 1..31 characters", *n));
      return Fail;
    }
    m.name = *n;
    m.inv = inv;
    m.dims = 0;
    m.src_flags = 0;
    std::string_view s = *f;
    while (!s.empty()) {
      auto comma = s.find(',');
      auto part = s.substr(0, comma);
      if (m.dims >= 6 || (part != "src" && part != "dst")) {
        p.err(fmt::format("set: bad direction flags '{}' (comma-separated src/dst, at most 6)", *f));
        return Fail;
      }
      if (part == "src") m.src_flags |= uint8_t(1u << m.dims);
      ++m.dims;
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    if (m.dims == 0) {
      p.err("set: empty direction flags");
      return Fail;
    }
    return Ok;
  }
  if (o == "--return-nomatch") {
    m.return_nomatch = true;
    return Ok;
  }
  if (o == "--update-counters" || o == "--update-subcounters") {
    if (!inv) return Ok;  // the default
    (o == "--update-counters" ? m.no_update_counters : m.no_update_subcounters) = true;
    return Ok;
  }
  if (o == "--packets-eq" || o == "--packets-lt" || o == "--packets-gt") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, UINT64_MAX, "set: packet count", false);
    if (!v) return Fail;
    m.pkts_set = true;
    m.pkts_inv = inv;
    m.pkts_op = o[10] == 'e' ? '=' : (o[10] == 'l' ? '<' : '>');
    m.pkts = *v;
    return Ok;
  }
  return Unknown;
}

Res range_opt(bool& set, bool& sinv, Addr& lo, Addr& hi, bool inv, ParseCtx& p) {
  auto s = p.arg();
  if (!s) return Fail;
  auto dash = s->find('-');
  auto a = p.addr(s->substr(0, dash));
  if (!a) return Fail;
  auto b = dash == std::string::npos ? a : p.addr(s->substr(dash + 1));
  if (!b) return Fail;
  if (*b < *a) {
    p.err(fmt::format("iprange: '{}' ends before it starts", *s));
    return Fail;
  }
  set = true;
  sinv = inv;
  lo = *a;
  hi = *b;
  return Ok;
}

Res opt(IprangeMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--src-range") return range_opt(m.src_set, m.src_inv, m.src_lo, m.src_hi, inv, p);
  if (o == "--dst-range") return range_opt(m.dst_set, m.dst_inv, m.dst_lo, m.dst_hi, inv, p);
  return Unknown;
}

Res opt(PhysdevMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  auto flag = [&](uint8_t bit) {
    m.bitmask |= bit;
    if (inv) m.invert |= bit;
    return Ok;
  };
  if (o == "--physdev-in" || o == "--physdev-out") {
    auto s = p.arg();
    if (!s) return Fail;
    bool in = o == "--physdev-in";
    if (!iface(*s, in ? m.in : m.out, false, p)) return Fail;
    return flag(in ? PhysdevMatch::In : PhysdevMatch::Out);
  }
  if (o == "--physdev-is-in") return flag(PhysdevMatch::IsIn);
  if (o == "--physdev-is-out") return flag(PhysdevMatch::IsOut);
  if (o == "--physdev-is-bridged") return flag(PhysdevMatch::IsBridged);
  return Unknown;
}

Res opt(LimitMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (inv && (o == "--limit" || o == "--limit-burst")) {
    p.err("limit does not support invert");
    return Fail;
  }
  if (o == "--limit") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = names::limit_rate(*s);
    if (!v) {
      p.err(fmt::format("bad rate '{}' (N/second, N/minute, N/hour or N/day)", *s));
      return Fail;
    }
    m.avg = *v;
    return Ok;
  }
  if (o == "--limit-burst") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = parse_uint(*s, 10000);
    if (!v || *v == 0) {
      p.err(fmt::format("bad --limit-burst '{}' (1..10000)", *s));
      return Fail;
    }
    m.burst = uint32_t(*v);
    return Ok;
  }
  return Unknown;
}

Res opt(NfacctMatch& m, std::string_view o, bool, ParseCtx& p) {
  if (o != "--nfacct-name") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  m.name = *s;
  return Ok;
}

Res opt(RpfilterMatch& m, std::string_view o, bool, ParseCtx&) {
  if (o == "--loose") m.loose = true;
  else if (o == "--validmark") m.validmark = true;
  else if (o == "--accept-local") m.accept_local = true;
  else if (o == "--invert") m.invert = true;
  else return Unknown;
  return Ok;
}

Res opt(SocketMatch& m, std::string_view o, bool, ParseCtx&) {
  if (o == "--transparent") m.transparent = true;
  else if (o == "--nowildcard") m.nowildcard = true;
  else if (o == "--restore-skmark") m.restore_skmark = true;
  else return Unknown;
  return Ok;
}

Res opt(PolicyMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--dir" || o == "--pol") {
    auto s = p.arg();
    if (!s) return Fail;
    if (o == "--dir" && (*s == "in" || *s == "out")) m.dir_out = *s == "out";
    else if (o == "--pol" && (*s == "none" || *s == "ipsec")) m.ipsec = *s == "ipsec";
    else {
      p.err(fmt::format("policy: bad {} '{}'", o, *s));
      return Fail;
    }
    return Ok;
  }
  if (o == "--strict") {
    m.strict = true;
    return Ok;
  }
  if (o == "--reqid" || o == "--spi" || o == "--proto" || o == "--mode" || o == "--tunnel-src" || o == "--tunnel-dst") {
    auto s = p.arg();
    if (!s) return Fail;
    m.elements.push_back(fmt::format("{}{} {}", inv ? "! " : "", o, *s));
    return Ok;
  }
  if (o == "--next") {
    m.elements.push_back("--next");
    return Ok;
  }
  return Unknown;
}

Res opt(LengthMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--length") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto r = p.ports(*s, ':');
  if (!r) return Fail;
  m.lo = r->lo;
  m.hi = r->hi;
  m.inv = inv;
  return Ok;
}

Res opt(TtlMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  std::string_view pre = m.hl ? "--hl-" : "--ttl-";
  if (o.substr(0, pre.size()) != pre) return Unknown;
  auto k = o.substr(pre.size());
  TtlMatch::Op op;
  if (k == "eq") op = inv ? TtlMatch::Op::Ne : TtlMatch::Op::Eq;
  else if (k == "lt" && !inv) op = TtlMatch::Op::Lt;
  else if (k == "gt" && !inv) op = TtlMatch::Op::Gt;
  else if (k == "lt" || k == "gt") {
    p.err(fmt::format("{}: only --{}-eq can be inverted", m.hl ? "hl" : "ttl", m.hl ? "hl" : "ttl"));
    return Fail;
  } else return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = p.num(*s, 255, "TTL", false);
  if (!v) return Fail;
  m.op = op;
  m.value = uint8_t(*v);
  return Ok;
}

Res opt(PkttypeMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--pkt-type") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = names::pkttype(*s);
  if (!v) {
    p.err(fmt::format("bad packet type '{}' (unicast, broadcast, multicast, otherhost)", *s));
    return Fail;
  }
  m.type = *v;
  m.inv = inv;
  return Ok;
}

Res opt(IpvsMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--ipvs") {
    m.ipvs_set = true;
    m.ipvs_inv = inv;
    return Ok;
  }
  if (o == "--vdir") {
    auto s = p.arg();
    if (!s) return Fail;
    if (*s != "ORIGINAL" && *s != "REPLY") {
      p.err("ipvs: --vdir takes ORIGINAL or REPLY");
      return Fail;
    }
    m.vdir_set = true;
    m.vdir_reply = *s == "REPLY";
    m.vdir_inv = inv;
    return Ok;
  }
  return Unknown;
}

// ------------------------------------------------------------------------------ final checks
template <class M>
void finish(M&, ParseCtx&, size_t) {}

void finish(StatisticMatch& m, ParseCtx& p, size_t at) {
  bool mode = m.seen & kSeenMode, every = m.seen & kSeenEvery;
  bool prob = m.seen & kSeenProb, packet = m.seen & kSeenPacket;
  if (!mode) p.err(at, "statistic: no --mode given");
  else if (!m.nth && !prob) p.err(at, "statistic: --mode random requires --probability");
  else if (!m.nth && (every || packet)) p.err(at, "statistic: --every/--packet need --mode nth");
  else if (m.nth && prob) p.err(at, "statistic: --probability needs --mode random");
  else if (m.nth && !(every && packet)) p.err(at, "statistic: option \"--every\" also requires \"--packet\"");
  else if (m.nth && m.packet > m.every) p.err(at, "statistic: --packet must be smaller than --every");
}

void finish(RecentMatch& m, ParseCtx& p, size_t at) {
  if (!m.mode) p.err(at, "recent: you must specify one of `--set', `--rcheck', `--update' or `--remove'");
  else if (m.reap && !m.seconds) p.err(at, "recent: --reap needs --seconds");
  else if ((m.seconds || m.hitcount) && (m.mode == RecentMatch::Set || m.mode == RecentMatch::Remove))
    p.err(at, "recent: --seconds/--hitcount only go with --rcheck or --update");
}

void finish(SetMatch& m, ParseCtx& p, size_t at) {
  if (m.name.empty()) p.err(at, "set: you must specify --match-set NAME FLAGS");
}

void finish(LimitMatch& m, ParseCtx&, size_t) {
  if (m.avg == 0) m.avg = 10000 * 3600 / 3;  // default 3/hour
}

void finish(MultiportMatch& m, ParseCtx& p, size_t at) {
  if (m.ports.empty()) p.err(at, "multiport: no --sports, --dports or --ports given");
}

// ------------------------------------------------------------------------------ the modules
template <class M>
Match make(Family) {
  return M{};
}

Match make_icmp6(Family) {
  IcmpMatch m;
  m.v6 = true;
  return m;
}

Match make_recent(Family fam) {
  RecentMatch m;
  m.mask = Addr::netmask(fam, fam == Family::V4 ? 32 : 128);
  return m;
}

Match make_hl(Family) {
  TtlMatch m;
  m.hl = true;
  return m;
}

// What -m NAME loads, as xtables_find_match finds a libxt_NAME; some exist in one family only.
struct MatchModule {
  std::string_view name;
  std::optional<Family> only;
  Match (*make)(Family);
};

constexpr MatchModule kMatchModules[] = {
    {"tcp", {}, make<TcpMatch>},
    {"udp", {}, make<UdpMatch>},
    {"udplite", {}, make<UdpMatch>},
    {"sctp", {}, make<SctpMatch>},
    {"multiport", {}, make<MultiportMatch>},
    {"icmp", Family::V4, make<IcmpMatch>},
    {"icmp6", Family::V6, make_icmp6},
    {"ipv6-icmp", Family::V6, make_icmp6},
    {"icmpv6", Family::V6, make_icmp6},
    {"comment", {}, make<CommentMatch>},
    {"mark", {}, make<MarkMatch>},
    {"connmark", {}, make<ConnmarkMatch>},
    {"conntrack", {}, make<ConntrackMatch>},
    {"state", {}, make<StateMatch>},
    {"addrtype", {}, make<AddrtypeMatch>},
    {"statistic", {}, make<StatisticMatch>},
    {"recent", {}, make_recent},
    {"set", {}, make<SetMatch>},
    {"iprange", {}, make<IprangeMatch>},
    {"physdev", {}, make<PhysdevMatch>},
    {"limit", {}, make<LimitMatch>},
    {"nfacct", {}, make<NfacctMatch>},
    {"rpfilter", {}, make<RpfilterMatch>},
    {"socket", {}, make<SocketMatch>},
    {"policy", {}, make<PolicyMatch>},
    {"length", {}, make<LengthMatch>},
    {"ttl", Family::V4, make<TtlMatch>},
    {"hl", Family::V6, make_hl},
    {"pkttype", {}, make<PkttypeMatch>},
    {"ipvs", {}, make<IpvsMatch>},
};

}  // namespace

std::optional<Match> new_match(std::string_view name, Family fam) {
  for (const auto& m : kMatchModules)
    if (m.name == name && (!m.only || *m.only == fam)) return m.make(fam);
  return std::nullopt;
}

std::optional<Match> implicit_match(uint8_t proto, Family fam) {
  if (proto == proto::TCP) return TcpMatch{};
  if (proto == proto::UDP || proto == proto::UDPLITE) return UdpMatch{};
  if (proto == proto::SCTP) return SctpMatch{};
  if (proto == proto::ICMP && fam == Family::V4) return IcmpMatch{};
  if (proto == proto::ICMPV6 && fam == Family::V6) return make_icmp6(fam);
  return std::nullopt;
}

Res match_option(Match& m, std::string_view o, bool inv, ParseCtx& p) {
  return std::visit([&](auto& mm) { return opt(mm, o, inv, p); }, m);
}

void final_check(Match& m, ParseCtx& p, size_t at) {
  std::visit([&](auto& mm) { finish(mm, p, at); }, m);
}

bool check_match_protocols(const Rule& r, ParseCtx& p) {
  for (auto& m : r.matches) {
    std::string_view need;
    uint8_t want = 0;
    if (std::holds_alternative<TcpMatch>(m)) need = "tcp", want = proto::TCP;
    else if (std::holds_alternative<UdpMatch>(m)) need = "udp", want = proto::UDP;
    else if (std::holds_alternative<SctpMatch>(m)) need = "sctp", want = proto::SCTP;
    else if (auto* ic = std::get_if<IcmpMatch>(&m))
      need = ic->v6 ? "ipv6-icmp" : "icmp", want = ic->v6 ? proto::ICMPV6 : proto::ICMP;
    if (want && (r.proto_inv || (r.proto != want && !(want == proto::UDP && r.proto == proto::UDPLITE)))) {
      p.err(fmt::format("match '{}' is only valid with -p {} (the kernel rejects it otherwise)", match_name(m), need));
      return false;
    }
  }
  return true;
}

}  // namespace svcpath::nf::restore
