// svcpath replay, the front end: options -> lanes -> sim::Replay (kube/sim/replay), and the result
// rendered as text or JSON, and as the HTML report.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/render.hpp"
#include "cli/report.hpp"
#include "core/diag.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/sim/replay.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"

namespace svcpath::cli {

namespace {

// A progress line on stderr: frames, rate, and an ETA from the file offset.
class Progress {
 public:
  explicit Progress(bool on) : on_(on), t0_(std::chrono::steady_clock::now()) {}
  void tick(uint64_t frames, double frac) {
    double s = seconds();
    std::string eta = frac > 0 && frac < 1 ? fmt::format(", ETA {:.0f} s", s / frac - s) : "";
    fmt::print(stderr, "\r{:5.1f}%  {} packets  {:.0f} packets/s{}   ", frac * 100, frames, s > 0 ? double(frames) / s : 0.0,
               eta);
  }
  void done(uint64_t frames) {
    double secs = seconds();
    if (on_)
      fmt::print(stderr, "\r{} packets in {:.2f} s ({:.0f} packets/s)                    \n", frames, secs,
                 secs > 0 ? double(frames) / secs : 0.0);
  }

 private:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

// "forwarded", "dropped (rule DROP)": how outcomes are named in tallies and examples.
std::string outcome_label(nf::OutcomeKind kind, DropReason reason) {
  std::string s(nf::outcome_name(kind));
  if (reason != DropReason::None) s += fmt::format(" ({})", drop_reason_name(reason));
  return s;
}

// The tallies with names for printing, sorted by name.
std::map<std::string, uint64_t> outcome_names(const sim::Tally& t) {
  std::map<std::string, uint64_t> m;
  for (auto [key, n] : t.outcomes) m[(key.answer ? "answer " : "") + outcome_label(key.kind, key.reason)] += n;
  return m;
}
std::map<std::string, uint64_t> named(const std::map<sim::Endpoint, uint64_t>& in) {
  std::map<std::string, uint64_t> m;
  for (auto& [e, n] : in) m[e.str()] += n;
  return m;
}
std::map<std::string, std::map<std::string, uint64_t>> named(
    const std::map<sim::Endpoint, std::map<sim::Endpoint, uint64_t>>& in) {
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

// Distribution of rules evaluated per packet: bucket label ("0", "1", "2-3", "4-7", ...) -> packets.
nlohmann::json histogram_json(const std::array<uint64_t, 24>& h) {
  nlohmann::json arr = nlohmann::json::array();
  for (size_t b = 0; b < h.size(); ++b) {
    if (!h[b]) continue;
    uint64_t lo = b == 0 ? 0 : uint64_t(1) << (b - 1), hi = b == 0 ? 0 : (uint64_t(1) << b) - 1;
    arr.push_back({{"rules", lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi)}, {"lo", lo}, {"packets", h[b]}});
  }
  return arr;
}

std::string describe(const sim::FlowResult& r) {
  std::string s = outcome_label(r.kind, r.reason);
  if (!r.where.empty()) s += " at " + r.where;
  if (r.dnat) s += fmt::format(", DNAT {} -> {}", r.service.str(), r.backend.str());
  if (r.snat) s += ", masqueraded";
  return s;
}

// "3 masquerade, 1 outcome"
std::string reasons(const std::map<std::string, uint64_t>& m) {
  std::string s;
  for (auto& [w, n] : m) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", n, w);
  return s;
}

// One mode's agreement with the first, real differences apart from those a backend choice explains.
std::string agreement_line(const std::string& first, const std::string& other, size_t connections, const sim::Agreement& a) {
  std::string s =
      fmt::format("{} vs {}: {} connections, {} equivalent, {} different", first, other, connections, a.equivalent, a.different);
  if (!a.why.empty()) s += fmt::format(" ({})", reasons(a.why));
  uint64_t chosen = 0;
  for (auto& [w, n] : a.by_choice) chosen += n;
  if (chosen) s += fmt::format("; of the equivalent, {} differ only by the backend chosen ({})", chosen, reasons(a.by_choice));
  return s;
}

nlohmann::json replay_json(const sim::ReplayResult& r, const ReplayOptions& o) {
  const sim::CaptureFacts& c = r.capture;
  nlohmann::json j;
  j["capture"] = {{"file", o.pcap}, {"linktype", c.linktype}, {"frames", c.frames}};
  nlohmann::json sk = nlohmann::json::object();
  for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
    if (c.decode_errors[k]) sk[std::string(pcap::decode_error_name(pcap::DecodeError(k)))] = c.decode_errors[k];
  if (c.fragments) sk["later fragment"] = c.fragments;
  if (!c.file_error.empty()) j["capture"]["error"] = c.file_error;
  j["skipped"] = std::move(sk);
  nlohmann::json modes = nlohmann::json::object();
  for (const sim::LaneResult& l : r.lanes) {
    const sim::Tally& t = l.tally;
    nlohmann::json m;
    m["packets"] = t.packets;
    if (o.answer) m["answers"] = t.answers;
    m["connections_to"] = named(t.connections_to);
    m["new_flows"] = t.new_flows;
    m["new_flows_midstream"] = t.midstream;
    m["invalid"] = t.invalid;
    m["invalid_dropped_at"] = t.invalid_dropped_at;
    m["outcomes"] = outcome_names(t);
    m["dnat"] = t.dnat;
    m["snat"] = t.snat;
    m["dnat_to"] = named(t.dnat_to);
    m["cost_per_new_packet"] = counters_json(t.cost_new, t.new_flows);
    m["cost_per_established_packet"] = counters_json(t.cost_est, t.packets - t.new_flows);
    m["rules_histogram"] = {{"new", histogram_json(t.rules_hist_new)}, {"established", histogram_json(t.rules_hist_est)}};
    if (!o.out_dir.empty()) m["written"] = t.written;
    if (!l.policy.allowed.empty() || !l.policy.denied.empty())
      m["policy"] = {{"allowed", l.policy.allowed}, {"denied", l.policy.denied}};
    modes[l.name] = std::move(m);
  }
  j["modes"] = std::move(modes);
  if (r.lanes.size() > 1) {
    const std::string& first = r.lanes[0].name;
    nlohmann::json ag = nlohmann::json::object();
    for (size_t i = 1; i < r.lanes.size(); ++i) {
      const sim::Agreement& a = r.lanes[i].agreement;
      ag[r.lanes[i].name] = {
          {"against", first}, {"connections", r.flows.size()}, {"equivalent", a.equivalent}, {"different", a.different},
          {"why", a.why},     {"by_choice", a.by_choice}};
    }
    auto ex = nlohmann::json::array();
    for (auto& ex_d : r.examples) {
      auto& f = r.flows.at(ex_d.t);
      const std::string& other = r.lanes[ex_d.lane].name;
      ex.push_back({{"connection", ex_d.t.str()},
                    {"differs_in", ex_d.what},
                    {first, describe(f[0])},
                    {other, describe(f[ex_d.lane])},
                    {"traces", {{first, outcome_json(ex_d.first)}, {other, outcome_json(ex_d.other)}}}});
    }
    ag["examples"] = std::move(ex);
    j["agreement"] = std::move(ag);
  }
  return j;
}

std::vector<ModeCounts> mode_counts(const sim::ReplayResult& r) {
  std::vector<ModeCounts> v;
  for (const sim::LaneResult& l : r.lanes)
    v.push_back({l.name, l.tally.new_flows, l.tally.midstream, l.tally.invalid, l.tally.invalid_dropped_at});
  return v;
}

// "rules evaluated" from "Rules evaluated"; "IPVS service lookups" keeps its capitals.
std::string in_sentence(std::string label) {
  if (label.size() > 1 && std::isupper(static_cast<unsigned char>(label[0])) &&
      std::islower(static_cast<unsigned char>(label[1])))
    label[0] = char(std::tolower(static_cast<unsigned char>(label[0])));
  return label;
}

// Per Service, each backend's packets and share, a column per mode.
void shares_text(const std::vector<sim::LaneResult>& lanes, std::ostream& out) {
  std::map<std::string, std::set<std::string>> services;
  std::vector<std::map<std::string, std::map<std::string, uint64_t>>> per_lane;
  for (const sim::LaneResult& l : lanes) {
    per_lane.push_back(named(l.tally.dnat_to));
    for (auto& [svc, backends] : per_lane.back())
      for (auto& [b, n] : backends) services[svc].insert(b);
  }
  if (services.empty()) return;
  if (lanes.size() == 1) out << "DNAT destinations (packets):\n";
  for (auto& [svc, all] : services) {
    if (lanes.size() == 1) out << fmt::format("  {}\n", svc);
    else {
      out << fmt::format("  {:<38}", svc);
      for (const sim::LaneResult& l : lanes) out << fmt::format(" {:>15}", l.name);
      out << "\n";
    }
    for (auto& b : all) {
      out << fmt::format("    -> {:<34}", b);
      for (auto& m : per_lane) {
        auto it = m.find(svc);
        uint64_t total = 0, n = 0;
        if (it != m.end()) {
          for (auto& [be, k] : it->second) total += k;
          if (auto bi = it->second.find(b); bi != it->second.end()) n = bi->second;
        }
        out << fmt::format(" {:>8} {:5.1f}%", n, total ? 100.0 * double(n) / double(total) : 0.0);
      }
      out << "\n";
    }
  }
}

void replay_text(const sim::ReplayResult& r, const ReplayOptions& o, std::ostream& out) {
  CountNotes notes = explain_counts(mode_counts(r));
  const sim::CaptureFacts& c = r.capture;
  uint64_t skipped = c.skipped();
  out << fmt::format("capture {}: {} frames (link type {}), {} replayed, {} skipped\n", o.pcap, c.frames, c.linktype,
                     c.frames - skipped, skipped);
  for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
    if (c.decode_errors[k])
      out << fmt::format("  skipped {:>8}  {}\n", c.decode_errors[k], pcap::decode_error_name(pcap::DecodeError(k)));
  if (c.fragments) out << fmt::format("  skipped {:>8}  later fragment (no L4 header; reassembly not modelled)\n", c.fragments);
  if (!c.file_error.empty()) out << fmt::format("  the capture ends early: {}\n", c.file_error);
  for (size_t li = 0; li < r.lanes.size(); ++li) {
    const sim::LaneResult& l = r.lanes[li];
    const sim::Tally& t = l.tally;
    out << fmt::format("\n== mode {} ==\n", l.name);
    out << fmt::format("packets {}  new flows {}  DNAT {}  SNAT/masquerade {}{}\n", t.packets, t.new_flows, t.dnat, t.snat,
                       o.answer ? fmt::format("  answers {}", t.answers) : "");
    for (const std::string* note : {&notes.new_flows[li], &notes.invalid[li]})
      if (!note->empty()) out << "  (" << *note << ")\n";
    for (auto& [k, n] : outcome_names(t)) out << fmt::format("  {:<40} {:>8}\n", k, n);
    if (r.lanes.size() == 1) shares_text({l}, out);  // several modes: side by side after them
    auto cost_line = [&](const char* what, const Counters& cost, uint64_t n) {
      if (!n) return;
      std::string line;
      cost.for_each([&](std::string_view name, uint64_t v) {
        bool shown =
            name == "rules_evaluated" || name == "set_lookups" || name == "ct_lookups" || (name == "ipvs_svc_lookups" && v);
        if (shown)
          line += fmt::format("{}{:.1f} {}", line.empty() ? "" : ", ", double(v) / double(n),
                              in_sentence(label_of(std::string(name))));
      });
      out << fmt::format("cost per {}: {}\n", what, line);
    };
    cost_line("new connection", t.cost_new, t.new_flows);
    cost_line("established packet", t.cost_est, t.packets - t.new_flows);
    if (!l.policy.allowed.empty() || !l.policy.denied.empty()) out << "NetworkPolicy verdicts (packets):\n";
    for (auto& [by, n] : l.policy.allowed) out << fmt::format("  allowed {:>8}  {}\n", n, by);
    for (auto& [by, n] : l.policy.denied) out << fmt::format("  denied  {:>8}  {}\n", n, by);
    if (!o.out_dir.empty()) out << fmt::format("wrote {} post-NAT packets to {}/{}.pcap\n", t.written, o.out_dir, l.name);
  }
  if (r.lanes.size() < 2) return;
  out << "\n== backend shares per Service (DNATed packets) ==\n";
  shares_text(r.lanes, out);
  if (!notes.new_flows_across.empty() || !notes.invalid_across.empty()) out << "\n== why the counts differ ==\n";
  for (const std::string* note : {&notes.new_flows_across, &notes.invalid_across})
    if (!note->empty()) out << *note << "\n";
  const std::string& first = r.lanes[0].name;
  out << "\n== agreement ==\n";
  for (size_t i = 1; i < r.lanes.size(); ++i) {
    const sim::Agreement& a = r.lanes[i].agreement;
    out << agreement_line(first, r.lanes[i].name, r.flows.size(), a) << "\n";
  }
  for (auto& ex_d : r.examples) {
    auto& f = r.flows.at(ex_d.t);
    out << fmt::format("  {} differs in {}:\n", ex_d.t.str(), ex_d.what);
    out << fmt::format("    {:<9} {}\n", first, describe(f[0]));
    out << fmt::format("    {:<9} {}\n", r.lanes[ex_d.lane].name, describe(f[ex_d.lane]));
    TextStyle style;
    for (size_t side : {size_t(0), ex_d.lane}) {
      out << fmt::format("\n  -- {} --\n", r.lanes[side].name);
      std::string txt =
          render_text(1, ex_d.spec, ex_d.spec.pkt, ex_d.spec.in, {side == 0 ? ex_d.first : ex_d.other}, false, style);
      std::istringstream lines(txt);
      for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
    }
    out << "\n";
  }
}

}  // namespace

int run_replay(const ReplayOptions& o_in, std::ostream& out) {
  ReplayOptions o = o_in;
  std::optional<sim::Snapshot> snap;
  if (!o.snapshot.empty()) snap = open_snapshot(o.snapshot, &o.rules, &o.rules6, &o.ipsets, &o.ipvs, &o.nft, &o.node);
  if (o.pcap.empty()) throw LoadError({{"replay", 0, 0, "give --pcap FILE (pcap or pcapng)"}});
  if (o.rules.empty() && o.rules6.empty() && o.ipvs.empty() && o.nft.empty() && !o.cluster.given())
    throw LoadError({{"replay", 0, 0, "give --rules FILE (an iptables-save dump) or --cluster FILE... --node NAME"}});
  auto lanes = build_lanes({o.rules, o.rules6, o.ipsets, o.ipvs, o.nft, o.cluster, o.node, o.seed});
  if (snap) {
    // The snapshot's timeouts count from the capture's first packet.
    uint64_t t0 = 0;
    pcap::Reader first(o.pcap);
    if (pcap::Frame f; first.next(f)) t0 = f.ts_ns;
    seed_lanes(*snap, lanes, t0);
  }
  Progress progress(o.progress);
  sim::ReplayConfig cfg{.in_default = o.in_default,
                        .seed = o.seed,
                        .answer = o.answer,
                        .examples = o.examples,
                        .threads = o.threads,
                        .out_dir = o.out_dir};
  if (o.progress) cfg.progress = [&](uint64_t frames, double frac) { progress.tick(frames, frac); };
  sim::Replay replay(lanes, std::move(cfg));
  sim::ReplayResult r = replay.run(o.pcap);

  const std::string& file_error = r.capture.file_error;
  if (!file_error.empty()) fmt::print(stderr, "svcpath: warning: {} (replayed the frames before it)\n", file_error);
  // Wall-clock rates go to stderr: the report on stdout stays byte-identical for a seed.
  if (o.timing)
    for (const sim::LaneResult& l : r.lanes)
      fmt::print(stderr, "svcpath: mode {}: {} packets in {:.3f} s, {:.0f} packets/s\n", l.name, l.tally.packets, l.seconds,
                 l.seconds > 0 ? double(l.tally.packets) / l.seconds : 0.0);
  progress.done(r.capture.frames);

  int status = file_error.empty() ? 0 : kExitDamagedCapture;
  nlohmann::json j = replay_json(r, o);
  if (!o.report.empty()) {
    ReportInput ri;
    ri.title = fmt::format("svcpath replay: {}", o.pcap);
    ri.replay = j;
    write_report_file(o.report, ri);
    if (o.timing) fmt::print(stderr, "svcpath: wrote the report to {}\n", o.report);
  }
  if (o.format == "json") {
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // rule comments are bytes
    return status;
  }
  replay_text(r, o, out);
  return status;
}

}  // namespace svcpath::cli
