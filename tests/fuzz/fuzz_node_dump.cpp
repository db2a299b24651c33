// What a node prints about itself (ip -j link/addr/route/rule, ip maddr, sysctl -a, conntrack -L),
// each reader fed the same bytes: a node, notes or a LoadError, never a crash or a stray exception.
#include <cstdint>
#include <string_view>

#include "core/diag.hpp"
#include "kube/sim/node_dump.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto guard = [](auto&& f) {
    try {
      f();
    } catch (const LoadError&) {
    }
  };
  sim::Notes notes;
  nf::Node node;
  guard([&] { sim::read_ip_links(text, "fuzz", node); });
  guard([&] { sim::read_ip_routes(text, "fuzz", node, notes); });
  guard([&] { sim::read_ip_rules(text, "fuzz", Family::V4, node, notes); });
  guard([&] { sim::read_ip_maddr(text, "fuzz", node); });
  nf::Sysctls sys;
  guard([&] { sim::read_sysctl_all(text, "fuzz", sys); });
  guard([&] { (void)sim::read_conntrack_list(text, "fuzz"); });
  return 0;
}
