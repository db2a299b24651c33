// The trace packet grammar: a PacketSpec or a reason, never a crash. A spec with IPv6 extension
// headers holds them within the packet, and the kernel's walk over them stays inside it.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/ipv6_ext.hpp"
#include "core/packet_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string why;
  auto spec = svcpath::parse_packet_spec(std::string_view(reinterpret_cast<const char*>(data), size), &why);
  if (!spec && why.empty()) __builtin_trap();  // a refusal always says why
  if (!spec) return 0;
  const svcpath::Packet& p = spec->pkt;
  if (p.ext_len > svcpath::kExtMax || (p.ext_len && p.len < 40u + p.ext_len)) __builtin_trap();
  for (int target : {-1, 0, 43, 44, 51, 60}) {
    unsigned off = 0;
    int r = svcpath::ext6::find_hdr(p, target, &off);
    // (A later fragment answers its protocol without an offset, as the kernel does.)
    if (r >= 0 && p.ext_len && off && (off < 40 || off > 40u + p.ext_len)) __builtin_trap();
  }
  return 0;
}
