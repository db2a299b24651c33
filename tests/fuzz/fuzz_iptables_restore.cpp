// iptables-save text in: a Ruleset or a LoadError, nothing else. What loads must print and reload
// to the same text (the canonical form is a fixed point).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "netfilter/iptables/iptables.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (Family fam : {Family::V4, Family::V6}) {
    nf::Ruleset rs;
    rs.family = fam;
    try {
      nf::load_restore(text, "fuzz.rules", rs);
    } catch (const LoadError&) {
      continue;
    }
    std::string once = nf::save(rs);
    nf::Ruleset again;
    again.family = fam;
    try {
      nf::load_restore(once, "saved.rules", again);
    } catch (const LoadError&) {
      std::abort();  // svcpath printed something it cannot read back
    }
    if (nf::save(again) != once) std::abort();
  }
  return 0;
}
