#pragma once
#include <cstdint>
#include <string_view>

namespace svcpath {

/// Kernel-equivalent operations a datapath performed. These are what the cost model prices and what
/// benchmarks report: they describe the work the *kernel* would do, not svcpath's own work.
struct Counters {
  uint64_t packets = 0;
  uint64_t rules_evaluated = 0;    // ipt entries whose matches were tested
  uint64_t matches_evaluated = 0;  // individual match modules called
  uint64_t chain_jumps = 0;        // jumps/gotos into user chains
  uint64_t set_lookups = 0;        // ipset tests
  uint64_t ct_lookups = 0;         // conntrack hash lookups
  uint64_t ct_created = 0;         // new conntrack entries
  uint64_t nat_table_runs = 0;     // times the nat table was consulted (first packet only)
  uint64_t nat_rewrites = 0;       // packets rewritten from a NAT binding
  uint64_t route_lookups = 0;
  uint64_t ipvs_svc_lookups = 0;
  uint64_t ipvs_svc_buckets_walked = 0;  // service-table chain entries compared
  uint64_t ipvs_conn_lookups = 0;
  uint64_t ipvs_conn_entries_walked = 0;  // connection-table chain entries compared
  uint64_t ipvs_sched_dests_scanned = 0;

  Counters& operator+=(const Counters& o);
  template <class F>
  void for_each(F&& f) const {
    f("packets", packets);
    f("rules_evaluated", rules_evaluated);
    f("matches_evaluated", matches_evaluated);
    f("chain_jumps", chain_jumps);
    f("set_lookups", set_lookups);
    f("ct_lookups", ct_lookups);
    f("ct_created", ct_created);
    f("nat_table_runs", nat_table_runs);
    f("nat_rewrites", nat_rewrites);
    f("route_lookups", route_lookups);
    f("ipvs_svc_lookups", ipvs_svc_lookups);
    f("ipvs_svc_buckets_walked", ipvs_svc_buckets_walked);
    f("ipvs_conn_lookups", ipvs_conn_lookups);
    f("ipvs_conn_entries_walked", ipvs_conn_entries_walked);
    f("ipvs_sched_dests_scanned", ipvs_sched_dests_scanned);
  }
};

inline Counters& Counters::operator+=(const Counters& o) {
  packets += o.packets;
  rules_evaluated += o.rules_evaluated;
  matches_evaluated += o.matches_evaluated;
  chain_jumps += o.chain_jumps;
  set_lookups += o.set_lookups;
  ct_lookups += o.ct_lookups;
  ct_created += o.ct_created;
  nat_table_runs += o.nat_table_runs;
  nat_rewrites += o.nat_rewrites;
  route_lookups += o.route_lookups;
  ipvs_svc_lookups += o.ipvs_svc_lookups;
  ipvs_svc_buckets_walked += o.ipvs_svc_buckets_walked;
  ipvs_conn_lookups += o.ipvs_conn_lookups;
  ipvs_conn_entries_walked += o.ipvs_conn_entries_walked;
  ipvs_sched_dests_scanned += o.ipvs_sched_dests_scanned;
  return *this;
}

/// The work done between two snapshots of monotonic counters.
inline Counters operator-(const Counters& a, const Counters& b) {
  Counters d;
  d.packets = a.packets - b.packets;
  d.rules_evaluated = a.rules_evaluated - b.rules_evaluated;
  d.matches_evaluated = a.matches_evaluated - b.matches_evaluated;
  d.chain_jumps = a.chain_jumps - b.chain_jumps;
  d.set_lookups = a.set_lookups - b.set_lookups;
  d.ct_lookups = a.ct_lookups - b.ct_lookups;
  d.ct_created = a.ct_created - b.ct_created;
  d.nat_table_runs = a.nat_table_runs - b.nat_table_runs;
  d.nat_rewrites = a.nat_rewrites - b.nat_rewrites;
  d.route_lookups = a.route_lookups - b.route_lookups;
  d.ipvs_svc_lookups = a.ipvs_svc_lookups - b.ipvs_svc_lookups;
  d.ipvs_svc_buckets_walked = a.ipvs_svc_buckets_walked - b.ipvs_svc_buckets_walked;
  d.ipvs_conn_lookups = a.ipvs_conn_lookups - b.ipvs_conn_lookups;
  d.ipvs_conn_entries_walked = a.ipvs_conn_entries_walked - b.ipvs_conn_entries_walked;
  d.ipvs_sched_dests_scanned = a.ipvs_sched_dests_scanned - b.ipvs_sched_dests_scanned;
  return d;
}

}  // namespace svcpath
