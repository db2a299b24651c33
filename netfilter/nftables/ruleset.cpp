// Lookups on a loaded nftables ruleset: a set's element by key (exact keys hashed, ranges walked,
// as kube-proxy's sets are all exact) and chains, sets and tables by name.
#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

size_t Set::key_len() const {
  size_t n = 0;
  for (Type t : key) n += type_width(t);
  return n;
}

int32_t Set::find(const Key& k) const {
  auto it = exact.find(k);
  if (it != exact.end()) return int32_t(it->second);
  for (uint32_t i : ranges)
    if (within(elems[i].lo, elems[i].hi, k, key.data(), key.size())) return int32_t(i);
  return -1;
}

void Set::index() {
  exact.clear();
  ranges.clear();
  for (uint32_t i = 0; i < elems.size(); ++i) {
    if (elems[i].lo == elems[i].hi) exact.emplace(elems[i].lo, i);
    else ranges.push_back(i);
  }
}

int32_t Table::chain_index(std::string_view n) const {
  auto it = chain_by_name.find(std::string(n));
  return it == chain_by_name.end() ? -1 : it->second;
}
int32_t Table::set_index(std::string_view n) const {
  for (size_t i = 0; i < sets.size(); ++i)
    if (!sets[i].anonymous && sets[i].name == n) return int32_t(i);
  return -1;
}

Table* Ruleset::find(TableFamily f, std::string_view name) {
  for (auto& t : tables)
    if (t->family == f && t->name == name) return t.get();
  return nullptr;
}

}  // namespace svcpath::nf::nft
