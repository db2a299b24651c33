#include "netfilter/iptables/table.hpp"

namespace svcpath::nf {

std::optional<TableId> parse_table(std::string_view s) {
  for (int i = 0; i < kNumTables; ++i)
    if (table_name(TableId(i)) == s) return TableId(i);
  return std::nullopt;
}

std::optional<Hook> parse_builtin_chain(std::string_view s) {
  for (int i = 0; i < kNumHooks; ++i)
    if (hook_name(Hook(i)) == s) return Hook(i);
  return std::nullopt;
}

}  // namespace svcpath::nf
