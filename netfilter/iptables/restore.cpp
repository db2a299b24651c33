// iptables-restore input -> Ruleset. Mirrors what iptables-restore and the kernel accept: each option
// goes to the newest loaded module that knows it, a protocol match is loaded implicitly for its
// options, jumps are resolved and loops rejected at COMMIT, and targets are checked against the hooks
// their chain is reachable from.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "netfilter/iptables/names.hpp"
#include "netfilter/words.hpp"

namespace svcpath::nf {
namespace {

// Per-line parse state shared by the module option parsers.
struct P {
  Diagnostics& d;
  Family fam;
  int line;
  const std::vector<Word>& t;
  size_t i = 0;
  bool bad = false;
  const Rule* rule = nullptr;  // the rule being built (for -p checks)

  int col(size_t k) const { return k < t.size() ? t[k].col : (t.empty() ? 1 : t.back().col); }
  void err(size_t k, std::string msg) {
    d.error(line, col(k), std::move(msg));
    bad = true;
  }
  void err(std::string msg) { err(i, std::move(msg)); }
  // Next token as the argument of the option at i.
  const std::string* arg() {
    if (i + 1 >= t.size()) {
      err(fmt::format("option '{}' requires an argument", t[i].s));
      return nullptr;
    }
    return &t[++i].s;
  }
  // The optional argument following the option, if it does not look like another option.
  const std::string* opt_arg() {
    if (i + 1 < t.size() && !t[i + 1].s.empty() && t[i + 1].s[0] != '-' && t[i + 1].s != "!") return &t[++i].s;
    return nullptr;
  }
  std::optional<Prefix> prefix(const std::string& s) {
    std::string why;
    auto p = Prefix::parse(s, &why);
    if (!p) {
      err(why);
      return std::nullopt;
    }
    if (p->addr.fam != fam) {
      err(fmt::format("'{}' is an IPv{} address in an IPv{} ruleset", s, int(p->addr.fam), int(fam)));
      return std::nullopt;
    }
    return p;
  }
  std::optional<Addr> addr(const std::string& s) {
    std::string why;
    auto a = Addr::parse(s, &why);
    if (!a) {
      err(why);
      return std::nullopt;
    }
    if (a->fam != fam) {
      err(fmt::format("'{}' is an IPv{} address in an IPv{} ruleset", s, int(a->fam), int(fam)));
      return std::nullopt;
    }
    return a;
  }
  std::optional<PortRange> ports(const std::string& s, char sep) {
    std::string why;
    auto r = PortRange::parse(s, sep, &why);
    if (!r) err(why);
    return r;
  }
  std::optional<uint64_t> num(const std::string& s, uint64_t max, const char* what, bool hex = true) {
    auto v = parse_uint(s, max, hex);
    if (!v) err(fmt::format("{} '{}' is not a number in 0..{}", what, s, max));
    return v;
  }
  // "value[/mask]" as the mark modules accept it.
  bool value_mask(const std::string& s, uint32_t& v, uint32_t& m, uint32_t default_mask) {
    auto slash = s.find('/');
    auto a = parse_uint(std::string_view(s).substr(0, slash), 0xffffffff, true);
    std::optional<uint64_t> b = default_mask;
    if (slash != std::string::npos) b = parse_uint(std::string_view(s).substr(slash + 1), 0xffffffff, true);
    if (!a || !b) {
      err(fmt::format("'{}' is not a value[/mask] of 32-bit numbers", s));
      return false;
    }
    v = uint32_t(*a);
    m = uint32_t(*b);
    return true;
  }
};

enum Res { Unknown = 0, Ok = 1, Fail = -1 };

// The engine's jump stack is fixed-size (no allocation per packet); deeper nesting is refused at load.
constexpr uint32_t kMaxJumpDepth = 60;

Res port_opt(PortSpec& ps, bool inv, P& p) {
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
Res opt(TcpMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(UdpMatch& m, std::string_view o, bool inv, P& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  return Unknown;
}

Res opt(SctpMatch& m, std::string_view o, bool inv, P& p) {
  if (o == "--sport" || o == "--source-port") return port_opt(m.sport, inv, p);
  if (o == "--dport" || o == "--destination-port") return port_opt(m.dport, inv, p);
  return Unknown;
}

Res opt(MultiportMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(IcmpMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(CommentMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(MarkMatch& m, std::string_view o, bool inv, P& p) {
  if (o != "--mark") return Unknown;
  auto a = p.arg();
  if (!a || !p.value_mask(*a, m.value, m.mask, 0xffffffff)) return Fail;
  m.inv = inv;
  return Ok;
}

Res opt(ConnmarkMatch& m, std::string_view o, bool inv, P& p) {
  if (o != "--mark") return Unknown;
  auto a = p.arg();
  if (!a || !p.value_mask(*a, m.value, m.mask, 0xffffffff)) return Fail;
  m.inv = inv;
  return Ok;
}

Res ctstate_list(const std::string& s, uint16_t& mask, P& p) {
  auto v = names::ctstates(s);
  if (!v) {
    p.err(fmt::format("bad state '{}' (INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT, DNAT)", s));
    return Fail;
  }
  mask = *v;
  return Ok;
}

Res opt(ConntrackMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(StateMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(AddrtypeMatch& m, std::string_view o, bool inv, P& p) {
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

struct StatisticSeen {
  bool mode = false, prob = false, every = false, packet = false;
};

enum : uint8_t { kSeenMode = 1, kSeenProb = 2, kSeenEvery = 4, kSeenPacket = 8 };

Res opt(StatisticMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(RecentMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(SetMatch& m, std::string_view o, bool inv, P& p) {
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

Res range_opt(bool& set, bool& sinv, Addr& lo, Addr& hi, bool inv, P& p) {
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

Res opt(IprangeMatch& m, std::string_view o, bool inv, P& p) {
  if (o == "--src-range") return range_opt(m.src_set, m.src_inv, m.src_lo, m.src_hi, inv, p);
  if (o == "--dst-range") return range_opt(m.dst_set, m.dst_inv, m.dst_lo, m.dst_hi, inv, p);
  return Unknown;
}

bool iface(const std::string& s, IfaceMatch& m, bool inv, P& p) {
  if (s.empty() || s.size() > 15 || s.find_first_of(" /") != std::string::npos) {
    p.err(fmt::format("interface name '{}' is not valid (1..15 characters, no '/' or space)", s));
    return false;
  }
  m.set = true;
  m.inv = inv;
  m.wildcard = s.back() == '+';
  m.name = m.wildcard ? s.substr(0, s.size() - 1) : s;
  return true;
}

Res opt(PhysdevMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(LimitMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(NfacctMatch& m, std::string_view o, bool, P& p) {
  if (o != "--nfacct-name") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  m.name = *s;
  return Ok;
}

Res opt(RpfilterMatch& m, std::string_view o, bool, P&) {
  if (o == "--loose") m.loose = true;
  else if (o == "--validmark") m.validmark = true;
  else if (o == "--accept-local") m.accept_local = true;
  else if (o == "--invert") m.invert = true;
  else return Unknown;
  return Ok;
}

Res opt(SocketMatch& m, std::string_view o, bool, P&) {
  if (o == "--transparent") m.transparent = true;
  else if (o == "--nowildcard") m.nowildcard = true;
  else if (o == "--restore-skmark") m.restore_skmark = true;
  else return Unknown;
  return Ok;
}

Res opt(PolicyMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(LengthMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(TtlMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(PkttypeMatch& m, std::string_view o, bool inv, P& p) {
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

Res opt(IpvsMatch& m, std::string_view o, bool inv, P& p) {
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

std::optional<Match> new_match(std::string_view name, Family fam) {
  if (name == "tcp") return TcpMatch{};
  if (name == "udp" || name == "udplite") return UdpMatch{};
  if (name == "sctp") return SctpMatch{};
  if (name == "multiport") return MultiportMatch{};
  if (name == "icmp" && fam == Family::V4) return IcmpMatch{};
  if ((name == "icmp6" || name == "ipv6-icmp" || name == "icmpv6") && fam == Family::V6) {
    IcmpMatch m;
    m.v6 = true;
    return m;
  }
  if (name == "comment") return CommentMatch{};
  if (name == "mark") return MarkMatch{};
  if (name == "connmark") return ConnmarkMatch{};
  if (name == "conntrack") return ConntrackMatch{};
  if (name == "state") return StateMatch{};
  if (name == "addrtype") return AddrtypeMatch{};
  if (name == "statistic") return StatisticMatch{};
  if (name == "recent") {
    RecentMatch m;
    m.mask = Addr::netmask(fam, fam == Family::V4 ? 32 : 128);
    return m;
  }
  if (name == "set") return SetMatch{};
  if (name == "iprange") return IprangeMatch{};
  if (name == "physdev") return PhysdevMatch{};
  if (name == "limit") return LimitMatch{};
  if (name == "nfacct") return NfacctMatch{};
  if (name == "rpfilter") return RpfilterMatch{};
  if (name == "socket") return SocketMatch{};
  if (name == "policy") return PolicyMatch{};
  if (name == "length") return LengthMatch{};
  if (name == "ttl" && fam == Family::V4) return TtlMatch{};
  if (name == "hl" && fam == Family::V6) {
    TtlMatch m;
    m.hl = true;
    return m;
  }
  if (name == "pkttype") return PkttypeMatch{};
  if (name == "ipvs") return IpvsMatch{};
  return std::nullopt;
}

// Checks after all options of a match were read (the modules' final_check).
void finish(Match& mm, P& p, size_t at) {
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, StatisticMatch>) {
          bool mode = m.seen & kSeenMode, every = m.seen & kSeenEvery;
          bool prob = m.seen & kSeenProb, packet = m.seen & kSeenPacket;
          if (!mode) p.err(at, "statistic: no --mode given");
          else if (!m.nth && !prob) p.err(at, "statistic: --mode random requires --probability");
          else if (!m.nth && (every || packet)) p.err(at, "statistic: --every/--packet need --mode nth");
          else if (m.nth && prob) p.err(at, "statistic: --probability needs --mode random");
          else if (m.nth && !(every && packet)) p.err(at, "statistic: option \"--every\" also requires \"--packet\"");
          else if (m.nth && m.packet > m.every) p.err(at, "statistic: --packet must be smaller than --every");
        } else if constexpr (std::is_same_v<T, RecentMatch>) {
          if (!m.mode) p.err(at, "recent: you must specify one of `--set', `--rcheck', `--update' or `--remove'");
          else if (m.reap && !m.seconds) p.err(at, "recent: --reap needs --seconds");
          else if ((m.seconds || m.hitcount) && (m.mode == RecentMatch::Set || m.mode == RecentMatch::Remove))
            p.err(at, "recent: --seconds/--hitcount only go with --rcheck or --update");
        } else if constexpr (std::is_same_v<T, SetMatch>) {
          if (m.name.empty()) p.err(at, "set: you must specify --match-set NAME FLAGS");
        } else if constexpr (std::is_same_v<T, PolicyMatch>) {
        } else if constexpr (std::is_same_v<T, LimitMatch>) {
          if (m.avg == 0) m.avg = 10000 * 3600 / 3;  // default 3/hour
        } else if constexpr (std::is_same_v<T, MultiportMatch>) {
          if (m.ports.empty()) p.err(at, "multiport: no --sports, --dports or --ports given");
        } else if constexpr (std::is_same_v<T, CommentMatch>) {
        }
      },
      mm);
}

// ------------------------------------------------------------------------------ target options
Res nat_range(NatTarget& t, const std::string& s, P& p) {
  // [ip[-ip]][:port[-port]] ; IPv6 addresses in brackets when a port follows.
  std::string_view v = s;
  std::string_view addrs, ports;
  if (!v.empty() && v[0] == '[') {
    auto close = v.find(']');
    if (close == std::string_view::npos) {
      p.err(fmt::format("'{}': missing ']'", s));
      return Fail;
    }
    addrs = v.substr(1, close - 1);
    auto rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        p.err(fmt::format("'{}': expected ':port' after ']'", s));
        return Fail;
      }
      ports = rest.substr(1);
    }
  } else if (p.fam == Family::V4) {
    auto colon = v.find(':');
    addrs = v.substr(0, colon);
    if (colon != std::string_view::npos) ports = v.substr(colon + 1);
  } else {
    addrs = v;
  }
  if (!addrs.empty()) {
    auto dash = addrs.find('-');
    auto a = p.addr(std::string(addrs.substr(0, dash)));
    if (!a) return Fail;
    auto b = dash == std::string_view::npos ? a : p.addr(std::string(addrs.substr(dash + 1)));
    if (!b) return Fail;
    if (*b < *a) {
      p.err(fmt::format("'{}': address range ends before it starts", s));
      return Fail;
    }
    t.addr_set = true;
    t.min = *a;
    t.max = *b;
  }
  if (!ports.empty() || (v.find(':') != std::string_view::npos && p.fam == Family::V4)) {
    auto r = p.ports(std::string(ports), '-');
    if (!r) return Fail;
    t.port_set = true;
    t.ports = *r;
  }
  if (!t.addr_set && !t.port_set) {
    p.err(fmt::format("'{}' names neither an address nor a port", s));
    return Fail;
  }
  return Ok;
}

Res topt(NatTarget& t, std::string_view o, bool, P& p) {
  using K = NatTarget::Kind;
  if ((o == "--to-destination" && t.kind == K::Dnat) || (o == "--to-source" && t.kind == K::Snat)) {
    if (t.addr_set || t.port_set) {
      p.err(fmt::format("{}: only one {} is supported", t.kind == K::Dnat ? "DNAT" : "SNAT", o));
      return Fail;
    }
    auto s = p.arg();
    if (!s) return Fail;
    return nat_range(t, *s, p);
  }
  if (o == "--to-ports" && (t.kind == K::Masquerade || t.kind == K::Redirect)) {
    auto s = p.arg();
    if (!s) return Fail;
    auto r = p.ports(*s, '-');
    if (!r) return Fail;
    t.port_set = true;
    t.ports = *r;
    return Ok;
  }
  if (o == "--random") {
    t.random = true;
    return Ok;
  }
  if (o == "--random-fully" && t.kind != K::Redirect) {
    t.random_fully = true;
    return Ok;
  }
  if (o == "--persistent" && (t.kind == K::Dnat || t.kind == K::Snat)) {
    t.persistent = true;
    return Ok;
  }
  return Unknown;
}

Res topt(RejectTarget& t, std::string_view o, bool, P& p) {
  if (o != "--reject-with") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  auto v = names::reject_with(*s, p.fam);
  if (!v) {
    p.err(fmt::format("unknown reject type '{}'", *s));
    return Fail;
  }
  t.with = *v;
  return Ok;
}

Res topt(MarkTarget& t, std::string_view o, bool, P& p) {
  bool xmark = o == "--set-xmark" || o == "--set-mark";
  if (!xmark && o != "--and-mark" && o != "--or-mark" && o != "--xor-mark") return Unknown;
  if (t.given) {
    p.err("MARK: only one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark may be given");
    return Fail;
  }
  auto s = p.arg();
  if (!s) return Fail;
  uint32_t v = 0, m = 0;
  if (xmark) {
    if (!p.value_mask(*s, v, m, 0xffffffff)) return Fail;
    // libxt_MARK: --set-mark V/M is stored as xmark V/(M|V), i.e. (mark & ~M) | V.
    t.value = v;
    t.mask = o == "--set-mark" ? (m | v) : m;
  } else {
    auto x = parse_uint(*s, 0xffffffff, true);
    if (!x) {
      p.err(fmt::format("'{}' is not a 32-bit number", *s));
      return Fail;
    }
    uint32_t b = uint32_t(*x);
    if (o == "--and-mark") t.value = 0, t.mask = ~b;
    else if (o == "--or-mark") t.value = b, t.mask = b;
    else t.value = b, t.mask = 0;
  }
  t.given = true;
  return Ok;
}

Res topt(ConnmarkTarget& t, std::string_view o, bool, P& p) {
  using M = ConnmarkTarget::Mode;
  if (o == "--set-xmark" || o == "--set-mark") {
    auto s = p.arg();
    if (!s) return Fail;
    uint32_t v, m;
    if (!p.value_mask(*s, v, m, 0xffffffff)) return Fail;
    t.mode = M::Set;
    t.value = v;
    t.mask = o == "--set-mark" ? (m | v) : m;
    t.given = true;
    return Ok;
  }
  if (o == "--and-mark" || o == "--or-mark" || o == "--xor-mark") {
    auto s = p.arg();
    if (!s) return Fail;
    auto x = parse_uint(*s, 0xffffffff, true);
    if (!x) {
      p.err(fmt::format("'{}' is not a 32-bit number", *s));
      return Fail;
    }
    uint32_t b = uint32_t(*x);
    t.mode = M::Set;
    if (o == "--and-mark") t.value = 0, t.mask = ~b;
    else if (o == "--or-mark") t.value = b, t.mask = b;
    else t.value = b, t.mask = 0;
    t.given = true;
    return Ok;
  }
  if (o == "--save-mark" || o == "--restore-mark") {
    t.mode = o == "--save-mark" ? M::Save : M::Restore;
    t.given = true;
    return Ok;
  }
  if (o == "--nfmask" || o == "--ctmask" || o == "--mask") {
    auto s = p.arg();
    if (!s) return Fail;
    auto x = parse_uint(*s, 0xffffffff, true);
    if (!x) {
      p.err(fmt::format("'{}' is not a 32-bit number", *s));
      return Fail;
    }
    if (o != "--ctmask") t.nfmask = uint32_t(*x);
    if (o != "--nfmask") t.ctmask = uint32_t(*x);
    return Ok;
  }
  return Unknown;
}

Res topt(LogTarget& t, std::string_view o, bool, P& p) {
  if (o == "--log-prefix") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->size() > 29) {
      p.err("LOG: --log-prefix may be at most 29 characters");
      return Fail;
    }
    t.prefix = *s;
    return Ok;
  }
  if (o == "--log-level") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = names::log_level(*s);
    if (!v) {
      p.err(fmt::format("LOG: bad --log-level '{}'", *s));
      return Fail;
    }
    t.level = *v;
    return Ok;
  }
  if (o == "--log-tcp-sequence") t.flags |= 1;
  else if (o == "--log-tcp-options") t.flags |= 2;
  else if (o == "--log-ip-options") t.flags |= 4;
  else if (o == "--log-uid") t.flags |= 8;
  else if (o == "--log-macdecode") t.flags |= 16;
  else return Unknown;
  return Ok;
}

Res topt(NflogTarget& t, std::string_view o, bool, P& p) {
  if (o == "--nflog-prefix") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->size() > 63) {
      p.err("NFLOG: --nflog-prefix may be at most 63 characters");
      return Fail;
    }
    t.prefix = *s;
    return Ok;
  }
  if (o == "--nflog-group" || o == "--nflog-range" || o == "--nflog-size" || o == "--nflog-threshold") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, o == "--nflog-group" || o == "--nflog-threshold" ? 65535 : 0xffffffff, "NFLOG value", false);
    if (!v) return Fail;
    if (o == "--nflog-group") t.group = uint16_t(*v);
    else if (o == "--nflog-range") t.range = uint32_t(*v);
    else if (o == "--nflog-size") t.size = uint32_t(*v), t.size_set = true;
    else t.threshold = uint16_t(*v);
    return Ok;
  }
  return Unknown;
}

Res topt(CtTarget& t, std::string_view o, bool, P& p) {
  if (o == "--notrack") {
    t.notrack = true;
    return Ok;
  }
  if (o == "--zone") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 65535, "CT zone", false);
    if (!v) return Fail;
    t.zone = uint16_t(*v);
    t.zone_set = true;
    return Ok;
  }
  if (o == "--helper") {
    auto s = p.arg();
    if (!s) return Fail;
    t.helper = *s;
    return Ok;
  }
  return Unknown;
}

Res topt(TcpmssTarget& t, std::string_view o, bool, P& p) {
  if (o == "--clamp-mss-to-pmtu") {
    t.clamp = true;
    return Ok;
  }
  if (o == "--set-mss") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 65535, "MSS", false);
    if (!v) return Fail;
    t.mss = uint16_t(*v);
    return Ok;
  }
  return Unknown;
}

Res topt(TproxyTarget& t, std::string_view o, bool, P& p) {
  if (o == "--on-port") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 65535, "TPROXY port", false);
    if (!v) return Fail;
    t.port = uint16_t(*v);
    return Ok;
  }
  if (o == "--on-ip") {
    auto s = p.arg();
    if (!s) return Fail;
    auto a = p.addr(*s);
    if (!a) return Fail;
    t.ip = *a;
    t.ip_set = true;
    return Ok;
  }
  if (o == "--tproxy-mark") {
    auto s = p.arg();
    if (!s) return Fail;
    if (!p.value_mask(*s, t.mark, t.mask, 0xffffffff)) return Fail;
    t.mark_set = true;
    return Ok;
  }
  return Unknown;
}

Res topt(NfqueueTarget& t, std::string_view o, bool, P& p) {
  if (o == "--queue-num") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 65535, "queue number", false);
    if (!v) return Fail;
    t.num = uint16_t(*v);
    return Ok;
  }
  if (o == "--queue-balance") {
    auto s = p.arg();
    if (!s) return Fail;
    auto r = p.ports(*s, ':');
    if (!r || r->single()) {
      if (r) p.err("NFQUEUE: --queue-balance needs a range lo:hi");
      return Fail;
    }
    t.balance = true;
    t.num = r->lo;
    t.balance_hi = r->hi;
    return Ok;
  }
  if (o == "--queue-bypass" || o == "--fail-open") {
    t.bypass = true;
    return Ok;
  }
  if (o == "--queue-cpu-fanout") {
    t.cpu_fanout = true;
    return Ok;
  }
  return Unknown;
}

Res topt(ChecksumTarget&, std::string_view o, bool, P&) { return o == "--checksum-fill" ? Ok : Unknown; }

template <class T>
Res topt(T&, std::string_view, bool, P&) {
  return Unknown;
}

std::optional<Target> new_target(std::string_view name) {
  if (name == "ACCEPT") return StandardTarget{StdVerdict::Accept};
  if (name == "DROP") return StandardTarget{StdVerdict::Drop};
  if (name == "RETURN") return StandardTarget{StdVerdict::Return};
  if (name == "QUEUE") return StandardTarget{StdVerdict::Queue};
  if (name == "REJECT") return RejectTarget{};
  if (name == "DNAT") return NatTarget{NatTarget::Kind::Dnat};
  if (name == "SNAT") return NatTarget{NatTarget::Kind::Snat};
  if (name == "MASQUERADE") return NatTarget{NatTarget::Kind::Masquerade};
  if (name == "REDIRECT") return NatTarget{NatTarget::Kind::Redirect};
  if (name == "MARK") return MarkTarget{};
  if (name == "CONNMARK") return ConnmarkTarget{};
  if (name == "LOG") return LogTarget{};
  if (name == "NFLOG") return NflogTarget{};
  if (name == "TRACE") return TraceTarget{};
  if (name == "NOTRACK") return NotrackTarget{};
  if (name == "CT") return CtTarget{};
  if (name == "TCPMSS") return TcpmssTarget{};
  if (name == "TPROXY") return TproxyTarget{};
  if (name == "NFQUEUE") return NfqueueTarget{};
  if (name == "CHECKSUM") return ChecksumTarget{};
  return std::nullopt;
}

bool looks_like_target(std::string_view name) {
  // iptables treats an all-caps unknown name as a target extension that failed to load.
  if (name.empty()) return false;
  for (char c : name)
    if (!(std::isupper(uint8_t(c)) || c == '_' || std::isdigit(uint8_t(c)))) return false;
  return true;
}

bool valid_chain_name(std::string_view n, std::string& why) {
  if (n.empty()) return why = "empty chain name", false;
  if (n.size() > 28) return why = fmt::format("chain name '{}' is longer than 28 characters", n), false;
  if (n[0] == '-' || n[0] == '!') return why = fmt::format("chain name '{}' may not start with '-' or '!'", n), false;
  if (new_target(n)) return why = fmt::format("'{}' is a target name, not a chain", n), false;
  for (char c : n)
    if (std::isspace(uint8_t(c))) return why = fmt::format("chain name '{}' contains white space", n), false;
  return true;
}

// ------------------------------------------------------------------------------ rule parsing
// Parses the rule part of a command (tokens from p.i on) into r. Returns false on error.
bool parse_rule_spec(P& p, Rule& r) {
  p.rule = &r;
  bool inv = false;
  size_t inv_at = 0;
  bool have_target = false;
  bool implicit_loaded = false;
  const auto& t = p.t;
  auto take_inv = [&]() {
    bool v = inv;
    inv = false;
    return v;
  };
  for (; p.i < t.size(); ++p.i) {
    const std::string& o = t[p.i].s;
    if (o == "!") {
      if (inv) {
        p.err("multiple `!' flags not allowed");
        return false;
      }
      inv = true;
      inv_at = p.i;
      continue;
    }
    if (o == "-s" || o == "--source" || o == "--src" || o == "-d" || o == "--destination" || o == "--dst") {
      bool src = o[1] == 's' || o == "--source" || o == "--src";
      bool iv = take_inv();
      auto a = p.arg();
      if (!a) return false;
      if (*a == "!") {
        p.err("using intrapositioned negation (`--option ! this`) is not supported; write `! --option this`");
        return false;
      }
      auto pf = p.prefix(*a);
      if (!pf) return false;
      (src ? r.src : r.dst) = *pf;
      (src ? r.src_set : r.dst_set) = true;
      (src ? r.src_inv : r.dst_inv) = iv;
      continue;
    }
    if (o == "-p" || o == "--protocol") {
      bool iv = take_inv();
      auto a = p.arg();
      if (!a) return false;
      std::string lower = *a;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      auto pr = proto::parse(lower);
      if (!pr) {
        p.err(fmt::format("unknown protocol '{}'", *a));
        return false;
      }
      if (p.fam == Family::V6 && *pr == proto::ICMP) {
        p.err("protocol 'icmp' in an IPv6 ruleset; use ipv6-icmp");
        return false;
      }
      r.proto = *pr;
      r.proto_set = *pr != 0 || iv;
      r.proto_inv = iv;
      continue;
    }
    if (o == "-i" || o == "--in-interface" || o == "-o" || o == "--out-interface") {
      bool in = o == "-i" || o == "--in-interface";
      bool iv = take_inv();
      auto a = p.arg();
      if (!a || !iface(*a, in ? r.iif : r.oif, iv, p)) return false;
      continue;
    }
    if (o == "-f" || o == "--fragment") {
      if (p.fam == Family::V6) {
        p.err("-f is not available in ip6tables; use -m frag");
        return false;
      }
      r.frag_set = true;
      r.frag_inv = take_inv();
      continue;
    }
    if (o == "-m" || o == "--match") {
      if (inv) {
        p.err(inv_at, "`!' cannot be used before -m");
        return false;
      }
      auto a = p.arg();
      if (!a) return false;
      auto m = new_match(*a, p.fam);
      if (!m) {
        p.err(fmt::format("unsupported match '{}'", *a));
        return false;
      }
      r.matches.push_back(std::move(*m));
      continue;
    }
    if (o == "-j" || o == "--jump" || o == "-g" || o == "--goto") {
      if (inv) {
        p.err(inv_at, "`!' cannot be used before -j");
        return false;
      }
      if (have_target) {
        p.err("multiple -j/-g options");
        return false;
      }
      auto a = p.arg();
      if (!a) return false;
      have_target = true;
      bool go = o == "-g" || o == "--goto";
      auto tg = go ? std::nullopt : new_target(*a);
      if (tg) {
        r.target = std::move(*tg);
      } else {
        std::string why;
        if (go && new_target(*a)) {
          p.err(fmt::format("-g needs a user chain, not the target '{}'", *a));
          return false;
        }
        if (!valid_chain_name(*a, why)) {
          p.err(why);
          return false;
        }
        r.target = JumpTarget{*a, -1, go};
      }
      continue;
    }
    if (o == "-c" || o == "--set-counters") {
      auto a = p.arg();
      if (!a) return false;
      auto b = p.arg();
      if (!b) return false;
      auto pk = parse_uint(*a, UINT64_MAX), by = parse_uint(*b, UINT64_MAX);
      if (!pk || !by) {
        p.err("-c needs two numbers: packets bytes");
        return false;
      }
      r.pkts = *pk;
      r.bytes = *by;
      continue;
    }
    if (o.size() > 2 && o[0] == '-' && o[1] == '-') {
      bool iv = take_inv();
      size_t at = p.i;
      Res res = Unknown;
      if (have_target) res = std::visit([&](auto& tg) { return topt(tg, o, iv, p); }, r.target);
      for (size_t k = r.matches.size(); res == Unknown && k-- > 0;)
        res = std::visit([&](auto& m) { return opt(m, o, iv, p); }, r.matches[k]);
      if (res == Unknown && !implicit_loaded && r.proto_set && !r.proto_inv) {
        // iptables loads the protocol's match on demand ("-p tcp --dport 80").
        std::optional<Match> m;
        if (r.proto == proto::TCP) m = TcpMatch{};
        else if (r.proto == proto::UDP || r.proto == proto::UDPLITE) m = UdpMatch{};
        else if (r.proto == proto::SCTP) m = SctpMatch{};
        else if (r.proto == proto::ICMP && p.fam == Family::V4) m = IcmpMatch{};
        else if (r.proto == proto::ICMPV6 && p.fam == Family::V6) {
          IcmpMatch im;
          im.v6 = true;
          m = im;
        }
        if (m) {
          implicit_loaded = true;
          res = std::visit([&](auto& mm) { return opt(mm, o, iv, p); }, *m);
          if (res != Unknown) r.matches.push_back(std::move(*m));
        }
      }
      if (res == Fail) return false;
      if (res == Unknown) {
        p.err(at, fmt::format("unknown option '{}'", o));
        return false;
      }
      continue;
    }
    p.err(fmt::format("unexpected argument '{}'", o));
    return false;
  }
  if (inv) {
    p.err(inv_at, "`!' at the end of the rule negates nothing");
    return false;
  }
  for (auto& m : r.matches) finish(m, p, p.t.size() - 1);
  if (p.bad) return false;
  // Protocol checks the kernel makes at load (xt_check_match / target checkentry).
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
  if (auto* n = std::get_if<NatTarget>(&r.target)) {
    if (n->port_set && (!r.proto_set || r.proto_inv || !proto::has_ports(r.proto))) {
      p.err("Need TCP, UDP, SCTP or DCCP with port specification");
      return false;
    }
    if ((n->kind == NatTarget::Kind::Dnat || n->kind == NatTarget::Kind::Snat) && !n->addr_set && !n->port_set) {
      p.err(fmt::format("{} needs {}", target_name(r.target),
                        n->kind == NatTarget::Kind::Dnat ? "--to-destination" : "--to-source"));
      return false;
    }
  }
  if (auto* rj = std::get_if<RejectTarget>(&r.target)) {
    if (rj->with.empty()) rj->with = p.fam == Family::V4 ? "icmp-port-unreachable" : "icmp6-port-unreachable";
    if (rj->with == "tcp-reset" && (r.proto != proto::TCP || r.proto_inv)) {
      p.err("REJECT --reject-with tcp-reset is only valid with -p tcp");
      return false;
    }
  }
  if (std::holds_alternative<TcpmssTarget>(r.target)) {
    auto& tm = std::get<TcpmssTarget>(r.target);
    if (r.proto != proto::TCP || r.proto_inv) {
      p.err("TCPMSS is only valid with -p tcp");
      return false;
    }
    if (!tm.clamp && tm.mss == 0) {
      p.err("TCPMSS needs --set-mss or --clamp-mss-to-pmtu");
      return false;
    }
  }
  if (auto* mk = std::get_if<MarkTarget>(&r.target); mk && !mk->given) {
    p.err("MARK target: one of --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark is required");
    return false;
  }
  if (auto* cm = std::get_if<ConnmarkTarget>(&r.target); cm && !cm->given) {
    p.err("CONNMARK target: no operation specified");
    return false;
  }
  if (auto* tp = std::get_if<TproxyTarget>(&r.target); tp && tp->port == 0) {
    p.err("TPROXY needs --on-port");
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------ the loader
struct WorkTable {
  Table t;
  int opened_at = 0;
  std::map<std::string, int, std::less<>> declared;  // chain -> line declared in this block
};

class Loader {
 public:
  Loader(const std::string& file, Ruleset& rs, const RestoreOptions& opt) : d_(file), rs_(rs), opt_(opt), fam_(rs.family) {}

  void run(std::string_view text) {
    int lineno = 0;
    size_t pos = 0;
    while (pos <= text.size() && !d_.full()) {
      size_t nl = text.find('\n', pos);
      std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      ++lineno;
      line_(lineno, line);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    if (cur_) d_.error(cur_->opened_at, 0, fmt::format("table '{}' opened here has no COMMIT", table_name(cur_->t.id)));
    d_.throw_if_errors();
    // Install atomically: only when the whole input was good.
    for (auto& wt : done_) {
      if (Table* old = rs_.table(wt.id)) *old = std::move(wt);
      else rs_.tables.push_back(std::move(wt));
    }
    finalize(rs_);
  }

  static void finalize(Ruleset& rs) {
    uint32_t id = 0, slot = 0;
    for (auto& t : rs.tables)
      for (auto& c : t.chains) {
        index_chain(c);
        for (auto& r : c.rules) {
          r.id = id++;
          for (auto& m : r.matches) {
            if (auto* s = std::get_if<StatisticMatch>(&m)) s->slot = slot++;
            else if (auto* l = std::get_if<LimitMatch>(&m)) l->slot = slot++;
          }
        }
      }
    rs.rule_count = id;
    rs.stat_slots = slot;
  }

 private:
  void line_(int ln, std::string_view line) {
    if (line.size() > opt_.max_line) {
      d_.error(ln, 0, fmt::format("line is {} bytes long; the limit is {}", line.size(), opt_.max_line));
      return;
    }
    std::vector<Word> toks;
    if (auto e = split_words(line, toks)) {
      d_.error(ln, e->col, e->what);
      return;
    }
    if (toks.empty() || toks[0].s[0] == '#') return;
    const std::string& first = toks[0].s;
    if (first[0] == '*') {
      if (cur_) {
        d_.error(ln, 1,
                 fmt::format("'{}' starts a table before table '{}' (line {}) was COMMITted", first, table_name(cur_->t.id),
                             cur_->opened_at));
        return;
      }
      auto id = parse_table(std::string_view(first).substr(1));
      if (!id) {
        d_.error(ln, 2, fmt::format("unknown table '{}' (raw, mangle, nat, filter, security)", first.substr(1)));
        return;
      }
      if (toks.size() > 1) d_.error(ln, toks[1].col, "unexpected text after the table name");
      cur_.emplace();
      cur_->opened_at = ln;
      const Table* existing = nullptr;
      for (auto& dt : done_)
        if (dt.id == *id) existing = &dt;
      if (!existing) existing = rs_.table(*id);
      if (opt_.noflush && existing) cur_->t = *existing;
      else cur_->t = Table{};
      cur_->t.id = *id;
      cur_->t.line = ln;
      reindex();
      return;
    }
    if (!cur_) {
      d_.error(ln, 1, fmt::format("'{}' outside a table: the input must start with *table", first));
      return;
    }
    if (first == "COMMIT") {
      if (toks.size() > 1) d_.error(ln, toks[1].col, "unexpected text after COMMIT");
      commit(ln);
      return;
    }
    if (first[0] == ':') {
      declare(ln, toks);
      return;
    }
    size_t start = 0;
    uint64_t pk = 0, by = 0;
    bool counters = false;
    if (first[0] == '[') {
      // "[packets:bytes] -A ..." as iptables-save -c prints.
      auto c = parse_counters(first);
      if (!c) {
        d_.error(ln, 1, fmt::format("bad counters '{}' (expected [packets:bytes])", first));
        return;
      }
      pk = c->first;
      by = c->second;
      counters = true;
      start = 1;
    }
    command(ln, toks, start, counters, pk, by);
  }

  static std::optional<std::pair<uint64_t, uint64_t>> parse_counters(std::string_view s) {
    if (s.size() < 5 || s.front() != '[' || s.back() != ']') return std::nullopt;
    s = s.substr(1, s.size() - 2);
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto a = parse_uint(s.substr(0, colon), UINT64_MAX), b = parse_uint(s.substr(colon + 1), UINT64_MAX);
    if (!a || !b) return std::nullopt;
    return std::make_pair(*a, *b);
  }

  // Chain lookup by name goes through an index: dumps have 100k+ chains (kube-proxy at scale).
  int find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? -1 : it->second;
  }
  Chain* chain(std::string_view name) {
    int k = find(name);
    return k < 0 ? nullptr : &cur_->t.chains[size_t(k)];
  }
  void reindex() {
    index_.clear();
    for (size_t i = 0; i < cur_->t.chains.size(); ++i) index_.emplace(cur_->t.chains[i].name, int(i));
  }

  // Built-in chains spring into existence when referenced, as they do in the kernel table.
  Chain* chain_or_builtin(std::string_view name) {
    if (Chain* c = chain(name)) return c;
    auto h = parse_builtin_chain(name);
    if (!h || !(table_hooks(cur_->t.id) & hook_bit(*h))) return nullptr;
    return add_builtin(*h, Policy::Accept, 0);
  }

  Chain* add_builtin(Hook h, Policy pol, int ln) {
    Chain c;
    c.name = std::string(hook_name(h));
    c.builtin = true;
    c.hook = h;
    c.policy = pol;
    c.line = ln;
    // Keep built-in chains first, in hook order, as the kernel blob and iptables-save do.
    auto& chains = cur_->t.chains;
    size_t at = 0;
    while (at < chains.size() && chains[at].builtin && int(chains[at].hook) < int(h)) ++at;
    chains.insert(chains.begin() + long(at), std::move(c));
    reindex();
    return &chains[at];
  }

  void declare(int ln, const std::vector<Word>& toks) {
    std::string name = toks[0].s.substr(1);
    if (toks.size() < 2) {
      d_.error(ln, 1, fmt::format("chain declaration ':{}' needs a policy ('-' for user chains)", name));
      return;
    }
    const std::string& pol = toks[1].s;
    std::string why;
    if (auto it = cur_->declared.find(name); it != cur_->declared.end()) {
      d_.error(ln, 2, fmt::format("chain '{}' is declared twice; previously declared at line {}", name, it->second));
      d_.error(it->second, 2, fmt::format("note: chain '{}' previously declared here", name));
      return;
    }
    cur_->declared.emplace(name, ln);
    uint64_t pk = 0, by = 0;
    if (toks.size() > 2) {
      auto c = parse_counters(toks[2].s);
      if (!c) {
        d_.error(ln, toks[2].col, fmt::format("bad counters '{}' (expected [packets:bytes])", toks[2].s));
        return;
      }
      pk = c->first;
      by = c->second;
    }
    if (toks.size() > 3) d_.error(ln, toks[3].col, "unexpected text after the chain counters");
    auto h = parse_builtin_chain(name);
    if (h && (table_hooks(cur_->t.id) & hook_bit(*h))) {
      Policy p = pol == "ACCEPT" ? Policy::Accept : pol == "DROP" ? Policy::Drop : Policy::None;
      if (p == Policy::None) {
        d_.error(ln, toks[1].col, fmt::format("built-in chain {} needs policy ACCEPT or DROP, not '{}'", name, pol));
        return;
      }
      Chain* c = chain(name);
      if (!c) c = add_builtin(*h, p, ln);
      c->policy = p;
      c->line = ln;
      c->pkts = opt_.counters ? pk : 0;
      c->bytes = opt_.counters ? by : 0;
      return;
    }
    if (pol != "-") {
      d_.error(ln, toks[1].col, fmt::format("user chain '{}' cannot have a policy ('{}'); write '-'", name, pol));
      return;
    }
    if (!valid_chain_name(name, why)) {
      d_.error(ln, 2, why);
      return;
    }
    if (Chain* c = chain(name)) {
      c->rules.clear();  // declaring an existing chain flushes it (--noflush)
      c->line = ln;
      return;
    }
    Chain c;
    c.name = name;
    c.line = ln;
    index_.emplace(name, int(cur_->t.chains.size()));
    cur_->t.chains.push_back(std::move(c));
  }

  void command(int ln, const std::vector<Word>& toks, size_t k, bool counters, uint64_t pk, uint64_t by) {
    if (k >= toks.size()) {
      d_.error(ln, 1, "counters with no command after them");
      return;
    }
    std::string cmd = toks[k].s;
    auto need_chain = [&](size_t at) -> Chain* {
      if (at >= toks.size()) {
        d_.error(ln, toks[k].col, fmt::format("{} needs a chain name", cmd));
        return nullptr;
      }
      Chain* c = chain_or_builtin(toks[at].s);
      if (!c)
        d_.error(ln, toks[at].col, fmt::format("chain '{}' does not exist in table '{}'", toks[at].s, table_name(cur_->t.id)));
      return c;
    };
    auto parse_rule = [&](size_t from, Rule& r) {
      P p{d_, fam_, ln, toks};
      p.i = from;
      r.line = ln;
      if (!parse_rule_spec(p, r)) return false;
      if (counters) r.pkts = pk, r.bytes = by;
      if (!opt_.counters) r.pkts = r.bytes = 0;
      return true;
    };
    if (cmd == "-A" || cmd == "--append" || cmd == "-I" || cmd == "--insert" || cmd == "-R" || cmd == "--replace") {
      Chain* c = need_chain(k + 1);
      if (!c) return;
      size_t from = k + 2;
      long pos = -1;
      if (cmd != "-A" && cmd != "--append" && from < toks.size()) {
        if (auto n = parse_uint(toks[from].s, 1u << 30)) {
          pos = long(*n);
          ++from;
        } else if (cmd == "-R" || cmd == "--replace") {
          d_.error(ln, toks[from].col, "-R needs a rule number");
          return;
        }
      }
      std::string cname = c->name;  // c may move while parsing adds chains
      Rule r;
      if (!parse_rule(from, r)) return;
      if (++rules_ > opt_.max_rules) {
        d_.error(ln, 1, fmt::format("more than {} rules", opt_.max_rules));
        return;
      }
      c = chain(cname);
      if (cmd == "-A" || cmd == "--append") c->rules.push_back(std::move(r));
      else if (cmd == "-I" || cmd == "--insert") {
        size_t at = pos < 0 ? 0 : size_t(pos - 1);
        if (pos == 0 || at > c->rules.size()) {
          d_.error(ln, toks[k + 2].col, fmt::format("index of insertion too big (chain has {} rules)", c->rules.size()));
          return;
        }
        c->rules.insert(c->rules.begin() + long(at), std::move(r));
      } else {
        if (pos < 1 || size_t(pos) > c->rules.size()) {
          d_.error(ln, toks[k + 2].col, fmt::format("index of replacement too big (chain has {} rules)", c->rules.size()));
          return;
        }
        c->rules[size_t(pos - 1)] = std::move(r);
      }
      return;
    }
    if (cmd == "-D" || cmd == "--delete") {
      Chain* c = need_chain(k + 1);
      if (!c) return;
      if (k + 2 < toks.size()) {
        if (auto n = parse_uint(toks[k + 2].s, 1u << 30); n && k + 3 == toks.size()) {
          if (*n < 1 || *n > c->rules.size()) {
            d_.error(ln, toks[k + 2].col, fmt::format("index of deletion too big (chain has {} rules)", c->rules.size()));
            return;
          }
          c->rules.erase(c->rules.begin() + long(*n - 1));
          return;
        }
      }
      std::string cname = c->name;
      Rule r;
      if (!parse_rule(k + 2, r)) return;
      c = chain(cname);
      std::string want = rule_text(*c, r, fam_);
      for (auto it = c->rules.begin(); it != c->rules.end(); ++it)
        if (rule_text(*c, *it, fam_) == want) {
          c->rules.erase(it);
          return;
        }
      d_.error(ln, toks[k].col, "bad rule (does a matching rule exist in that chain?)");
      return;
    }
    if (cmd == "-N" || cmd == "--new-chain") {
      if (k + 1 >= toks.size()) {
        d_.error(ln, toks[k].col, "-N needs a chain name");
        return;
      }
      std::string why;
      if (!valid_chain_name(toks[k + 1].s, why) || parse_builtin_chain(toks[k + 1].s)) {
        d_.error(ln, toks[k + 1].col, why.empty() ? "cannot create a chain with a built-in name" : why);
        return;
      }
      if (chain(toks[k + 1].s)) {
        d_.error(ln, toks[k + 1].col, fmt::format("chain '{}' already exists", toks[k + 1].s));
        return;
      }
      Chain c;
      c.name = toks[k + 1].s;
      c.line = ln;
      index_.emplace(c.name, int(cur_->t.chains.size()));
      cur_->t.chains.push_back(std::move(c));
      return;
    }
    if (cmd == "-F" || cmd == "--flush") {
      if (k + 1 >= toks.size()) {
        for (auto& c : cur_->t.chains) c.rules.clear();
        return;
      }
      if (Chain* c = need_chain(k + 1)) c->rules.clear();
      return;
    }
    if (cmd == "-X" || cmd == "--delete-chain") {
      auto& chains = cur_->t.chains;
      auto referenced = [&](std::string_view n) {
        for (auto& c : chains)
          for (auto& r : c.rules)
            if (auto* j = std::get_if<JumpTarget>(&r.target); j && j->chain == n) return true;
        return false;
      };
      if (k + 1 >= toks.size()) {
        std::erase_if(chains, [&](const Chain& c) { return !c.builtin && c.rules.empty() && !referenced(c.name); });
        reindex();
        return;
      }
      int idx = find(toks[k + 1].s);
      if (idx < 0) {
        d_.error(ln, toks[k + 1].col, fmt::format("chain '{}' does not exist", toks[k + 1].s));
        return;
      }
      const Chain& c = chains[size_t(idx)];
      if (c.builtin) d_.error(ln, toks[k + 1].col, "cannot delete a built-in chain");
      else if (!c.rules.empty()) d_.error(ln, toks[k + 1].col, fmt::format("chain '{}' is not empty", c.name));
      else if (referenced(c.name)) d_.error(ln, toks[k + 1].col, fmt::format("chain '{}' is still referenced", c.name));
      else {
        chains.erase(chains.begin() + idx);
        reindex();
      }
      return;
    }
    if (cmd == "-P" || cmd == "--policy") {
      Chain* c = need_chain(k + 1);
      if (!c) return;
      if (!c->builtin || k + 2 >= toks.size() || (toks[k + 2].s != "ACCEPT" && toks[k + 2].s != "DROP")) {
        d_.error(ln, toks[k].col, "-P needs a built-in chain and ACCEPT or DROP");
        return;
      }
      c->policy = toks[k + 2].s == "ACCEPT" ? Policy::Accept : Policy::Drop;
      return;
    }
    if (cmd == "-E" || cmd == "--rename-chain") {
      if (k + 2 >= toks.size()) {
        d_.error(ln, toks[k].col, "-E needs the old and the new chain name");
        return;
      }
      Chain* c = chain(toks[k + 1].s);
      std::string why;
      if (!c || c->builtin) d_.error(ln, toks[k + 1].col, fmt::format("no user chain '{}'", toks[k + 1].s));
      else if (!valid_chain_name(toks[k + 2].s, why)) d_.error(ln, toks[k + 2].col, why);
      else {
        std::string old = c->name;
        c->name = toks[k + 2].s;
        int at = find(old);
        index_.erase(index_.find(old));
        index_.emplace(c->name, at);
        for (auto& ch : cur_->t.chains)
          for (auto& r : ch.rules)
            if (auto* j = std::get_if<JumpTarget>(&r.target); j && j->chain == old) j->chain = c->name;
      }
      return;
    }
    if (cmd == "-Z" || cmd == "--zero") return;
    d_.error(ln, toks[k].col,
             fmt::format("unknown command '{}' (expected -A, -I, -D, -R, -N, -X, -F, -P, -E, :CHAIN or COMMIT)", cmd));
  }

  // Resolves jumps, walks the chains from each hook (rejecting loops as mark_source_chains does) and
  // checks each target against the hooks it can be reached from.
  void commit(int ln) {
    Table& t = cur_->t;
    bool ok = true;
    // iptables-restore (legacy and nft alike) creates every built-in chain of the table.
    for (int h = 0; h < kNumHooks; ++h)
      if ((table_hooks(t.id) & hook_bit(Hook(h))) && find(hook_name(Hook(h))) < 0) add_builtin(Hook(h), Policy::Accept, ln);
    for (auto& c : t.chains) {
      c.reach = 0;
      for (auto& r : c.rules)
        if (auto* j = std::get_if<JumpTarget>(&r.target)) {
          j->index = find(j->chain);
          if (j->index < 0) {
            if (looks_like_target(j->chain) && !j->go)
              d_.error(
                  r.line, 0,
                  fmt::format("unsupported target '{}' (and no chain of that name in table '{}')", j->chain, table_name(t.id)));
            else
              d_.error(r.line, 0,
                       fmt::format("jump to chain '{}', which does not exist in table '{}'", j->chain, table_name(t.id)));
            ok = false;
          } else if (t.chains[size_t(j->index)].builtin) {
            d_.error(r.line, 0, fmt::format("cannot jump to built-in chain '{}'", j->chain));
            ok = false;
          }
        }
    }
    for (int h = 0; h < kNumHooks; ++h) t.builtin[h] = -1;
    for (size_t i = 0; i < t.chains.size(); ++i)
      if (t.chains[i].builtin) t.builtin[int(t.chains[i].hook)] = int(i);
    if (ok) {
      uint32_t depth = 0;
      for (int h = 0; h < kNumHooks && ok; ++h)
        if (t.builtin[h] >= 0) ok = walk(t, t.builtin[h], hook_bit(Hook(h)), 0, depth);
      rs_.max_depth = std::max(rs_.max_depth, depth);
      if (ok && depth > kMaxJumpDepth) {
        d_.error(t.line, 0,
                 fmt::format("table '{}' nests user-chain jumps {} deep; svcpath supports at most {}", table_name(t.id), depth,
                             kMaxJumpDepth));
        ok = false;
      }
    }
    if (ok) check_targets(t);
    seen_depth_.clear();
    done_.push_back(std::move(t));
    cur_.reset();
    (void)ln;
  }

  // from_line: the rule that jumped here, which is where a loop closes.
  bool walk(Table& t, int ci, uint8_t hbit, uint32_t depth, uint32_t& maxd, int from_line = 0) {
    Chain& c = t.chains[size_t(ci)];
    if (std::find(stack_.begin(), stack_.end(), ci) != stack_.end()) {
      std::string path;
      bool on = false;
      for (int s : stack_) {
        if (s == ci) on = true;
        if (on) path += t.chains[size_t(s)].name + " -> ";
      }
      path += c.name;
      d_.error(from_line ? from_line : c.line, 0, fmt::format("jump loop: {} (the kernel rejects this table with ELOOP)", path));
      return false;
    }
    if (seen_depth_.size() < t.chains.size()) seen_depth_.resize(t.chains.size(), 0);
    if ((c.reach & hbit) && depth <= seen_depth_[size_t(ci)]) return true;
    c.reach |= hbit;
    seen_depth_[size_t(ci)] = std::max(seen_depth_[size_t(ci)], depth);
    maxd = std::max(maxd, depth);
    stack_.push_back(ci);
    for (auto& r : c.rules)
      if (auto* j = std::get_if<JumpTarget>(&r.target)) {
        if (!walk(t, j->index, hbit, j->go ? depth : depth + 1, maxd, r.line)) {
          stack_.pop_back();
          return false;
        }
      }
    stack_.pop_back();
    return true;
  }

  void check_targets(const Table& t) {
    using enum Hook;
    for (auto& c : t.chains) {
      uint8_t reach = c.reach;
      for (auto& r : c.rules) {
        auto bad_hook = [&](std::string_view what, uint8_t allowed) {
          uint8_t badh = reach & uint8_t(~allowed);
          if (!badh) return;
          for (int h = 0; h < kNumHooks; ++h)
            if (badh & (1 << h)) {
              d_.error(r.line, 0,
                       fmt::format("{} is not valid in chain {} because it is reached from {}; the kernel allows it "
                                   "only from {}",
                                   what, c.name, hook_name(Hook(h)), hooks_str(allowed)));
              return;
            }
        };
        auto bad_table = [&](std::string_view what, TableId want) {
          if (t.id != want) d_.error(r.line, 0, fmt::format("{} is only valid in the {} table", what, table_name(want)));
        };
        if (auto* st = std::get_if<StandardTarget>(&r.target); st && st->v == StdVerdict::Drop && t.id == TableId::Nat)
          d_.error(r.line, 0, "The \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.");
        std::visit(
            [&](auto& tg) {
              using T = std::decay_t<decltype(tg)>;
              if constexpr (std::is_same_v<T, NatTarget>) {
                std::string n = target_name(r.target);
                bad_table(n, TableId::Nat);
                bool dst = tg.kind == NatTarget::Kind::Dnat || tg.kind == NatTarget::Kind::Redirect;
                if (dst) bad_hook(n, hook_bit(PreRouting) | hook_bit(LocalOut));
                else if (tg.kind == NatTarget::Kind::Snat) bad_hook(n, hook_bit(PostRouting) | hook_bit(LocalIn));
                else bad_hook(n, hook_bit(PostRouting));
              } else if constexpr (std::is_same_v<T, RejectTarget>) {
                bad_hook("REJECT", hook_bit(LocalIn) | hook_bit(Forward) | hook_bit(LocalOut));
              } else if constexpr (std::is_same_v<T, TproxyTarget>) {
                bad_table("TPROXY", TableId::Mangle);
                bad_hook("TPROXY", hook_bit(PreRouting));
              } else if constexpr (std::is_same_v<T, CtTarget> || std::is_same_v<T, NotrackTarget> ||
                                   std::is_same_v<T, TraceTarget>) {
                bad_table(target_name(r.target), TableId::Raw);
              } else if constexpr (std::is_same_v<T, ChecksumTarget>) {
                bad_table("CHECKSUM", TableId::Mangle);
              } else if constexpr (std::is_same_v<T, TcpmssTarget>) {
                if (tg.clamp)
                  bad_hook("TCPMSS --clamp-mss-to-pmtu", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
              }
            },
            r.target);
        for (auto& m : r.matches) {
          if (auto* a = std::get_if<AddrtypeMatch>(&m)) {
            if (a->limit_in) bad_hook("addrtype --limit-iface-in", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
            if (a->limit_out)
              bad_hook("addrtype --limit-iface-out", hook_bit(PostRouting) | hook_bit(LocalOut) | hook_bit(Forward));
          } else if (std::holds_alternative<RpfilterMatch>(m)) {
            if (t.id != TableId::Raw && t.id != TableId::Mangle)
              d_.error(r.line, 0, "rpfilter is only valid in the raw and mangle tables");
            bad_hook("rpfilter", hook_bit(PreRouting));
          } else if (std::holds_alternative<SocketMatch>(m)) {
            bad_hook("socket", hook_bit(PreRouting) | hook_bit(LocalIn));
          } else if (auto* pm = std::get_if<PolicyMatch>(&m)) {
            if (pm->dir_out) bad_hook("policy --dir out", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
            else bad_hook("policy --dir in", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
          }
        }
      }
    }
  }

  static std::string hooks_str(uint8_t m) {
    std::string s;
    for (int h = 0; h < kNumHooks; ++h)
      if (m & (1 << h)) {
        if (!s.empty()) s += ", ";
        s += hook_name(Hook(h));
      }
    return s;
  }

  Diagnostics d_;
  Ruleset& rs_;
  RestoreOptions opt_;
  Family fam_;
  std::optional<WorkTable> cur_;
  std::vector<Table> done_;
  std::vector<int> stack_;
  std::vector<uint32_t> seen_depth_;
  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, StrHash, std::equal_to<>> index_;
  size_t rules_ = 0;
};

}  // namespace

void load_restore(std::string_view text, const std::string& file, Ruleset& rs, const RestoreOptions& opt) {
  Loader(file, rs, opt).run(text);
}

Ruleset load_restore_file(const std::string& path, Family fam, const RestoreOptions& opt) {
  Ruleset rs;
  rs.family = fam;
  load_restore(read_input_file(path), path, rs, opt);
  return rs;
}

}  // namespace svcpath::nf
