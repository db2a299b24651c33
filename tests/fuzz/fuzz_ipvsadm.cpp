// ipvsadm-save / ipvsadm -Ln text in: a service table or a LoadError; what loads saves and reloads.
// One save/restore round reverses each service's real-server order, as with the real tools (the
// kernel adds a destination at the head of its list and ipvsadm-save prints the list), so two
// rounds are the identity. The same bytes read as the node's /etc/services (--services): a
// database or a LoadError.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/diag.hpp"
#include "ipvs/ipvsadm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)ipvs::ServicesDb::parse(text, "fuzz.services");
  } catch (const LoadError&) {
  }
  ipvs::ServiceTable t;
  try {
    ipvs::load_ipvsadm(text, "fuzz.ipvs", t);
  } catch (const LoadError&) {
    return 0;
  }
  auto round = [](const std::string& text) {
    ipvs::ServiceTable next;
    try {
      ipvs::load_ipvsadm(text, "saved.ipvs", next);
    } catch (const LoadError&) {
      std::abort();  // svcpath printed something it cannot read back
    }
    return ipvs::save_ipvsadm(next);
  };
  std::string once = ipvs::save_ipvsadm(t);
  if (round(round(once)) != once) std::abort();
  return 0;
}
