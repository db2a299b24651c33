// ipset save text in: sets or a LoadError. What loads must save and reload to the same text.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "netfilter/ipset/ipset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  nf::IpSets sets;
  try {
    nf::load_ipsets(text, "fuzz.ipsets", sets);
  } catch (const LoadError&) {
    return 0;
  }
  std::string once = nf::save_ipsets(sets);
  nf::IpSets again;
  try {
    nf::load_ipsets(once, "saved.ipsets", again);
  } catch (const LoadError&) {
    std::abort();
  }
  if (nf::save_ipsets(again) != once) std::abort();
  return 0;
}
