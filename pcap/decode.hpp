#pragma once
// Bytes on the wire -> core::Packet, for every link type svcpath reads, and the inverse direction:
// rewriting a captured packet after NAT (checksums updated incrementally, as the kernel's NAT does,
// so they stay right even when the capture was cut short by snaplen), or building one from scratch.
// No allocation on the decode path; failures are reasons to count, never exceptions.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/packet.hpp"

namespace svcpath::pcap {

// Link types. libpcap reports DLT_ values: a LINKTYPE_RAW (101) file reads back as DLT_RAW (12 on
// Linux, 14 on OpenBSD), so all three decode as raw IP.
namespace link {
inline constexpr int Null = 0, Ethernet = 1, Raw = 101, RawAlt12 = 12, RawAlt14 = 14, Loop = 108, Sll = 113, Ipv4 = 228,
                     Ipv6 = 229, Sll2 = 276;
}

enum class DecodeError : uint8_t {
  None,
  UnsupportedLink,  // a link type svcpath does not decode
  NotIp,            // ARP, LLDP, ... (counted, skipped)
  Truncated,        // the capture ends inside a header (snaplen)
  BadHeader,        // IP version/header length/total length inconsistent
  LongExtHeaders,   // IPv6 extension headers longer than a Packet keeps (kExtMax)
  Count_,
};
std::string_view decode_error_name(DecodeError e);

struct Decoded {
  Packet pkt;
  uint32_t l3 = 0;      // offset of the IP header in the frame
  uint32_t l4 = 0;      // offset of the transport header (when has_l4)
  bool has_l4 = false;  // false for non-first fragments
  uint16_t vlan = 0;    // outermost 802.1Q tag, 0 if none
  uint32_t ip_id = 0;   // IPv4 identification / IPv6 fragment id, for fragment tracking
  uint16_t frag_offset = 0;
};

/// Decodes one frame. wirelen, when known, is the frame's length on the wire: an IP packet whose
/// total length runs past it is BadHeader (a lying length field), not a snaplen cut.
DecodeError decode(int linktype, const uint8_t* data, uint32_t caplen, Decoded& out, uint32_t wirelen = 0);

/// The IP packet of frame (from out.l3), rewritten to carry `after`'s addresses and ports, with
/// the IPv4 header checksum and the TCP/UDP/ICMPv6 checksums updated incrementally (RFC 1624).
std::vector<uint8_t> rewrite(const uint8_t* frame, uint32_t caplen, const Decoded& d, const Packet& after);

/// A minimal IP packet for p (20/40-byte IP header, transport header, zero payload up to p.len),
/// with correct checksums: what the traffic generator writes.
std::vector<uint8_t> build(const Packet& p);

/// Internet checksum helpers (exposed for tests).
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t initial = 0);
/// Verifies the IPv4 header checksum and the transport checksum of a complete IP packet.
bool checksums_ok(const uint8_t* ip, size_t len);

}  // namespace svcpath::pcap
