// nft -f / nft list ruleset text in: a ruleset or a LoadError; what loads prints, and the printed
// form loads back and prints the same (the printer is a fixpoint of the loader).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "netfilter/nftables/nft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  nf::nft::Ruleset rs;
  try {
    rs = nf::nft::load(text, "fuzz.nft");
  } catch (const LoadError&) {
    return 0;
  }
  std::string once = nf::nft::print(rs);
  std::string twice;
  try {
    twice = nf::nft::print(nf::nft::load(once, "printed.nft"));
  } catch (const LoadError&) {
    std::abort();  // svcpath printed something it cannot read back
  }
  if (twice != nf::nft::print(nf::nft::load(twice, "again.nft"))) std::abort();
  return 0;
}
