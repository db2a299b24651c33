// iptables-restore's targets: one option parser per target (libxt_*'s parse), the table of
// targets -j names, and the checks each makes once the whole rule is known (checkentry).
#include <algorithm>
#include <cctype>
#include <iterator>

#include <fmt/format.h>

#include "netfilter/iptables/names.hpp"
#include "netfilter/iptables/parse.hpp"

namespace svcpath::nf::restore {
namespace {

Res nat_range(NatTarget& t, const std::string& s, ParseCtx& p) {
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

// NETMAP --to ADDR[/MASK]: the prefix stored as the range [network, last address].
Res netmap_to(NatTarget& t, const std::string& s, ParseCtx& p) {
  auto pf = p.prefix(s);
  if (!pf) return Fail;
  Addr m = Addr::netmask(pf->addr.fam, pf->len);
  t.addr_set = true;
  t.min = pf->addr;
  t.max = pf->addr;
  for (int i = 0; i < 16; ++i) t.max.b[size_t(i)] |= uint8_t(~m.b[size_t(i)]);
  if (t.max.is_v4())
    for (int i = 4; i < 16; ++i) t.max.b[size_t(i)] = 0;
  return Ok;
}

Res topt(NatTarget& t, std::string_view o, bool, ParseCtx& p) {
  using K = NatTarget::Kind;
  if (t.kind == K::Netmap) {
    if (o != "--to") return Unknown;
    if (t.addr_set) {
      p.err("NETMAP: --to may be given once");
      return Fail;
    }
    auto s = p.arg();
    if (!s) return Fail;
    return netmap_to(t, *s, p);
  }
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

Res topt(RejectTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(MarkTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(ConnmarkTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(LogTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(NflogTarget& t, std::string_view o, bool, ParseCtx& p) {
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

// libxt_CT's event names, in the order its save prints them (the IPCT_* / IPEXP_* bit order).
constexpr std::string_view kCtEvents[] = {"new",       "related", "destroy", "reply",      "assured",
                                          "protoinfo", "helper",  "mark",    "natseqinfo", "secmark"};

Res topt(CtTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o == "--notrack") {
    t.notrack = true;
    return Ok;
  }
  if (o == "--zone" || o == "--zone-orig" || o == "--zone-reply") {
    auto s = p.arg();
    if (!s) return Fail;
    t.zone_dir = o == "--zone" ? 0 : o == "--zone-orig" ? 1 : 2;
    if (*s == "mark") {
      t.zone_mark = true;
      t.zone = 0;
    } else {
      auto v = p.num(*s, 65535, "CT zone", false);
      if (!v) return Fail;
      t.zone_mark = false;
      t.zone = uint16_t(*v);
    }
    t.zone_set = true;
    return Ok;
  }
  if (o == "--helper" || o == "--timeout") {
    auto s = p.arg();
    if (!s) return Fail;
    if (s->empty() || s->size() > (o == "--helper" ? 15u : 31u)) {
      p.err(fmt::format("CT: {} name '{}' must be 1..{} characters", o, *s, o == "--helper" ? 15 : 31));
      return Fail;
    }
    (o == "--helper" ? t.helper : t.timeout) = *s;
    return Ok;
  }
  if (o == "--ctevents" || o == "--expevents") {
    auto s = p.arg();
    if (!s) return Fail;
    bool ct = o == "--ctevents";
    uint16_t bits = 0;
    std::string_view rest = *s;
    for (;;) {
      auto comma = rest.find(',');
      auto name = rest.substr(0, comma);
      size_t n = ct ? std::size(kCtEvents) : 1;
      size_t k = 0;
      while (k < n && kCtEvents[k] != name) ++k;
      if (k == n) {
        p.err(fmt::format("CT: unknown {} event '{}'", ct ? "conntrack" : "expectation", name));
        return Fail;
      }
      bits |= uint16_t(1u << k);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (ct) t.ctevents = bits;
    else t.expevents = uint8_t(bits);
    return Ok;
  }
  return Unknown;
}

// NAME FLAGS of --add-set/--del-set/--map-set: FLAGS are comma-separated src/dst, one per dimension.
Res set_ref(SetTarget::Ref& r, ParseCtx& p) {
  auto n = p.arg();
  if (!n) return Fail;
  auto f = p.arg();
  if (!f) return Fail;
  if (n->empty() || n->size() > 31) {
    p.err(fmt::format("SET: set name '{}' must be 1..31 characters", *n));
    return Fail;
  }
  r = SetTarget::Ref{};
  r.name = *n;
  std::string_view s = *f;
  for (;;) {
    auto comma = s.find(',');
    auto part = s.substr(0, comma);
    if (r.dims >= 6 || (part != "src" && part != "dst")) {
      p.err(fmt::format("SET: bad direction flags '{}' (comma-separated src/dst, at most 6)", *f));
      return Fail;
    }
    if (part == "src") r.src_flags |= uint8_t(1u << r.dims);
    ++r.dims;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return Ok;
}

Res topt(SetTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o == "--add-set") return set_ref(t.add, p);
  if (o == "--del-set") return set_ref(t.del, p);
  if (o == "--map-set") return set_ref(t.map, p);
  if (o == "--exist") t.exist = true;
  else if (o == "--map-mark") t.map_mark = true;
  else if (o == "--map-prio") t.map_prio = true;
  else if (o == "--map-queue") t.map_queue = true;
  else if (o == "--timeout") {
    auto s = p.arg();
    if (!s) return Fail;
    auto v = p.num(*s, 0xfffffffe, "SET timeout", false);
    if (!v) return Fail;
    t.timeout = uint32_t(*v);
    t.timeout_set = true;
  } else return Unknown;
  return Ok;
}

Res topt(ClassifyTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o != "--set-class") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  // MAJOR:MINOR, both hexadecimal (tc's handle notation), as libxt_CLASSIFY reads them.
  auto colon = s->find(':');
  auto hexpart = [](std::string_view x) -> std::optional<uint32_t> {
    if (x.empty() || x.size() > 4 || x.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) return std::nullopt;
    return uint32_t(std::stoul(std::string(x), nullptr, 16));
  };
  auto maj = colon == std::string::npos ? std::nullopt : hexpart(std::string_view(*s).substr(0, colon));
  auto min = colon == std::string::npos ? std::nullopt : hexpart(std::string_view(*s).substr(colon + 1));
  if (!maj || !min) {
    p.err(fmt::format("CLASSIFY: bad class value '{}' (expected MAJOR:MINOR in hexadecimal)", *s));
    return Fail;
  }
  t.priority = *maj << 16 | *min;
  return Ok;
}

// RFC 2474/2597/3246 class names libxt_DSCP accepts, matched without regard to case.
struct DscpClass {
  std::string_view name;
  uint8_t dscp;
};
constexpr DscpClass kDscpClasses[] = {
    {"CS0", 0x00},  {"CS1", 0x08},  {"CS2", 0x10},  {"CS3", 0x18},  {"CS4", 0x20},  {"CS5", 0x28},
    {"CS6", 0x30},  {"CS7", 0x38},  {"BE", 0x00},   {"AF11", 0x0a}, {"AF12", 0x0c}, {"AF13", 0x0e},
    {"AF21", 0x12}, {"AF22", 0x14}, {"AF23", 0x16}, {"AF31", 0x1a}, {"AF32", 0x1c}, {"AF33", 0x1e},
    {"AF41", 0x22}, {"AF42", 0x24}, {"AF43", 0x26}, {"EF", 0x2e},
};

Res topt(DscpTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o != "--set-dscp" && o != "--set-dscp-class") return Unknown;
  auto s = p.arg();
  if (!s) return Fail;
  if (o == "--set-dscp") {
    auto v = p.num(*s, 0x3f, "DSCP", true);
    if (!v) return Fail;
    t.dscp = uint8_t(*v);
    return Ok;
  }
  for (auto& c : kDscpClasses)
    if (c.name.size() == s->size() && std::equal(c.name.begin(), c.name.end(), s->begin(), [](char a, char b) {
          return a == std::toupper(static_cast<unsigned char>(b));
        })) {
      t.dscp = c.dscp;
      return Ok;
    }
  p.err(fmt::format("DSCP: unknown class '{}' (CS0..CS7, BE, AF11..AF43, EF)", *s));
  return Fail;
}

// The names libxt_TOS accepts for --set-tos; a name sets only the four TOS bits (mask 0x3f).
struct TosName {
  std::string_view name;
  uint8_t value;
};
constexpr TosName kTosNames[] = {{"Minimize-Delay", 0x10},
                                 {"Maximize-Throughput", 0x08},
                                 {"Maximize-Reliability", 0x04},
                                 {"Minimize-Cost", 0x02},
                                 {"Normal-Service", 0x00}};

Res topt(TosTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o != "--set-tos" && o != "--and-tos" && o != "--or-tos" && o != "--xor-tos") return Unknown;
  if (t.given) {
    p.err("TOS: only one of --set-tos, --and-tos, --or-tos, --xor-tos may be given");
    return Fail;
  }
  auto s = p.arg();
  if (!s) return Fail;
  t.given = true;
  if (o == "--set-tos") {
    for (auto& n : kTosNames)
      if (n.name == *s) {
        t.value = n.value;
        t.mask = 0x3f;
        return Ok;
      }
    uint32_t v = 0, m = 0;
    if (!p.value_mask(*s, v, m, 0xff)) return Fail;
    if (v > 0xff || m > 0xff) {
      p.err(fmt::format("TOS: '{}' is not a value[/mask] of 8-bit numbers", *s));
      return Fail;
    }
    t.value = uint8_t(v);
    t.mask = uint8_t(m);
    return Ok;
  }
  auto v = p.num(*s, 0xff, "TOS bits", true);
  if (!v) return Fail;
  uint8_t b = uint8_t(*v);
  if (o == "--and-tos") t.value = 0, t.mask = uint8_t(~b);
  else if (o == "--or-tos") t.value = b, t.mask = b;
  else t.value = b, t.mask = 0;
  return Ok;
}

Res topt(TeeTarget& t, std::string_view o, bool, ParseCtx& p) {
  if (o == "--gateway") {
    auto s = p.arg();
    if (!s) return Fail;
    auto a = p.addr(*s);
    if (!a) return Fail;
    t.gateway = *a;
    t.gateway_set = true;
    return Ok;
  }
  if (o == "--oif") {
    auto s = p.arg();
    if (!s) return Fail;
    IfaceMatch m;
    if (!iface(*s, m, false, p)) return Fail;
    t.oif = *s;
    return Ok;
  }
  return Unknown;
}

Res topt(TcpmssTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(TproxyTarget& t, std::string_view o, bool, ParseCtx& p) {
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

Res topt(NfqueueTarget& t, std::string_view o, bool, ParseCtx& p) {
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
  if (o == "--queue-bypass") {
    t.bypass = true;
    return Ok;
  }
  if (o == "--queue-cpu-fanout") {
    t.cpu_fanout = true;
    return Ok;
  }
  return Unknown;
}

Res topt(ChecksumTarget&, std::string_view o, bool, ParseCtx&) { return o == "--checksum-fill" ? Ok : Unknown; }

template <class T>
Res topt(T&, std::string_view, bool, ParseCtx&) {
  return Unknown;
}

template <class T>
Target make() {
  return T{};
}

// What -j NAME loads, as xtables_find_target finds a standard verdict or a libxt_NAME.
struct TargetModule {
  std::string_view name;
  Target (*make)();
};

constexpr TargetModule kTargets[] = {
    {"ACCEPT", [] { return Target{StandardTarget{StdVerdict::Accept}}; }},
    {"DROP", [] { return Target{StandardTarget{StdVerdict::Drop}}; }},
    {"RETURN", [] { return Target{StandardTarget{StdVerdict::Return}}; }},
    {"QUEUE", [] { return Target{StandardTarget{StdVerdict::Queue}}; }},
    {"REJECT", make<RejectTarget>},
    {"DNAT", [] { return Target{NatTarget{NatTarget::Kind::Dnat}}; }},
    {"SNAT", [] { return Target{NatTarget{NatTarget::Kind::Snat}}; }},
    {"MASQUERADE", [] { return Target{NatTarget{NatTarget::Kind::Masquerade}}; }},
    {"REDIRECT", [] { return Target{NatTarget{NatTarget::Kind::Redirect}}; }},
    {"MARK", make<MarkTarget>},
    {"CONNMARK", make<ConnmarkTarget>},
    {"LOG", make<LogTarget>},
    {"NFLOG", make<NflogTarget>},
    {"TRACE", make<TraceTarget>},
    {"NOTRACK", make<NotrackTarget>},
    {"CT", make<CtTarget>},
    {"TCPMSS", make<TcpmssTarget>},
    {"TPROXY", make<TproxyTarget>},
    {"NFQUEUE", make<NfqueueTarget>},
    {"CHECKSUM", make<ChecksumTarget>},
    {"SET", make<SetTarget>},
    {"CLASSIFY", make<ClassifyTarget>},
    {"DSCP", make<DscpTarget>},
    {"TOS", make<TosTarget>},
    {"TEE", make<TeeTarget>},
    {"NETMAP", [] { return Target{NatTarget{NatTarget::Kind::Netmap}}; }},
};

}  // namespace

std::optional<Target> new_target(std::string_view name) {
  for (const auto& t : kTargets)
    if (t.name == name) return t.make();
  return std::nullopt;
}

Res target_option(Target& t, std::string_view o, bool inv, ParseCtx& p) {
  return std::visit([&](auto& tg) { return topt(tg, o, inv, p); }, t);
}

bool check_target(Rule& r, ParseCtx& p) {
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
  if (auto* n = std::get_if<NatTarget>(&r.target); n && n->kind == NatTarget::Kind::Netmap && !n->addr_set) {
    p.err("NETMAP needs --to");
    return false;
  }
  if (auto* st = std::get_if<SetTarget>(&r.target); st && !st->add.set() && !st->del.set() && !st->map.set()) {
    p.err("SET: you must specify --add-set, --del-set or --map-set");
    return false;
  }
  if (auto* tee = std::get_if<TeeTarget>(&r.target); tee && !tee->gateway_set) {
    p.err("TEE needs --gateway");
    return false;
  }
  if (auto* ts = std::get_if<TosTarget>(&r.target); ts && !ts->given) {
    p.err("TOS: one of --set-tos, --and-tos, --or-tos or --xor-tos is required");
    return false;
  }
  if (auto* tp = std::get_if<TproxyTarget>(&r.target); tp && tp->port == 0) {
    p.err("TPROXY needs --on-port");
    return false;
  }
  return true;
}

}  // namespace svcpath::nf::restore
