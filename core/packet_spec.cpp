#include "core/packet_spec.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "core/ipv6_ext.hpp"

namespace svcpath {

namespace {

constexpr std::string_view kLetters = "FSRPAUEC";  // bit order of tcpflag::*

bool endpoint(std::string_view s, Addr& a, uint16_t& port, bool& has_port, bool want_port, std::string* why) {
  has_port = false;
  std::string_view addr = s;
  std::string_view ps;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) {
      if (why) *why = fmt::format("'{}': missing ']'", s);
      return false;
    }
    addr = s.substr(1, close - 1);
    auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        if (why) *why = fmt::format("'{}': expected ':port' after ']'", s);
        return false;
      }
      ps = rest.substr(1);
      has_port = true;
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    auto colon = s.find(':');
    addr = s.substr(0, colon);
    ps = s.substr(colon + 1);
    has_port = true;
  }
  auto parsed = Addr::parse(addr, why);
  if (!parsed) return false;
  a = *parsed;
  if (has_port) {
    if (!want_port) {
      if (why) *why = fmt::format("'{}': this protocol has no ports", s);
      return false;
    }
    auto v = parse_uint(ps, 65535);
    if (!v) {
      // "33o6" is a typo, not a large port: say which it is.
      bool digits = !ps.empty() && std::all_of(ps.begin(), ps.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (why)
        *why = digits ? fmt::format("'{}': port must be 0..65535", s) : fmt::format("'{}': port '{}' is not a number", s, ps);
      return false;
    }
    port = uint16_t(*v);
  }
  return true;
}

struct IcmpName {
  const char* name;
  uint8_t type;
};
constexpr IcmpName kIcmp[] = {
    {"echo-request", 8},  {"echo-reply", 0}, {"timestamp-request", 13}, {"timestamp-reply", 14}, {"destination-unreachable", 3},
    {"time-exceeded", 11}};
constexpr IcmpName kIcmp6[] = {
    {"echo-request", 128}, {"echo-reply", 129}, {"destination-unreachable", 1}, {"packet-too-big", 2}, {"time-exceeded", 3}};

}  // namespace

std::string tcp_flags_letters(uint8_t f) {
  std::string s;
  // Conventional order: S A F R P U E C.
  for (char c : std::string_view("SAFRPUEC")) {
    auto bit = uint8_t(1u << kLetters.find(c));
    if (f & bit) s += c;
  }
  return s;
}

std::optional<PacketSpec> parse_packet_spec(std::string_view s, std::string* why) {
  PacketSpec out;
  out.text = std::string(s);
  std::vector<std::string_view> w;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) w.push_back(s.substr(i, j - i));
    i = j;
  }
  auto fail = [&](std::string m) -> std::optional<PacketSpec> {
    if (why) *why = std::move(m);
    return std::nullopt;
  };
  bool reply = w.size() >= 2 && (w[1] == "reply" || w[1].starts_with("reply:"));
  if (reply) {
    if (w[1] == "reply") out.reply_of = 0;
    else if (auto n = parse_uint(w[1].substr(6), 1000000); n && *n > 0) out.reply_of = int(*n);
    else return fail(fmt::format("'{}': expected reply or reply:N (N = packet number from 1)", w[1]));
    // Shift so the options start at the same index as in the address form.
    w.insert(w.begin() + 2, {"->", "0.0.0.0:0"});
  }
  if (w.size() < 4 || w[2] != "->")
    return fail(fmt::format("'{}': expected 'PROTO SRC -> DST', e.g. 'tcp 10.0.0.2:40000 -> 172.30.0.41:80'", s));
  Packet& p = out.pkt;
  auto slash = w[0].find('/');
  std::string_view pname = w[0].substr(0, slash), flags = slash == std::string_view::npos ? "" : w[0].substr(slash + 1);
  uint8_t pr;
  if (pname == "tcp") pr = proto::TCP;
  else if (pname == "udp") pr = proto::UDP;
  else if (pname == "sctp") pr = proto::SCTP;
  else if (pname == "icmp") pr = proto::ICMP;
  else if (pname == "icmp6" || pname == "icmpv6" || pname == "ipv6-icmp") pr = proto::ICMPV6;
  else if (pname == "esp") pr = proto::ESP;
  else if (pname == "ah") pr = proto::AH;
  else if (auto v = parse_uint(pname, 255)) pr = uint8_t(*v);
  else return fail(fmt::format("'{}': unknown protocol (tcp, udp, sctp, icmp, icmp6, esp, ah or a number)", pname));
  p.t.proto = pr;
  bool ports = proto::has_ports(pr);
  uint16_t sport = 0, dport = 0;
  bool hs = false, hd = false;
  if (reply) {
    hs = hd = true;  // filled in from the packet being answered
  } else {
    if (!endpoint(w[1], p.t.src, sport, hs, ports, why)) return std::nullopt;
    if (!endpoint(w[3], p.t.dst, dport, hd, ports, why)) return std::nullopt;
  }
  if (p.t.src.fam != p.t.dst.fam) return fail(fmt::format("'{}': source and destination are of different families", s));
  if (pr == proto::ICMP && !p.t.src.is_v4()) p.t.proto = pr = proto::ICMPV6;
  if (pr == proto::ICMPV6 && p.t.src.is_v4()) return fail("icmp6 needs IPv6 addresses");
  out.sport_given = hs || !ports;
  p.t.sport = sport;
  p.t.dport = dport;
  if (pr == proto::TCP) {
    p.tcp_flags = tcpflag::SYN;
    if (!flags.empty()) {
      p.tcp_flags = 0;
      for (char c : flags) {
        auto k = kLetters.find(char(std::toupper(uint8_t(c))));
        if (k == std::string_view::npos) return fail(fmt::format("'{}': TCP flags are letters from S A F R P U E C", flags));
        p.tcp_flags |= uint8_t(1u << k);
      }
    }
  } else if (p.is_icmp()) {
    uint8_t type = pr == proto::ICMP ? 8 : 128, code = 0;
    if (!flags.empty()) {
      bool found = false;
      const IcmpName* tab = pr == proto::ICMP ? kIcmp : kIcmp6;
      size_t n = pr == proto::ICMP ? std::size(kIcmp) : std::size(kIcmp6);
      for (size_t k = 0; k < n; ++k)
        if (flags == tab[k].name) type = tab[k].type, found = true;
      if (!found) {
        auto sl = flags.find('/');
        auto t = parse_uint(flags.substr(0, sl), 255);
        auto c = sl == std::string_view::npos ? std::optional<uint64_t>(0) : parse_uint(flags.substr(sl + 1), 255);
        if (!t || !c) return fail(fmt::format("'{}': ICMP type is a name (echo-request...) or TYPE[/CODE]", flags));
        type = uint8_t(*t);
        code = uint8_t(*c);
      }
    }
    p.t.dport = uint16_t(type << 8 | code);
    p.t.sport = 1;  // echo id
  } else if (!flags.empty()) {
    return fail(fmt::format("'{}': flags only go with tcp or icmp", w[0]));
  }
  p.len = p.t.src.is_v4() ? 60 : 80;
  bool len_given = false;
  std::string_view chain;
  for (size_t k = 4; k < w.size(); ++k) {
    auto kv = w[k];
    auto eq = kv.find('=');
    auto key = kv.substr(0, eq);
    auto val = eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
    auto num = [&](uint64_t max, bool hex) -> std::optional<uint64_t> {
      auto v = parse_uint(val, max, hex);
      if (!v) return fail(fmt::format("'{}': {} needs a number up to {}", kv, key, max)), std::nullopt;
      return v;
    };
    if (key == "local" && eq == std::string_view::npos) out.local = true;
    else if (key == "frag" && eq == std::string_view::npos) {
      if (!p.t.src.is_v4()) return fail("'frag': an IPv6 fragment is a header: ext=frag/off=N[/more]");
      p.fragment = true;
    } else if (key == "mf" && eq == std::string_view::npos) {
      if (!p.t.src.is_v4()) return fail("'mf': an IPv6 fragment is a header: ext=frag/off=N/more");
      p.more_fragments = true;
    } else if (key == "ext" && !val.empty()) {
      if (p.t.src.is_v4()) return fail(fmt::format("'{}': extension headers are IPv6's (IPv4 has -f: frag, mf)", kv));
      chain = val;
    } else if (key == "spi") {
      if (pr != proto::ESP && !(pr == proto::AH && p.t.src.is_v4()))
        return fail(fmt::format("'{}': spi= goes with esp (or IPv4 ah); IPv6 AH is a header: ext=ah/spi=N", kv));
      auto v = num(0xffffffff, true);
      if (!v) return std::nullopt;
      p.spi = uint32_t(*v);
    } else if (key == "in" && !val.empty()) out.in = std::string(val);
    else if (key == "mark") {
      auto v = num(0xffffffff, true);
      if (!v) return std::nullopt;
      p.mark = uint32_t(*v);
    } else if (key == "ttl") {
      auto v = num(255, false);
      if (!v) return std::nullopt;
      p.ttl = uint8_t(*v);
    } else if (key == "len") {
      auto v = num(65535, false);
      if (!v) return std::nullopt;
      p.len = uint16_t(*v);
      len_given = true;
    } else if (key == "id" && p.is_icmp()) {
      auto v = num(65535, false);
      if (!v) return std::nullopt;
      p.t.sport = uint16_t(*v);
    } else if (key == "t") {
      std::string tmp(val);
      char* end = nullptr;
      double secs = std::strtod(tmp.c_str(), &end);
      if (tmp.empty() || end != tmp.c_str() + tmp.size() || !(secs >= 0) || secs > 1e9)
        return fail(fmt::format("'{}': t= takes seconds, e.g. t=1.5", kv));
      p.ts_ns = uint64_t(std::llround(secs * 1e9));
    } else if (key == "uid" || key == "gid" || key == "classid" || key == "conns" || key == "time") {
      auto v = num(key == "time" ? 0x7fffffff : 0xffffffff, key == "classid");
      if (!v) return std::nullopt;
      (key == "uid"       ? p.uid
       : key == "gid"     ? p.gid
       : key == "classid" ? p.classid
       : key == "conns"   ? p.conns
                          : p.wall) = uint32_t(*v);
    } else if (key == "cpu" || key == "mss" || key == "tos") {
      auto v = num(key == "tos" ? 255 : 65535, key == "tos");
      if (!v) return std::nullopt;
      if (key == "cpu") p.cpu = uint16_t(*v);
      else if (key == "mss") p.mss = uint16_t(*v);
      else p.tos = uint8_t(*v);
    } else if (key == "mac") {
      unsigned b[6];
      char tail;
      if (val.size() != 17 || std::sscanf(std::string(val).c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                                          &b[4], &b[5], &tail) != 6)
        return fail(fmt::format("'{}': mac= takes six hex pairs, e.g. mac=00:11:22:33:44:55", kv));
      for (int q = 0; q < 6; ++q) p.src_mac[q] = uint8_t(b[q]);
    } else if (key == "nosock" && eq == std::string_view::npos) p.assume |= assume::NoSocket;
    else if (key == "hashlimit" && val == "over") p.assume |= assume::OverLimit;
    else if (key == "string" && val == "found") p.assume |= assume::StringFound;
    else {
      return fail(
          fmt::format("'{}': unknown option (in=IFACE, local, mark=N, ttl=N, len=N, t=SECONDS, frag, id=N, tos=N, "
                      "mac=MAC, uid=N, gid=N, nosock, classid=N, conns=N, time=EPOCH, cpu=N, mss=N, hashlimit=over, "
                      "string=found, ext=HDR,..., spi=N, mf)",
                      kv));
    }
  }
  if (!p.t.src.is_v4()) {
    if (pr == proto::AH) return fail("IPv6 AH is an extension header: ext=ah/spi=N, then the protocol behind it");
    if (!chain.empty() && !ext6::parse_chain(chain, pr, p, why)) return std::nullopt;
    // A protocol that is itself an extension header can only stand behind a later fragment (the
    // headers are in the first fragment); elsewhere it is written in ext=.
    if (ext6::is_ext(pr) && pr != ext6::NONE && !p.fragment)
      return fail(fmt::format("protocol {} is an IPv6 extension header: write it in ext=", pr));
    if (len_given && p.len < 40 + p.ext_len)
      return fail(fmt::format("len={} is shorter than the IPv6 header and its {} bytes of extension headers", p.len, p.ext_len));
    if (!len_given) p.len = uint16_t(p.len + p.ext_len);
  }
  // A later fragment carries no transport header, so its ports may go unsaid.
  if (ports && !hd && !p.fragment) return fail(fmt::format("'{}': the destination needs a port", w[3]));
  if (p.fragment) out.sport_given = true;
  return out;
}

}  // namespace svcpath
