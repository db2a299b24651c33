#pragma once
#include <cstdint>
#include <string>

#include "core/addr.hpp"

namespace svcpath {

/// The conntrack-style 5-tuple. For ICMP, sport holds the echo id and dport (type << 8 | code),
/// as the kernel's nf_conntrack_tuple keeps id on the source side and type/code on the destination.
/// Trivially copyable; ports are host order.
struct FiveTuple {
  Addr src, dst;
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;

  FiveTuple reversed() const { return {dst, src, dport, sport, proto}; }
  bool operator==(const FiveTuple&) const = default;
  /// "tcp 10.0.0.1:5000 -> 10.0.0.2:80" ; IPv6 in brackets.
  std::string str() const;
  /// "10.0.0.1:5000" (or the bare address for portless protocols).
  static std::string endpoint(const Addr& a, uint16_t port, uint8_t proto);
};

struct FiveTupleHash {
  size_t operator()(const FiveTuple& t) const noexcept;
};

}  // namespace svcpath
