// kube-proxy iptables-mode generation at growing service counts, and the exact first-packet walk.
// Memory is reported as the growth of peak RSS while building the state (MiB) and bytes per rule.
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "bench/alloc_count.hpp"
#include "kube/objects/cluster.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables/hooks.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/node.hpp"

using namespace svcpath;

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

k8s::ProxyConfig config() {
  k8s::ProxyConfig cfg;
  cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  return cfg;
}

// The restore input kube-proxy would write: text generation only.
void BM_KubeRestoreInput(benchmark::State& st) {
  k8s::SynthSpec spec;
  spec.services = uint32_t(st.range(0));
  spec.endpoints = uint32_t(st.range(1));
  auto c = k8s::synthetic_cluster(spec);
  auto cfg = config();
  size_t bytes = 0;
  for (auto _ : st) {
    std::string t = kube::iptables::restore_input(c, c.nodes[0], cfg, Family::V4);
    bytes = t.size();
    benchmark::DoNotOptimize(t.data());
  }
  st.counters["services"] = double(spec.services);
  st.counters["input_MiB"] = double(bytes) / (1 << 20);
}

// Generation + parse + load into a Ruleset: what `svcpath rules --cluster` and `trace --cluster` pay.
void BM_KubeNodeRuleset(benchmark::State& st) {
  k8s::SynthSpec spec;
  spec.services = uint32_t(st.range(0));
  spec.endpoints = uint32_t(st.range(1));
  auto c = k8s::synthetic_cluster(spec);
  auto cfg = config();
  double before = peak_rss_mib();
  uint32_t rules = 0;
  for (auto _ : st) {
    auto rs = kube::iptables::node_ruleset(c, c.nodes[0], cfg, Family::V4);
    rules = rs.rule_count;
    benchmark::DoNotOptimize(rs.tables.data());
  }
  double grew = peak_rss_mib() - before;
  st.counters["rules"] = rules;
  st.counters["peak_rss_growth_MiB"] = grew;
  st.counters["bytes_per_rule"] = rules ? grew * (1 << 20) / rules : 0;
}

// The first packet of a new connection to the last Service in KUBE-SERVICES, walked exactly.
void BM_FirstPacketLastService(benchmark::State& st) {
  k8s::SynthSpec spec;
  spec.services = uint32_t(st.range(0));
  spec.endpoints = 10;
  auto c = k8s::synthetic_cluster(spec);
  auto cfg = config();
  auto rs = kube::iptables::node_ruleset(c, c.nodes[0], cfg, Family::V4);
  nf::Node node = kube::kube_node(c, c.nodes[0], cfg);
  nf::Datapath dp(node);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  // Services are sorted by name, so the last one in KUBE-SERVICES is the largest name.
  uint32_t last = 0;
  std::string best;
  for (uint32_t i = 0; i < spec.services; ++i) {
    std::string n = "svc-" + std::to_string(i);
    if (n > best) best = n, last = i;
  }
  Packet p;
  p.t = {*Addr::parse("10.64.5.9"), k8s::synthetic_cluster_ip(last), 40000, 80, proto::TCP};
  p.tcp_flags = tcpflag::SYN;
  nf::Injection in{false, node.find("eth0")};
  NullSink sink;
  uint64_t port = 1024;
  auto before = dp.counters();
  uint64_t allocs = bench::allocations();
  for (auto _ : st) {
    p.t.sport = uint16_t(1024 + (port++ % 60000));  // a new connection every time
    p.ts_ns += 1000;
    auto o = dp.process(p, in, sink);
    benchmark::DoNotOptimize(o.kind);
    if ((port & 0xffff) == 0) dp.conntrack().clear();  // keep the table bounded (and its memory)
  }
  allocs = bench::allocations() - allocs;
  auto after = dp.counters();
  st.counters["allocs_per_packet"] = double(allocs) / double(st.iterations());
  st.counters["rules_per_packet"] = double(after.rules_evaluated - before.rules_evaluated) / double(st.iterations());
  st.SetItemsProcessed(int64_t(st.iterations()));
}

// Loading a cluster manifest only (issue 19): `svcpath gen-cluster --services N --endpoints 10
// --nodes 10` as YAML, and the same objects as `kubectl get -o json` prints a List, read from
// $SVCPATH_BENCH_CLUSTERS/cN.yaml and cN.json (docs/benchmarks.md shows how to write them).
void BM_KubeLoadCluster(benchmark::State& st) {
  const char* dir = std::getenv("SVCPATH_BENCH_CLUSTERS");
  std::string path = fmt::format("{}/c{}.{}", dir ? dir : ".", st.range(0), st.range(1) ? "json" : "yaml");
  if (!std::filesystem::exists(path)) return st.SkipWithError(("no " + path + " (set SVCPATH_BENCH_CLUSTERS)").c_str());
  double before = peak_rss_mib();
  size_t services = 0;
  for (auto _ : st) {
    k8s::Cluster c;
    k8s::load_cluster_file(path, c);
    services = c.services.size();
    benchmark::DoNotOptimize(c.slices.data());
  }
  st.counters["services"] = double(services);
  st.counters["input_MiB"] = double(std::filesystem::file_size(path)) / (1 << 20);
  st.counters["peak_rss_growth_MiB"] = peak_rss_mib() - before;
}

}  // namespace

BENCHMARK(BM_KubeLoadCluster)->ArgsProduct({{1000, 10000, 50000}, {0, 1}})->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_KubeRestoreInput)->ArgsProduct({{10, 1000, 10000, 50000}, {10}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KubeNodeRuleset)->ArgsProduct({{10, 1000, 10000, 50000}, {10}})->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_FirstPacketLastService)->Arg(100)->Arg(1000)->Arg(10000)->Arg(30000)->Unit(benchmark::kMicrosecond);
