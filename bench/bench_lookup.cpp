// Lookup scaling: the first packet of a new connection and an established packet, per kube-proxy
// mode, at growing service counts, with endpoints per service and the target's position in
// KUBE-SERVICES as parameters; the model counters (rules evaluated, IPVS buckets walked) ride along
// as benchmark counters. Also: parse + load of dumps (memory per rule and per service, precise via
// mallinfo2), and the control-plane cost of one endpoint change under each sync strategy.
//
// Arguments: services / endpoints / mode / position. Mode: 0 iptables (exact, with the destination-run
// index), 1 ipvs rr, 2 ipvs wlc, 3 ipvs sh, 4 ipvs mh, 5 iptables walked linearly rule by rule (the
// same counts and traces, the kernel's own algorithm), 6 nftables (kube-proxy's verdict maps),
// 7 ipvs wrr, 8 ipvs lc, 9 ipvs sed, 10 ipvs nq, 11 ipvs dh (every scheduler svcpath implements;
// the kernel's lblc, lblcr, fo and ovf are not). Position: 0 first, 1 middle, 2 last, 3 random.
//
// Every packet benchmark reports allocs_per_packet (bench/alloc_count.hpp): heap allocations made
// while the datapath ran, untraced, after its tables warmed.
#include <malloc.h>

#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <benchmark/benchmark.h>

#include "bench/alloc_count.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "core/rng.hpp"
#include "ipvs/engine.hpp"
#include "ipvs/ipvsadm.hpp"
#include "kube/proxy/ipvs.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/nftables.hpp"
#include "netfilter/nftables/nft.hpp"

using namespace svcpath;

namespace {

const char* kSched[] = {"", "rr", "wlc", "sh", "mh", "", "", "wrr", "lc", "sed", "nq", "dh"};
bool is_ipvs(int mode) { return (mode >= 1 && mode <= 4) || (mode >= 7 && mode <= 11); }

struct Fixture {
  uint32_t services = 0, endpoints = 0;
  int mode = -1;
  sim::ClusterInput ci;
  std::vector<std::unique_ptr<sim::Lane>> lanes;
  std::vector<uint32_t> order;    // service index at each KUBE-SERVICES position
  uint64_t next_tuple = 0;        // Google Benchmark calls a benchmark several times: never reuse a tuple
  uint32_t established_runs = 0;  // likewise for BM_EstablishedPacket's connection
};

// One fixture at a time: at 50k services x 50 endpoints a ruleset is gigabytes.
Fixture& fixture(uint32_t services, uint32_t endpoints, int mode) {
  static std::unique_ptr<Fixture> f;
  if (f && f->services == services && f->endpoints == endpoints && f->mode == mode) return *f;
  f.reset();
  f = std::make_unique<Fixture>();
  f->services = services;
  f->endpoints = endpoints;
  f->mode = mode;
  k8s::SynthSpec spec;
  spec.services = services;
  spec.endpoints = endpoints;
  spec.nodes = 10;
  f->ci.cluster = k8s::synthetic_cluster(spec);
  f->ci.node = f->ci.cluster.nodes[0];
  f->ci.cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  if (is_ipvs(mode)) f->ci.cfg.ipvs_scheduler = kSched[mode];
  f->lanes = sim::cluster_lanes(f->ci,
                                {is_ipvs(mode) ? "ipvs"
                                 : mode == 6   ? "nftables"
                                               : "iptables"},
                                sim::NodeOptions{}, 1, "off");
  f->lanes[0]->xt->linear_walk = mode == 5;  // the kernel's own walk: the same counts, no index
  f->order = k8s::synthetic_service_order(services);
  return *f;
}

uint32_t target(const Fixture& f, int position, Rng& rng) {
  switch (position) {
    case 0: return f.order.front();
    case 1: return f.order[f.order.size() / 2];
    case 2: return f.order.back();
    default: return f.order[rng.below(uint32_t(f.order.size()))];
  }
}

// allocs: heap allocations in the timed packets; left: packets that left the node (forwarded), so
// a row that measures a drop by mistake shows it.
void counters(benchmark::State& st, const Counters& d, uint64_t allocs, uint64_t left) {
  double n = double(st.iterations());
  st.counters["allocs_per_packet"] = double(allocs) / n;
  st.counters["forwarded_share"] = double(left) / n;
  st.counters["rules_per_packet"] = double(d.rules_evaluated) / n;
  st.counters["matches_per_packet"] = double(d.matches_evaluated) / n;
  st.counters["ipvs_buckets_per_packet"] = double(d.ipvs_svc_buckets_walked) / n;
  st.counters["set_lookups_per_packet"] = double(d.set_lookups) / n;
  st.counters["ipvs_conn_walked_per_packet"] = double(d.ipvs_conn_entries_walked) / n;
  st.counters["ct_lookups_per_packet"] = double(d.ct_lookups) / n;
  st.SetItemsProcessed(int64_t(st.iterations()));
}

// A new connection every iteration: a pod on node-0 to a Service's ClusterIP.
void BM_FirstPacket(benchmark::State& st) {
  auto& f = fixture(uint32_t(st.range(0)), uint32_t(st.range(1)), int(st.range(2)));
  auto& lane = *f.lanes[0];
  Rng rng(7);
  int16_t iif = lane.node.find("cni0");
  Packet p;
  p.t = {Addr::v4(0x0a400002u), Addr{}, 1024, 80, proto::TCP};
  p.tcp_flags = tcpflag::SYN;
  p.len = 60;
  NullSink sink;
  uint64_t& i = f.next_tuple;
  // Keep the connection tables at a size every service count shares: the kernel's IPVS table
  // has 4096 buckets, and a benchmark that piles up 100k connections measures chain walks,
  // not the service lookup. (Schedulers' per-destination counts are left as they are.) clear()
  // keeps the tables' memory, as a node's long-lived tables do.
  auto reset = [&] {
    lane.dp->conntrack().clear();
    if (lane.engine) lane.engine->conns.clear();
  };
  auto one = [&] {
    p.t.dst = k8s::synthetic_cluster_ip(target(f, int(st.range(3)), rng));
    p.t.sport = uint16_t(1024 + i % 60000);
    p.t.src = Addr::v4(0x0a400002u + uint32_t((i / 60000) % 200));  // distinct tuples, pods of node-0
    p.ts_ns += 1000;
    ++i;
    auto o = lane.dp->process(p, {false, iif}, sink);
    return o.kind == nf::OutcomeKind::Forwarded;
  };
  // Warm-up: one full cycle grows every table to the size the timed loop needs.
  while (i < 4096) one();
  reset();
  i = (i + 4095) / 4096 * 4096;
  Counters before = lane.dp->counters();
  uint64_t allocs = 0, left = 0;
  bench::trace_allocations(true);
  for (auto _ : st) {
    if (i % 4096 == 4095) {
      st.PauseTiming();
      reset();
      st.ResumeTiming();
    }
    uint64_t a = bench::allocations();
    left += one();
    allocs += bench::allocations() - a;
  }
  bench::trace_allocations(false);
  counters(st, lane.dp->counters() - before, allocs, left);
}

// The same connection's later packets: conntrack (and IPVS's connection table) answer. The
// handshake is completed first (SYN, the backend's SYN+ACK, then ACKs): a client ACK after only
// its SYN is INVALID to conntrack, and kube-proxy's KUBE-FORWARD drops it.
void BM_EstablishedPacket(benchmark::State& st) {
  auto& f = fixture(uint32_t(st.range(0)), uint32_t(st.range(1)), int(st.range(2)));
  auto& lane = *f.lanes[0];
  Rng rng(7);
  int16_t iif = lane.node.find("cni0");
  Packet p;
  p.t = {Addr::v4(0x0a4000feu), k8s::synthetic_cluster_ip(target(f, int(st.range(3)), rng)),
         uint16_t(40000 + f.established_runs++ % 20000), 80, proto::TCP};
  p.tcp_flags = tcpflag::SYN;
  p.len = 60;
  p.ts_ns = 1'000'000;
  NullSink sink;
  nf::Outcome syn = lane.dp->process(p, {false, iif}, sink);
  Packet synack;
  synack.t = syn.after.t.reversed();
  synack.tcp_flags = tcpflag::SYN | tcpflag::ACK;
  synack.len = 60;
  synack.ts_ns = p.ts_ns;
  bool to_local = syn.kind == nf::OutcomeKind::Delivered;
  (void)lane.dp->process(synack, {to_local, to_local ? kNoIf : lane.node.find(syn.out)}, sink);
  p.tcp_flags = tcpflag::ACK;
  for (int k = 0; k < 16; ++k) (void)lane.dp->process(p, {false, iif}, sink);  // warm-up
  Counters before = lane.dp->counters();
  uint64_t a = bench::allocations(), left = 0;
  bench::trace_allocations(true);
  for (auto _ : st) {
    p.ts_ns += 1000;
    auto o = lane.dp->process(p, {false, iif}, sink);
    left += o.kind == nf::OutcomeKind::Forwarded;
  }
  bench::trace_allocations(false);
  counters(st, lane.dp->counters() - before, bench::allocations() - a, left);
}

size_t heap_bytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// iptables-save text -> Ruleset: the node's dump for a synthetic cluster (about 42 lines per
// service at 10 endpoints; 16667 services is the ~700k-line dump). Memory is the heap the loaded
// ruleset holds (mallinfo2), per rule and per service.
void BM_LoadDump(benchmark::State& st) {
  k8s::SynthSpec spec;
  spec.services = uint32_t(st.range(0));
  spec.endpoints = 10;
  auto c = k8s::synthetic_cluster(spec);
  k8s::ProxyConfig cfg;
  cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  std::string dump = nf::save(kube::iptables::node_ruleset(c, c.nodes[0], cfg, Family::V4));
  size_t lines = size_t(std::count(dump.begin(), dump.end(), '\n'));
  uint32_t rules = 0;
  size_t held = 0;
  for (auto _ : st) {
    malloc_trim(0);
    size_t before = heap_bytes();
    nf::Ruleset rs;
    rs.family = Family::V4;
    nf::load_restore(dump, "bench.rules", rs);
    held = heap_bytes() - before;
    rules = rs.rule_count;
    benchmark::DoNotOptimize(rs.tables.data());
  }
  st.counters["lines"] = double(lines);
  st.counters["rules"] = rules;
  st.counters["bytes_per_rule"] = rules ? double(held) / rules : 0;
  st.counters["bytes_per_service"] = double(held) / spec.services;
  st.counters["lines_per_s"] = benchmark::Counter(double(lines), benchmark::Counter::kIsIterationInvariantRate);
}

// Rules in chains whose text differs between two restore inputs, the way kube-proxy's partial sync
// writes only changed chains (plus the top-level chains it always rewrites).
size_t partial_rules(const std::string& a, const std::string& b) {
  auto chains = [](const std::string& t) {
    std::map<std::string, std::string> m;
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("-A ", 0) == 0) m[line.substr(3, line.find(' ', 3) - 3)] += line + "\n";
    return m;
  };
  auto ca = chains(a), cb = chains(b);
  static const std::set<std::string> always{"KUBE-SERVICES",    "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES",
                                            "KUBE-POSTROUTING", "KUBE-FORWARD",   "KUBE-PROXY-FIREWALL"};
  size_t n = 0;
  for (auto& [name, text] : cb)
    if (always.count(name) || ca[name] != text) n += size_t(std::count(text.begin(), text.end(), '\n'));
  return n;
}

size_t line_diff(const std::string& a, const std::string& b) {
  std::multiset<std::string> la, lb;
  std::istringstream ia(a), ib(b);
  for (std::string l; std::getline(ia, l);) la.insert(l);
  for (std::string l; std::getline(ib, l);) lb.insert(l);
  size_t n = 0;
  for (auto& l : lb)
    if (!la.count(l)) ++n;
  for (auto& l : la)
    if (!lb.count(l)) ++n;
  return n;
}

// One endpoint added to one Service at a given scale: what each sync strategy rewrites, and what
// svcpath pays to regenerate the node's tables. Mode 0: iptables (time = regenerate + reload the
// whole ruleset, as a full iptables-restore); mode 1: IPVS (time = regenerate the IPVS-mode state).
void BM_EndpointChange(benchmark::State& st) {
  k8s::SynthSpec spec;
  spec.services = uint32_t(st.range(0));
  spec.endpoints = 10;
  auto before = k8s::synthetic_cluster(spec);
  auto after = before;
  k8s::Endpoint extra;
  extra.addresses.push_back(Addr::v4(0x0a7f0001u));
  extra.node_name = after.nodes[1].name;
  after.slices[spec.services / 2].endpoints.push_back(extra);
  k8s::ProxyConfig cfg;
  cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  bool ipvs = st.range(1) == 1;
  if (st.range(1) == 2) {
    // nftables: kube-proxy's partial sync rewrites the changed Service's chains and map elements.
    cfg.mode = k8s::ProxyMode::Nftables;
    std::string a = kube::nftables::nft_input(before, before.nodes[0], cfg, Family::V4);
    std::string b = kube::nftables::nft_input(after, after.nodes[0], cfg, Family::V4);
    st.counters["full_restore_rules"] = double(std::count(b.begin(), b.end(), '\n'));
    st.counters["nft_ops"] = double(line_diff(a, b));
    for (auto _ : st) {
      auto rs = nf::nft::load(kube::nftables::nft_input(after, after.nodes[0], cfg, Family::V4), "tx");
      benchmark::DoNotOptimize(rs.rule_count);
    }
  } else if (!ipvs) {
    std::string a = kube::iptables::restore_input(before, before.nodes[0], cfg, Family::V4);
    std::string b = kube::iptables::restore_input(after, after.nodes[0], cfg, Family::V4);
    st.counters["full_restore_rules"] = double(std::count(b.begin(), b.end(), '\n'));
    st.counters["partial_restore_rules"] = double(partial_rules(a, b));
    for (auto _ : st) {
      auto rs = kube::iptables::node_ruleset(after, after.nodes[0], cfg, Family::V4);
      benchmark::DoNotOptimize(rs.rule_count);
    }
  } else {
    auto ma = kube::ipvs::build(before, before.nodes[0], cfg, Family::V4);
    auto mb = kube::ipvs::build(after, after.nodes[0], cfg, Family::V4);
    st.counters["ipvs_ops"] = double(line_diff(ipvs::save_ipvsadm(ma.engine->services), ipvs::save_ipvsadm(mb.engine->services)));
    st.counters["ipset_ops"] = double(line_diff(ma.ipset_restore, mb.ipset_restore));
    st.counters["iptables_rules_changed"] = double(line_diff(ma.restore_input, mb.restore_input));
    for (auto _ : st) {
      auto m = kube::ipvs::build(after, after.nodes[0], cfg, Family::V4);
      benchmark::DoNotOptimize(m.engine.get());
    }
  }
}

// services / endpoints / mode / position, with the position varying fastest so one fixture
// serves four benchmarks.
void lookup_args(benchmark::internal::Benchmark* b) {
  for (int64_t s : {10, 100, 1000, 5000, 10000, 30000, 50000})
    for (int64_t e : {1, 10, 50})
      for (int64_t m : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
        for (int64_t pos : {0, 1, 2, 3}) b->Args({s, e, m, pos});
}

}  // namespace

BENCHMARK(BM_FirstPacket)
    ->Apply(lookup_args)
    ->ArgNames({"services", "endpoints", "mode", "position"})
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_EstablishedPacket)
    ->Apply(lookup_args)
    ->ArgNames({"services", "endpoints", "mode", "position"})
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_LoadDump)->ArgNames({"services"})->Arg(1000)->Arg(5000)->Arg(16667)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_EndpointChange)
    ->ArgNames({"services", "ipvs"})
    ->ArgsProduct({{100, 1000, 5000, 10000, 30000, 50000}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
