// Replay: the reader fills a batch of decoded frames, then every lane works through it in capture
// order (lanes are independent datapaths, so running them on separate threads gives the same
// results as running them in turn); between batches the first packets that differ become examples.
#include "kube/sim/replay.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <chrono>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "core/ipv6_ext.hpp"
#include "ipvs/ipvs.hpp"
#include "pcap/io.hpp"

namespace svcpath::sim {

namespace {

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

}  // namespace

bool TupleLess::operator()(const FiveTuple& a, const FiveTuple& b) const {
  return std::tie(a.src, a.dst, a.sport, a.dport, a.proto) < std::tie(b.src, b.dst, b.sport, b.dport, b.proto);
}

uint64_t CaptureFacts::skipped() const {
  uint64_t n = fragments;
  for (auto k : decode_errors) n += k;
  return n;
}

// A decoded frame waiting for the lanes; its bytes live in the batch's arena.
struct Replay::Item {
  pcap::Decoded d;
  size_t off = 0;
  uint32_t caplen = 0, wirelen = 0;
  bool local = false;
  std::vector<FlowResult>* first = nullptr;  // set on a connection's first packet
};

struct Replay::Batch {
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

// The threads besides the reader's (which is worker 0), meeting at a barrier around each batch.
struct Replay::Workers {
  explicit Workers(size_t n) : sync(std::ptrdiff_t(n)) {}
  std::barrier<> sync;
  std::atomic<bool> stop{false};
  std::mutex error_mu;
  std::exception_ptr error;           // the first exception a lane threw
  std::vector<std::jthread> threads;  // last: joined before the barrier goes
};

Replay::Replay(std::vector<std::unique_ptr<Lane>>& lanes, ReplayConfig config)
    : lanes_(lanes), cfg_(std::move(config)), forced_iif_(lanes.size(), kNoIf) {
  if (cfg_.in_default == "auto") return;
  for (size_t i = 0; i < lanes_.size(); ++i) {
    forced_iif_[i] = lanes_[i]->node.find(cfg_.in_default);
    if (forced_iif_[i] >= 0) continue;
    std::string known;
    for (auto& f : lanes_[i]->node.interfaces()) known += (known.empty() ? "" : ", ") + f.name;
    throw LoadError(
        {{"--in", 0, 0, fmt::format("unknown interface '{}' (mode {} has: {})", cfg_.in_default, lanes_[i]->name, known)}});
  }
}

Replay::~Replay() = default;

int16_t Replay::in_interface(size_t i, const Addr& src) const {
  return forced_iif_[i] >= 0 ? forced_iif_[i] : source_interface(lanes_[i]->node, src);
}

// IPVS lanes read the virtual service's real servers; iptables lanes enumerate the statistic
// branches once per destination.
void Replay::learn_backends(size_t i, const Packet& p, const nf::Injection& inj) {
  if (lanes_.size() < 2) return;
  Lane& l = *lanes_[i];
  auto [it, fresh] = possible_[i].try_emplace(Endpoint{p.t.dst, p.t.dport, p.t.proto});
  if (!fresh) return;
  if (l.engine) {
    if (const ipvs::Service* vs = l.engine->services.find(p.t.proto, p.t.dst, p.t.dport)) {
      for (const auto& rs : vs->dests)
        if (!rs.unavailable()) it->second.insert(Endpoint{rs.addr, rs.port, p.t.proto});
      return;
    }
  }
  // Enumerate on a stateless twin of the lane: the same tables and node, an empty conntrack, so
  // the cost does not grow with the flows replayed so far (enumerate snapshots the state).
  if (!probes_[i]) probes_[i] = l.stateless_twin(cfg_.seed);
  for (const nf::Outcome& oc : probes_[i]->enumerate(p, inj))
    if (auto b = Endpoint::backend_of(oc)) it->second.insert(*b);
}

// What differs between lane i and lane 0 on connection t, and whether it is real (see Agreement).
Difference Replay::difference(const FiveTuple& t, const std::vector<FlowResult>& res, size_t i) const {
  const FlowResult& a = res[0];
  const FlowResult& b = res[i];
  auto backends_of = [&](size_t lane, const Endpoint& svc) -> const std::set<Endpoint>* {
    auto it = possible_[lane].find(svc);
    return it == possible_[lane].end() ? nullptr : &it->second;
  };
  // Same verdict; the reason may differ (a REJECT rule vs IPVS's own port-unreachable).
  if (a.kind != b.kind) return b.as_other_backend ? Difference{false, "other backend's outcome"} : Difference{true, "outcome"};
  if (a.dnat != b.dnat) return {true, "DNAT"};
  if (a.dnat && a.service != b.service) return {true, "service"};
  if (a.dnat) {
    auto* ab = backends_of(0, a.service);
    auto* bb = backends_of(i, b.service);
    if (!ab || !ab->count(b.backend) || !bb || !bb->count(a.backend)) return {true, "backend set"};
  }
  bool other_backend = a.dnat && a.backend != b.backend;
  if (a.snat != b.snat) {
    // Hairpin: the lane that picked the client itself masquerades (so the reply comes back through
    // the node), the other picked a backend that needs none. Both are right for their backend.
    const FlowResult& masq = a.snat ? a : b;
    const FlowResult& plain = a.snat ? b : a;
    if (other_backend && masq.backend.addr == t.src && plain.backend.addr != t.src) return {false, "hairpin masquerade"};
    if (other_backend && b.as_other_backend) return {false, "other backend's masquerade"};
    return {true, "masquerade"};
  }
  if (other_backend) return {false, "other backend"};
  return {};
}

// One packet through one lane: tallies, the post-NAT copy, and the outcome when the packet left
// the node (for --answer). first: the connection's result to fill, on its first packet.
std::optional<nf::Outcome> Replay::run_packet(size_t i, const Packet& p, const nf::Injection& inj, bool answer, FlowResult* first,
                                              const Item* item, const uint8_t* frame) {
  Lane& l = *lanes_[i];
  NullSink quiet;
  VectorSink events;
  bool trace_it = first && tracing_;
  Counters before = l.dp->counters();
  nf::Outcome oc = l.dp->process(p, inj, trace_it ? static_cast<TraceSink&>(events) : quiet);
  if (trace_it) {
    nf::Outcome copy = oc;
    copy.trace = std::move(events.events);
    traced_[i].emplace_back(size_t(item - batch_->items.data()), std::move(copy));
  }
  Counters cost = l.dp->counters() - before;
  Tally& t = res_.lanes[i].tally;
  ++(answer ? t.answers : t.packets);
  bool is_new = cost.ct_created > 0 && !answer;
  t.new_flows += is_new;
  t.midstream += is_new && p.t.proto == proto::TCP && !(p.tcp_flags & tcpflag::SYN);
  if (oc.after.ctinfo == CtInfo::Invalid) {
    ++t.invalid;
    if (oc.kind == nf::OutcomeKind::Dropped) ++t.invalid_dropped_at[oc.where];
  }
  if (!answer) {
    (is_new ? t.cost_new : t.cost_est) += cost;
    size_t b = cost.rules_evaluated == 0 ? 0 : std::min<size_t>(23, size_t(std::bit_width(cost.rules_evaluated)));
    ++(is_new ? t.rules_hist_new : t.rules_hist_est)[b];
  }
  ++t.outcomes[{answer, oc.kind, oc.reason}];
  Endpoint svc{oc.before.dst, oc.before.dport, oc.before.proto};
  Endpoint backend{oc.after.t.dst, oc.after.t.dport, oc.after.t.proto};
  if (oc.dnat && !answer) {
    ++t.dnat;
    ++t.dnat_to[svc][backend];
    if (is_new) ++t.connections_to[svc];
  }
  t.snat += oc.snat && !answer;
  if (first)
    *first = {oc.kind, oc.reason, oc.dnat, oc.snat, oc.dnat ? svc : Endpoint{}, oc.dnat ? backend : Endpoint{}, oc.where};
  bool left =
      oc.kind == nf::OutcomeKind::Forwarded || oc.kind == nf::OutcomeKind::Delivered || oc.kind == nf::OutcomeKind::Bridged;
  if (!left) return std::nullopt;
  if (writers_[i]) {
    if (!item) {
      writers_[i]->write(p.ts_ns, pcap::build(oc.after));
    } else {
      writers_[i]->write(p.ts_ns, pcap::rewrite(frame, item->caplen, item->d, oc.after),
                         item->wirelen > item->d.l3 ? item->wirelen - item->d.l3 : 0);
    }
    ++t.written;
  }
  return oc;
}

// Every packet of a batch through one lane, in capture order.
void Replay::run_lane(size_t i, const Batch& b) {
  Lane& l = *lanes_[i];
  auto lane_t0 = std::chrono::steady_clock::now();
  for (const Item& it : b.items) {
    const Packet& p = it.d.pkt;
    nf::Injection inj{it.local, kNoIf};
    if (!it.local) inj.iif = in_interface(i, p.t.src);
    if (it.first) learn_backends(i, p, inj);
    auto oc = run_packet(i, p, inj, false, it.first ? &(*it.first)[i] : nullptr, &it, b.arena.data() + it.off);
    if (!cfg_.answer || !oc) continue;
    Packet reply;
    if (!answer_for(*oc, reply)) continue;
    reply.ts_ns = p.ts_ns;
    // The answer comes back the way the packet left: from a local socket, or on the egress interface.
    bool to_local = oc->kind == nf::OutcomeKind::Delivered;
    int16_t iif = to_local ? kNoIf : l.node.find(oc->port.empty() ? oc->out : oc->port);
    run_packet(i, reply, nf::Injection{to_local, iif}, true, nullptr, nullptr, nullptr);
  }
  res_.lanes[i].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - lane_t0).count();
}

// Worker w's share of a batch: lanes w, w + threads, ...
void Replay::work(size_t w, const Batch& b) {
  try {
    for (size_t i = w; i < lanes_.size(); i += nthreads_) run_lane(i, b);
  } catch (...) {
    std::lock_guard lk(workers_->error_mu);
    if (!workers_->error) workers_->error = std::current_exception();
  }
}

void Replay::worker_loop(size_t w) {
  for (;;) {
    workers_->sync.arrive_and_wait();  // a batch is ready (or stop)
    if (workers_->stop.load()) return;
    work(w, *batch_);
    workers_->sync.arrive_and_wait();  // done with it
  }
}

// Main thread, between batches: the batch's first packets that differ become examples, while
// examples are still wanted (the lanes traced those packets).
void Replay::collect_examples(const Batch& b) {
  std::vector<size_t> cursor(lanes_.size(), 0);
  auto traced_for = [&](size_t lane, size_t item) -> const nf::Outcome* {
    auto& v = traced_[lane];
    while (cursor[lane] < v.size() && v[cursor[lane]].first < item) ++cursor[lane];
    return cursor[lane] < v.size() && v[cursor[lane]].first == item ? &v[cursor[lane]].second : nullptr;
  };
  auto& examples = res_.examples;
  for (size_t k = 0; k < b.items.size() && examples.size() < cfg_.examples; ++k) {
    const Item& it = b.items[k];
    if (!it.first) continue;
    for (size_t i = 1; i < lanes_.size() && examples.size() < cfg_.examples; ++i) {
      Difference d = difference(it.d.pkt.t, *it.first, i);
      if (!d.real) continue;
      const nf::Outcome* a = traced_for(0, k);
      const nf::Outcome* c = traced_for(i, k);
      if (!a || !c) continue;
      PacketSpec spec;
      spec.pkt = it.d.pkt;
      spec.local = it.local;
      spec.text = it.d.pkt.t.str();
      if (!it.local) spec.in = std::string(lanes_[0]->node.ifname(in_interface(0, it.d.pkt.t.src)));
      examples.push_back({it.d.pkt.t, i, d.what, spec, *a, *c});
    }
  }
}

// Main thread, between batches: where lane 0 and lane i picked different backends of a Service and
// then differ in outcome or masquerade, a lane that can fork (not IPVS: its twin has no scheduler)
// is asked on its stateless twin what it does with the other lane's backend. When that is what the
// other lane did, the difference follows from the choice.
void Replay::probe_choices(const Batch& b) {
  auto would = [&](size_t lane, const Item& it, const Endpoint& backend, const FlowResult& did) {
    if (lanes_[lane]->engine) return false;
    if (!probes_[lane]) probes_[lane] = lanes_[lane]->stateless_twin(cfg_.seed);
    nf::Injection inj{it.local, it.local ? kNoIf : in_interface(lane, it.d.pkt.t.src)};
    for (const nf::Outcome& oc : probes_[lane]->enumerate(it.d.pkt, inj))
      if (Endpoint::backend_of(oc) == backend) return oc.kind == did.kind && oc.snat == did.snat;
    return false;
  };
  for (const Item& it : b.items) {
    if (!it.first) continue;
    std::vector<FlowResult>& res = *it.first;
    const FlowResult& a = res[0];
    for (size_t i = 1; i < res.size(); ++i) {
      FlowResult& c = res[i];
      if (!a.dnat || !c.dnat || a.service != c.service || a.backend == c.backend) continue;
      if (a.kind == c.kind && a.snat == c.snat) continue;
      c.as_other_backend = would(0, it, c.backend, c) || would(i, it, a.backend, a);
    }
  }
}

ReplayResult Replay::run(const std::string& path) {
  const size_t n = lanes_.size();
  res_ = ReplayResult{};
  res_.lanes.resize(n);
  for (size_t i = 0; i < n; ++i) res_.lanes[i].name = lanes_[i]->name;
  possible_.assign(n, {});
  probes_.clear();
  probes_.resize(n);
  traced_.assign(n, {});

  pcap::Reader reader(path);  // an unreadable capture is a LoadError naming it (pcap::IoError)
  CaptureFacts& cap = res_.capture;
  cap.linktype = reader.linktype();

  writers_.clear();
  writers_.resize(n);
  if (!cfg_.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(cfg_.out_dir, ec);
    if (ec) throw LoadError({{cfg_.out_dir, 0, 0, fmt::format("cannot create directory: {}", ec.message())}});
    for (size_t i = 0; i < n; ++i)
      writers_[i] = std::make_unique<pcap::Writer>((std::filesystem::path(cfg_.out_dir) / (lanes_[i]->name + ".pcap")).string(),
                                                   pcap::link::Raw);
  }

  const nf::Node& node0 = lanes_[0]->node;
  batch_ = std::make_unique<Batch>();
  nthreads_ = std::max<size_t>(1, std::min<size_t>(cfg_.threads, n));
  workers_ = std::make_unique<Workers>(nthreads_);
  for (size_t w = 1; w < nthreads_; ++w) workers_->threads.emplace_back(&Replay::worker_loop, this, w);

  pcap::Frame f;
  pcap::Decoded d;
  std::exception_ptr reader_error;
  try {
    bool eof = false;
    while (!eof) {
      Batch& b = *batch_;
      b.clear();
      while (b.items.size() < Batch::kSize) {
        bool more = false;
        try {
          more = reader.next(f);
        } catch (const pcap::IoError& e) {
          // A capture cut off mid-record (tcpdump killed, disk full): replay what came before it.
          cap.file_error = e.what();
          more = false;
        }
        if (!more) {
          eof = true;
          break;
        }
        ++cap.frames;
        if (cfg_.progress && cap.frames % ReplayConfig::kProgressEvery == 0) cfg_.progress(cap.frames, reader.fraction_read());
        pcap::DecodeError e = pcap::decode(reader.linktype(), f.data, f.caplen, d, f.wirelen);
        if (e != pcap::DecodeError::None) {
          ++cap.decode_errors[size_t(e)];
          continue;
        }
        if (d.pkt.fragment) {  // the kernel reassembles before conntrack; a later fragment alone has no flow
          ++cap.fragments;
          continue;
        }
        // A first fragment stands for the datagram the kernel reassembles from it and the later ones.
        ext6::as_reassembled(d.pkt);
        Item& it = b.add(f, d);
        it.d.pkt.ts_ns = f.ts_ns;
        if (it.d.pkt.pkt_type == PktType::Outgoing) it.d.pkt.pkt_type = PktType::Host;
        // Where the packet enters: sent by this host, or received on the interface its source routes through.
        it.local = d.pkt.pkt_type == PktType::Outgoing || node0.is_local(d.pkt.t.src);
        auto [fit, fresh] = res_.flows.try_emplace(d.pkt.t);
        if (fresh) {
          fit->second.resize(n);
          it.first = &fit->second;
        }
      }
      if (b.items.empty()) break;
      // Lanes trace their connections' first packets only while examples are still wanted.
      tracing_ = n > 1 && res_.examples.size() < cfg_.examples;
      for (auto& tr : traced_) tr.clear();
      if (nthreads_ > 1) workers_->sync.arrive_and_wait();
      work(0, b);
      if (nthreads_ > 1) workers_->sync.arrive_and_wait();
      if (workers_->error) break;
      if (n > 1) probe_choices(b);
      if (tracing_) collect_examples(b);
    }
  } catch (...) {
    reader_error = std::current_exception();  // release the workers before reporting it
  }
  workers_->stop = true;
  if (nthreads_ > 1) workers_->sync.arrive_and_wait();
  workers_->threads.clear();
  if (reader_error) std::rethrow_exception(reader_error);
  if (workers_->error) std::rethrow_exception(workers_->error);
  for (auto& w : writers_)
    if (w) w->close();

  for (auto& [tuple, flow] : res_.flows)
    for (size_t i = 1; i < n; ++i) {
      Difference diff = difference(tuple, flow, i);
      Agreement& ag = res_.lanes[i].agreement;
      if (diff.real) {
        ++ag.different;
        ++ag.why[diff.what];
      } else {
        ++ag.equivalent;
        if (!diff.what.empty()) ++ag.by_choice[diff.what];
      }
    }
  for (size_t i = 0; i < n; ++i)
    for (Family fam : {Family::V4, Family::V6})
      if (auto* rs = lanes_[i]->xt->ruleset(fam))
        nf::netpol::count_verdicts(*rs, lanes_[i]->xt->rule_state(fam).rule_pkts, res_.lanes[i].policy);
  return std::move(res_);
}

}  // namespace svcpath::sim
