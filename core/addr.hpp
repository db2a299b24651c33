#pragma once
// Addresses, prefixes, ports and protocols: the value types every stage shares.
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace svcpath {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

/// An IPv4 or IPv6 address in network byte order. IPv4 lives in the first 4 bytes; the rest are 0,
/// so two addresses compare equal iff family and bytes are equal.
struct Addr {
  std::array<uint8_t, 16> b{};
  Family fam = Family::V4;

  static Addr v4(uint32_t host_order) {
    Addr a;
    a.b[0] = uint8_t(host_order >> 24);
    a.b[1] = uint8_t(host_order >> 16);
    a.b[2] = uint8_t(host_order >> 8);
    a.b[3] = uint8_t(host_order);
    return a;
  }
  static Addr v6(const std::array<uint8_t, 16>& bytes) {
    Addr a;
    a.b = bytes;
    a.fam = Family::V6;
    return a;
  }
  /// Strict parse: dotted quad (no leading zeros beyond "0", no missing octets) or RFC 4291 text.
  static std::optional<Addr> parse(std::string_view s, std::string* why = nullptr);
  /// The kernel's unspecified address for the family (0.0.0.0 / ::).
  static Addr any(Family f) {
    Addr a;
    a.fam = f;
    return a;
  }

  bool is_v4() const { return fam == Family::V4; }
  unsigned bits() const { return is_v4() ? 32 : 128; }
  uint32_t host4() const { return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3]; }
  bool is_unspecified() const;
  bool is_loopback() const;   // 127.0.0.0/8, ::1
  bool is_multicast() const;  // 224.0.0.0/4, ff00::/8
  /// fe80::/10
  bool is_link_local() const { return !is_v4() && b[0] == 0xfe && (b[1] & 0xc0) == 0x80; }
  bool is_limited_broadcast() const { return is_v4() && host4() == 0xffffffffu; }
  std::string str() const;
  /// Address masked to its first len bits.
  Addr masked(unsigned len) const;
  Addr operator&(const Addr& m) const {
    Addr r = *this;
    for (int i = 0; i < 16; ++i) r.b[i] &= m.b[i];
    return r;
  }
  /// Netmask address of a prefix length in family f.
  static Addr netmask(Family f, unsigned len);
  /// Prefix length if this address is a contiguous netmask, else nullopt.
  std::optional<unsigned> mask_len() const;

  auto operator<=>(const Addr&) const = default;
  bool operator==(const Addr&) const = default;
};

struct Prefix {
  Addr addr;
  uint8_t len = 0;

  /// Parses "a.b.c.d", "a.b.c.d/len", "a.b.c.d/255.255.0.0" and the IPv6 forms. A bare address is a
  /// host prefix. Host bits are cleared, as the kernel does on load.
  static std::optional<Prefix> parse(std::string_view s, std::string* why = nullptr);
  static Prefix host(const Addr& a) { return {a, uint8_t(a.bits())}; }
  // Hot: every -s/-d match and route lookup. addr has its host bits clear (parse and callers ensure it).
  bool contains(const Addr& a) const {
    if (a.fam != addr.fam) return false;
    if (a.is_v4()) return len == 0 || ((a.host4() ^ addr.host4()) >> (32 - len)) == 0;
    unsigned full = len / 8, rest = len % 8;
    for (unsigned i = 0; i < full; ++i)
      if (a.b[i] != addr.b[i]) return false;
    return rest == 0 || ((a.b[full] ^ addr.b[full]) >> (8 - rest)) == 0;
  }
  std::string str() const;  // always "addr/len", as iptables-save prints it
  bool operator==(const Prefix&) const = default;
};

struct PortRange {
  uint16_t lo = 0, hi = 65535;
  bool contains(uint16_t p) const { return p >= lo && p <= hi; }
  bool single() const { return lo == hi; }
  /// "80", "80:90" (iptables) or "80-90" (ipset/NAT) ; sep says which separator is accepted.
  static std::optional<PortRange> parse(std::string_view s, char sep, std::string* why = nullptr);
  std::string str(char sep = ':') const;
  bool operator==(const PortRange&) const = default;
};

/// IP protocol numbers with the names /etc/protocols gives them.
namespace proto {
inline constexpr uint8_t ICMP = 1, TCP = 6, UDP = 17, ICMPV6 = 58, SCTP = 132, GRE = 47, ESP = 50, AH = 51, UDPLITE = 136,
                         DCCP = 33;
std::optional<uint8_t> parse(std::string_view s);
/// Name as iptables-save prints it ("tcp", "ipv6-icmp", or the number).
std::string name(uint8_t p);
inline bool has_ports(uint8_t p) { return p == TCP || p == UDP || p == SCTP || p == UDPLITE || p == DCCP; }
}  // namespace proto

/// Strict unsigned integer parse (decimal, or 0x hex when allow_hex), range-checked.
std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max, bool allow_hex = false);
/// "VALUE[/MASK]" of 32-bit numbers, decimal or 0x hex (marks, fwmarks); the mask defaults to
/// default_mask.
struct ValueMask {
  uint32_t value = 0, mask = 0;
};
std::optional<ValueMask> parse_value_mask(std::string_view s, uint32_t default_mask = 0xffffffff);

}  // namespace svcpath
