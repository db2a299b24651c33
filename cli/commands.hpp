#pragma once
// The subcommands, separated from flag parsing so tests can run them against a stream.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cluster.hpp"
#include "netfilter/node.hpp"
#include "netfilter/rules.hpp"

namespace svcpath::cli {

/// The node options every command shares (--node-config, --sysctl, --local-ip, --route).
struct NodeOptions {
  std::string node_config;
  std::vector<std::string> sysctls, local_ips, routes;
  /// Builds the node on top of base (a plain host with lo and eth0 when none); throws LoadError
  /// naming the flag or file:line of each problem.
  nf::Node build(std::optional<nf::Node> base = std::nullopt) const;
};

/// A cluster and the node of it being simulated (--cluster FILE... --node NAME --proxy-config FILE).
struct ClusterOptions {
  std::vector<std::string> files;
  std::string node;
  std::string proxy_config;
  std::string mode = "iptables";  // one mode, or a comma list for side-by-side traces
  // NetworkPolicy enforcement: auto (IPVS-aware placement in the ipvs mode, plain otherwise),
  // plain, ipvs (IPVS-aware in every mode), off.
  std::string policy = "auto";
  bool given() const { return !files.empty(); }
  std::vector<std::string> modes() const;
};

/// The loaded cluster, the chosen node and the proxy configuration.
struct ClusterInput {
  k8s::Cluster cluster;
  k8s::Node node;
  k8s::ProxyConfig cfg;
};
ClusterInput load_cluster(const ClusterOptions& o);

struct TraceOptions {
  std::string rules, rules6, ipsets;
  ClusterOptions cluster;
  NodeOptions node;
  std::vector<std::string> packets;
  std::string packets_file;
  std::string in_default = "auto";  // auto: the interface the source is routed through
  bool local = false;
  bool enumerate = false;
  uint64_t seed = 1;
  std::string format = "text";  // text | json | svg | html | dot
  std::string color = "never";  // auto | always | never
  bool verbose = false;
  std::string ipvs;  // ipvsadm-save -n output for the --rules lane
  int outcome = 1;   // with --enumerate and a picture: the outcome whose path is drawn
  std::string nft;   // nft list ruleset output for the --rules lane (or alone)
};

/// svcpath trace. Throws LoadError on bad input; returns the exit status.
int run_trace(const TraceOptions& o, std::ostream& out);

struct RulesOptions {
  std::string rules, ipsets, nft;
  ClusterOptions cluster;
  bool counters = false, v6 = false, restore_input = false;
  bool policy = false;  // only the NetworkPolicy engine's ipset and iptables-restore input
  int family = 4;
};
/// svcpath rules: a dump printed back canonically, or the rules kube-proxy generates for a node.
int run_rules(const RulesOptions& o, std::ostream& out);

struct ReplayOptions {
  std::string rules, rules6, ipsets, ipvs, nft;
  ClusterOptions cluster;
  NodeOptions node;
  std::string pcap;              // pcap or pcapng
  std::string out_dir;           // post-NAT captures, one per mode, when given
  std::string in_default = "auto";
  uint64_t seed = 1;
  std::string format = "text";   // text | json
  bool progress = false;         // a progress line on stderr
  bool answer = false;           // synthesize the peer's replies (captures of one side, gen-traffic)
  size_t examples = 5;           // disagreeing connections shown in full
  size_t threads = 1;            // lanes run in parallel, up to one thread per mode
  bool timing = false;           // per-mode wall-clock packets/s on stderr
  std::string report;            // also write the HTML report here
};
/// svcpath replay: every packet of a capture through each datapath, with per-mode tallies.
/// Exit status of a replay that reported everything up to a damaged record of its capture.
inline constexpr int kExitDamagedCapture = 3;
int run_replay(const ReplayOptions& o, std::ostream& out);

struct GenTrafficOptions {
  ClusterOptions cluster;
  std::string out;  // the pcap to write
  uint64_t seed = 1;
  uint64_t connections = 1000;
  double cps = 1000, zipf = 0, non_service = 0, rtt_us = 200, rst = 0;
  uint32_t data_packets = 2;
  std::string clients = "local-pods=1,remote-pods=1,external=1,host=0";
  std::string format = "text";
};
/// svcpath gen-traffic: a synthetic capture for a node, and its ground truth on out.
int run_gen_traffic(const GenTrafficOptions& o, std::ostream& out);

struct GenClusterOptions {
  uint32_t services = 100, endpoints = 10, nodes = 10;
  bool node_ports = false;
  uint64_t seed = 1;
  std::string out;  // "-" or empty: stdout
};
/// svcpath gen-cluster: a synthetic cluster (core/cluster_synth) as kubectl-style YAML.
int run_gen_cluster(const GenClusterOptions& o, std::ostream& out);
void write_cluster_yaml(const k8s::Cluster& c, std::ostream& out);

struct ReportOptions {
  std::string replay;              // replay --format json output
  std::string sweep;               // a svcpath sweep (demo) JSON
  std::vector<std::string> bench;  // Google Benchmark JSON files
  std::string out = "report.html";
  std::string title = "svcpath report";
};
/// svcpath report: the self-contained HTML report from saved results.
int run_report(const ReportOptions& o, std::ostream& out);

struct DemoOptions {
  std::string examples;  // the examples directory; default: found from the checkout
  std::string out_dir = "svcpath-demo";
  std::vector<uint32_t> sweep{100, 1000, 5000};
  uint64_t seed = 1;
};
/// svcpath demo: the guided tour; writes out_dir/report.html.
int run_demo(const DemoOptions& o, std::ostream& out);

struct BenchModelOptions {
  std::string measured;                           // bench/kernel/measure.py output
  std::vector<uint32_t> calibrate{100, 2000, 20000};  // services whose points fit the constants
  std::string json_out;
};
/// svcpath bench-model: the calibrated kernel cost model, predicted against measured.
int run_bench_model(const BenchModelOptions& o, std::ostream& out);

std::string read_file(const std::string& path);
/// Loads an iptables-save dump; the family comes from force, else from an ip6tables-save header.
nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters = false);
bool color_wanted(const std::string& mode);

}  // namespace svcpath::cli
