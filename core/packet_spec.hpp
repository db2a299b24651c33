#pragma once
// The one-line packet description users type:
//   PROTO[/FLAGS] SRC[:PORT] -> DST[:PORT] [in=IFACE] [local] [mark=N] [ttl=N] [len=N] [t=SECONDS] [frag] [mf] [id=N]
//   [spi=N] [ext=HDR[,HDR...]] (IPv6 extension headers: hbh, dst, rt, frag, ah; core/ipv6_ext.hpp)
// e.g. "tcp 10.0.0.2:40000 -> 172.30.0.41:80", "tcp/SA 10.1.1.5:80 -> 10.0.0.2:40000", "udp [fd00::1]:53 -> [fd00::2]:53",
// "icmp 10.0.0.1 -> 10.0.0.2", "icmp/echo-reply 10.0.0.2 -> 10.0.0.1 id=7",
// "udp [fd00::1]:53 -> [fd00::2]:53 ext=hbh/5:2,frag/off=0/id=7/more".
// A reply needs no addresses: "tcp/SA reply" answers the previous packet as it left the node (after
// NAT), "tcp/A reply:1" answers packet 1; the caller fills the tuple in.
#include <optional>
#include <string>
#include <string_view>

#include "core/packet.hpp"

namespace svcpath {

struct PacketSpec {
  Packet pkt;
  bool local = false;       // host-originated (OUTPUT path)
  std::string in;           // receiving interface, "" = default
  bool sport_given = true;  // false: the caller picks an ephemeral port
  std::string text;         // the spec as written
  int reply_of = -1;        // -1: addresses given; 0: reply to the previous packet; N: to packet N
};

/// Strict parse; on failure returns nullopt and sets *why (with the offending word).
std::optional<PacketSpec> parse_packet_spec(std::string_view s, std::string* why);

/// TCP flags as letters: S A F R P U E C ("SA" = SYN+ACK).
std::string tcp_flags_letters(uint8_t f);

}  // namespace svcpath
