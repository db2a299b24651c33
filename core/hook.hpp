#pragma once
#include <cstdint>
#include <string_view>

namespace svcpath {

/// The five netfilter hooks (NF_INET_*), in the kernel's numbering.
enum class Hook : uint8_t { PreRouting = 0, LocalIn = 1, Forward = 2, LocalOut = 3, PostRouting = 4 };
inline constexpr int kNumHooks = 5;

/// iptables chain names of the hooks ("PREROUTING", "INPUT", ...).
constexpr std::string_view hook_name(Hook h) {
  constexpr std::string_view n[] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};
  return n[int(h)];
}

}  // namespace svcpath
