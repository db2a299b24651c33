#include "netfilter/iptables/names.hpp"

#include <fmt/format.h>

#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf::names {
namespace {

template <class F>
bool split_list(std::string_view s, F&& each) {
  if (s.empty()) return false;
  while (true) {
    auto comma = s.find(',');
    if (!each(s.substr(0, comma))) return false;
    if (comma == std::string_view::npos) return true;
    s.remove_prefix(comma + 1);
  }
}

struct Flag {
  const char* name;
  uint32_t bit;
};

constexpr Flag kTcpFlags[] = {{"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08},
                              {"ACK", 0x10}, {"URG", 0x20}, {"ALL", 0x3f}, {"NONE", 0}};

struct IcmpName {
  const char* name;
  uint8_t type, code_lo, code_hi;
};

constexpr IcmpName kIcmp[] = {
    {"echo-reply", 0, 0, 0xff},
    {"destination-unreachable", 3, 0, 0xff},
    {"network-unreachable", 3, 0, 0},
    {"host-unreachable", 3, 1, 1},
    {"protocol-unreachable", 3, 2, 2},
    {"port-unreachable", 3, 3, 3},
    {"fragmentation-needed", 3, 4, 4},
    {"source-route-failed", 3, 5, 5},
    {"network-unknown", 3, 6, 6},
    {"host-unknown", 3, 7, 7},
    {"network-prohibited", 3, 9, 9},
    {"host-prohibited", 3, 10, 10},
    {"TOS-network-unreachable", 3, 11, 11},
    {"TOS-host-unreachable", 3, 12, 12},
    {"communication-prohibited", 3, 13, 13},
    {"host-precedence-violation", 3, 14, 14},
    {"precedence-cutoff", 3, 15, 15},
    {"source-quench", 4, 0, 0xff},
    {"redirect", 5, 0, 0xff},
    {"network-redirect", 5, 0, 0},
    {"host-redirect", 5, 1, 1},
    {"TOS-network-redirect", 5, 2, 2},
    {"TOS-host-redirect", 5, 3, 3},
    {"echo-request", 8, 0, 0xff},
    {"router-advertisement", 9, 0, 0xff},
    {"router-solicitation", 10, 0, 0xff},
    {"time-exceeded", 11, 0, 0xff},
    {"ttl-zero-during-transit", 11, 0, 0},
    {"ttl-zero-during-reassembly", 11, 1, 1},
    {"parameter-problem", 12, 0, 0xff},
    {"ip-header-bad", 12, 0, 0},
    {"required-option-missing", 12, 1, 1},
    {"timestamp-request", 13, 0, 0xff},
    {"timestamp-reply", 14, 0, 0xff},
    {"address-mask-request", 17, 0, 0xff},
    {"address-mask-reply", 18, 0, 0xff},
};

constexpr IcmpName kIcmp6[] = {
    {"destination-unreachable", 1, 0, 0xff},
    {"no-route", 1, 0, 0},
    {"communication-prohibited", 1, 1, 1},
    {"beyond-scope", 1, 2, 2},
    {"address-unreachable", 1, 3, 3},
    {"port-unreachable", 1, 4, 4},
    {"failed-policy", 1, 5, 5},
    {"reject-route", 1, 6, 6},
    {"packet-too-big", 2, 0, 0xff},
    {"time-exceeded", 3, 0, 0xff},
    {"ttl-exceeded", 3, 0, 0xff},
    {"ttl-zero-during-transit", 3, 0, 0},
    {"ttl-zero-during-reassembly", 3, 1, 1},
    {"parameter-problem", 4, 0, 0xff},
    {"bad-header", 4, 0, 0},
    {"unknown-header-type", 4, 1, 1},
    {"unknown-option", 4, 2, 2},
    {"echo-request", 128, 0, 0xff},
    {"ping", 128, 0, 0xff},
    {"echo-reply", 129, 0, 0xff},
    {"pong", 129, 0, 0xff},
    {"mld-listener-query", 130, 0, 0xff},
    {"mld-listener-report", 131, 0, 0xff},
    {"mld-listener-done", 132, 0, 0xff},
    {"mld-listener-reduction", 132, 0, 0xff},
    {"router-solicitation", 133, 0, 0xff},
    {"router-advertisement", 134, 0, 0xff},
    {"neighbour-solicitation", 135, 0, 0xff},
    {"neighbor-solicitation", 135, 0, 0xff},
    {"neighbour-advertisement", 136, 0, 0xff},
    {"neighbor-advertisement", 136, 0, 0xff},
    {"redirect", 137, 0, 0xff},
};

std::optional<IcmpType> icmp_any(std::string_view s, const IcmpName* tab, size_t n, bool allow_any) {
  if (allow_any && s == "any") return IcmpType{true, 0xff, 0, 0xff};
  for (size_t i = 0; i < n; ++i)
    if (s == tab[i].name) return IcmpType{false, tab[i].type, tab[i].code_lo, tab[i].code_hi};
  auto slash = s.find('/');
  auto t = parse_uint(s.substr(0, slash), 255);
  if (!t) return std::nullopt;
  IcmpType r{false, uint8_t(*t), 0, 0xff};
  if (slash != std::string_view::npos) {
    auto c = parse_uint(s.substr(slash + 1), 255);
    if (!c) return std::nullopt;
    r.code_lo = r.code_hi = uint8_t(*c);
  }
  return r;
}

constexpr Flag kStates[] = {{"INVALID", ctstate::INVALID},
                            {"NEW", ctstate::NEW},
                            {"RELATED", ctstate::RELATED},
                            {"ESTABLISHED", ctstate::ESTABLISHED},
                            {"UNTRACKED", ctstate::UNTRACKED},
                            {"SNAT", ctstate::SNAT},
                            {"DNAT", ctstate::DNAT}};
constexpr Flag kStatus[] = {{"EXPECTED", ctstatus::EXPECTED},
                            {"SEEN_REPLY", ctstatus::SEEN_REPLY},
                            {"ASSURED", ctstatus::ASSURED},
                            {"CONFIRMED", ctstatus::CONFIRMED}};
constexpr Flag kAddrtypes[] = {{"UNSPEC", addrtype::UNSPEC},
                               {"UNICAST", addrtype::UNICAST},
                               {"LOCAL", addrtype::LOCAL},
                               {"BROADCAST", addrtype::BROADCAST},
                               {"ANYCAST", addrtype::ANYCAST},
                               {"MULTICAST", addrtype::MULTICAST},
                               {"BLACKHOLE", addrtype::BLACKHOLE},
                               {"UNREACHABLE", addrtype::UNREACHABLE},
                               {"PROHIBIT", addrtype::PROHIBIT},
                               {"THROW", addrtype::THROW},
                               {"NAT", addrtype::NAT},
                               {"XRESOLVE", addrtype::XRESOLVE}};

template <size_t N>
std::optional<uint32_t> flags_of(std::string_view list, const Flag (&tab)[N]) {
  uint32_t v = 0;
  bool ok = split_list(list, [&](std::string_view x) {
    for (auto& f : tab)
      if (x == f.name) {
        v |= f.bit;
        return true;
      }
    return false;
  });
  if (!ok) return std::nullopt;
  return v;
}

template <size_t N>
std::string flags_str(uint32_t mask, const Flag (&tab)[N], size_t count = N) {
  std::string s;
  for (size_t i = 0; i < count; ++i)
    if (mask & tab[i].bit) {
      if (!s.empty()) s += ',';
      s += tab[i].name;
    }
  return s;
}

}  // namespace

std::optional<uint8_t> tcp_flags(std::string_view list) {
  auto v = flags_of(list, kTcpFlags);
  if (!v) return std::nullopt;
  return uint8_t(*v);
}

std::string tcp_flags_str(uint8_t f) {
  if (f == 0) return "NONE";
  return flags_str(f, kTcpFlags, 6);
}

std::optional<IcmpType> icmp_type(std::string_view s) { return icmp_any(s, kIcmp, std::size(kIcmp), true); }
std::optional<IcmpType> icmp6_type(std::string_view s) { return icmp_any(s, kIcmp6, std::size(kIcmp6), false); }

std::optional<uint16_t> ctstates(std::string_view list) {
  auto v = flags_of(list, kStates);
  if (!v) return std::nullopt;
  return uint16_t(*v);
}
std::string ctstates_str(uint16_t mask) { return flags_str(mask, kStates); }

std::optional<uint32_t> ctstatus(std::string_view list) {
  if (list == "NONE") return 0u;
  return flags_of(list, kStatus);
}
std::string ctstatus_str(uint32_t mask) { return mask ? flags_str(mask, kStatus) : "NONE"; }

std::optional<uint16_t> addrtypes(std::string_view list) {
  auto v = flags_of(list, kAddrtypes);
  if (!v) return std::nullopt;
  return uint16_t(*v);
}
std::string addrtypes_str(uint16_t mask) { return flags_str(mask, kAddrtypes); }

namespace {
constexpr uint32_t kScale = 10000;
struct Unit {
  const char* name;
  uint32_t mult;
};
// Largest first, as libxt_limit prints.
constexpr Unit kUnits[] = {{"day", kScale * 24 * 60 * 60}, {"hour", kScale * 60 * 60}, {"min", kScale * 60}, {"sec", kScale}};
}  // namespace

std::optional<uint32_t> limit_rate(std::string_view s) {
  auto slash = s.find('/');
  auto n = parse_uint(s.substr(0, slash), 0xffffffff);
  if (!n || *n == 0) return std::nullopt;
  uint32_t mult = kScale;  // default per second
  if (slash != std::string_view::npos) {
    auto u = s.substr(slash + 1);
    // libxt_limit accepts any prefix of the unit word ("s", "sec", "second", "m", "minute"...).
    if (u.empty()) return std::nullopt;
    if (std::string_view("second").starts_with(u)) mult = kScale;
    else if (std::string_view("minute").starts_with(u)) mult = kScale * 60;
    else if (std::string_view("hour").starts_with(u)) mult = kScale * 3600;
    else if (std::string_view("day").starts_with(u)) mult = kScale * 86400;
    else return std::nullopt;
  }
  if (*n > mult) return std::nullopt;  // rate too fast to express
  return uint32_t(mult / *n);
}

std::string limit_rate_str(uint32_t avg) {
  size_t i = 1;
  for (; i < std::size(kUnits); ++i)
    if (avg > kUnits[i].mult || kUnits[i].mult / avg < kUnits[i].mult % avg) break;
  return fmt::format("{}/{}", kUnits[i - 1].mult / avg, kUnits[i - 1].name);
}

std::optional<PktType> pkttype(std::string_view s) {
  if (s == "unicast" || s == "host") return PktType::Host;
  if (s == "broadcast") return PktType::Broadcast;
  if (s == "multicast") return PktType::Multicast;
  if (s == "otherhost") return PktType::OtherHost;
  if (s == "outgoing") return PktType::Outgoing;
  return std::nullopt;
}

std::string_view pkttype_str(PktType t) {
  switch (t) {
    case PktType::Host: return "unicast";
    case PktType::Broadcast: return "broadcast";
    case PktType::Multicast: return "multicast";
    case PktType::OtherHost: return "otherhost";
    case PktType::Outgoing: return "outgoing";
  }
  return "unicast";
}

std::optional<std::string> reject_with(std::string_view s, Family fam) {
  struct R {
    const char* name;
    const char* alias;
  };
  static constexpr R v4[] = {{"icmp-net-unreachable", "net-unreach"},   {"icmp-host-unreachable", "host-unreach"},
                             {"icmp-port-unreachable", "port-unreach"}, {"icmp-proto-unreachable", "proto-unreach"},
                             {"icmp-net-prohibited", "net-prohib"},     {"icmp-host-prohibited", "host-prohib"},
                             {"icmp-admin-prohibited", "admin-prohib"}, {"tcp-reset", "tcp-rst"}};
  static constexpr R v6[] = {{"icmp6-no-route", "no-route"},
                             {"icmp6-adm-prohibited", "adm-prohibited"},
                             {"icmp6-addr-unreachable", "addr-unreach"},
                             {"icmp6-port-unreachable", "port-unreach"},
                             {"icmp6-policy-fail", "policy-fail"},
                             {"icmp6-reject-route", "reject-route"},
                             {"tcp-reset", "tcp-rst"}};
  auto search = [&](const auto& tab) -> std::optional<std::string> {
    for (auto& r : tab)
      if (s == r.name || s == r.alias) return std::string(r.name);
    return std::nullopt;
  };
  return fam == Family::V4 ? search(v4) : search(v6);
}

std::optional<uint8_t> log_level(std::string_view s) {
  static constexpr const char* kLevels[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
  for (uint8_t i = 0; i < 8; ++i)
    if (s == kLevels[i]) return i;
  if (s == "panic") return 0;
  if (s == "error") return 3;
  if (s == "warn") return 4;
  auto v = parse_uint(s, 7);
  if (!v) return std::nullopt;
  return uint8_t(*v);
}

namespace {
constexpr std::string_view kDccpTypes[] = {"REQUEST", "RESPONSE", "DATA", "ACK",     "DATAACK", "CLOSEREQ",
                                           "CLOSE",   "RESET",    "SYNC", "SYNCACK", "INVALID"};
}  // namespace

std::optional<uint8_t> dccp_type(std::string_view s) {
  for (size_t i = 0; i < std::size(kDccpTypes); ++i)
    if (kDccpTypes[i] == s) return uint8_t(i);
  return std::nullopt;
}

std::string_view dccp_type_name(unsigned t) { return t < std::size(kDccpTypes) ? kDccpTypes[t] : "INVALID"; }

}  // namespace svcpath::nf::names
