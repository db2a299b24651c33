#pragma once
// Network byte order, written and read in one place: packet headers (pcap), nftables keys and
// register values use these.
#include <cstddef>
#include <cstdint>

namespace svcpath {

/// Stores the low n bytes of v at p, most significant first.
constexpr void put_be(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[n - 1 - i] = uint8_t(v >> (8 * i));
}
/// Reads n bytes at p, most significant first.
constexpr uint64_t get_be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}
constexpr uint16_t be16(const uint8_t* p) { return uint16_t(get_be(p, 2)); }
constexpr uint32_t be32(const uint8_t* p) { return uint32_t(get_be(p, 4)); }
constexpr void put16(uint8_t* p, uint16_t v) { put_be(p, v, 2); }
constexpr void put32(uint8_t* p, uint32_t v) { put_be(p, v, 4); }

}  // namespace svcpath
