#pragma once
// The kernel's 32-bit Jenkins hashes (lookup3): jhash2 for NAT address ranges, jhash_3words for
// the IPVS connection table. Exact, so bucket choices follow the kernel's for the same seed.
#include <cstdint>

namespace svcpath {

namespace jhash_detail {
inline uint32_t rol(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
inline void final_mix(uint32_t& a, uint32_t& b, uint32_t& c) {
  c ^= b;
  c -= rol(b, 14);
  a ^= c;
  a -= rol(c, 11);
  b ^= a;
  b -= rol(a, 25);
  c ^= b;
  c -= rol(b, 16);
  a ^= c;
  a -= rol(c, 4);
  b ^= a;
  b -= rol(a, 14);
  c ^= b;
  c -= rol(b, 24);
}
}  // namespace jhash_detail

inline uint32_t jhash2(const uint32_t* k, uint32_t length, uint32_t initval) {
  using namespace jhash_detail;
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + (length << 2) + initval;
  while (length > 3) {
    a += k[0];
    b += k[1];
    c += k[2];
    a -= c;
    a ^= rol(c, 4);
    c += b;
    b -= a;
    b ^= rol(a, 6);
    a += c;
    c -= b;
    c ^= rol(b, 8);
    b += a;
    a -= c;
    a ^= rol(c, 16);
    c += b;
    b -= a;
    b ^= rol(a, 19);
    a += c;
    c -= b;
    c ^= rol(b, 4);
    b += a;
    length -= 3;
    k += 3;
  }
  switch (length) {
    case 3: c += k[2]; [[fallthrough]];
    case 2: b += k[1]; [[fallthrough]];
    case 1:
      a += k[0];
      final_mix(a, b, c);
      break;
    default: break;
  }
  return c;
}

inline uint32_t jhash_3words(uint32_t a, uint32_t b, uint32_t c, uint32_t initval) {
  initval += 0xdeadbeef + (3 << 2);
  a += initval;
  b += initval;
  c += initval;
  jhash_detail::final_mix(a, b, c);
  return c;
}

}  // namespace svcpath
