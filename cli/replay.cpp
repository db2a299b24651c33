// svcpath replay: a capture streamed through each datapath. Memory stays flat in the capture's
// size: one frame is held at a time; only conntrack and the tallies grow.
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "kube/sim/lanes.hpp"
#include "cli/report.hpp"
#include "kube/netpol/netpol.hpp"
#include "cli/render.hpp"
#include "ipvs/ipvs.hpp"
#include "core/diag.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"

namespace svcpath::cli {

namespace {

// A service or backend address as a sortable value; printed only when reporting.
struct Endpoint {
  Addr addr;
  uint16_t port = 0;
  uint8_t proto = 0;
  auto operator<=>(const Endpoint&) const = default;
  std::string str() const { return FiveTuple::endpoint(addr, port, proto); }
};

// A decoded frame waiting for the lanes; its bytes live in the batch's arena.
struct Item {
  pcap::Decoded d;
  size_t off = 0;
  uint32_t caplen = 0, wirelen = 0;
  bool local = false;
  std::vector<struct FlowResult>* first = nullptr;  // set on a connection's first packet
};

struct Batch {
  static constexpr size_t kSize = 4096;
  std::vector<Item> items;
  std::vector<uint8_t> arena;
  void clear() {
    items.clear();
    arena.clear();
  }
  Item& add(const pcap::Frame& f, const pcap::Decoded& d) {
    Item& it = items.emplace_back();
    it.d = d;
    it.off = arena.size();
    it.caplen = f.caplen;
    it.wirelen = f.wirelen;
    arena.insert(arena.end(), f.data, f.data + f.caplen);
    return it;
  }
};

// Outcome tallies keyed by a small code: (answer?, kind, drop reason).
uint32_t outcome_code(bool answer, const nf::Outcome& oc) {
  return uint32_t(answer) << 16 | uint32_t(oc.kind) << 8 | uint32_t(oc.reason);
}

struct Tally {
  uint64_t packets = 0, answers = 0, new_flows = 0, dnat = 0, snat = 0;
  std::map<Endpoint, uint64_t> connections_to;               // service endpoint -> new connections DNATed
  std::map<uint32_t, uint64_t> outcomes;                     // outcome_code -> packets
  std::map<Endpoint, std::map<Endpoint, uint64_t>> dnat_to;  // service endpoint -> backend -> packets
  Counters cost_new, cost_est;
  // Rules evaluated per packet, in power-of-two buckets: [0], [1], [2,3], [4,7], ...
  std::array<uint64_t, 24> rules_hist_new{}, rules_hist_est{};
  uint64_t written = 0;
};

// What one mode did with a connection's first packet.
struct FlowResult {
  nf::OutcomeKind kind = nf::OutcomeKind::Dropped;
  DropReason reason = DropReason::None;
  bool dnat = false, snat = false;
  std::string service, backend, where;
};

struct TupleLess {
  bool operator()(const FiveTuple& a, const FiveTuple& b) const {
    return std::tie(a.src, a.dst, a.sport, a.dport, a.proto) < std::tie(b.src, b.dst, b.sport, b.dport, b.proto);
  }
};

// The peer's answer to a packet that left the node, for captures holding only the client side:
// SYN -> SYN+ACK, FIN -> FIN+ACK, data -> ACK, a UDP request -> a response, echo -> echo reply.
// Pure ACKs and RSTs are not answered.
bool answer_for(const nf::Outcome& oc, Packet& r) {
  const Packet& a = oc.after;
  r = Packet{};
  r.t = a.t.reversed();
  r.ttl = 64;
  r.len = a.t.src.is_v4() ? 40 : 60;
  switch (a.t.proto) {
    case proto::TCP:
      if (a.tcp_flags & tcpflag::RST) return false;
      if (a.tcp_flags & tcpflag::SYN) r.tcp_flags = tcpflag::SYN | tcpflag::ACK;
      else if (a.tcp_flags & tcpflag::FIN) r.tcp_flags = tcpflag::FIN | tcpflag::ACK;
      else if (a.len > (a.t.src.is_v4() ? 40 : 60)) r.tcp_flags = tcpflag::ACK;
      else return false;
      return true;
    case proto::UDP:
    case proto::SCTP: r.len = a.len; return true;
    case proto::ICMP:
    case proto::ICMPV6:
      if (a.icmp_type() != (a.t.proto == proto::ICMP ? 8 : 128)) return false;
      r.t.sport = a.t.sport;  // the echo id stays put
      r.t.dport = uint16_t((a.t.proto == proto::ICMP ? 0 : 129) << 8);
      r.len = a.len;
      return true;
    default: return false;
  }
}

// A progress line on stderr: frames, rate, and an ETA from the file offset.
class Progress {
 public:
  Progress(bool on, const pcap::Reader& r) : on_(on), r_(r), t0_(std::chrono::steady_clock::now()) {}
  void tick(uint64_t frames) {
    if (!on_ || frames % 16384) return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    double frac = r_.fraction_read();
    std::string eta = frac > 0 && frac < 1 ? fmt::format(", ETA {:.0f} s", s / frac - s) : "";
    fmt::print(stderr, "\r{:5.1f}%  {} packets  {:.0f} packets/s{}   ", frac * 100, frames, s > 0 ? double(frames) / s : 0.0,
               eta);
  }
  void done(uint64_t frames, double secs) {
    if (on_)
      fmt::print(stderr, "\r{} packets in {:.2f} s ({:.0f} packets/s)                    \n", frames, secs,
                 secs > 0 ? double(frames) / secs : 0.0);
  }

 private:
  bool on_;
  const pcap::Reader& r_;
  std::chrono::steady_clock::time_point t0_;
};

// "forwarded", "dropped (rule DROP)": how outcomes are named in tallies and examples.
std::string outcome_label(nf::OutcomeKind kind, DropReason reason) {
  std::string s(nf::outcome_name(kind));
  if (reason != DropReason::None) s += fmt::format(" ({})", drop_reason_name(reason));
  return s;
}

// The tallies with names for printing, sorted by name.
std::map<std::string, uint64_t> outcome_names(const Tally& t) {
  std::map<std::string, uint64_t> m;
  for (auto [code, n] : t.outcomes)
    m[(code >> 16 ? "answer " : "") + outcome_label(nf::OutcomeKind((code >> 8) & 0xff), DropReason(code & 0xff))] += n;
  return m;
}
std::map<std::string, uint64_t> named(const std::map<Endpoint, uint64_t>& in) {
  std::map<std::string, uint64_t> m;
  for (auto& [e, n] : in) m[e.str()] += n;
  return m;
}
std::map<std::string, std::map<std::string, uint64_t>> named(const std::map<Endpoint, std::map<Endpoint, uint64_t>>& in) {
  std::map<std::string, std::map<std::string, uint64_t>> m;
  for (auto& [e, inner] : in) m[e.str()] = named(inner);
  return m;
}

nlohmann::json counters_json(const Counters& c, uint64_t n) {
  nlohmann::json j = nlohmann::json::object();
  c.for_each([&](std::string_view name, uint64_t v) {
    if (name == "packets") return;
    j[std::string(name)] = n ? double(v) / double(n) : 0.0;
  });
  return j;
}

}  // namespace

int run_replay(const ReplayOptions& o, std::ostream& out) {
  if (o.pcap.empty()) throw LoadError({{"replay", 0, 0, "give --pcap FILE (pcap or pcapng)"}});
  if (o.rules.empty() && o.rules6.empty() && o.ipvs.empty() && o.nft.empty() && !o.cluster.given())
    throw LoadError({{"replay", 0, 0, "give --rules FILE (an iptables-save dump) or --cluster FILE... --node NAME"}});
  auto lanes = build_lanes({o.rules, o.rules6, o.ipsets, o.ipvs, o.nft, o.cluster, o.node, o.seed});
  return replay_lanes(lanes, o, out);
}

int replay_lanes(std::vector<std::unique_ptr<Lane>>& lanes, const ReplayOptions& o, std::ostream& out) {
  // --in IFACE, resolved once per lane; kNoIf means "the interface the source routes through".
  std::vector<int16_t> forced_iif(lanes.size(), kNoIf);
  if (o.in_default != "auto")
    for (size_t i = 0; i < lanes.size(); ++i) {
      forced_iif[i] = lanes[i]->node.find(o.in_default);
      if (forced_iif[i] >= 0) continue;
      std::string known;
      for (auto& f : lanes[i]->node.interfaces()) known += (known.empty() ? "" : ", ") + f.name;
      throw LoadError(
          {{"--in", 0, 0, fmt::format("unknown interface '{}' (mode {} has: {})", o.in_default, lanes[i]->name, known)}});
    }
  std::optional<pcap::Reader> opened;
  try {
    opened.emplace(o.pcap);
  } catch (const pcap::IoError& e) {
    // libpcap's words, as a file error like every other input's.
    std::string_view m = e.what();
    if (m.starts_with(o.pcap + ": ")) m.remove_prefix(o.pcap.size() + 2);
    throw LoadError({{o.pcap, 0, 0, std::string(m)}});
  }
  pcap::Reader& reader = *opened;

  std::vector<std::unique_ptr<pcap::Writer>> writers(lanes.size());
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec) throw LoadError({{o.out_dir, 0, 0, fmt::format("cannot create directory: {}", ec.message())}});
    for (size_t i = 0; i < lanes.size(); ++i)
      writers[i] = std::make_unique<pcap::Writer>((std::filesystem::path(o.out_dir) / (lanes[i]->name + ".pcap")).string(),
                                                  pcap::link::Raw);
  }

  std::vector<Tally> tally(lanes.size());
  uint64_t frames = 0, fragments = 0;
  uint64_t decode_errors[size_t(pcap::DecodeError::Count_)] = {};
  // Per connection (keyed by its first packet as captured): each mode's outcome for that packet.
  std::map<FiveTuple, std::vector<FlowResult>, TupleLess> flows;
  pcap::Frame f;
  pcap::Decoded d;
  auto t0 = std::chrono::steady_clock::now();
  const nf::Node& node0 = lanes[0]->node;
  Progress progress(o.progress, reader);
  // Per lane, per destination as the client addressed it: every backend the mode could pick. IPVS
  // lanes read the virtual service's real servers; iptables lanes enumerate the statistic branches
  // once per destination.
  std::vector<std::map<std::string, std::set<std::string>>> possible(lanes.size());
  std::vector<std::unique_ptr<nf::Datapath>> probes(lanes.size());
  auto learn_backends = [&](size_t i, const Packet& p, const nf::Injection& inj) {
    if (lanes.size() < 2) return;
    Lane& l = *lanes[i];
    std::string key = FiveTuple::endpoint(p.t.dst, p.t.dport, p.t.proto);
    auto [it, fresh] = possible[i].try_emplace(key);
    if (!fresh) return;
    if (l.engine) {
      if (const ipvs::Service* vs = l.engine->services.find(p.t.proto, p.t.dst, p.t.dport)) {
        for (const auto& rs : vs->dests)
          if (!rs.unavailable()) it->second.insert(FiveTuple::endpoint(rs.addr, rs.port, p.t.proto));
        return;
      }
    }
    // Enumerate on a stateless twin of the lane: the same tables and node, an empty conntrack, so
    // the cost does not grow with the flows replayed so far (enumerate snapshots the state).
    if (!probes[i]) {
      probes[i] = l.stateless_twin(o.seed);
    }
    for (const nf::Outcome& oc : probes[i]->enumerate(p, inj))
      if (oc.dnat) it->second.insert(FiveTuple::endpoint(oc.after.t.dst, oc.after.t.dport, oc.after.t.proto));
  };

  // Agreement: each mode against the first. Equivalent = same outcome, same DNAT decision, each
  // mode's backend one the other mode could have picked for that destination, same masquerade.
  // Returns what differs, or "" when equivalent.
  auto difference = [&](const std::vector<FlowResult>& res, size_t i) -> std::string {
    const FlowResult& a = res[0];
    const FlowResult& b = res[i];
    auto backends_of = [&](size_t lane, const std::string& svc) -> const std::set<std::string>* {
      auto it = possible[lane].find(svc);
      return it == possible[lane].end() ? nullptr : &it->second;
    };
    // Same verdict; the reason may differ (a REJECT rule vs IPVS's own port-unreachable).
    if (a.kind != b.kind) return "outcome";
    if (a.dnat != b.dnat) return "DNAT";
    if (a.dnat && a.service != b.service) return "service";
    if (a.dnat) {
      auto* ab = backends_of(0, a.service);
      auto* bb = backends_of(i, b.service);
      if (!ab || !ab->count(b.backend) || !bb || !bb->count(a.backend)) return "backend set";
    }
    if (a.snat != b.snat) return "masquerade";
    return "";
  };
  // The first --examples differences in capture order, with each side's full trace. Lanes trace
  // their connections' first packets only while examples are still wanted.
  struct Example {
    FiveTuple t;
    size_t lane;
    std::string what;
    PacketSpec spec;
    nf::Outcome first, other;
  };
  std::vector<Example> examples;
  bool tracing = false;
  Batch batch;
  std::vector<std::vector<std::pair<size_t, nf::Outcome>>> traced(lanes.size());  // per lane: (item, outcome)

  // One packet through one lane: tallies, the post-NAT copy, and (with --answer) the peer's reply.
  auto run = [&](size_t i, const Packet& p, const nf::Injection& inj, bool answer, FlowResult* first, const Item* item,
                 const uint8_t* frame) {
    Lane& l = *lanes[i];
    NullSink quiet;
    VectorSink events;
    bool trace_it = first && tracing;
    Counters before = l.dp->counters();
    nf::Outcome oc = l.dp->process(p, inj, trace_it ? static_cast<TraceSink&>(events) : quiet);
    if (trace_it) {
      nf::Outcome copy = oc;
      copy.trace = std::move(events.events);
      traced[i].emplace_back(size_t(item - batch.items.data()), std::move(copy));
    }
    Counters cost = l.dp->counters() - before;
    Tally& t = tally[i];
    ++(answer ? t.answers : t.packets);
    bool is_new = cost.ct_created > 0 && !answer;
    t.new_flows += is_new;
    if (!answer) {
      (is_new ? t.cost_new : t.cost_est) += cost;
      size_t b = cost.rules_evaluated == 0 ? 0 : std::min<size_t>(23, size_t(std::bit_width(cost.rules_evaluated)));
      ++(is_new ? t.rules_hist_new : t.rules_hist_est)[b];
    }
    ++t.outcomes[outcome_code(answer, oc)];
    Endpoint svc{oc.before.dst, oc.before.dport, oc.before.proto};
    Endpoint backend{oc.after.t.dst, oc.after.t.dport, oc.after.t.proto};
    if (oc.dnat && !answer) {
      ++t.dnat;
      ++t.dnat_to[svc][backend];
      if (is_new) ++t.connections_to[svc];
    }
    t.snat += oc.snat && !answer;
    if (first) *first = {oc.kind, oc.reason, oc.dnat, oc.snat, oc.dnat ? svc.str() : "", oc.dnat ? backend.str() : "", oc.where};
    bool left =
        oc.kind == nf::OutcomeKind::Forwarded || oc.kind == nf::OutcomeKind::Delivered || oc.kind == nf::OutcomeKind::Bridged;
    if (!left) return std::optional<nf::Outcome>();
    if (writers[i]) {
      if (!item) {
        writers[i]->write(p.ts_ns, pcap::build(oc.after));
      } else {
        writers[i]->write(p.ts_ns, pcap::rewrite(frame, item->caplen, item->d, oc.after),
                          item->wirelen > item->d.l3 ? item->wirelen - item->d.l3 : 0);
      }
      ++t.written;
    }
    return std::optional<nf::Outcome>(std::move(oc));
  };

  // Every packet of a batch through one lane, in capture order.
  std::vector<double> lane_secs(lanes.size());
  auto run_lane = [&](size_t i, const Batch& b) {
    Lane& l = *lanes[i];
    auto lane_t0 = std::chrono::steady_clock::now();
    for (const Item& it : b.items) {
      const Packet& p = it.d.pkt;
      nf::Injection inj{it.local, kNoIf};
      if (!it.local) inj.iif = forced_iif[i] >= 0 ? forced_iif[i] : source_interface(l.node, p.t.src);
      if (it.first) learn_backends(i, p, inj);
      auto oc = run(i, p, inj, false, it.first ? &(*it.first)[i] : nullptr, &it, b.arena.data() + it.off);
      if (!o.answer || !oc) continue;
      Packet reply;
      if (!answer_for(*oc, reply)) continue;
      reply.ts_ns = p.ts_ns;
      // The answer comes back the way the packet left: from a local socket, or on the egress interface.
      bool to_local = oc->kind == nf::OutcomeKind::Delivered;
      int16_t iif = to_local ? kNoIf : l.node.find(oc->port.empty() ? oc->out : oc->port);
      run(i, reply, nf::Injection{to_local, iif}, true, nullptr, nullptr, nullptr);
    }
    lane_secs[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - lane_t0).count();
  };

  // The reader fills a batch, then the lanes work through it. Lanes are independent datapaths, so
  // running them on separate threads gives the same results as running them in turn.
  size_t nthreads = std::max<size_t>(1, std::min<size_t>(o.threads, lanes.size()));
  std::exception_ptr worker_error;
  std::mutex error_mu;
  auto work = [&](size_t w, const Batch& b) {
    try {
      for (size_t i = w; i < lanes.size(); i += nthreads) run_lane(i, b);
    } catch (...) {
      std::lock_guard lk(error_mu);
      if (!worker_error) worker_error = std::current_exception();
    }
  };
  std::barrier<> sync{std::ptrdiff_t(nthreads)};  // the reader thread is worker 0
  std::atomic<bool> stop{false};
  std::vector<std::jthread> workers;
  for (size_t w = 1; w < nthreads; ++w)
    workers.emplace_back([&, w] {
      for (;;) {
        sync.arrive_and_wait();  // a batch is ready (or stop)
        if (stop.load()) return;
        work(w, batch);
        sync.arrive_and_wait();  // done with it
      }
    });

  // Main thread, between batches: the batch's first packets that differ become examples.
  auto collect_examples = [&](const Batch& b) {
    std::vector<size_t> cursor(lanes.size(), 0);
    auto traced_for = [&](size_t lane, size_t item) -> const nf::Outcome* {
      auto& v = traced[lane];
      while (cursor[lane] < v.size() && v[cursor[lane]].first < item) ++cursor[lane];
      return cursor[lane] < v.size() && v[cursor[lane]].first == item ? &v[cursor[lane]].second : nullptr;
    };
    for (size_t k = 0; k < b.items.size() && examples.size() < o.examples; ++k) {
      const Item& it = b.items[k];
      if (!it.first) continue;
      for (size_t i = 1; i < lanes.size() && examples.size() < o.examples; ++i) {
        std::string what = difference(*it.first, i);
        if (what.empty()) continue;
        const nf::Outcome* a = traced_for(0, k);
        const nf::Outcome* c = traced_for(i, k);
        if (!a || !c) continue;
        PacketSpec spec;
        spec.pkt = it.d.pkt;
        spec.local = it.local;
        spec.text = it.d.pkt.t.str();
        if (!it.local) {
          int16_t iif = forced_iif[0] >= 0 ? forced_iif[0] : source_interface(lanes[0]->node, it.d.pkt.t.src);
          spec.in = std::string(lanes[0]->node.ifname(iif));
        }
        examples.push_back({it.d.pkt.t, i, what, spec, *a, *c});
      }
    }
  };

  std::exception_ptr reader_error;
  std::string file_error;
  try {
    bool eof = false;
    while (!eof) {
      Batch& b = batch;
      b.clear();
      while (b.items.size() < Batch::kSize) {
        bool more = false;
        try {
          more = reader.next(f);
        } catch (const pcap::IoError& e) {
          // A capture cut off mid-record (tcpdump killed, disk full): replay what came before it.
          file_error = e.what();
          more = false;
        }
        if (!more) {
          eof = true;
          break;
        }
        ++frames;
        progress.tick(frames);
        pcap::DecodeError e = pcap::decode(reader.linktype(), f.data, f.caplen, d, f.wirelen);
        if (e != pcap::DecodeError::None) {
          ++decode_errors[size_t(e)];
          continue;
        }
        if (d.pkt.fragment) {  // the kernel reassembles before conntrack; a later fragment alone has no flow
          ++fragments;
          continue;
        }
        Item& it = b.add(f, d);
        it.d.pkt.ts_ns = f.ts_ns;
        if (it.d.pkt.pkt_type == PktType::Outgoing) it.d.pkt.pkt_type = PktType::Host;
        // Where the packet enters: sent by this host, or received on the interface its source routes through.
        it.local = d.pkt.pkt_type == PktType::Outgoing || node0.is_local(d.pkt.t.src);
        auto [fit, fresh] = flows.try_emplace(d.pkt.t);
        if (fresh) {
          fit->second.resize(lanes.size());
          it.first = &fit->second;
        }
      }
      if (b.items.empty()) break;
      tracing = lanes.size() > 1 && examples.size() < o.examples;
      for (auto& tr : traced) tr.clear();
      if (nthreads > 1) sync.arrive_and_wait();
      work(0, b);
      if (nthreads > 1) sync.arrive_and_wait();
      if (worker_error) break;
      if (tracing) collect_examples(b);
    }
  } catch (...) {
    reader_error = std::current_exception();  // release the workers before reporting it
  }
  stop = true;
  if (nthreads > 1) sync.arrive_and_wait();
  workers.clear();
  if (reader_error) std::rethrow_exception(reader_error);
  if (!file_error.empty()) fmt::print(stderr, "svcpath: warning: {} (replayed the frames before it)\n", file_error);
  // Wall-clock rates go to stderr: the report on stdout stays byte-identical for a seed.
  if (o.timing)
    for (size_t i = 0; i < lanes.size(); ++i)
      fmt::print(stderr, "svcpath: mode {}: {} packets in {:.3f} s, {:.0f} packets/s\n", lanes[i]->name, tally[i].packets,
                 lane_secs[i], lane_secs[i] > 0 ? double(tally[i].packets) / lane_secs[i] : 0.0);
  if (worker_error) std::rethrow_exception(worker_error);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.done(frames, secs);
  for (auto& w : writers)
    if (w) w->close();

  uint64_t skipped = fragments;
  for (auto n : decode_errors) skipped += n;

  std::vector<uint64_t> agree(lanes.size()), differ(lanes.size());
  std::vector<std::map<std::string, uint64_t>> why(lanes.size());
  for (auto& [tuple, res] : flows)
    for (size_t i = 1; i < lanes.size(); ++i) {
      std::string what = difference(res, i);
      if (what.empty()) {
        ++agree[i];
      } else {
        ++differ[i];
        ++why[i][what];
      }
    }
  auto describe = [&](const FlowResult& r) {
    std::string s = outcome_label(r.kind, r.reason);
    if (!r.where.empty()) s += " at " + r.where;
    if (r.dnat) s += fmt::format(", DNAT {} -> {}", r.service, r.backend);
    if (r.snat) s += ", masqueraded";
    return s;
  };

  // NetworkPolicy verdicts per policy rule, read off each mode's rule counters.
  std::vector<nf::netpol::Verdicts> policy(lanes.size());
  for (size_t i = 0; i < lanes.size(); ++i)
    for (Family fam : {Family::V4, Family::V6})
      if (auto* rs = lanes[i]->xt->ruleset(fam))
        nf::netpol::count_verdicts(*rs, lanes[i]->xt->rule_state(fam).rule_pkts, policy[i]);

  {
    nlohmann::json j;
    j["capture"] = {{"file", o.pcap}, {"linktype", reader.linktype()}, {"frames", frames}};
    nlohmann::json sk = nlohmann::json::object();
    for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
      if (decode_errors[k]) sk[std::string(pcap::decode_error_name(pcap::DecodeError(k)))] = decode_errors[k];
    if (fragments) sk["later fragment"] = fragments;
    if (!file_error.empty()) j["capture"]["error"] = file_error;
    j["skipped"] = std::move(sk);
    nlohmann::json modes = nlohmann::json::object();
    for (size_t i = 0; i < lanes.size(); ++i) {
      const Tally& t = tally[i];
      nlohmann::json m;
      m["packets"] = t.packets;
      if (o.answer) m["answers"] = t.answers;
      m["connections_to"] = named(t.connections_to);
      m["new_flows"] = t.new_flows;
      m["outcomes"] = outcome_names(t);
      m["dnat"] = t.dnat;
      m["snat"] = t.snat;
      m["dnat_to"] = named(t.dnat_to);
      m["cost_per_new_packet"] = counters_json(t.cost_new, t.new_flows);
      m["cost_per_established_packet"] = counters_json(t.cost_est, t.packets - t.new_flows);
      // Distribution of rules evaluated per packet: bucket label ("0", "1", "2-3", "4-7", ...) -> packets.
      auto hist = [](const std::array<uint64_t, 24>& h) {
        nlohmann::json arr = nlohmann::json::array();
        for (size_t b = 0; b < h.size(); ++b) {
          if (!h[b]) continue;
          uint64_t lo = b == 0 ? 0 : uint64_t(1) << (b - 1), hi = b == 0 ? 0 : (uint64_t(1) << b) - 1;
          arr.push_back({{"rules", lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi)}, {"lo", lo}, {"packets", h[b]}});
        }
        return arr;
      };
      m["rules_histogram"] = {{"new", hist(t.rules_hist_new)}, {"established", hist(t.rules_hist_est)}};
      if (writers[i]) m["written"] = t.written;
      if (!policy[i].allowed.empty() || !policy[i].denied.empty())
        m["policy"] = {{"allowed", policy[i].allowed}, {"denied", policy[i].denied}};
      modes[lanes[i]->name] = std::move(m);
    }
    j["modes"] = std::move(modes);
    if (lanes.size() > 1) {
      nlohmann::json ag = nlohmann::json::object();
      for (size_t i = 1; i < lanes.size(); ++i)
        ag[lanes[i]->name] = {{"against", lanes[0]->name},
                              {"connections", flows.size()},
                              {"equivalent", agree[i]},
                              {"different", differ[i]},
                              {"why", why[i]}};
      auto ex = nlohmann::json::array();
      for (auto& ex_d : examples) {
        auto& r = flows.at(ex_d.t);
        ex.push_back(
            {{"connection", ex_d.t.str()},
             {"differs_in", ex_d.what},
             {lanes[0]->name, describe(r[0])},
             {lanes[ex_d.lane]->name, describe(r[ex_d.lane])},
             {"traces", {{lanes[0]->name, outcome_json(ex_d.first)}, {lanes[ex_d.lane]->name, outcome_json(ex_d.other)}}}});
      }
      ag["examples"] = std::move(ex);
      j["agreement"] = std::move(ag);
    }
    if (!o.report.empty()) {
      ReportInput ri;
      ri.title = fmt::format("svcpath replay: {}", o.pcap);
      ri.replay = j;
      write_report_file(o.report, ri);
      if (o.timing) fmt::print(stderr, "svcpath: wrote the report to {}\n", o.report);
    }
    if (o.format == "json") {
      out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // rule comments are bytes
      return file_error.empty() ? 0 : kExitDamagedCapture;
    }
  }
  out << fmt::format("capture {}: {} frames (link type {}), {} replayed, {} skipped\n", o.pcap, frames, reader.linktype(),
                     frames - skipped, skipped);
  for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
    if (decode_errors[k])
      out << fmt::format("  skipped {:>8}  {}\n", decode_errors[k], pcap::decode_error_name(pcap::DecodeError(k)));
  if (fragments) out << fmt::format("  skipped {:>8}  later fragment (no L4 header; reassembly not modelled)\n", fragments);
  if (!file_error.empty()) out << fmt::format("  the capture ends early: {}\n", file_error);
  for (size_t i = 0; i < lanes.size(); ++i) {
    const Tally& t = tally[i];
    out << fmt::format("\n== mode {} ==\n", lanes[i]->name);
    out << fmt::format("packets {}  new flows {}  DNAT {}  SNAT/masquerade {}{}\n", t.packets, t.new_flows, t.dnat, t.snat,
                       o.answer ? fmt::format("  answers {}", t.answers) : "");
    for (auto& [k, n] : outcome_names(t)) out << fmt::format("  {:<40} {:>8}\n", k, n);
    if (!t.dnat_to.empty()) out << "DNAT destinations (packets):\n";
    for (auto& [svc, backends] : named(t.dnat_to)) {
      uint64_t total = 0;
      for (auto& [b, n] : backends) total += n;
      out << fmt::format("  {}\n", svc);
      for (auto& [b, n] : backends)
        out << fmt::format("    -> {:<40} {:>8}  {:5.1f}%\n", b, n, 100.0 * double(n) / double(total));
    }
    auto cost_line = [&](const char* what, const Counters& c, uint64_t n) {
      if (!n) return;
      out << fmt::format("cost per {} packet: {:.1f} rules, {:.1f} set lookups, {:.1f} ct lookups", what,
                         double(c.rules_evaluated) / double(n), double(c.set_lookups) / double(n),
                         double(c.ct_lookups) / double(n));
      if (c.ipvs_svc_lookups) out << fmt::format(", {:.1f} ipvs service lookups", double(c.ipvs_svc_lookups) / double(n));
      out << "\n";
    };
    cost_line("new", t.cost_new, t.new_flows);
    cost_line("established", t.cost_est, t.packets - t.new_flows);
    if (!policy[i].allowed.empty() || !policy[i].denied.empty()) out << "NetworkPolicy verdicts (packets):\n";
    for (auto& [by, n] : policy[i].allowed) out << fmt::format("  allowed {:>8}  {}\n", n, by);
    for (auto& [by, n] : policy[i].denied) out << fmt::format("  denied  {:>8}  {}\n", n, by);
    if (writers[i]) out << fmt::format("wrote {} post-NAT packets to {}/{}.pcap\n", t.written, o.out_dir, lanes[i]->name);
  }
  if (lanes.size() > 1) {
    out << "\n== agreement ==\n";
    for (size_t i = 1; i < lanes.size(); ++i) {
      out << fmt::format("{} vs {}: {} connections, {} equivalent, {} different", lanes[0]->name, lanes[i]->name, flows.size(),
                         agree[i], differ[i]);
      std::string reasons;
      for (auto& [w, n] : why[i]) reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", n, w);
      out << (reasons.empty() ? "\n" : " (" + reasons + ")\n");
    }
    for (auto& ex_d : examples) {
      auto& r = flows.at(ex_d.t);
      out << fmt::format("  {} differs in {}:\n", ex_d.t.str(), ex_d.what);
      out << fmt::format("    {:<9} {}\n", lanes[0]->name, describe(r[0]));
      out << fmt::format("    {:<9} {}\n", lanes[ex_d.lane]->name, describe(r[ex_d.lane]));
      TextStyle style;
      for (size_t side : {size_t(0), ex_d.lane}) {
        out << fmt::format("\n  -- {} --\n", lanes[side]->name);
        std::string txt =
            render_text(1, ex_d.spec, ex_d.spec.pkt, ex_d.spec.in, {side == 0 ? ex_d.first : ex_d.other}, false, style);
        std::istringstream lines(txt);
        for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
      }
      out << "\n";
    }
  }
  return file_error.empty() ? 0 : kExitDamagedCapture;
}

}  // namespace svcpath::cli
