// `iptables -S` output and CRLF text in: a Ruleset or a LoadError. Whatever loads must print and
// reload to the same text, and the restore input handed to a kernel for it (kernel_restore_input,
// svcpath verify) must load to the very same tables: the table inference is made once, not twice.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "netfilter/iptables/iptables.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Family fam = nf::guess_family(text);
  nf::Ruleset rs;
  rs.family = fam;
  try {
    nf::load_restore(text, "fuzz.S", rs);
  } catch (const LoadError&) {
    return 0;
  }
  std::string once = nf::save(rs);
  auto load = [&](std::string_view t, const char* name) {
    nf::Ruleset again;
    again.family = fam;
    try {
      nf::load_restore(t, name, again);
    } catch (const LoadError&) {
      std::abort();  // svcpath printed (or converted) something it cannot read back
    }
    if (nf::save(again) != once) std::abort();
  };
  load(once, "saved.rules");
  if (auto kernel = nf::kernel_restore_input(text)) load(*kernel, "kernel.rules");
  return 0;
}
