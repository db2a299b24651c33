#include "netfilter/reject.hpp"

#include <algorithm>
#include <span>
#include <string>

#include <fmt/format.h>

#include "netfilter/node.hpp"

namespace svcpath::nf {

namespace {

// icmp_pointers[type].error: the types icmp_send never answers (an error about an error is a
// storm); anything past NR_ICMP_TYPES counts as an error too.
bool icmp4_error_type(uint8_t t) {
  return t == 1 || t == 2 || t == 3 || t == 4 || t == 5 || t == 6 || t == 7 || t == 11 || t == 12 || t > 18;
}

// What both families' answers share: a new packet the host sends, without a socket (nf_send_reset's
// nskb->sk is NULL; icmp_send's per-CPU socket has no file, so -m owner sees none), mark 0
// (fwmark_reflect off), on the rejected packet's connection in the other direction (nf_ct_attach:
// IP_CT_RELATED / IP_CT_RELATED_REPLY). An untracked or invalid packet has no connection to give.
Packet blank_answer(const Packet& p) {
  Packet a;
  a.ts_ns = p.ts_ns;
  a.wall = p.wall;
  a.cpu = p.cpu;
  a.assume = assume::NoSocket;
  a.ct_zone = p.ct_zone;
  if (p.ct && (p.ctinfo == CtInfo::New || p.ctinfo == CtInfo::Established || p.ctinfo == CtInfo::Related)) {
    a.ct = p.ct;
    a.dir = p.dir == CtDir::Original ? CtDir::Reply : CtDir::Original;
    a.ctinfo = CtInfo::Related;
  }
  return a;
}

// nf_reject_ip{,6}_tcphdr_get / _put: no reset to a fragment, a non-TCP packet or a reset; the
// addresses and ports swapped; RST alone when the packet acknowledged something (seq = its ack),
// RST|ACK otherwise.
std::optional<Packet> reset(const Packet& p, std::string_view* why) {
  if (p.t.proto != proto::TCP || p.fragment) {
    *why = p.fragment ? "a fragment gets no reset" : "not TCP: tcp-reset sends nothing";
    return std::nullopt;
  }
  if (p.tcp_flags & tcpflag::RST) {
    *why = "no reset answers a reset";
    return std::nullopt;
  }
  Packet a = blank_answer(p);
  a.t = p.t.reversed();
  a.tcp_flags = (p.tcp_flags & tcpflag::ACK) ? tcpflag::RST : uint8_t(tcpflag::RST | tcpflag::ACK);
  a.len = p.t.src.is_v4() ? 40 : 60;
  return a;
}

}  // namespace

RejectKind reject_kind(std::string_view with, Family fam) {
  bool v4 = fam == Family::V4;
  RejectKind k;
  k.type = v4 ? 3 : 1;
  k.code = v4 ? 3 : 4;
  if (with == "tcp-reset") {
    k.reset = true;
    return k;
  }
  struct Code {
    std::string_view name;
    uint8_t code;
  };
  // ipt_REJECT / ip6t_REJECT names; nft spells its codes the same after icmp- / icmp6-, and its
  // family-independent icmpx codes as icmp- too: an icmp- name on an IPv6 packet can only be one of
  // those (or an inet table's bare reject), mapped as nft_reject_icmpx_to_icmpv6 does.
  static constexpr Code c4[] = {{"icmp-net-unreachable", 0},  {"icmp-host-unreachable", 1},  {"icmp-proto-unreachable", 2},
                                {"icmp-prot-unreachable", 2}, {"icmp-port-unreachable", 3},  {"icmp-net-prohibited", 9},
                                {"icmp-host-prohibited", 10}, {"icmp-admin-prohibited", 13}, {"icmp-no-route", 0}};
  static constexpr Code c6[] = {{"icmp6-no-route", 0},         {"icmp6-adm-prohibited", 1},   {"icmp6-admin-prohibited", 1},
                                {"icmp6-addr-unreachable", 3}, {"icmp6-port-unreachable", 4}, {"icmp6-policy-fail", 5},
                                {"icmp6-reject-route", 6},     {"icmp6-beyond-scope", 2},     {"icmp-no-route", 0},
                                {"icmp-admin-prohibited", 1},  {"icmp-host-unreachable", 3},  {"icmp-port-unreachable", 4}};
  for (const Code& c : v4 ? std::span<const Code>(c4) : std::span<const Code>(c6))
    if (c.name == with) k.code = c.code;
  // nft's numeric codes: reject with icmp 3, icmpv6 1.
  std::string_view num = with.substr(with.find('-') == std::string_view::npos ? with.size() : with.find('-') + 1);
  if (num.size() <= 3)
    if (auto v = parse_uint(num, 255)) k.code = uint8_t(*v);
  return k;
}

std::optional<Packet> reject_answer_v4(const Packet& p, RejectKind k, Hook h, const Node& node, std::string_view* why) {
  const Addr& dst = p.t.dst;
  // nf_send_reset and icmp_send both refuse a packet whose route is broadcast or multicast.
  bool brd = dst.is_multicast() || dst.is_limited_broadcast() || node.pkt_type_for(dst) == PktType::Broadcast;
  if (k.reset) {
    if (brd) {
      *why = "no reset to a broadcast or multicast destination";
      return std::nullopt;
    }
    return reset(p, why);
  }
  if (p.fragment) {
    *why = "only a first fragment gets an ICMP error";
    return std::nullopt;
  }
  if (brd || (!p.local_out && p.pkt_type != PktType::Host)) {
    *why = "no ICMP error about a broadcast or multicast";
    return std::nullopt;
  }
  if (p.t.proto == proto::ICMP && icmp4_error_type(p.icmp_type())) {
    *why = "no ICMP error about an ICMP error";
    return std::nullopt;
  }
  Packet a = blank_answer(p);
  a.t.src = Addr::any(Family::V4);
  // __icmp_send's source: the rejected packet's destination when its route was local (RTCF_LOCAL:
  // INPUT, or OUTPUT to one of our addresses); from an input route that forwards, the receiving
  // interface's address with icmp_errors_use_inbound_ifaddr; otherwise none, so the output route
  // towards the client picks it (what Datapath::local_out does with an unspecified source).
  bool local = h == Hook::LocalIn || (h == Hook::LocalOut && node.is_local(dst));
  if (local) {
    a.t.src = dst;
  } else if (h == Hook::Forward && p.iif >= 0) {
    auto it = node.sys.other.find("net.ipv4.icmp_errors_use_inbound_ifaddr");
    if (it != node.sys.other.end() && it->second != "0")
      if (auto s = node.select_source(p.iif, p.t.src)) a.t.src = *s;
  }
  a.t.dst = p.t.src;
  a.t.proto = proto::ICMP;
  a.t.dport = uint16_t(k.type << 8 | k.code);
  a.inner = p.t;
  // The quoted packet is cut so the error fits 576 bytes; the TOS keeps the packet's TOS bits with
  // internetwork-control precedence.
  a.len = uint16_t(std::min(576, 28 + int(p.len)));
  a.tos = uint8_t((p.tos & 0x1e) | 0xc0);
  return a;
}

std::optional<Packet> reject_answer_v6(const Packet& p, RejectKind k, Hook h, const Node& node, std::string_view* why) {
  (void)h;
  const Addr &src = p.t.src, &dst = p.t.dst;
  if (k.reset) {
    // nf_send_reset6: both addresses unicast.
    if (src.is_multicast() || dst.is_multicast() || src.is_unspecified() || dst.is_unspecified()) {
      *why = "no reset unless both addresses are unicast";
      return std::nullopt;
    }
    return reset(p, why);
  }
  // icmp6_send, in its order: a multicast destination or a packet not for this host gets no error
  // (bar packet-too-big), nor an unspecified or multicast source, nor an ICMPv6 error.
  if (dst.is_multicast() || (!p.local_out && p.pkt_type != PktType::Host)) {
    *why = "no ICMPv6 error about a multicast";
    return std::nullopt;
  }
  if (src.is_unspecified() || src.is_multicast()) {
    *why = "no ICMPv6 error to an unspecified or multicast source";
    return std::nullopt;
  }
  if (p.t.proto == proto::ICMPV6 && p.icmp_type() < 128) {
    *why = "no ICMPv6 error about an ICMPv6 error";
    return std::nullopt;
  }
  if (p.fragment) {
    *why = "only a first fragment gets an ICMPv6 error";
    return std::nullopt;
  }
  Packet a = blank_answer(p);
  // The destination when it is one of ours (ipv6_chk_addr on any device); else, for a packet that
  // came in, source selection on the interface it came in on (icmp6_send's "a more meaningful
  // saddr from input if"); else the output route's.
  a.t.src = Addr::any(Family::V6);
  if (node.has_address(dst)) a.t.src = dst;
  else if (!p.local_out && p.iif >= 0)
    if (auto s = node.select_source(p.iif, src)) a.t.src = *s;
  a.t.dst = src;
  a.t.proto = proto::ICMPV6;
  a.t.dport = uint16_t(k.type << 8 | k.code);
  a.inner = p.t;
  // A scoped (link-local) source is answered through the interface it came in on (icmp6_iif).
  if (src.is_link_local() && p.iif >= 0) a.oif = p.iif;
  a.len = uint16_t(std::min(1280, 48 + int(p.len)));
  return a;
}

std::string answer_name(const Packet& a) {
  if (a.t.proto == proto::TCP) return "tcp-reset";
  return fmt::format("{} type {} code {}", a.t.proto == proto::ICMPV6 ? "icmp6" : "icmp", a.icmp_type(), a.icmp_code());
}

}  // namespace svcpath::nf
