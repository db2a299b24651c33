#include "core/addr.hpp"

#include <cstring>
#include "core/hash.hpp"
#include "core/tuple.hpp"

#include <arpa/inet.h>

#include <charconv>

#include <fmt/format.h>

namespace svcpath {

std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max, bool allow_hex) {
  int base = 10;
  if (allow_hex && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

std::optional<ValueMask> parse_value_mask(std::string_view s, uint32_t default_mask) {
  auto slash = s.find('/');
  auto v = parse_uint(s.substr(0, slash), 0xffffffff, true);
  auto m =
      slash == std::string_view::npos ? std::optional<uint64_t>(default_mask) : parse_uint(s.substr(slash + 1), 0xffffffff, true);
  if (!v || !m) return std::nullopt;
  return ValueMask{uint32_t(*v), uint32_t(*m)};
}

std::optional<Addr> Addr::parse(std::string_view s, std::string* why) {
  auto fail = [&](const char* m) -> std::optional<Addr> {
    if (why) *why = fmt::format("'{}' is not an IP address: {}", s, m);
    return std::nullopt;
  };
  if (s.empty()) return fail("empty");
  if (s.size() > 45) return fail("too long");
  char buf[64];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  Addr a;
  if (s.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, a.b.data()) != 1) return fail("bad IPv6 syntax");
    a.fam = Family::V6;
    return a;
  }
  // inet_pton(AF_INET) is strict: exactly four decimal octets, no leading zeros.
  if (inet_pton(AF_INET, buf, a.b.data()) != 1) return fail("expected four decimal octets a.b.c.d");
  return a;
}

bool Addr::is_unspecified() const {
  for (auto x : b)
    if (x) return false;
  return true;
}

bool Addr::is_loopback() const {
  if (is_v4()) return b[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (b[i]) return false;
  return b[15] == 1;
}

bool Addr::is_multicast() const { return is_v4() ? (b[0] & 0xf0) == 0xe0 : b[0] == 0xff; }

std::string Addr::str() const {
  char buf[64];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, b.data(), buf, sizeof buf);
  return buf;
}

Addr Addr::netmask(Family f, unsigned len) {
  Addr m;
  m.fam = f;
  for (unsigned i = 0; i < 16 && len; ++i) {
    unsigned take = len >= 8 ? 8 : len;
    m.b[i] = uint8_t(0xff00 >> take);
    len -= take;
  }
  return m;
}

Addr Addr::masked(unsigned len) const {
  Addr r = *this;
  unsigned n = is_v4() ? 4 : 16;
  for (unsigned i = 0; i < n; ++i) {
    unsigned take = len >= 8 ? 8 : len;
    r.b[i] &= uint8_t(0xff00 >> take);
    len -= take;
  }
  return r;
}

std::optional<unsigned> Addr::mask_len() const {
  unsigned len = 0;
  unsigned n = is_v4() ? 4 : 16;
  bool ended = false;
  for (unsigned i = 0; i < n; ++i) {
    for (int bit = 7; bit >= 0; --bit) {
      bool one = (b[i] >> bit) & 1;
      if (one && ended) return std::nullopt;
      if (one) ++len;
      else ended = true;
    }
  }
  return len;
}

std::optional<Prefix> Prefix::parse(std::string_view s, std::string* why) {
  auto slash = s.find('/');
  auto a = Addr::parse(s.substr(0, slash), why);
  if (!a) return std::nullopt;
  unsigned len = a->bits();
  if (slash != std::string_view::npos) {
    auto rest = s.substr(slash + 1);
    if (rest.find_first_of(".:") != std::string_view::npos) {
      auto m = Addr::parse(rest, why);
      std::optional<unsigned> ml;
      if (m && m->fam == a->fam) ml = m->mask_len();
      if (!ml) {
        if (why) *why = fmt::format("'{}': '{}' is not a contiguous netmask", s, rest);
        return std::nullopt;
      }
      len = *ml;
    } else {
      auto v = parse_uint(rest, a->bits());
      if (!v) {
        if (why) *why = fmt::format("'{}': prefix length must be 0..{}", s, a->bits());
        return std::nullopt;
      }
      len = unsigned(*v);
    }
  }
  return Prefix{a->masked(len), uint8_t(len)};
}

std::string Prefix::str() const { return fmt::format("{}/{}", addr.str(), len); }

std::optional<PortRange> PortRange::parse(std::string_view s, char sep, std::string* why) {
  auto fail = [&]() -> std::optional<PortRange> {
    if (why) *why = fmt::format("'{}' is not a port or port range (0-65535, lo{}hi)", s, sep);
    return std::nullopt;
  };
  auto pos = s.find(sep);
  if (pos == std::string_view::npos) {
    auto v = parse_uint(s, 65535);
    if (!v) return fail();
    return PortRange{uint16_t(*v), uint16_t(*v)};
  }
  // iptables allows an open end: ":1024" means 0:1024 and "1024:" means 1024:65535.
  auto lo_s = s.substr(0, pos), hi_s = s.substr(pos + 1);
  auto lo = lo_s.empty() ? std::optional<uint64_t>(0) : parse_uint(lo_s, 65535);
  auto hi = hi_s.empty() ? std::optional<uint64_t>(65535) : parse_uint(hi_s, 65535);
  if (!lo || !hi || *lo > *hi) return fail();
  return PortRange{uint16_t(*lo), uint16_t(*hi)};
}

std::string PortRange::str(char sep) const { return single() ? fmt::format("{}", lo) : fmt::format("{}{}{}", lo, sep, hi); }

namespace proto {
namespace {
struct Named {
  const char* name;
  uint8_t num;
};
constexpr Named kNames[] = {{"icmp", ICMP},
                            {"tcp", TCP},
                            {"udp", UDP},
                            {"ipv6-icmp", ICMPV6},
                            {"sctp", SCTP},
                            {"gre", GRE},
                            {"esp", ESP},
                            {"ah", AH},
                            {"udplite", UDPLITE},
                            {"dccp", DCCP},
                            {"igmp", 2},
                            {"ipencap", 4},
                            {"ipv6", 41},
                            {"ospf", 89},
                            {"vrrp", 112},
                            {"l2tp", 115},
                            {"ipip", 94},
                            {"pim", 103},
                            // IPv6's extension headers, as iptables-save names them after -p
                            {"ipv6-route", 43},
                            {"ipv6-frag", 44},
                            {"ipv6-nonxt", 59},
                            {"ipv6-opts", 60},
                            {"ipcomp", 108},
                            {"mobility-header", 135}};
}  // namespace

std::optional<uint8_t> parse(std::string_view s) {
  for (auto& n : kNames)
    if (s == n.name) return n.num;
  if (s == "icmpv6" || s == "icmp6") return ICMPV6;
  if (s == "all") return uint8_t(0);
  auto v = parse_uint(s, 255);
  if (!v) return std::nullopt;
  return uint8_t(*v);
}

std::string name(uint8_t p) {
  for (auto& n : kNames)
    if (n.num == p) return n.name;
  return std::to_string(p);
}
}  // namespace proto

std::string FiveTuple::endpoint(const Addr& a, uint16_t port, uint8_t p) {
  if (!proto::has_ports(p)) return a.str();
  if (a.is_v4()) return fmt::format("{}:{}", a.str(), port);
  return fmt::format("[{}]:{}", a.str(), port);
}

std::string FiveTuple::str() const {
  return fmt::format("{} {} -> {}", proto::name(proto), endpoint(src, sport, proto), endpoint(dst, dport, proto));
}

size_t FiveTupleHash::operator()(const FiveTuple& t) const noexcept {
  // Word at a time with a multiply-xorshift finish: conntrack hashes every packet several times,
  // and byte-at-a-time FNV was a fifth of a new connection's cost.
  auto word = [](const uint8_t* b) {
    uint64_t w;
    std::memcpy(&w, b, 8);
    return w;
  };
  auto mix = [](uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
  };
  uint64_t h = uint64_t(t.sport) | uint64_t(t.dport) << 16 | uint64_t(t.proto) << 32 | uint64_t(t.src.fam) << 40;
  h = mix(h, word(t.src.b.data()));
  h = mix(h, word(t.src.b.data() + 8));
  h = mix(h, word(t.dst.b.data()));
  h = mix(h, word(t.dst.b.data() + 8));
  return size_t(h ^ (h >> 29));
}

}  // namespace svcpath
