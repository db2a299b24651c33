// The trace packet grammar: a PacketSpec or a reason, never a crash.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/packet_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string why;
  auto spec = svcpath::parse_packet_spec(std::string_view(reinterpret_cast<const char*>(data), size), &why);
  if (!spec && why.empty()) __builtin_trap();  // a refusal always says why
  return 0;
}
