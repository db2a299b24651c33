#pragma once
// Internal to svcpath_ipvs: one factory per scheduler file, as each kernel ip_vs_<name>.c module
// exposes only its struct ip_vs_scheduler. registry.cpp binds them to their names.
#include <memory>

#include "ipvs/ipvs.hpp"

namespace svcpath::ipvs {

std::unique_ptr<Scheduler> make_rr();   // sched/rr.cpp
std::unique_ptr<Scheduler> make_wrr();  // sched/wrr.cpp
std::unique_ptr<Scheduler> make_lc();   // sched/lc.cpp
std::unique_ptr<Scheduler> make_wlc();  // sched/wlc.cpp
std::unique_ptr<Scheduler> make_sed();  // sched/wlc.cpp
std::unique_ptr<Scheduler> make_nq();   // sched/nq.cpp
std::unique_ptr<Scheduler> make_sh();   // sched/sh.cpp
std::unique_ptr<Scheduler> make_dh();   // sched/dh.cpp
std::unique_ptr<Scheduler> make_mh();   // sched/mh.cpp

}  // namespace svcpath::ipvs
