#pragma once
// IPv6 extension headers (RFC 8200) as a Packet carries them (Packet::ext, the bytes between the
// fixed header and the upper-layer header), the kernel's walk over them (ipv6_find_hdr in
// net/ipv6/exthdrs_core.c) and the one-line syntax the packet spec writes them in.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/packet.hpp"

namespace svcpath::ext6 {

// Next Header values (NEXTHDR_* in include/net/ipv6.h).
inline constexpr uint8_t HOP = 0, ROUTING = 43, FRAGMENT = 44, ESP = 50, AUTH = 51, NONE = 59, DEST = 60;

/// ipv6_ext_hdr: the headers ipv6_find_hdr steps over (ESP is not one: it ends the walk).
constexpr bool is_ext(uint8_t nh) {
  return nh == HOP || nh == ROUTING || nh == FRAGMENT || nh == AUTH || nh == NONE || nh == DEST;
}

/// The byte at offset off from the start of the IPv6 header: the extension headers from 40 on,
/// the (zero) payload after them, nullopt past the packet's length (the kernel's
/// skb_header_pointer failing).
std::optional<uint8_t> byte_at(const Packet& p, unsigned off);

inline constexpr int kNoEnt = -2, kBadMsg = -74;  // -ENOENT, -EBADMSG

/// ipv6_find_hdr(skb, &off, target, &fragoff, NULL): the protocol number of the header of type
/// target (or, target < 0, of the upper-layer header) and its offset, or kNoEnt / kBadMsg. As in
/// the kernel, a later fragment ends the walk: its fragment header's next header is the answer
/// only when it is not an extension header itself.
int find_hdr(const Packet& p, int target, unsigned* off, uint16_t* fragoff = nullptr);

/// The Next Header value of the fixed IPv6 header.
inline uint8_t first_header(const Packet& p) { return p.ext_len ? p.ext_first : p.t.proto; }

/// Removes the header at offset off (one find_hdr returned), linking its predecessor to its
/// successor and shortening the packet: what reassembly does to the fragment header.
void remove_header(Packet& p, unsigned off);

/// A first fragment as the datagram reassembly makes of it: no More Fragments, and in IPv6 no
/// fragment header.
void as_reassembled(Packet& p);

/// Parses the packet spec's ext= value into p's extension headers, with proto (the header behind
/// them) as the last Next Header; also sets p.fragment / p.more_fragments from a fragment header.
/// The grammar is in docs/inputs.md ("IPv6 extension headers"). False with *why on error.
bool parse_chain(std::string_view s, uint8_t proto, Packet& p, std::string* why);

}  // namespace svcpath::ext6
