// Replay throughput: packets/s through each kube-proxy mode's datapath, against the speed at which
// libpcap alone reads and svcpath decodes the same capture. The capture is generated once per
// cluster size (Poisson arrivals, uniform popularity, local pods to ClusterIPs) and replayed with
// --answer; lanes are rebuilt outside the timed region so every iteration starts from empty state.
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include <benchmark/benchmark.h>

#include "bench/alloc_count.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/sim/replay.hpp"
#include "kube/sim/traffic.hpp"
#include "pcap/decode.hpp"
#include "pcap/generate.hpp"
#include "pcap/io.hpp"

using namespace svcpath;

namespace {

constexpr uint64_t kConnections = 20000;

struct Fixture {
  sim::ClusterInput ci;
  std::string pcap;
  uint64_t packets = 0;
  Fixture() = default;
  Fixture(const Fixture&) = delete;
  ~Fixture() {
    std::error_code ec;
    if (!pcap.empty()) std::filesystem::remove(pcap, ec);
  }
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

const Fixture& fixture(uint32_t services) {
  static std::map<uint32_t, Fixture> cache;
  auto [it, fresh] = cache.try_emplace(services);
  Fixture& f = it->second;
  if (!fresh) return f;
  k8s::SynthSpec spec;
  spec.services = services;
  spec.endpoints = 10;
  f.ci.cluster = k8s::synthetic_cluster(spec);
  f.ci.node = f.ci.cluster.nodes[0];
  f.ci.cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  f.pcap = (std::filesystem::temp_directory_path() /
            ("svcpath-bench-" + std::to_string(::getpid()) + "-" + std::to_string(services) + ".pcap"))
               .string();
  pcap::TrafficModel m;
  m.connections = kConnections;
  m.cps = 5000;
  m.remote_pods = m.external = m.host = 0;
  pcap::Generator gen = sim::cluster_traffic(f.ci.cluster, f.ci.node, m);
  pcap::Writer w(f.pcap, pcap::link::Raw);
  Packet p;
  while (gen.next(p)) {
    w.write(p.ts_ns, pcap::build(p));
    ++f.packets;
  }
  w.close();
  return f;
}

// libpcap read + svcpath decode: the floor under any replay.
void BM_PcapReadDecode(benchmark::State& st) {
  const Fixture& f = fixture(uint32_t(st.range(0)));
  uint64_t n = 0;
  for (auto _ : st) {
    pcap::Reader r(f.pcap);
    pcap::Frame fr;
    pcap::Decoded d;
    while (r.next(fr)) {
      benchmark::DoNotOptimize(pcap::decode(r.linktype(), fr.data, fr.caplen, d));
      ++n;
    }
  }
  st.SetItemsProcessed(int64_t(n));
}

// range(0): services; range(1): 0 iptables, 1 ipvs, 2 both; range(2): threads; range(3): --examples
// (with two modes, lanes trace connections' first packets while examples are wanted).
void BM_Replay(benchmark::State& st) {
  const Fixture& f = fixture(uint32_t(st.range(0)));
  std::vector<std::string> modes = st.range(1) == 0   ? std::vector<std::string>{"iptables"}
                                   : st.range(1) == 1 ? std::vector<std::string>{"ipvs"}
                                                      : std::vector<std::string>{"iptables", "ipvs"};
  sim::ReplayConfig cfg;
  cfg.answer = true;
  cfg.threads = size_t(st.range(2));
  cfg.examples = size_t(st.range(3));
  uint64_t n = 0, allocs = 0;
  double rss_before = peak_rss_mib();
  for (auto _ : st) {
    st.PauseTiming();
    auto lanes = sim::cluster_lanes(f.ci, modes, sim::NodeOptions{}, 1);
    st.ResumeTiming();
    uint64_t a = bench::allocations();  // this thread's: with threads, the lanes' own are not seen
    benchmark::DoNotOptimize(sim::Replay(lanes, cfg).run(f.pcap));
    allocs += bench::allocations() - a;
    n += f.packets;
    st.PauseTiming();
    lanes.clear();  // freeing 10k services' rules is not replay work
    st.ResumeTiming();
  }
  st.SetItemsProcessed(int64_t(n));
  // Everything the run allocates (flow records, the summary, the reader) over the packets read.
  st.counters["allocs_per_packet"] = double(allocs) / double(n);
  st.counters["modes"] = double(modes.size());
  st.counters["services"] = double(st.range(0));
  // Peak RSS growth over the lanes plus the replay's flow state (run one benchmark per process for
  // a clean number: the peak only rises).
  st.counters["peak_rss_growth_MiB"] = peak_rss_mib() - rss_before;
}

}  // namespace

BENCHMARK(BM_PcapReadDecode)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Replay)
    ->ArgsProduct({{1000, 10000}, {0, 1}, {1}, {0}})
    ->Args({1000, 2, 1, 0})
    ->Args({1000, 2, 2, 0})
    ->Args({1000, 2, 1, 5})
    ->Args({1000, 2, 2, 5})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();  // threads: the wall clock is what a user waits for
