#pragma once
// Internal to svcpath_ipvs: the helpers more than one scheduler (and the service table's hash) use.
#include <cstdint>
#include <string>

#include "ipvs/ipvs.hpp"

namespace svcpath::ipvs {

// The address as the kernel folds it: IPv4 in host order; IPv6 as the XOR of its four words.
inline uint32_t fold(const Addr& a) {
  auto w = [&](int i) {
    return uint32_t(a.b[4 * i]) << 24 | uint32_t(a.b[4 * i + 1]) << 16 | uint32_t(a.b[4 * i + 2]) << 8 | a.b[4 * i + 3];
  };
  return a.is_v4() ? w(0) : (w(0) ^ w(1) ^ w(2) ^ w(3));
}

// A real server as traces name it: "10.0.0.1:80", "[fd00::1]:80".
inline std::string dest_str(const Dest& d) { return FiveTuple::endpoint(d.addr, d.port, proto::TCP); }

}  // namespace svcpath::ipvs
