// nftables values (nft's datatypes): type names and widths, keys as the kernel compares them
// (big-endian bytes, concatenations in 4-byte register slots), and values, ranges, prefixes and
// interface wildcards between key bytes and the text `nft -f` reads and `nft list ruleset` prints.
#include <span>

#include <fmt/format.h>

#include "core/bytes.hpp"
#include "core/hash.hpp"
#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

std::string_view family_name(TableFamily f) {
  switch (f) {
    case TableFamily::Ip: return "ip";
    case TableFamily::Ip6: return "ip6";
    case TableFamily::Inet: return "inet";
  }
  return "ip";
}

std::string_view type_name(Type t) {
  switch (t) {
    case Type::Ipv4: return "ipv4_addr";
    case Type::Ipv6: return "ipv6_addr";
    case Type::Proto: return "inet_proto";
    case Type::Service: return "inet_service";
    case Type::Mark: return "mark";
    case Type::Ifname: return "ifname";
    case Type::Integer: return "integer";
    case Type::CtState: return "ct_state";
    case Type::AddrType: return "fib_addrtype";
    case Type::NfProto: return "nf_proto";
    case Type::Verdict: return "verdict";
    case Type::IcmpType: return "icmp_type";
    case Type::Icmp6Type: return "icmpv6_type";
    case Type::CtStatus: return "ct_status";
  }
  return "integer";
}

size_t type_width(Type t) {
  switch (t) {
    case Type::Ipv6:
    case Type::Ifname: return 16;
    default: return 4;
  }
}

size_t KeyHash::operator()(const Key& k) const noexcept { return Fnv1a().mix(k.b.data(), k.len).h; }

Type Selector::type() const {
  switch (sel) {
    case Sel::IpSaddr:
    case Sel::IpDaddr: return Type::Ipv4;
    case Sel::Ip6Saddr:
    case Sel::Ip6Daddr: return Type::Ipv6;
    case Sel::IpProtocol:
    case Sel::Ip6Nexthdr:
    case Sel::L4Proto: return Type::Proto;
    case Sel::Sport:
    case Sel::Dport: return Type::Service;
    case Sel::NfProto: return Type::NfProto;
    case Sel::Mark:
    case Sel::CtMark: return Type::Mark;
    case Sel::Iifname:
    case Sel::Oifname: return Type::Ifname;
    case Sel::CtState: return Type::CtState;
    case Sel::CtStatus: return Type::CtStatus;
    case Sel::IpVersion:
    case Sel::Ip6Version: return Type::Integer;
    case Sel::IcmpType: return Type::IcmpType;
    case Sel::Icmp6Type: return Type::Icmp6Type;
    case Sel::FibSaddrType:
    case Sel::FibDaddrType: return Type::AddrType;
    case Sel::Numgen: return Type::Integer;
  }
  return Type::Integer;
}

bool within(const Key& lo, const Key& hi, const Key& k, const Type* types, size_t n) {
  // Each part of a concatenation is its own interval (the pipapo set's semantics), not one
  // lexicographic range over the whole key.
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t w = type_width(types[i]);
    if (std::memcmp(lo.b.data() + off, k.b.data() + off, w) > 0 || std::memcmp(k.b.data() + off, hi.b.data() + off, w) > 0)
      return false;
    off += w;
  }
  return true;
}

namespace {

constexpr struct {
  std::string_view name;
  uint8_t bit;
} kCtStates[] = {{"invalid", 1}, {"established", 2}, {"related", 4}, {"new", 8}, {"untracked", 64}};

// IPS_* bits as nft's ct_status type names them.
constexpr struct {
  std::string_view name;
  uint32_t bit;
} kCtStatus[] = {{"expected", 1}, {"seen-reply", 2}, {"assured", 4}, {"confirmed", 8},
                 {"snat", 16},    {"dnat", 32},      {"dying", 512}};

// nft's icmp_type and icmpv6_type symbol tables (src/proto.c).
struct IcmpName {
  std::string_view name;
  uint8_t type;
};
constexpr IcmpName kIcmpTypes[] = {
    {"echo-reply", 0},         {"destination-unreachable", 3}, {"source-quench", 4},        {"redirect", 5},
    {"echo-request", 8},       {"router-advertisement", 9},    {"router-solicitation", 10}, {"time-exceeded", 11},
    {"parameter-problem", 12}, {"timestamp-request", 13},      {"timestamp-reply", 14},     {"info-request", 15},
    {"info-reply", 16},        {"address-mask-request", 17},   {"address-mask-reply", 18}};
constexpr IcmpName kIcmp6Types[] = {{"destination-unreachable", 1},  {"packet-too-big", 2},         {"time-exceeded", 3},
                                    {"parameter-problem", 4},        {"echo-request", 128},         {"echo-reply", 129},
                                    {"mld-listener-query", 130},     {"mld-listener-report", 131},  {"mld-listener-done", 132},
                                    {"mld-listener-reduction", 132}, {"nd-router-solicit", 133},    {"nd-router-advert", 134},
                                    {"nd-neighbor-solicit", 135},    {"nd-neighbor-advert", 136},   {"nd-redirect", 137},
                                    {"router-renumbering", 138},     {"ind-neighbor-solicit", 141}, {"ind-neighbor-advert", 142},
                                    {"mld2-listener-report", 143}};

constexpr std::string_view kAddrTypes[] = {"unspec",    "unicast",   "local",       "broadcast", "anycast",
                                           "multicast", "blackhole", "unreachable", "prohibit"};

}  // namespace

size_t value_bytes(Type t) {
  switch (t) {
    case Type::Ipv4: return 4;
    case Type::Ipv6: return 16;
    case Type::Proto:
    case Type::NfProto:
    case Type::IcmpType:
    case Type::Icmp6Type: return 1;
    case Type::Service: return 2;
    case Type::Ifname: return 16;
    default: return 4;
  }
}

std::string proto_text(uint8_t p) {
  switch (p) {
    case proto::TCP: return "tcp";
    case proto::UDP: return "udp";
    case proto::SCTP: return "sctp";
    case proto::ICMP: return "icmp";
    case proto::ICMPV6: return "ipv6-icmp";
    case proto::UDPLITE: return "udplite";
    case proto::GRE: return "gre";
    case proto::ESP: return "esp";
    case proto::AH: return "ah";
    case proto::DCCP: return "dccp";
  }
  return std::to_string(p);
}

std::string one_value(Type t, const uint8_t* p) {
  switch (t) {
    case Type::Ipv4: return Addr::v4(uint32_t(get_be(p, 4))).str();
    case Type::Ipv6: {
      std::array<uint8_t, 16> b;
      std::memcpy(b.data(), p, 16);
      return Addr::v6(b).str();
    }
    case Type::Proto: return proto_text(p[0]);
    case Type::NfProto: return p[0] == 2 ? "ipv4" : p[0] == 10 ? "ipv6" : std::to_string(p[0]);
    case Type::Service: return std::to_string(get_be(p, 2));
    case Type::Mark: return fmt::format("0x{:08x}", get_be(p, 4));
    case Type::Ifname: {
      std::string s(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), 16));
      return "\"" + s + "\"";
    }
    case Type::CtState: {
      uint32_t v = uint32_t(get_be(p, 4));
      std::string s;
      for (auto& c : kCtStates)
        if (v & c.bit) s += (s.empty() ? "" : ",") + std::string(c.name);
      return s.empty() ? "0x0" : s;
    }
    case Type::AddrType: {
      uint32_t v = uint32_t(get_be(p, 4));
      return v < std::size(kAddrTypes) ? std::string(kAddrTypes[v]) : std::to_string(v);
    }
    case Type::IcmpType:
    case Type::Icmp6Type: {
      for (auto& n : t == Type::IcmpType ? std::span<const IcmpName>(kIcmpTypes) : std::span<const IcmpName>(kIcmp6Types))
        if (n.type == p[0]) return std::string(n.name);
      return std::to_string(p[0]);
    }
    case Type::CtStatus: {
      uint32_t v = uint32_t(get_be(p, 4));
      std::string s;
      for (auto& c : kCtStatus)
        if (v & c.bit) s += (s.empty() ? "" : ",") + std::string(c.name);
      return s.empty() ? fmt::format("0x{:x}", v) : s;
    }
    default: return std::to_string(get_be(p, 4));
  }
}

namespace {

// A component range: a prefix when it is one, else lo-hi.
std::string range_text(Type t, const uint8_t* lo, const uint8_t* hi) {
  size_t n = value_bytes(t);
  if (std::memcmp(lo, hi, n) == 0) return one_value(t, lo);
  if (t == Type::Ipv4 || t == Type::Ipv6) {
    // Prefix: lo and hi agree on the first len bits, lo has zeros and hi ones after that.
    unsigned bits = unsigned(n * 8), len = 0;
    while (len < bits && ((lo[len / 8] >> (7 - len % 8)) & 1) == ((hi[len / 8] >> (7 - len % 8)) & 1)) ++len;
    bool prefix = true;
    for (unsigned i = len; i < bits && prefix; ++i)
      prefix = ((lo[i / 8] >> (7 - i % 8)) & 1) == 0 && ((hi[i / 8] >> (7 - i % 8)) & 1) == 1;
    if (prefix) return one_value(t, lo) + "/" + std::to_string(len);
  }
  if (t == Type::Ifname) {
    // A wildcard "eth*": lo pads with zeros, hi with 0xff.
    std::string s(reinterpret_cast<const char*>(lo), strnlen(reinterpret_cast<const char*>(lo), 16));
    return "\"" + s + "*\"";
  }
  return one_value(t, lo) + "-" + one_value(t, hi);
}

}  // namespace

std::string key_text(const std::vector<Type>& types, const Key& lo, const Key& hi) {
  std::string s;
  size_t off = 0;
  for (Type t : types) {
    if (!s.empty()) s += " . ";
    s += range_text(t, lo.b.data() + off, hi.b.data() + off);
    off += type_width(t);
  }
  return s;
}

namespace {

std::optional<uint8_t> parse_proto(std::string_view s) {
  if (s == "ipv6-icmp" || s == "icmpv6") return proto::ICMPV6;
  if (auto p = proto::parse(s)) return p;
  return std::nullopt;
}

}  // namespace

std::string parse_component(Type t, std::string_view w, uint8_t* lo, uint8_t* hi) {
  size_t n = value_bytes(t);
  auto single = [&](std::string_view v, uint8_t* out) -> std::string {
    switch (t) {
      case Type::Ipv4:
      case Type::Ipv6: {
        std::string why;
        auto a = Addr::parse(v, &why);
        if (!a || (a->is_v4() != (t == Type::Ipv4)))
          return fmt::format("'{}' is not an {} address", v, t == Type::Ipv4 ? "IPv4" : "IPv6");
        std::memcpy(out, a->b.data(), n);
        return {};
      }
      case Type::Proto: {
        auto p = parse_proto(v);
        if (!p) return fmt::format("unknown protocol '{}'", v);
        out[0] = *p;
        return {};
      }
      case Type::NfProto: {
        if (v == "ipv4") out[0] = 2;
        else if (v == "ipv6") out[0] = 10;
        else return fmt::format("unknown nfproto '{}' (ipv4, ipv6)", v);
        return {};
      }
      case Type::Service: {
        static const std::pair<std::string_view, uint16_t> names[] = {{"http", 80},   {"https", 443}, {"ssh", 22},
                                                                      {"domain", 53}, {"ntp", 123},   {"bgp", 179}};
        for (auto& [nm, port] : names)
          if (v == nm) {
            put_be(out, port, 2);
            return {};
          }
        auto x = parse_uint(v, 65535);
        if (!x) return fmt::format("'{}' is not a port", v);
        put_be(out, *x, 2);
        return {};
      }
      case Type::Mark:
      case Type::Integer: {
        auto x = parse_uint(v, 0xffffffff, true);
        if (!x) return fmt::format("'{}' is not a 32-bit number", v);
        put_be(out, *x, 4);
        return {};
      }
      case Type::CtState: {
        for (auto& c : kCtStates)
          if (v == c.name) {
            put_be(out, c.bit, 4);
            return {};
          }
        return fmt::format("unknown ct state '{}' (new, established, related, invalid, untracked)", v);
      }
      case Type::IcmpType:
      case Type::Icmp6Type: {
        for (auto& nm : t == Type::IcmpType ? std::span<const IcmpName>(kIcmpTypes) : std::span<const IcmpName>(kIcmp6Types))
          if (v == nm.name) {
            out[0] = nm.type;
            return {};
          }
        auto x = parse_uint(v, 255);
        if (!x) return fmt::format("unknown {} '{}'", t == Type::IcmpType ? "ICMP type" : "ICMPv6 type", v);
        out[0] = uint8_t(*x);
        return {};
      }
      case Type::CtStatus: {
        for (auto& c : kCtStatus)
          if (v == c.name) {
            put_be(out, c.bit, 4);
            return {};
          }
        auto x = parse_uint(v, 0xffffffff, true);
        if (!x) return fmt::format("unknown ct status '{}' (expected, seen-reply, assured, confirmed, snat, dnat, dying)", v);
        put_be(out, *x, 4);
        return {};
      }
      case Type::AddrType: {
        for (size_t i = 0; i < std::size(kAddrTypes); ++i)
          if (v == kAddrTypes[i]) {
            put_be(out, i, 4);
            return {};
          }
        return fmt::format("unknown address type '{}'", v);
      }
      case Type::Ifname: {
        if (v.size() > 15) return fmt::format("interface name '{}' is longer than 15 characters", v);
        std::memset(out, 0, 16);
        std::memcpy(out, v.data(), v.size());
        return {};
      }
      case Type::Verdict: return "a verdict cannot be a key";
    }
    return "bad value";
  };
  if (t == Type::Ifname) {
    std::string_view v = w;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (!v.empty() && v.back() == '*') {
      v.remove_suffix(1);
      if (auto e = single(v, lo); !e.empty()) return e;
      std::memcpy(hi, lo, 16);
      std::memset(hi + v.size(), 0xff, 16 - v.size());
      return {};
    }
    if (auto e = single(v, lo); !e.empty()) return e;
    std::memcpy(hi, lo, 16);
    return {};
  }
  if ((t == Type::Ipv4 || t == Type::Ipv6) && w.find('/') != std::string_view::npos) {
    std::string why;
    auto pf = Prefix::parse(w, &why);
    if (!pf || pf->addr.is_v4() != (t == Type::Ipv4))
      return fmt::format("'{}' is not an {} prefix", w, t == Type::Ipv4 ? "IPv4" : "IPv6");
    std::memcpy(lo, pf->addr.b.data(), n);
    std::memcpy(hi, pf->addr.b.data(), n);
    for (unsigned i = pf->len; i < n * 8; ++i) hi[i / 8] |= uint8_t(0x80 >> (i % 8));
    return {};
  }
  // A range a-b (addresses, ports, numbers); a '-' inside a single token.
  if (t != Type::Ifname && t != Type::CtState && t != Type::CtStatus && t != Type::AddrType) {
    auto dash = w.find('-', 1);
    if (dash != std::string_view::npos && t != Type::Proto) {
      if (!single(w.substr(0, dash), lo).empty() || !single(w.substr(dash + 1), hi).empty()) {
        if (auto e = single(w, lo); !e.empty()) return e;  // say it of the whole word
        std::memcpy(hi, lo, n);
        return {};
      }
      if (std::memcmp(lo, hi, n) > 0) return fmt::format("range '{}' is backwards", w);
      return {};
    }
  }
  if (auto e = single(w, lo); !e.empty()) return e;
  std::memcpy(hi, lo, n);
  return {};
}

std::optional<Hook> parse_hook(std::string_view s) {
  if (s == "prerouting") return Hook::PreRouting;
  if (s == "input") return Hook::LocalIn;
  if (s == "forward") return Hook::Forward;
  if (s == "output") return Hook::LocalOut;
  if (s == "postrouting") return Hook::PostRouting;
  return std::nullopt;
}
std::string_view hook_word(Hook h) {
  constexpr std::string_view n[] = {"prerouting", "input", "forward", "output", "postrouting"};
  return n[int(h)];
}

std::optional<TableFamily> family_word(std::string_view w) {
  if (w == "ip") return TableFamily::Ip;
  if (w == "ip6") return TableFamily::Ip6;
  if (w == "inet") return TableFamily::Inet;
  return std::nullopt;
}

std::optional<Type> type_word(std::string_view w) {
  static const std::pair<std::string_view, Type> names[] = {{"ipv4_addr", Type::Ipv4},
                                                            {"ipv6_addr", Type::Ipv6},
                                                            {"inet_proto", Type::Proto},
                                                            {"inet_service", Type::Service},
                                                            {"mark", Type::Mark},
                                                            {"ifname", Type::Ifname},
                                                            {"ct_state", Type::CtState},
                                                            {"fib_addrtype", Type::AddrType},
                                                            {"nf_proto", Type::NfProto},
                                                            {"icmp_type", Type::IcmpType},
                                                            {"icmpv6_type", Type::Icmp6Type},
                                                            {"ct_status", Type::CtStatus}};
  for (auto& [n, t] : names)
    if (w == n) return t;
  return std::nullopt;
}

std::optional<int> named_priority(std::string_view name, Hook h) {
  // Current nftables' std_prio_family_hook_compat (src/rule.c) for the ip, ip6 and inet families:
  // dstnat on prerouting and output, srcnat on input and postrouting, the others on every hook.
  // nft 1.0.6 (checked here) refuses dstnat on output and srcnat on input; Docker 28 writes
  // `type nat hook output priority dstnat`, which newer nft loads. Accept the wider, current set.
  if (name == "raw") return -300;
  if (name == "mangle") return -150;
  if (name == "dstnat" && (h == Hook::PreRouting || h == Hook::LocalOut)) return -100;
  if (name == "filter") return 0;
  if (name == "security") return 50;
  if (name == "srcnat" && (h == Hook::LocalIn || h == Hook::PostRouting)) return 100;
  return std::nullopt;
}

}  // namespace svcpath::nf::nft
