#pragma once
// FNV-1a over explicit bytes: hashes value types field by field, independent of padding.
#include <cstddef>
#include <cstdint>

namespace svcpath {

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  Fnv1a& mix(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return *this;
  }
  Fnv1a& mix(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) h = (h ^ uint8_t(v >> (8 * i))) * 1099511628211ull;
    return *this;
  }
};

}  // namespace svcpath
