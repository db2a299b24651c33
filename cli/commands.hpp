#pragma once
// The subcommands, separated from flag parsing so tests can run them against a stream.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <memory>

#include <nlohmann/json.hpp>

#include "cli/picture.hpp"
#include "kube/sim/diff.hpp"
#include "kube/sim/inputs.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/sim/snapshot.hpp"

namespace svcpath::cli {

using sim::add_policies;
using sim::build_lanes;
using sim::cluster_lanes;
using sim::ClusterInput;
using sim::ClusterOptions;
using sim::Lane;
using sim::LaneSources;
using sim::load_cluster;
using sim::load_rules;
using sim::NodeOptions;
using sim::policy_placement;
using sim::source_interface;

/// --snapshot FILE: loads the archive and fills each input not given explicitly (rules, rules6,
/// ipsets, ipvs, nft; the node unless node is null) from it, saying on stderr which back end it
/// chose and what it skipped. Null pointers are inputs the command does not take.
sim::Snapshot open_snapshot(const std::string& path, std::string* rules, std::string* rules6, std::string* ipsets,
                            std::string* ipvs, std::string* nft, NodeOptions* node);
/// Puts the snapshot's conntrack entries into every lane's table (established flows keep their NAT).
void seed_lanes(const sim::Snapshot& s, std::vector<std::unique_ptr<Lane>>& lanes, uint64_t now_ns = 0);

struct TraceOptions {
  std::string snapshot;  // a scripts/svcpath-snapshot archive: the node, its dumps and conntrack
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
  // Side by side: each mode samples its own backend (default: one choice every mode that can takes).
  bool independent = false;
};

/// svcpath diff: side A from the plain flags, side B the same with the --to-* flags applied.
struct DiffOptions {
  std::string rules, rules6, ipsets, ipvs, nft;
  ClusterOptions cluster;
  NodeOptions node;
  std::string to_mode, to_proxy_config, to_kube_proxy_version;
  std::vector<std::string> to_cluster;
  std::string to_rules, to_rules6, to_ipsets, to_ipvs, to_nft;
  std::vector<std::string> packets;  // extra flows
  std::string format = "text";       // text | json | svg | html
  int limit = 5;                     // flows listed per class in text (0: all)
  uint64_t seed = 1;
};
/// Exit status 0 when no flow changes, 1 when some do; throws LoadError on bad input.
int run_diff(const DiffOptions& o, std::ostream& out);
/// The sides built and compared (the lanes stay alive for pictures of the examples).
struct DiffRun {
  struct Sides;
  std::unique_ptr<Sides> sides;
  sim::DiffResult result;
  DiffRun();
  ~DiffRun();
  DiffRun(DiffRun&&) noexcept;
};
DiffRun compute_diff(const DiffOptions& o);
/// `svcpath diff --format json`: what the report's migration section reads.
nlohmann::json diff_json(const sim::DiffResult& r);
/// One picture per class: its first flow on both sides.
std::vector<Picture> diff_pictures(const DiffRun& run);

/// svcpath trace. Throws LoadError on bad input; returns the exit status.
int run_trace(const TraceOptions& o, std::ostream& out);

struct RulesOptions {
  std::string snapshot;
  std::string rules, ipsets, nft, ipvs;
  std::string services;  // the node's /etc/services for ipvsadm -L port names ("" = netbase's)
  ClusterOptions cluster;
  bool counters = false, v6 = false, restore_input = false, noflush = false;
  bool policy = false;  // only the NetworkPolicy engine's ipset and iptables-restore input
  int family = 4;
};
/// svcpath rules: a dump printed back canonically, or the rules kube-proxy generates for a node.
int run_rules(const RulesOptions& o, std::ostream& out);

/// The command line of svcpath replay; the engine's part maps onto sim::ReplayConfig.
struct ReplayOptions {
  std::string snapshot;
  std::string rules, rules6, ipsets, ipvs, nft;
  ClusterOptions cluster;
  NodeOptions node;
  std::string pcap;     // pcap or pcapng
  std::string out_dir;  // post-NAT captures, one per mode, when given
  std::string in_default = "auto";
  uint64_t seed = 1;
  std::string format = "text";  // text | json
  bool progress = false;        // a progress line on stderr
  bool answer = false;          // synthesize the peer's replies (captures of one side, gen-traffic)
  size_t examples = 5;          // disagreeing connections shown in full
  size_t threads = 1;           // lanes run in parallel, up to one thread per mode
  bool timing = false;          // per-mode wall-clock packets/s on stderr
  std::string report;           // also write the HTML report here
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
/// svcpath gen-cluster: a synthetic cluster (kube/objects/cluster_synth) as kubectl-style YAML.
int run_gen_cluster(const GenClusterOptions& o, std::ostream& out);
void write_cluster_yaml(const k8s::Cluster& c, std::ostream& out);

struct ReportOptions {
  std::string replay;              // replay --format json output
  std::string sweep;               // a svcpath sweep (demo) JSON
  std::vector<std::string> bench;  // Google Benchmark JSON files
  std::string diff;                // svcpath diff --format json output
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
  std::string measured;                               // bench/kernel/measure.py output
  std::vector<uint32_t> calibrate{100, 2000, 20000};  // services whose points fit the constants
  std::string json_out;
};
/// svcpath bench-model: the calibrated kernel cost model, predicted against measured.
int run_bench_model(const BenchModelOptions& o, std::ostream& out);

/// svcpath verify: the dumps in a throwaway namespace on the local kernel against svcpath, packet
/// by packet (scripts/svcpath_kernel/verify.py does the kernel side).
struct VerifyOptions {
  std::string snapshot;
  std::string rules, rules6, ipsets, nft;
  NodeOptions node;
  uint32_t packets = 50;
  uint64_t seed = 1;
  std::string backend = "nft";  // iptables back end in the kernel: nft, legacy or both
  bool progress = false;
};
/// Exit status when svcpath and the kernel disagree on a packet (or the kernel refuses the input).
inline constexpr int kVerifyDisagree = 3;
/// Exit status when this machine cannot run the kernel side (not root, no namespaces, no tool).
inline constexpr int kVerifyUnavailable = 4;
int run_verify(const VerifyOptions& o, std::ostream& out);

bool color_wanted(const std::string& mode);

}  // namespace svcpath::cli
