// svcpath demo: the tour behind the README's first command. On the bundled example cluster it
// compares kube-proxy's three modes (iptables, IPVS, nftables), traces three telling packets through
// each, replays the bundled capture, runs a small scaling sweep (seconds), and writes one HTML report.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "kube/sim/lanes.hpp"
#include "cli/picture.hpp"
#include "cli/report.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "kube/netpol/netpol.hpp"

namespace svcpath::cli {

namespace {

namespace fs = std::filesystem;

// The examples directory: as given, else next to the checkout the binary was built in
// (build/<preset>/svcpath -> examples/).
fs::path find_examples(const std::string& given) {
  if (!given.empty()) return given;
  if (fs::exists("examples/networkpolicy/cluster.yaml")) return "examples";
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
      if (fs::exists(p / "examples/networkpolicy/cluster.yaml")) return p / "examples";
  throw LoadError({{"--examples", 0, 0, "cannot find the examples directory; run from the checkout or pass --examples DIR"}});
}

size_t rule_count(const nf::Ruleset* rs) {
  size_t n = 0;
  if (rs)
    for (auto& t : rs->tables)
      for (auto& c : t.chains) n += c.rules.size();
  return n;
}

struct Telling {
  const char* what;
  const char* spec;
};

// Three packets that tell the modes apart: a policy-allowed and a policy-denied connection to a
// protected pod's ClusterIP, and an outside client on a NodePort.
constexpr Telling kPackets[] = {
    {"web-1 -> db ClusterIP (NetworkPolicy allows it)", "tcp 10.244.1.10:40000 -> 10.96.0.54:5432 in=cni0"},
    {"debug-1 -> db ClusterIP (NetworkPolicy denies it)", "tcp 10.244.1.30:40001 -> 10.96.0.54:5432 in=cni0"},
    {"an outside client -> the web NodePort", "tcp 203.0.113.7:40002 -> 10.0.0.10:30080 in=eth0"},
};

std::string one_line(const nf::Outcome& o) {
  std::string s = fmt::format("{}", nf::outcome_name(o.kind));
  if (o.kind == nf::OutcomeKind::Forwarded) s += " out " + o.out;
  s += " " + o.after.t.str();
  if (o.dnat) s += " dnat";
  if (o.snat) s += " snat";
  if (!o.where.empty() && o.reason != DropReason::None) s += " at " + o.where;
  return s;
}

}  // namespace

int run_demo(const DemoOptions& o, std::ostream& out) {
  auto t0 = std::chrono::steady_clock::now();
  fs::path ex = find_examples(o.examples);
  fs::path dir = o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw LoadError({{o.out_dir, 0, 0, fmt::format("cannot create directory: {}", ec.message())}});

  ClusterOptions copt;
  copt.files = {(ex / "networkpolicy/cluster.yaml").string()};
  copt.node = "node-a";
  copt.mode = "iptables,ipvs,nftables";
  ClusterInput ci = load_cluster(copt);
  auto lanes = cluster_lanes(ci, {"iptables", "ipvs", "nftables"}, NodeOptions{}, o.seed);

  // 1. What the cluster is and what each mode made of it.
  size_t endpoints = 0;
  for (auto& s : ci.cluster.slices) endpoints += s.endpoints.size();
  out << fmt::format("svcpath demo: {} ({} Services, {} endpoints, {} NetworkPolicies), node {}\n\n",
                     (ex / "networkpolicy/cluster.yaml").string(), ci.cluster.services.size(), endpoints,
                     ci.cluster.policies.size(), ci.node.name);
  out << fmt::format("{:<34} {:>12} {:>12} {:>12}\n", "", "iptables", "ipvs", "nftables");
  auto row = [&](const std::string& what, auto f) {
    out << fmt::format("{:<34} {:>12} {:>12} {:>12}\n", what, f(*lanes[0]), f(*lanes[1]), f(*lanes[2]));
  };
  row("iptables rules (IPv4)", [](const Lane& l) { return rule_count(l.v4 ? &*l.v4 : nullptr); });
  row("ipset entries", [](const Lane& l) {
    size_t n = 0;
    if (l.sets)
      for (auto& s : l.sets->all()) n += s.entries.size();
    return n;
  });
  row("IPVS virtual services", [](const Lane& l) { return l.engine ? l.engine->services.all().size() : size_t(0); });
  row("nftables rules", [](const Lane& l) { return l.nft ? size_t(l.nft->rule_count) : size_t(0); });
  row("nftables map elements", [](const Lane& l) {
    size_t n = 0;
    if (l.nft)
      for (auto& t : l.nft->tables)
        for (auto& s : t->sets)
          if (!s.anonymous) n += s.elems.size();
    return n;
  });

  // 2. Three telling packets, every mode.
  std::vector<Picture> pictures;
  out << "\nThree telling packets (the full paths are drawn in the report):\n";
  for (auto& t : kPackets) {
    std::string why;
    auto ps = parse_packet_spec(t.spec, &why);
    if (!ps) throw LoadError({{"demo", 0, 0, why}});
    Picture pic{fmt::format("{}: {}", t.what, t.spec), {}};
    out << fmt::format("\n  {}\n    {}\n", t.what, t.spec);
    // Fair: every mode that can takes the same backend (sim::CommonChoice), as trace does.
    std::vector<nf::Injection> inj;
    for (auto& l : lanes) inj.push_back({false, l->node.find(ps->in)});
    sim::CommonChoice common(lanes, ps->pkt, inj);
    for (size_t i = 0; i < lanes.size(); ++i) {
      Lane* l = lanes[i].get();
      Counters before = l->dp->counters();
      nf::Outcome oc = common.run(i);
      Counters cost = l->dp->counters() - before;
      out << fmt::format("    {:<9} {} ({} rules evaluated)\n", l->name, one_line(oc), cost.rules_evaluated);
      if (auto line = nf::netpol::story_line(nf::netpol::story(oc.trace, oc.before)); !line.empty())
        out << fmt::format("    {:<9}   policy {}\n", "", line);
      pic.panels.push_back({l->name, l->engine != nullptr, {std::move(oc)}, 0, ps->in, nft_rows(l->nft ? &*l->nft : nullptr)});
    }
    if (std::string line = common.summary(); !line.empty()) out << "    " << line << "\n";
    pictures.push_back(std::move(pic));
  }
  std::ofstream(dir / "traces.svg") << render_svg(pictures);

  // 3. The bundled capture through every mode.
  ReplayOptions ro;
  ro.cluster = copt;
  ro.pcap = (ex / "pcaps/demo-node-a.pcap").string();
  ro.answer = true;
  ro.format = "json";
  ro.seed = o.seed;
  ro.threads = 2;
  std::ostringstream rj;
  run_replay(ro, rj);
  nlohmann::json replay = nlohmann::json::parse(rj.str());
  std::ofstream(dir / "replay.json") << replay.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out << fmt::format("\nReplayed {} ({} frames) through each mode, answering each packet:\n", ro.pcap,
                     replay["capture"]["frames"].get<uint64_t>());
  for (auto& [mode, m] : replay["modes"].items()) {
    uint64_t dropped = 0;
    for (auto& [k, v] : m["outcomes"].items())
      if (k.find("dropped") != std::string::npos) dropped += v.get<uint64_t>();
    out << fmt::format("  {:<9} {} packets, {} new flows, {} DNATed, {} dropped, {:.1f} rules per new packet\n", mode,
                       m["packets"].get<uint64_t>(), m["new_flows"].get<uint64_t>(), m["dnat"].get<uint64_t>(), dropped,
                       m["cost_per_new_packet"].value("rules_evaluated", 0.0));
  }
  if (replay.contains("agreement"))
    for (auto& [mode, a] : replay["agreement"].items())
      if (mode != "examples")
        out << fmt::format("  agreement {} vs {}: {} connections, {} equivalent, {} different\n", mode,
                           a["against"].get<std::string>(), a["connections"].get<uint64_t>(), a["equivalent"].get<uint64_t>(),
                           a["different"].get<uint64_t>());

  // 4. Before leaving IPVS (deprecated since 1.35): what changes for which flows in nftables mode.
  DiffOptions dop;
  dop.cluster = copt;
  dop.cluster.mode = "ipvs";
  dop.to_mode = "nftables";
  dop.seed = o.seed;
  DiffRun migration = compute_diff(dop);
  const sim::DiffResult& mr = migration.result;
  out << fmt::format("\nMigrating from IPVS to nftables ({} flows through both; `svcpath diff`): {} change\n", mr.flows,
                     mr.changed());
  for (const auto& c : mr.classes) {
    out << fmt::format("  {} ({} flow{})\n", c.sentence, c.flows.size(), c.flows.size() == 1 ? "" : "s");
    if (!c.setting.empty()) out << fmt::format("    keeps IPVS's behaviour: {}\n", c.setting);
  }

  // 5. A small scaling sweep: the first packet of a connection to the last Service.
  nlohmann::json sweep = {{"sweep", nlohmann::json::array()}};
  out << "\nScaling (first packet to the last Service; svcpath's own time, one run):\n";
  out << fmt::format("  {:>8} {:>10} {:>14} {:>10} {:>14} {:>10} {:>14}\n", "services", "iptables", "rules/packet", "ipvs",
                     "rules/packet", "nftables", "rules/packet");
  for (uint32_t n : o.sweep) {
    k8s::SynthSpec spec;
    spec.services = n;
    spec.endpoints = 3;
    spec.nodes = 3;
    ClusterInput sci;
    sci.cluster = k8s::synthetic_cluster(spec);
    sci.node = sci.cluster.nodes[0];
    auto sl = cluster_lanes(sci, {"iptables", "ipvs", "nftables"}, NodeOptions{}, o.seed);
    Addr vip = k8s::synthetic_cluster_ip(k8s::synthetic_service_at(n, n - 1));
    std::string line = fmt::format("  {:>8}", n);
    for (auto& l : sl) {
      constexpr int kPackets = 2000;
      Packet p;
      p.t = {Addr::v4(0x0a400005u), vip, 0, 80, proto::TCP};
      p.tcp_flags = tcpflag::SYN;
      p.len = 60;
      int16_t iif = l->node.find("cni0");
      Counters before = l->dp->counters();
      NullSink quiet;
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kPackets; ++i) {
        p.t.sport = uint16_t(10000 + i);
        (void)l->dp->process(p, {false, iif}, quiet);
      }
      double ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count()) /
                  kPackets;
      double rules = double((l->dp->counters() - before).rules_evaluated) / kPackets;
      sweep["sweep"].push_back({{"services", n}, {"mode", l->name}, {"ns_per_packet", ns}, {"rules_per_packet", rules}});
      line += fmt::format(" {:>8.0f}ns {:>14.1f}", ns, rules);
    }
    out << line << "\n";
  }
  std::ofstream(dir / "sweep.json") << sweep.dump(2) << "\n";

  // 6. The report.
  ReportInput ri;
  ri.title = "svcpath demo: kube-proxy's iptables, IPVS and nftables modes, side by side";
  ri.intro = fmt::format(
      "<p>Cluster <code>{}</code>, node <code>{}</code>. Three telling packets through each mode, the bundled capture "
      "replayed, what changes when leaving IPVS for nftables, and a small scaling sweep. Regenerate with <code>svcpath "
      "demo</code>.</p>",
      xml_escape((ex / "networkpolicy/cluster.yaml").string()), xml_escape(ci.node.name));
  ri.pictures = std::move(pictures);
  ri.replay = std::move(replay);
  ri.sweep = std::move(sweep);
  ri.diff = diff_json(mr);
  ri.diff_title = "Migrating from IPVS to nftables";
  ri.diff_pictures = diff_pictures(migration);
  fs::path report = dir / "report.html";
  write_report_file(report.string(), ri);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out << fmt::format("\nWrote {} (open it in a browser) in {:.1f} s.\n", fs::absolute(report).string(), secs);
  return 0;
}

}  // namespace svcpath::cli
