#pragma once
// Replay: a capture streamed through each lane (a node's datapath per kube-proxy mode), one frame
// held at a time; only conntrack, the tallies and the per-connection results grow. The result is
// plain data: the front end renders it as text, JSON or the HTML report.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/counters.hpp"
#include "core/packet_spec.hpp"
#include "kube/netpol/netpol.hpp"
#include "kube/sim/lanes.hpp"
#include "netfilter/datapath.hpp"
#include "pcap/decode.hpp"

namespace svcpath::pcap {
class Writer;
}

namespace svcpath::sim {

/// What the replay engine needs of the command line.
struct ReplayConfig {
  std::string in_default = "auto";  // receiving interface of every non-local packet; auto: the source's route
  uint64_t seed = 1;                // for the stateless probes that enumerate a destination's backends
  bool answer = false;              // synthesize the peer's replies (captures of one side, gen-traffic)
  size_t examples = 5;              // differing connections kept with both traces
  size_t threads = 1;               // lanes run in parallel, up to one thread per lane
  std::string out_dir;              // post-NAT captures, DIR/<lane>.pcap, when given
  /// Called every kProgressEvery frames with the frames read and the fraction of the file read.
  std::function<void(uint64_t frames, double fraction_read)> progress;
  static constexpr uint64_t kProgressEvery = 16384;
};

/// A tally key: a packet's outcome, and whether the packet was a synthesized answer.
struct OutcomeKey {
  bool answer = false;
  nf::OutcomeKind kind = nf::OutcomeKind::Dropped;
  DropReason reason = DropReason::None;
  auto operator<=>(const OutcomeKey&) const = default;
};

/// One lane's counts over the capture.
struct Tally {
  uint64_t packets = 0, answers = 0, new_flows = 0, dnat = 0, snat = 0;
  std::map<Endpoint, uint64_t> connections_to;               // service endpoint -> new connections DNATed
  std::map<OutcomeKey, uint64_t> outcomes;                   // -> packets
  std::map<Endpoint, std::map<Endpoint, uint64_t>> dnat_to;  // service endpoint -> backend -> packets
  Counters cost_new, cost_est;
  // Rules evaluated per packet, in power-of-two buckets: [0], [1], [2,3], [4,7], ...
  std::array<uint64_t, 24> rules_hist_new{}, rules_hist_est{};
  uint64_t written = 0;  // packets written to the lane's post-NAT capture
  // Counts that explain others. INVALID: conntrack found no entry the packet can belong to (a
  // FIN/ACK whose connection's entry was never confirmed); per drop site, those the rules dropped.
  uint64_t invalid = 0;
  std::map<std::string, uint64_t> invalid_dropped_at;
  uint64_t midstream = 0;  // new flows opened by a TCP packet without SYN (nf_conntrack_tcp_loose)
};

/// What one lane did with a connection's first packet.
struct FlowResult {
  nf::OutcomeKind kind = nf::OutcomeKind::Dropped;
  DropReason reason = DropReason::None;
  bool dnat = false, snat = false;
  Endpoint service, backend;  // when dnat
  std::string where;
  // Lane i > 0 only: lane 0 would have done what this lane did (outcome, masquerade) had it picked
  // this lane's backend, or this lane lane 0's: the difference follows from the choice.
  bool as_other_backend = false;
};

struct TupleLess {
  bool operator()(const FiveTuple& a, const FiveTuple& b) const;
};
/// Per connection (keyed by its first packet as captured): each lane's result for that packet.
using FlowResults = std::map<FiveTuple, std::vector<FlowResult>, TupleLess>;

/// A lane's connections against lane 0's. Equivalent = same outcome, same DNAT decision, each
/// lane's backend one the other could have picked for that destination, and the same masquerade
/// for the same backend. Differences that follow from picking another backend are equivalent and
/// counted in by_choice: "other backend", and "hairpin masquerade" (one lane picked the client
/// itself, which kube-proxy masquerades in every mode, the other a backend it does not).
/// "other backend's outcome" and "other backend's masquerade": a mode given the other's backend
/// (a branch of its random choices, on a stateless twin) does what the other did.
/// Real differences: "outcome", "DNAT", "service", "backend set", "masquerade" (same backend).
struct Agreement {
  uint64_t equivalent = 0, different = 0;
  std::map<std::string, uint64_t> why;        // real difference -> connections
  std::map<std::string, uint64_t> by_choice;  // of the equivalent: what followed from another backend -> connections
};

/// How a lane's connection compares with lane 0's (see Agreement); what is "" when they agree.
struct Difference {
  bool real = false;
  std::string what;
};

/// A connection whose first packet lane 0 and another lane treated differently, both traced.
struct ReplayExample {
  FiveTuple t;
  size_t lane = 0;   // the other lane
  std::string what;  // what differs: "outcome", "DNAT", "service", "backend set", "masquerade"
  PacketSpec spec;   // the first packet as trace would take it
  nf::Outcome first, other;
};

/// The capture as read.
struct CaptureFacts {
  int linktype = 0;
  uint64_t frames = 0;
  std::array<uint64_t, size_t(pcap::DecodeError::Count_)> decode_errors{};  // skipped frames by reason
  uint64_t fragments = 0;  // later fragments skipped: no L4 header, reassembly not modelled
  std::string file_error;  // a capture cut short: the error where reading stopped ("" when whole)
  uint64_t skipped() const;
};

struct LaneResult {
  std::string name;
  Tally tally;
  nf::netpol::Verdicts policy;  // NetworkPolicy verdicts per policy rule, from the rule counters
  Agreement agreement;          // against lane 0; empty for lane 0
  double seconds = 0;           // wall clock spent in this lane
};

struct ReplayResult {
  CaptureFacts capture;
  std::vector<LaneResult> lanes;
  FlowResults flows;
  std::vector<ReplayExample> examples;  // the first differences in capture order
};

class Replay {
 public:
  /// Resolves --in on every lane; throws LoadError naming an interface a lane lacks.
  Replay(std::vector<std::unique_ptr<Lane>>& lanes, ReplayConfig config);
  ~Replay();
  Replay(const Replay&) = delete;
  Replay& operator=(const Replay&) = delete;

  /// Every packet of the capture through every lane, in capture order. Throws LoadError when the
  /// capture cannot be opened or the output directory made; a capture damaged part way is replayed
  /// up to the damage and reported in capture.file_error. The lanes keep their conntrack.
  ReplayResult run(const std::string& pcap);

 private:
  struct Item;
  struct Batch;
  struct Workers;

  void learn_backends(size_t i, const Packet& p, const nf::Injection& inj);
  Difference difference(const FiveTuple& t, const std::vector<FlowResult>& res, size_t i) const;
  std::optional<nf::Outcome> run_packet(size_t i, const Packet& p, const nf::Injection& inj, bool answer, FlowResult* first,
                                        const Item* item, const uint8_t* frame);
  void run_lane(size_t i, const Batch& b);
  void work(size_t w, const Batch& b);
  void worker_loop(size_t w);
  void collect_examples(const Batch& b);
  void probe_choices(const Batch& b);
  int16_t in_interface(size_t i, const Addr& src) const;

  std::vector<std::unique_ptr<Lane>>& lanes_;
  ReplayConfig cfg_;
  std::vector<int16_t> forced_iif_;  // --in per lane; kNoIf: the interface the source routes through

  // One run's state.
  ReplayResult res_;
  // Per lane, per destination as the client addressed it: every backend the lane could pick.
  std::vector<std::map<Endpoint, std::set<Endpoint>>> possible_;
  std::vector<std::unique_ptr<nf::Datapath>> probes_;  // the stateless twins that enumerate them
  std::vector<std::unique_ptr<pcap::Writer>> writers_;
  std::unique_ptr<Batch> batch_;
  bool tracing_ = false;
  std::vector<std::vector<std::pair<size_t, nf::Outcome>>> traced_;  // per lane: (item, outcome)
  size_t nthreads_ = 1;
  std::unique_ptr<Workers> workers_;
};

}  // namespace svcpath::sim
