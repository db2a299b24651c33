// The schedulers by name, as the kernel's ip_vs_schedulers list that register_ip_vs_scheduler fills
// (net/netfilter/ipvs/ip_vs_sched.c); ipvsadm -s and kube-proxy's --ipvs-scheduler look names up here.
#include "ipvs/sched/schedulers.hpp"

#include <string_view>

namespace svcpath::ipvs {

namespace {

struct Registration {
  std::string_view name;
  std::unique_ptr<Scheduler> (*make)();
};

constexpr Registration kSchedulers[] = {
    {"rr", make_rr}, {"wrr", make_wrr}, {"lc", make_lc}, {"wlc", make_wlc}, {"sed", make_sed},
    {"nq", make_nq}, {"sh", make_sh},   {"dh", make_dh}, {"mh", make_mh},
};

const Registration* find(std::string_view name) {
  for (const auto& r : kSchedulers)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(std::string_view name) {
  const Registration* r = find(name);
  return r ? r->make() : nullptr;
}

bool known_scheduler(std::string_view name) { return find(name) != nullptr; }

}  // namespace svcpath::ipvs
