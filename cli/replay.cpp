// svcpath replay: a capture streamed through each datapath. Memory stays flat in the capture's
// size: one frame is held at a time; only conntrack and the tallies grow.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/lanes.hpp"
#include "core/diag.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"

namespace svcpath::cli {

namespace {

struct Tally {
  uint64_t packets = 0, new_flows = 0, dnat = 0, snat = 0;
  std::map<std::string, uint64_t> outcomes;  // "forwarded", "dropped: chain policy", ...
  std::map<std::string, std::map<std::string, uint64_t>> dnat_to;  // service endpoint -> backend -> packets
  Counters cost_new, cost_est;
  uint64_t written = 0;
};

std::string outcome_key(const nf::Outcome& oc) {
  std::string k(nf::outcome_name(oc.kind));
  if (oc.reason != DropReason::None) k += fmt::format(" ({})", drop_reason_name(oc.reason));
  return k;
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
  if (o.rules.empty() && o.rules6.empty() && !o.cluster.given())
    throw LoadError({{"replay", 0, 0, "give --rules FILE (an iptables-save dump) or --cluster FILE... --node NAME"}});
  auto lanes = build_lanes({o.rules, o.rules6, o.ipsets, o.cluster, o.node, o.seed});
  pcap::Reader reader(o.pcap);

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
  NullSink quiet;
  pcap::Frame f;
  pcap::Decoded d;
  auto t0 = std::chrono::steady_clock::now();
  const nf::Node& node0 = lanes[0]->node;
  while (reader.next(f)) {
    ++frames;
    if (o.progress && frames % 65536 == 0) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fmt::print(stderr, "\r{} packets, {:.0f} packets/s", frames, s > 0 ? double(frames) / s : 0.0);
    }
    pcap::DecodeError e = pcap::decode(reader.linktype(), f.data, f.caplen, d);
    if (e != pcap::DecodeError::None) {
      ++decode_errors[size_t(e)];
      continue;
    }
    if (d.pkt.fragment) {  // the kernel reassembles before conntrack; a later fragment alone has no flow
      ++fragments;
      continue;
    }
    Packet p = d.pkt;
    p.ts_ns = f.ts_ns;
    p.pkt_type = d.pkt.pkt_type == PktType::Outgoing ? PktType::Host : d.pkt.pkt_type;
    // Where the packet enters: sent by this host, or received on the interface its source routes through.
    bool local = d.pkt.pkt_type == PktType::Outgoing || node0.is_local(p.t.src);
    for (size_t i = 0; i < lanes.size(); ++i) {
      Lane& l = *lanes[i];
      nf::Injection inj{local, kNoIf};
      if (!local) {
        if (o.in_default != "auto") {
          inj.iif = l.node.find(o.in_default);
        } else {
          auto r = l.node.lookup(p.t.src);
          inj.iif = r.type == nf::RouteType::Unicast && r.oif >= 0 ? r.oif : l.node.find("eth0");
        }
      }
      Counters before = l.dp->counters();
      nf::Outcome oc = l.dp->process(p, inj, quiet);
      Counters cost = l.dp->counters() - before;
      Tally& t = tally[i];
      ++t.packets;
      bool is_new = cost.ct_created > 0;
      t.new_flows += is_new;
      (is_new ? t.cost_new : t.cost_est) += cost;
      ++t.outcomes[outcome_key(oc)];
      if (oc.dnat) {
        ++t.dnat;
        ++t.dnat_to[FiveTuple::endpoint(oc.before.dst, oc.before.dport, oc.before.proto)]
                   [FiveTuple::endpoint(oc.after.t.dst, oc.after.t.dport, oc.after.t.proto)];
      }
      t.snat += oc.snat;
      bool left = oc.kind == nf::OutcomeKind::Forwarded || oc.kind == nf::OutcomeKind::Delivered ||
                  oc.kind == nf::OutcomeKind::Bridged;
      if (writers[i] && left) {
        writers[i]->write(f.ts_ns, pcap::rewrite(f.data, f.caplen, d, oc.after), f.wirelen > d.l3 ? f.wirelen - d.l3 : 0);
        ++t.written;
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.progress) fmt::print(stderr, "\r{} packets in {:.2f} s ({:.0f} packets/s per mode)\n", frames, secs,
                             secs > 0 ? double(frames) / secs : 0.0);
  for (auto& w : writers)
    if (w) w->close();

  uint64_t skipped = fragments;
  for (auto n : decode_errors) skipped += n;
  if (o.format == "json") {
    nlohmann::json j;
    j["capture"] = {{"file", o.pcap}, {"linktype", reader.linktype()}, {"frames", frames}};
    nlohmann::json sk = nlohmann::json::object();
    for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
      if (decode_errors[k]) sk[std::string(pcap::decode_error_name(pcap::DecodeError(k)))] = decode_errors[k];
    if (fragments) sk["later fragment"] = fragments;
    j["skipped"] = std::move(sk);
    nlohmann::json modes = nlohmann::json::object();
    for (size_t i = 0; i < lanes.size(); ++i) {
      const Tally& t = tally[i];
      nlohmann::json m;
      m["packets"] = t.packets;
      m["new_flows"] = t.new_flows;
      m["outcomes"] = t.outcomes;
      m["dnat"] = t.dnat;
      m["snat"] = t.snat;
      m["dnat_to"] = t.dnat_to;
      m["cost_per_new_packet"] = counters_json(t.cost_new, t.new_flows);
      m["cost_per_established_packet"] = counters_json(t.cost_est, t.packets - t.new_flows);
      if (writers[i]) m["written"] = t.written;
      modes[lanes[i]->name] = std::move(m);
    }
    j["modes"] = std::move(modes);
    out << j.dump(2) << "\n";
    return 0;
  }
  out << fmt::format("capture {}: {} frames (link type {}), {} replayed, {} skipped\n", o.pcap, frames,
                     reader.linktype(), frames - skipped, skipped);
  for (size_t k = 1; k < size_t(pcap::DecodeError::Count_); ++k)
    if (decode_errors[k]) out << fmt::format("  skipped {:>8}  {}\n", decode_errors[k], pcap::decode_error_name(pcap::DecodeError(k)));
  if (fragments) out << fmt::format("  skipped {:>8}  later fragment (no L4 header; reassembly not modelled)\n", fragments);
  for (size_t i = 0; i < lanes.size(); ++i) {
    const Tally& t = tally[i];
    out << fmt::format("\n== mode {} ==\n", lanes[i]->name);
    out << fmt::format("packets {}  new flows {}  DNAT {}  SNAT/masquerade {}\n", t.packets, t.new_flows, t.dnat, t.snat);
    for (auto& [k, n] : t.outcomes) out << fmt::format("  {:<40} {:>8}\n", k, n);
    if (!t.dnat_to.empty()) out << "DNAT destinations (packets):\n";
    for (auto& [svc, backends] : t.dnat_to) {
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
    if (writers[i]) out << fmt::format("wrote {} post-NAT packets to {}/{}.pcap\n", t.written, o.out_dir, lanes[i]->name);
  }
  return 0;
}

}  // namespace svcpath::cli
