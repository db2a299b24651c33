// iptables-restore's match modules: one option parser per module (libxt_*'s parse), the table of
// modules -m loads, their final checks, and the protocol checks the kernel makes at load.
#include <cmath>
#include <cctype>
#include <cstdio>
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

Res opt(DccpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  if (o == "--dccp-types") {
    auto a = p.arg();
    if (!a) return Fail;
    std::string_view s = *a;
    uint16_t types = 0;
    while (true) {
      auto comma = s.find(',');
      auto t = names::dccp_type(s.substr(0, comma));
      if (!t) {
        p.err(fmt::format("dccp: unknown packet type '{}'", s.substr(0, comma)));
        return Fail;
      }
      types |= uint16_t(1u << *t);
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    m.types = types;
    m.types_inv = inv;
    return Ok;
  }
  if (o == "--dccp-option") {
    auto a = p.arg();
    if (!a) return Fail;
    auto v = parse_uint(*a, 255);
    if (!v) {
      p.err(fmt::format("dccp: bad option number '{}' (0-255)", *a));
      return Fail;
    }
    m.option_set = true;
    m.option_inv = inv;
    m.option = uint8_t(*v);
    return Ok;
  }
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

// ------------------------------------------------------------------ matches on unseen state
Res opt(MacMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--mac-source") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  // xtables_parse_mac: six hex pairs separated by ':'.
  bool ok = s->size() == 17;
  for (size_t k = 0; ok && k < 6; ++k) {
    if (k && (*s)[k * 3 - 1] != ':') ok = false;
    auto v = ok ? parse_uint("0x" + s->substr(k * 3, 2), 255, true) : std::nullopt;
    if (!v || !std::isxdigit(uint8_t((*s)[k * 3])) || !std::isxdigit(uint8_t((*s)[k * 3 + 1]))) ok = false;
    else m.mac[k] = uint8_t(*v);
  }
  if (!ok) {
    p.err(fmt::format("Bad mac address \"{}\"", *s));
    return Fail;
  }
  m.inv = inv;
  return Ok;
}

// A uid/gid or a range "a-b"; names resolve only for root, as they would on any node.
Res id_range(std::string_view what, uint32_t& lo, uint32_t& hi, ParseCtx& p) {
  auto s = p.arg();
  if (!s) return Fail;
  if (*s == "root") {
    lo = hi = 0;
    return Ok;
  }
  auto dash = s->find('-');
  auto a = parse_uint(std::string_view(*s).substr(0, dash), 0xfffffffe);
  auto b = dash == std::string::npos ? a : parse_uint(std::string_view(*s).substr(dash + 1), 0xfffffffe);
  if (!a || !b || *a > *b) {
    p.err(
        fmt::format("owner: bad {} '{}' (a number or a range N-M; names other than root are not resolved: write the "
                    "number)",
                    what, *s));
    return Fail;
  }
  lo = uint32_t(*a);
  hi = uint32_t(*b);
  return Ok;
}

Res opt(OwnerMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  uint8_t bit;
  Res r = Ok;
  if (o == "--uid-owner") bit = OwnerMatch::Uid, r = id_range("uid", m.uid_lo, m.uid_hi, p);
  else if (o == "--gid-owner") bit = OwnerMatch::Gid, r = id_range("gid", m.gid_lo, m.gid_hi, p);
  else if (o == "--socket-exists") bit = OwnerMatch::SocketExists;
  else if (o == "--suppl-groups") {
    if (!(m.match & OwnerMatch::Gid)) {
      p.err("owner: --suppl-groups needs --gid-owner before it");
      return Fail;
    }
    bit = OwnerMatch::SupplGroups;
  } else return Unknown;
  if (r != Ok) return r;
  m.match |= bit;
  if (inv) m.invert |= bit;
  return Ok;
}

// libxt_hashlimit's parse_rate with XT_HASHLIMIT_SCALE_v2: "N[/second|minute|hour|day]", any prefix.
std::optional<uint64_t> hashlimit_rate(std::string_view s) {
  auto slash = s.find('/');
  uint64_t mult = 1;
  if (slash != std::string_view::npos) {
    auto u = s.substr(slash + 1);
    auto is = [&](std::string_view w) { return !u.empty() && u.size() <= w.size() && w.substr(0, u.size()) == u; };
    if (is("second")) mult = 1;
    else if (is("minute")) mult = 60;
    else if (is("hour")) mult = 3600;
    else if (is("day")) mult = 86400;
    else return std::nullopt;
  }
  auto r = parse_uint(s.substr(0, slash), UINT32_MAX);
  if (!r || *r == 0) return std::nullopt;
  uint64_t v = 1000000ull * mult / *r;
  if (v == 0) return std::nullopt;
  return v;
}

Res opt(HashlimitMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  auto u32 = [&](uint32_t& dst, uint64_t max) {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, max, fmt::format("hashlimit: {}", o).c_str(), false);
    if (!v) return Fail;
    dst = uint32_t(*v);
    return Ok;
  };
  if (o == "--hashlimit-upto" || o == "--hashlimit-above" || o == "--hashlimit") {
    auto s = p.arg();
    if (!s) return Fail;
    bool above = (o == "--hashlimit-above") != inv;
    std::string_view t = *s;
    if (t.size() > 3 && t.ends_with("b/s")) {
      // Byte rates are kept as written: "1kb/s", "512b/s", "2mb/s".
      auto num = t.substr(0, t.size() - 3);
      if (num.ends_with('k') || num.ends_with('m')) num.remove_suffix(1);
      if (!parse_uint(num, UINT32_MAX) || num.empty()) {
        p.err(fmt::format("hashlimit: bad byte rate '{}'", *s));
        return Fail;
      }
      m.bytes = true;
      m.rate_text = *s;
    } else {
      auto v = hashlimit_rate(t);
      if (!v) {
        p.err(fmt::format("hashlimit: bad rate '{}' (N/sec, N/min, N/hour, N/day or a byte rate Nkb/s)", *s));
        return Fail;
      }
      m.avg = *v;
    }
    m.above = above;
    m.upto_given = true;
    return Ok;
  }
  if (inv) {
    p.err(fmt::format("hashlimit: option \"{}\" cannot be inverted", o));
    return Fail;
  }
  if (o == "--hashlimit-burst") return u32(m.burst, UINT32_MAX);
  if (o == "--hashlimit-htable-size") return u32(m.size, UINT32_MAX);
  if (o == "--hashlimit-htable-max") return u32(m.max, UINT32_MAX);
  if (o == "--hashlimit-htable-gcinterval") return u32(m.gc, UINT32_MAX);
  if (o == "--hashlimit-htable-expire") return u32(m.expire, UINT32_MAX);
  if (o == "--hashlimit-srcmask" || o == "--hashlimit-dstmask") {
    uint32_t v = 0;
    if (u32(v, p.fam == Family::V4 ? 32 : 128) != Ok) return Fail;
    (o == "--hashlimit-srcmask" ? m.srcmask : m.dstmask) = uint8_t(v);
    return Ok;
  }
  if (o == "--hashlimit-mode") {
    auto s = p.arg();
    if (!s) return Fail;
    m.mode = 0;
    std::string_view l = *s;
    while (true) {
      auto comma = l.find(',');
      auto w = l.substr(0, comma);
      if (w == "srcip") m.mode |= HashlimitMatch::SrcIp;
      else if (w == "srcport") m.mode |= HashlimitMatch::SrcPort;
      else if (w == "dstip") m.mode |= HashlimitMatch::DstIp;
      else if (w == "dstport") m.mode |= HashlimitMatch::DstPort;
      else {
        p.err(fmt::format("hashlimit: bad --hashlimit-mode '{}' (srcip, srcport, dstip, dstport)", *s));
        return Fail;
      }
      if (comma == std::string_view::npos) break;
      l.remove_prefix(comma + 1);
    }
    return Ok;
  }
  if (o == "--hashlimit-name") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->empty() || s->size() > 255) {
      p.err("hashlimit: --hashlimit-name must be 1..255 characters");
      return Fail;
    }
    m.name = *s;
    return Ok;
  }
  return Unknown;
}

Res opt(ConnlimitMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--connlimit-upto" || o == "--connlimit-above") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, UINT32_MAX, "connlimit: limit", false);
    if (!v) return Fail;
    m.limit = uint32_t(*v);
    m.upto = (o == "--connlimit-upto") != inv;
    return Ok;
  }
  if (o == "--connlimit-mask") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, p.fam == Family::V4 ? 32 : 128, "connlimit: --connlimit-mask", false);
    if (!v) return Fail;
    m.mask = uint8_t(*v);
    return Ok;
  }
  if (o == "--connlimit-saddr" || o == "--connlimit-daddr") {
    m.daddr = o == "--connlimit-daddr";
    return Ok;
  }
  return Unknown;
}

// libxt_time's time_parse_date: YYYY[-MM[-DD[Thh[:mm[:ss]]]]], UTC.
std::optional<uint32_t> time_date(std::string_view s) {
  int f[6] = {0, 1, 1, 0, 0, 0};
  const char seps[] = {'-', '-', 'T', ':', ':'};
  size_t i = 0;
  for (int k = 0; k < 6; ++k) {
    size_t j = i;
    while (j < s.size() && std::isdigit(uint8_t(s[j]))) ++j;
    auto v = parse_uint(s.substr(i, j - i), 9999);
    if (!v) return std::nullopt;
    f[k] = int(*v);
    i = j;
    if (i == s.size()) break;
    if (k == 5 || s[i] != seps[k]) return std::nullopt;
    ++i;
  }
  if (f[0] < 1970 || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 59) return std::nullopt;
  // Days from the civil date (Howard Hinnant's algorithm), so no time zone is involved.
  int y = f[0] - (f[1] <= 2);
  int era = y / 400;
  int yoe = y - era * 400;
  int doy = (153 * (f[1] + (f[1] > 2 ? -3 : 9)) + 2) / 5 + f[2] - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = int64_t(era) * 146097 + doe - 719468;
  int64_t t = days * 86400 + f[3] * 3600 + f[4] * 60 + f[5];
  if (t > 0x7fffffff) return std::nullopt;
  return uint32_t(t);
}

std::optional<uint32_t> time_of_day(std::string_view s) {
  int f[3] = {0, 0, 0};
  size_t i = 0;
  int k = 0;
  for (; k < 3; ++k) {
    size_t j = i;
    while (j < s.size() && std::isdigit(uint8_t(s[j]))) ++j;
    auto v = parse_uint(s.substr(i, j - i), 99);
    if (!v) return std::nullopt;
    f[k] = int(*v);
    i = j;
    if (i == s.size()) break;
    if (k == 2 || s[i] != ':') return std::nullopt;
    ++i;
  }
  if (k == 0 || f[0] > 23 || f[1] > 59 || f[2] > 59) return std::nullopt;
  return uint32_t(f[0] * 3600 + f[1] * 60 + f[2]);
}

Res opt(TimeMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  bool invertible = o == "--weekdays" || o == "--monthdays";
  if (inv && !invertible &&
      (o.starts_with("--date") || o.starts_with("--time") || o == "--kerneltz" || o == "--localtz" || o == "--utc" ||
       o == "--contiguous")) {
    p.err(fmt::format("time: option \"{}\" cannot be inverted", o));
    return Fail;
  }
  if (o == "--datestart" || o == "--datestop") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = time_date(*s);
    if (!v) {
      p.err(fmt::format("time: invalid date \"{}\" (YYYY[-MM[-DD[Thh[:mm[:ss]]]]], 1970 to 2038)", *s));
      return Fail;
    }
    (o == "--datestart" ? m.date_start : m.date_stop) = *v;
    return Ok;
  }
  if (o == "--timestart" || o == "--timestop") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = time_of_day(*s);
    if (!v) {
      p.err(fmt::format("time: invalid time \"{}\" (hh:mm[:ss])", *s));
      return Fail;
    }
    (o == "--timestart" ? m.daytime_start : m.daytime_stop) = *v;
    return Ok;
  }
  if (o == "--weekdays" || o == "--monthdays") {
    auto s = p.arg();
    if (!s) return Fail;
    bool week = o == "--weekdays";
    static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    uint32_t bits = 0;
    std::string_view l = *s;
    while (true) {
      auto comma = l.find(',');
      auto w = l.substr(0, comma);
      auto v = parse_uint(w, week ? 7 : 31);
      if (week && !v)
        for (unsigned d = 0; d < 7; ++d)
          if (w == kDays[d]) v = d + 1;
      if (!v || *v == 0) {
        p.err(fmt::format("time: bad {} '{}' ({})", o, w, week ? "Mon..Sun or 1..7" : "1..31"));
        return Fail;
      }
      bits |= 1u << *v;
      if (comma == std::string_view::npos) break;
      l.remove_prefix(comma + 1);
    }
    // libxt_time inverts the day set itself; the kernel sees no invert flag.
    if (week) m.weekdays = uint8_t(inv ? bits ^ 0xfe : bits);
    else m.monthdays = inv ? bits ^ 0xfffffffe : bits;
    return Ok;
  }
  if (o == "--kerneltz" || o == "--localtz") m.localtz = true;
  else if (o == "--utc") m.localtz = false;
  else if (o == "--contiguous") m.contiguous = true;
  else return Unknown;
  return Ok;
}

// libxt_string's parse_hex_string: text with |hex pairs| in between, spaces allowed inside the bars.
std::optional<std::string> hex_string(std::string_view s) {
  std::string out;
  bool in_hex = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '|') {
      in_hex = !in_hex;
      continue;
    }
    if (in_hex) {
      if (c == ' ') continue;
      if (i + 1 >= s.size() || !std::isxdigit(uint8_t(c)) || !std::isxdigit(uint8_t(s[i + 1]))) return std::nullopt;
      out += char(std::stoi(std::string(s.substr(i, 2)), nullptr, 16));
      ++i;
    } else {
      if (c == '\\' && i + 1 < s.size()) c = s[++i];
      out += c;
    }
  }
  if (in_hex) return std::nullopt;
  return out;
}

Res opt(StringMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--string" || o == "--hex-string") {
    auto s = p.arg();
    if (!s) return Fail;
    std::optional<std::string> v = *s;
    if (o == "--hex-string") v = hex_string(*s);
    if (!v) {
      p.err(fmt::format("string: bad --hex-string '{}' (text with |hex pairs| between bars)", *s));
      return Fail;
    }
    if (v->empty() || v->size() > 128) {
      p.err("string: the pattern must be 1..128 bytes");
      return Fail;
    }
    m.pattern = *v;
    m.inv = inv;
    return Ok;
  }
  if (inv) {
    p.err(fmt::format("string: option \"{}\" cannot be inverted", o));
    return Fail;
  }
  if (o == "--algo") {
    auto s = p.arg();
    if (!s) return Fail;
    if (*s != "bm" && *s != "kmp") {
      p.err(fmt::format("string: unknown --algo '{}' (bm or kmp)", *s));
      return Fail;
    }
    m.algo = *s;
    return Ok;
  }
  if (o == "--from" || o == "--to") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 65535, fmt::format("string: {}", o).c_str(), false);
    if (!v) return Fail;
    (o == "--from" ? m.from : m.to) = uint16_t(*v);
    return Ok;
  }
  if (o == "--icase") {
    m.icase = true;
    return Ok;
  }
  return Unknown;
}

Res opt(HelperMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--helper") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  if (s->size() > 29) {
    p.err("helper: the name is at most 29 characters");
    return Fail;
  }
  m.name = *s;
  m.inv = inv;
  return Ok;
}

Res opt(TosMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--tos") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  // The RFC 1349 names compare the TOS bits only (mask 0x3f), as libxt_tos does.
  static constexpr std::pair<std::string_view, uint8_t> kNames[] = {{"Minimize-Delay", 0x10},
                                                                    {"Maximize-Throughput", 0x08},
                                                                    {"Maximize-Reliability", 0x04},
                                                                    {"Minimize-Cost", 0x02},
                                                                    {"Normal-Service", 0x00}};
  for (auto& [n, v] : kNames)
    if (*s == n) {
      m.value = v;
      m.mask = 0x3f;
      m.inv = inv;
      return Ok;
    }
  auto slash = s->find('/');
  auto a = parse_uint(std::string_view(*s).substr(0, slash), 255, true);
  std::optional<uint64_t> b = 0xff;
  if (slash != std::string::npos) b = parse_uint(std::string_view(*s).substr(slash + 1), 255, true);
  if (!a || !b) {
    p.err(fmt::format("tos: bad value '{}' (value[/mask] of 8 bits, or a name such as Minimize-Delay)", *s));
    return Fail;
  }
  m.value = uint8_t(*a);
  m.mask = uint8_t(*b);
  m.inv = inv;
  return Ok;
}

std::optional<uint8_t> dscp_class(std::string_view s) {
  static constexpr std::pair<std::string_view, uint8_t> kClasses[] = {
      {"CS0", 0x00},  {"CS1", 0x08},  {"CS2", 0x10},  {"CS3", 0x18},  {"CS4", 0x20},  {"CS5", 0x28},
      {"CS6", 0x30},  {"CS7", 0x38},  {"BE", 0x00},   {"AF11", 0x0a}, {"AF12", 0x0c}, {"AF13", 0x0e},
      {"AF21", 0x12}, {"AF22", 0x14}, {"AF23", 0x16}, {"AF31", 0x1a}, {"AF32", 0x1c}, {"AF33", 0x1e},
      {"AF41", 0x22}, {"AF42", 0x24}, {"AF43", 0x26}, {"EF", 0x2e}};
  for (auto& [n, v] : kClasses)
    if (s.size() == n.size() && std::equal(s.begin(), s.end(), n.begin(), [](char a, char b) { return std::toupper(a) == b; }))
      return v;
  return std::nullopt;
}

Res opt(DscpMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--dscp" && o != "--dscp-class") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = o == "--dscp" ? parse_uint(*s, 63, true) : std::optional<uint64_t>();
  if (o == "--dscp-class")
    if (auto c = dscp_class(*s)) v = *c;
  if (!v) {
    p.err(o == "--dscp" ? fmt::format("dscp: DSCP '{}' is not a number in 0..63", *s)
                        : fmt::format("dscp: unknown DSCP class '{}' (CS0..CS7, BE, AF11..AF43, EF)", *s));
    return Fail;
  }
  m.dscp = uint8_t(*v);
  m.inv = inv;
  return Ok;
}

Res opt(EcnMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  uint8_t bit;
  if (o == "--ecn-tcp-cwr") bit = EcnMatch::TcpCwr;
  else if (o == "--ecn-tcp-ece") bit = EcnMatch::TcpEce;
  else if (o == "--ecn-ip-ect") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = parse_uint(*s, 3);
    if (!v) {
      p.err(fmt::format("ecn: --ecn-ip-ect '{}' is not in 0..3", *s));
      return Fail;
    }
    m.ect = uint8_t(*v);
    bit = EcnMatch::IpEct;
  } else return Unknown;
  m.ops |= bit;
  if (inv) m.invert |= bit;
  return Ok;
}

Res opt(TcpmssMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--mss") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto r = p.ports(*s, ':');
  if (!r) return Fail;
  m.lo = r->lo;
  m.hi = r->hi;
  m.inv = inv;
  return Ok;
}

Res opt(SpiMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != fmt::format("--{}spi", m.name())) return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  // xtables_parse_range: an empty side is the range's end (":", ":N", "N:").
  auto colon = s->find(':');
  std::string_view lo = std::string_view(*s).substr(0, colon);
  std::string_view hi = colon == std::string::npos ? lo : std::string_view(*s).substr(colon + 1);
  auto a = lo.empty() && colon != std::string::npos ? std::optional<uint64_t>(0) : parse_uint(lo, UINT32_MAX);
  auto b = hi.empty() && colon != std::string::npos ? std::optional<uint64_t>(UINT32_MAX) : parse_uint(hi, UINT32_MAX);
  if (!a || !b) {
    p.err(fmt::format("{}: bad SPI '{}' (N or N:M)", m.name(), *s));
    return Fail;
  }
  m.lo = uint32_t(*a);
  m.hi = uint32_t(*b);
  m.inv = inv;
  return Ok;
}

Res opt(DevgroupMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  bool src = o == "--src-group";
  if (!src && o != "--dst-group") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  uint32_t v = 0, mask = 0xffffffff;
  if (*s != "default" && !p.value_mask(*s, v, mask, 0xffffffff)) return Fail;
  if (src) m.src = v, m.src_mask = mask, m.flags |= DevgroupMatch::Src | (inv ? DevgroupMatch::InvSrc : 0);
  else m.dst = v, m.dst_mask = mask, m.flags |= DevgroupMatch::Dst | (inv ? DevgroupMatch::InvDst : 0);
  return Ok;
}

Res opt(CgroupMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--cgroup") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, UINT32_MAX, "cgroup: --cgroup", true);
    if (!v) return Fail;
    m.classid = uint32_t(*v);
  } else if (o == "--path") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->empty() || s->size() > 4095) {
      p.err("cgroup: --path must be 1..4095 characters");
      return Fail;
    }
    m.path = *s;
  } else return Unknown;
  if (!m.path.empty() && o == "--cgroup") {
    p.err("cgroup: --path and --cgroup cannot be used together (the kernel refuses both)");
    return Fail;
  }
  m.inv = inv;
  return Ok;
}

Res opt(CpuMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--cpu") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = p.num(*s, UINT32_MAX, "cpu: --cpu", false);
  if (!v) return Fail;
  m.cpu = uint32_t(*v);
  m.inv = inv;
  return Ok;
}

Res opt(QuotaMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--quota") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = p.num(*s, UINT64_MAX, "quota: --quota", false);
  if (!v) return Fail;
  m.quota = *v;
  m.inv = inv;
  return Ok;
}

// libxt_u32's grammar: tests joined by "&&"; a test is LOCATION=VALUES, a location a number
// followed by &N, <<N, >>N or @N steps, values N or N:M joined by ','. Stored as iptables-save
// prints it (every number in hex).
std::optional<std::string> u32_norm(std::string_view s, std::string& why) {
  std::string out;
  size_t i = 0;
  auto ws = [&] {
    while (i < s.size() && std::isspace(uint8_t(s[i]))) ++i;
  };
  auto number = [&]() -> std::optional<uint32_t> {
    ws();
    size_t j = i;
    bool hex = j + 1 < s.size() && s[j] == '0' && (s[j + 1] == 'x' || s[j + 1] == 'X');
    if (hex) j += 2;
    size_t k = j;
    while (k < s.size() && (hex ? std::isxdigit(uint8_t(s[k])) : std::isdigit(uint8_t(s[k])))) ++k;
    if (k == j) return std::nullopt;
    uint64_t v = std::stoull(std::string(s.substr(j, k - j)), nullptr, hex ? 16 : 10);
    if (v > UINT32_MAX) return std::nullopt;
    i = k;
    return uint32_t(v);
  };
  int tests = 0;
  while (true) {
    if (++tests > 10) return why = "u32: at most 10 tests", std::nullopt;
    auto n = number();
    if (!n) return why = fmt::format("u32: expected a number at offset {}", i), std::nullopt;
    if (tests > 1) out += "&&";
    out += fmt::format("0x{:x}", *n);
    int nums = 1;
    for (ws(); i < s.size() && s[i] != '='; ws()) {
      std::string_view op;
      if (s[i] == '&') op = "&";
      else if (s[i] == '@') op = "@";
      else if (s.substr(i, 2) == "<<") op = "<<";
      else if (s.substr(i, 2) == ">>") op = ">>";
      else return why = fmt::format("u32: unexpected '{}' at offset {}", s[i], i), std::nullopt;
      i += op.size();
      auto v = number();
      if (!v) return why = fmt::format("u32: expected a number at offset {}", i), std::nullopt;
      if (++nums > 10) return why = "u32: at most 10 location steps per test", std::nullopt;
      out += fmt::format("{}0x{:x}", op, *v);
    }
    if (i >= s.size()) return why = "u32: a test needs '=' and values", std::nullopt;
    ++i;
    out += '=';
    int vals = 0;
    while (true) {
      auto lo = number();
      if (!lo) return why = fmt::format("u32: expected a value at offset {}", i), std::nullopt;
      uint32_t hi = *lo;
      ws();
      if (i < s.size() && s[i] == ':') {
        ++i;
        auto h = number();
        if (!h) return why = fmt::format("u32: expected a value at offset {}", i), std::nullopt;
        hi = *h;
      }
      if (++vals > 10) return why = "u32: at most 10 values per test", std::nullopt;
      if (vals > 1) out += ',';
      out += hi == *lo ? fmt::format("0x{:x}", *lo) : fmt::format("0x{:x}:0x{:x}", *lo, hi);
      ws();
      if (i < s.size() && s[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    ws();
    if (i == s.size()) break;
    if (s.substr(i, 2) != "&&") return why = fmt::format("u32: expected '&&' at offset {}", i), std::nullopt;
    i += 2;
  }
  return out;
}

Res opt(U32Match& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--u32") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  std::string why;
  auto v = u32_norm(*s, why);
  if (!v) {
    p.err(why);
    return Fail;
  }
  m.text = *v;
  m.inv = inv;
  return Ok;
}

Res opt(BpfMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o != "--bytecode") return Unknown;
  if (inv) {
    p.err("bpf: option \"--bytecode\" cannot be inverted");
    return Fail;
  }
  auto s = p.arg();
  if (!s) return Fail;
  // "N,code jt jf k,...": the count first, as nfbpf_compile prints it; at most 64 instructions.
  std::string_view l = *s;
  auto comma = l.find(',');
  auto n = parse_uint(l.substr(0, comma), 64);
  size_t got = 0;
  bool ok = n && *n > 0 && comma != std::string_view::npos;
  if (ok) l.remove_prefix(comma + 1);
  while (ok && !l.empty()) {
    comma = l.find(',');
    auto ins = l.substr(0, comma);
    unsigned a, b, c;
    unsigned long d;
    char tail;
    ok = std::sscanf(std::string(ins).c_str(), "%u %u %u %lu%c", &a, &b, &c, &d, &tail) == 4 && a <= 0xffff && b <= 255 &&
         c <= 255 && d <= UINT32_MAX;
    ++got;
    if (comma == std::string_view::npos) break;
    l.remove_prefix(comma + 1);
  }
  if (!ok || got != *n) {
    p.err(fmt::format("bpf: bad --bytecode '{}' (\"N,code jt jf k,...\" with N instructions, at most 64)", *s));
    return Fail;
  }
  m.bytecode = *s;
  return Ok;
}

// ------------------------------------------------- IPv6 extension-header modules (libip6t_*)
// xtables' UINT32RC: "N", "N:M", "N:" (to the top) or ":M" (from 0).
bool u32_range(ParseCtx& p, const std::string& s, std::string_view mod, uint32_t& lo, uint32_t& hi) {
  auto colon = s.find(':');
  std::string_view a = std::string_view(s).substr(0, colon);
  std::string_view b = colon == std::string::npos ? a : std::string_view(s).substr(colon + 1);
  auto l = a.empty() && colon != std::string::npos ? std::optional<uint64_t>(0) : parse_uint(a, UINT32_MAX, true);
  auto h = b.empty() && colon != std::string::npos ? std::optional<uint64_t>(UINT32_MAX) : parse_uint(b, UINT32_MAX, true);
  if (!l || !h || (a.empty() && b.empty())) {
    p.err(fmt::format("{}: bad range '{}' (N, N:M, N: or :M, 0..4294967295)", mod, s));
    return false;
  }
  lo = uint32_t(*l);
  hi = uint32_t(*h);
  return true;
}

std::optional<uint32_t> u32_arg(ParseCtx& p, std::string_view mod, std::string_view o) {
  auto s = p.arg();
  if (!s) return std::nullopt;
  auto v = parse_uint(*s, UINT32_MAX, true);
  if (!v) p.err(fmt::format("{}: {} '{}' is not a number in 0..4294967295", mod, o, *s));
  return v ? std::optional<uint32_t>(uint32_t(*v)) : std::nullopt;
}

Res opt(FragMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--fragid") {
    auto s = p.arg();
    if (!s || !u32_range(p, *s, "frag", m.id_lo, m.id_hi)) return Fail;
    m.id_inv = inv;
  } else if (o == "--fraglen") {
    auto v = u32_arg(p, "frag", o);
    if (!v) return Fail;
    m.len = *v, m.len_set = true, m.len_inv = inv;
  } else if (o == "--fragres") m.res = true;
  else if (o == "--fragfirst") m.first = true;
  else if (o == "--fragmore" || o == "--fraglast") {
    if (o == "--fragmore" ? m.last : m.more) {
      p.err("frag: option \"--fragmore\" cannot be used together with \"--fraglast\"");
      return Fail;
    }
    (o == "--fragmore" ? m.more : m.last) = true;
  } else return Unknown;
  if (inv && o != "--fragid" && o != "--fraglen") {
    p.err(fmt::format("frag: option \"{}\" cannot be inverted", o));
    return Fail;
  }
  return Ok;
}

// --header's names: the module's own, /etc/protocols' names and aliases for the same numbers, and
// the numbers themselves.
std::optional<uint8_t> ipv6header_bit(std::string_view n) {
  using M = Ipv6HeaderMatch;
  static constexpr std::pair<std::string_view, uint8_t> kNames[] = {{"hop-by-hop", M::Hop},
                                                                    {"hop", M::Hop},
                                                                    {"hopopt", M::Hop},
                                                                    {"HOPOPT", M::Hop},
                                                                    {"0", M::Hop},
                                                                    {"dst", M::Dst},
                                                                    {"ipv6-opts", M::Dst},
                                                                    {"IPv6-Opts", M::Dst},
                                                                    {"60", M::Dst},
                                                                    {"route", M::Route},
                                                                    {"ipv6-route", M::Route},
                                                                    {"IPv6-Route", M::Route},
                                                                    {"43", M::Route},
                                                                    {"frag", M::Frag},
                                                                    {"ipv6-frag", M::Frag},
                                                                    {"IPv6-Frag", M::Frag},
                                                                    {"44", M::Frag},
                                                                    {"auth", M::Ah},
                                                                    {"ah", M::Ah},
                                                                    {"IPSEC-AH", M::Ah},
                                                                    {"51", M::Ah},
                                                                    {"esp", M::Esp},
                                                                    {"IPSEC-ESP", M::Esp},
                                                                    {"50", M::Esp},
                                                                    {"none", M::None},
                                                                    {"ipv6-nonxt", M::None},
                                                                    {"IPv6-NoNxt", M::None},
                                                                    {"59", M::None},
                                                                    {"prot", M::Proto},
                                                                    {"protocol", M::Proto},
                                                                    {"255", M::Proto}};
  for (auto& [name, bit] : kNames)
    if (n == name) return bit;
  return std::nullopt;
}

Res opt(Ipv6HeaderMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--soft") {
    m.soft = true;
    return Ok;
  }
  if (o != "--header") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  std::string_view l = *s;
  m.flags = 0;
  while (!l.empty()) {
    auto comma = l.find(',');
    auto name = l.substr(0, comma);
    if (!name.empty()) {
      auto bit = ipv6header_bit(name);
      if (!bit) {
        p.err(
            fmt::format("ipv6header: unknown header '{}' (hop, dst, route, frag, auth, esp, none, prot, their "
                        "/etc/protocols names, or 0, 60, 43, 44, 51, 50, 59, 255)",
                        name));
        return Fail;
      }
      m.flags |= *bit;
    }
    if (comma == std::string_view::npos) break;
    l.remove_prefix(comma + 1);
  }
  if (!m.flags) {
    p.err("ipv6header: cannot parse header names");
    return Fail;
  }
  m.inv = inv;
  return Ok;
}

Res opt(OptsMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  std::string_view n = m.dst ? "dst" : "hbh";
  if (o == (m.dst ? "--dst-len" : "--hbh-len")) {
    auto v = u32_arg(p, n, o);
    if (!v) return Fail;
    m.len = *v, m.len_set = true, m.len_inv = inv;
    return Ok;
  }
  if (o != (m.dst ? "--dst-opts" : "--hbh-opts")) return Unknown;
  if (inv) {
    p.err(fmt::format("{}: option \"{}\" cannot be inverted", n, o));
    return Fail;
  }
  auto s = p.arg();
  if (!s) return Fail;
  std::string_view l = *s;
  m.nopts = 0;
  while (true) {
    auto comma = l.find(',');
    auto item = l.substr(0, comma);
    auto colon = item.find(':');
    if (m.nopts == 16) {
      p.err(fmt::format("{}: too many options (at most 16)", n));
      return Fail;
    }
    // libip6t_hbh keeps the low 8 bits of each number, as the kernel's u16 TYPE<<8|LEN holds them.
    auto t = parse_uint(item.substr(0, colon), UINT32_MAX, true);
    auto len =
        colon == std::string_view::npos ? std::optional<uint64_t>(0xff) : parse_uint(item.substr(colon + 1), UINT32_MAX, true);
    if (!t || !len) {
      p.err(fmt::format("{}: bad option '{}' (TYPE[:LEN])", n, item));
      return Fail;
    }
    if ((*t & 0xff) == 0 && colon != std::string_view::npos) {
      p.err(fmt::format("{}: PAD0 has not got length", n));
      return Fail;
    }
    m.opts[m.nopts++] = uint16_t((*t & 0xff) << 8 | (*len & 0xff));
    if (comma == std::string_view::npos) break;
    l.remove_prefix(comma + 1);
  }
  m.opts_set = true;
  return Ok;
}

Res opt(RtMatch& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--rt-type") {
    auto v = u32_arg(p, "rt", o);
    if (!v) return Fail;
    m.type = *v, m.type_set = true, m.type_inv = inv;
    return Ok;
  }
  if (o == "--rt-segsleft") {
    auto s = p.arg();
    if (!s || !u32_range(p, *s, "rt", m.left_lo, m.left_hi)) return Fail;
    m.left_inv = inv;
    return Ok;
  }
  if (o == "--rt-len") {
    auto v = u32_arg(p, "rt", o);
    if (!v) return Fail;
    m.len = *v, m.len_set = true, m.len_inv = inv;
    return Ok;
  }
  if (o != "--rt-0-res" && o != "--rt-0-addrs" && o != "--rt-0-not-strict") return Unknown;
  if (inv) {
    p.err(fmt::format("rt: option \"{}\" cannot be inverted", o));
    return Fail;
  }
  if (o == "--rt-0-not-strict") {
    if (!m.addrs_set) {
      p.err("rt: `--rt-0-addrs ...' required before `--rt-0-not-strict'");
      return Fail;
    }
    m.not_strict = true;
    return Ok;
  }
  if (!m.type_set || m.type != 0 || m.type_inv) {
    p.err(fmt::format("rt: `--rt-type 0' required before `{}'", o));
    return Fail;
  }
  if (o == "--rt-0-res") {
    m.res = true;
    return Ok;
  }
  auto s = p.arg();
  if (!s) return Fail;
  std::string_view l = *s;
  m.addrs.clear();
  while (true) {
    auto comma = l.find(',');
    auto a = Addr::parse(l.substr(0, comma), nullptr);
    if (!a || a->is_v4()) {
      p.err(fmt::format("rt: bad address: {}", l.substr(0, comma)));
      return Fail;
    }
    if (m.addrs.size() == 16) {
      p.err("rt: too many addresses specified (at most 16)");
      return Fail;
    }
    m.addrs.push_back(*a);
    if (comma == std::string_view::npos) break;
    l.remove_prefix(comma + 1);
  }
  m.addrs_set = true;
  return Ok;
}

Res opt(Ah6Match& m, std::string_view o, bool inv, ParseCtx& p) {
  if (o == "--ahspi") {
    auto s = p.arg();
    if (!s || !u32_range(p, *s, "ah", m.spi_lo, m.spi_hi)) return Fail;
    m.spi_inv = inv;
    return Ok;
  }
  if (o == "--ahlen") {
    auto v = u32_arg(p, "ah", o);
    if (!v) return Fail;
    m.len = *v, m.len_inv = inv;
    return Ok;
  }
  if (o == "--ahres") {
    if (inv) {
      p.err("ah: option \"--ahres\" cannot be inverted");
      return Fail;
    }
    m.res = true;
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

void need(bool given, std::string_view msg, ParseCtx& p, size_t at) {
  if (!given) p.err(at, std::string(msg));
}
void finish(MacMatch&, ParseCtx&, size_t) {}
void finish(OwnerMatch& m, ParseCtx& p, size_t at) {
  need(m.match, "owner: at least one of --uid-owner, --gid-owner or --socket-exists is required", p, at);
}
void finish(HashlimitMatch& m, ParseCtx& p, size_t at) {
  if (!m.upto_given) return need(false, "hashlimit: --hashlimit-upto or --hashlimit-above is required", p, at);
  if (m.name.empty()) return need(false, "hashlimit: --hashlimit-name is required", p, at);
  if (!m.bytes && m.burst == 0) m.burst = 5;
}
void finish(TimeMatch& m, ParseCtx& p, size_t at) {
  if (m.contiguous && m.daytime_start < m.daytime_stop)
    p.err(at, "time: --contiguous only makes sense when --timestop is earlier than --timestart");
}
void finish(StringMatch& m, ParseCtx& p, size_t at) {
  if (m.algo.empty()) return need(false, "string: --algo bm|kmp is required", p, at);
  if (m.pattern.empty()) return need(false, "string: --string or --hex-string is required", p, at);
  if (m.from > m.to) p.err(at, "string: --from is after --to (the kernel refuses it)");
}
void finish(HelperMatch& m, ParseCtx& p, size_t at) { need(!m.name.empty(), "helper: --helper NAME is required", p, at); }
void finish(DevgroupMatch& m, ParseCtx& p, size_t at) {
  need(m.flags, "devgroup: at least one of --src-group or --dst-group is required", p, at);
}
void finish(CgroupMatch& m, ParseCtx& p, size_t at) {
  need(m.classid || !m.path.empty() || m.inv, "cgroup: --cgroup CLASSID or --path PATH is required", p, at);
}
void finish(BpfMatch& m, ParseCtx& p, size_t at) { need(!m.bytecode.empty(), "bpf: --bytecode is required", p, at); }
void finish(Ipv6HeaderMatch& m, ParseCtx& p, size_t at) {
  need(m.flags, "ipv6header: option \"--header\" must be specified", p, at);
}
void finish(U32Match& m, ParseCtx& p, size_t at) { need(!m.text.empty(), "u32: --u32 TESTS is required", p, at); }

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

// Masks default to the family's full length (one bucket/count per address).
Match make_hashlimit(Family fam) {
  HashlimitMatch m;
  m.srcmask = m.dstmask = fam == Family::V4 ? 32 : 128;
  return m;
}

Match make_connlimit(Family fam) {
  ConnlimitMatch m;
  m.mask = fam == Family::V4 ? 32 : 128;
  return m;
}

Match make_ah(Family) {
  SpiMatch m;
  m.kind = SpiMatch::Ah;
  return m;
}

Match make_ipcomp(Family) {
  SpiMatch m;
  m.kind = SpiMatch::Ipcomp;
  return m;
}

Match make_dst(Family) {
  OptsMatch m;
  m.dst = true;
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
    {"dccp", {}, make<DccpMatch>},
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
    {"mac", {}, make<MacMatch>},
    {"owner", {}, make<OwnerMatch>},
    {"hashlimit", {}, make_hashlimit},
    {"connlimit", {}, make_connlimit},
    {"time", {}, make<TimeMatch>},
    {"string", {}, make<StringMatch>},
    {"helper", {}, make<HelperMatch>},
    {"tos", {}, make<TosMatch>},
    {"dscp", {}, make<DscpMatch>},
    {"ecn", {}, make<EcnMatch>},
    {"tcpmss", {}, make<TcpmssMatch>},
    {"esp", {}, make<SpiMatch>},
    {"ah", Family::V4, make_ah},
    {"ah", Family::V6, make<Ah6Match>},
    {"frag", Family::V6, make<FragMatch>},
    {"ipv6header", Family::V6, make<Ipv6HeaderMatch>},
    {"hbh", Family::V6, make<OptsMatch>},
    {"dst", Family::V6, make_dst},
    {"rt", Family::V6, make<RtMatch>},
    {"ipcomp", {}, make_ipcomp},
    {"devgroup", {}, make<DevgroupMatch>},
    {"cgroup", {}, make<CgroupMatch>},
    {"cpu", {}, make<CpuMatch>},
    {"quota", {}, make<QuotaMatch>},
    {"u32", {}, make<U32Match>},
    {"bpf", {}, make<BpfMatch>},
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
    else if (std::holds_alternative<DccpMatch>(m)) need = "dccp", want = proto::DCCP;
    else if (std::holds_alternative<TcpmssMatch>(m)) need = "tcp", want = proto::TCP;
    else if (auto* e = std::get_if<EcnMatch>(&m); e && (e->ops & (EcnMatch::TcpCwr | EcnMatch::TcpEce)))
      need = "tcp", want = proto::TCP;
    else if (auto* sp = std::get_if<SpiMatch>(&m)) need = sp->name(), want = sp->proto();
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
