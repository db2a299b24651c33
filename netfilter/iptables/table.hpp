#pragma once
// iptables' tables, their built-in chains and the hook priorities they register at.
#include <climits>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/hook.hpp"
#include "netfilter/stage.hpp"

namespace svcpath::nf {

enum class TableId : uint8_t { Raw, Mangle, Nat, Filter, Security };
inline constexpr int kNumTables = 5;

constexpr std::string_view table_name(TableId t) {
  constexpr std::string_view n[] = {"raw", "mangle", "nat", "filter", "security"};
  return n[int(t)];
}
std::optional<TableId> parse_table(std::string_view s);

constexpr uint8_t hook_bit(Hook h) { return uint8_t(1u << int(h)); }

/// Hooks at which a table has built-in chains.
constexpr uint8_t table_hooks(TableId t) {
  using enum Hook;
  switch (t) {
    case TableId::Raw: return hook_bit(PreRouting) | hook_bit(LocalOut);
    case TableId::Mangle: return 0x1f;
    case TableId::Nat: return hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(LocalOut) | hook_bit(PostRouting);
    case TableId::Filter:
    case TableId::Security: return hook_bit(LocalIn) | hook_bit(Forward) | hook_bit(LocalOut);
  }
  return 0;
}

/// Priority of a table's registration at a hook.
constexpr int table_priority(TableId t, Hook h) {
  switch (t) {
    case TableId::Raw: return prio::RAW;
    case TableId::Mangle: return prio::MANGLE;
    case TableId::Nat: return (h == Hook::PreRouting || h == Hook::LocalOut) ? prio::NAT_DST : prio::NAT_SRC;
    case TableId::Filter: return prio::FILTER;
    case TableId::Security: return prio::SECURITY;
  }
  return 0;
}

std::optional<Hook> parse_builtin_chain(std::string_view s);

}  // namespace svcpath::nf
