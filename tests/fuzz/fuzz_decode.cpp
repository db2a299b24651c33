// Captured bytes in (first byte picks the link type): a packet or a named reason. A decoded packet
// must survive a NAT rewrite, and a packet svcpath builds must decode back to its own tuple.
#include <cstdint>
#include <cstdlib>

#include "pcap/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  using namespace svcpath::pcap;
  if (size < 1) return 0;
  static const int links[] = {link::Ethernet, link::Sll,  link::Sll2, link::Null,     link::Loop,
                              link::Raw,      link::Ipv4, link::Ipv6, link::RawAlt12, 147};
  int lt = links[data[0] % (sizeof links / sizeof links[0])];
  const uint8_t* frame = data + 1;
  uint32_t caplen = uint32_t(size - 1);
  Decoded d;
  DecodeError e = decode(lt, frame, caplen, d, caplen);
  if (e != DecodeError::None) return 0;
  if (d.l3 > caplen || (d.has_l4 && d.l4 > caplen)) std::abort();
  Packet after = d.pkt;
  after.t = after.t.reversed();
  if (after.is_icmp()) after.t.dport = d.pkt.t.dport;
  auto out = rewrite(frame, caplen, d, after);
  if (out.size() != caplen - d.l3) std::abort();
  // Building from the decoded tuple and decoding that gives the tuple back.
  if (!d.pkt.fragment && (d.pkt.t.proto == proto::TCP || d.pkt.t.proto == proto::UDP)) {
    auto built = build(d.pkt);
    Decoded d2;
    if (decode(link::Raw, built.data(), uint32_t(built.size()), d2) != DecodeError::None) std::abort();
    if (!(d2.pkt.t == d.pkt.t)) std::abort();
    if (!checksums_ok(built.data(), built.size())) std::abort();
  }
  return 0;
}
