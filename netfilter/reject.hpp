#pragma once
// The answer a REJECT sends (the kernel's nf_reject_ipv4.c / nf_reject_ipv6.c): a TCP reset
// (nf_send_reset, nf_send_reset6) or an ICMP/ICMPv6 error (nf_send_unreach -> icmp_send,
// nf_send_unreach6 -> icmpv6_send). It is a new, locally generated packet attached to the rejected
// packet's connection in the other direction (nf_ct_attach: RELATED), so it walks OUTPUT and
// POSTROUTING on its own and may die there; the Datapath runs it (Datapath::send_answer).
#include <optional>
#include <string>
#include <string_view>

#include "core/hook.hpp"
#include "core/packet.hpp"

namespace svcpath::nf {

class Node;

/// What a REJECT asks for: a TCP reset or an ICMP error of a type and code.
struct RejectKind {
  bool reset = false;
  uint8_t type = 3, code = 3;  // ICMP destination unreachable, port unreachable
};

/// The answer a --reject-with / nft reject type names for a packet of the given family: iptables'
/// names (icmp-port-unreachable, icmp6-adm-prohibited, tcp-reset), nft's icmpx codes per family
/// (nft_reject_icmpx_to_icmp{,v6}). Anything unknown is the family's port unreachable.
RejectKind reject_kind(std::string_view with, Family fam);

/// The answer the kernel builds for packet p (as it is at the REJECT, at hook h), or nullopt with
/// the reason in *why when it sends none: a reset to a reset, to a fragment or to a broadcast;
/// an ICMP error about an ICMP error, a fragment, a broadcast or multicast, a packet the host did
/// not receive as PACKET_HOST. One function per family, as the kernel has.
std::optional<Packet> reject_answer_v4(const Packet& p, RejectKind k, Hook h, const Node& node, std::string_view* why);
std::optional<Packet> reject_answer_v6(const Packet& p, RejectKind k, Hook h, const Node& node, std::string_view* why);

/// "tcp-reset", "icmp type 3 code 3", "icmp6 type 1 code 4": how the answer is named in outcomes.
std::string answer_name(const Packet& a);

}  // namespace svcpath::nf
