// nft -j list ruleset JSON in: a ruleset or a LoadError (never a crash or a json exception); what
// loads prints as nft list ruleset, and that text loads back to the same print.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "netfilter/nftables/json.hpp"
#include "netfilter/nftables/nft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  nf::nft::Ruleset rs;
  try {
    rs = nf::nft::load_json(text, "fuzz.json");
  } catch (const LoadError&) {
    return 0;
  }
  std::string once = nf::nft::print(rs);
  try {
    if (nf::nft::print(nf::nft::load(once, "printed.nft")) != once) std::abort();
  } catch (const LoadError&) {
    std::abort();  // svcpath printed something its own text reader refuses
  }
  return 0;
}
