// svcpath diff, the front end: two sides built from the flags (side B is side A with the --to-*
// flags applied), the flows derived from the cluster (and any --packet), kube/sim/diff's classes
// rendered as text, JSON or pictures.
#include <filesystem>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/picture.hpp"
#include "cli/render.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "kube/sim/diff.hpp"
#include "kube/sim/lanes.hpp"

namespace svcpath::cli {

namespace {

struct Side {
  std::string rules, rules6, ipsets, ipvs, nft;
  sim::ClusterOptions cluster;
  std::vector<std::unique_ptr<sim::Lane>> lanes;
  std::shared_ptr<const sim::ClusterInput> ci;
  std::string label, mode;
};

bool has_dumps(const Side& s) { return !s.rules.empty() || !s.rules6.empty() || !s.ipvs.empty() || !s.nft.empty(); }

std::string base(const std::string& p) { return std::filesystem::path(p).filename().string(); }

// The same objects, node and configuration: only the mode may differ, so one load serves both.
bool same_input(const sim::ClusterOptions& x, const sim::ClusterOptions& y) {
  return x.files == y.files && x.node == y.node && x.proxy_config == y.proxy_config &&
         x.kube_proxy_version == y.kube_proxy_version;
}

// other: a side already built, whose loaded cluster this one reuses when its input is the same.
void build(Side& s, const sim::NodeOptions& node, uint64_t seed, const char* which, const Side* other = nullptr) {
  if (s.cluster.given()) {
    auto modes = s.cluster.modes();
    if (modes.size() != 1)
      throw LoadError({{which, 0, 0, fmt::format("one mode per side ('{}' names {})", s.cluster.mode, modes.size())}});
    // Dumps given with a cluster replace what kube-proxy would generate: not a combination.
    if (has_dumps(s))
      throw LoadError(
          {{which, 0, 0, "give a cluster (--cluster/--to-cluster) or dumps (--rules, --nft, ...) for a side, not both"}});
    s.mode = modes[0];
    s.ci = other && other->ci && same_input(other->cluster, s.cluster)
               ? other->ci
               : std::make_shared<const sim::ClusterInput>(sim::load_cluster(s.cluster));
    s.lanes = sim::cluster_lanes(*s.ci, modes, node, seed, s.cluster.policy);
    return;
  }
  if (!has_dumps(s))
    throw LoadError({{which, 0, 0, "nothing to build: give --cluster FILE... --node NAME --mode M, or --rules/--nft dumps"}});
  s.lanes = sim::build_lanes({s.rules, s.rules6, s.ipsets, s.ipvs, s.nft, s.cluster, node, seed});
}

std::string flow_text(const sim::Flow& f) {
  std::string t = f.pkt.t.str();
  if (f.pkt.t.proto == proto::TCP) t += fmt::format(" [{}]", tcp_flags_letters(f.pkt.tcp_flags));
  t += f.local ? " (local process)" : fmt::format(" (in {})", f.in);
  return t;
}

nlohmann::json behaviour_json(const sim::Behaviour& b) {
  return {{"verdict", b.verdict}, {"backends", b.backends}, {"masqueraded", b.masq}};
}

}  // namespace

struct DiffRun::Sides {
  Side a, b;
};

DiffRun::DiffRun() = default;
DiffRun::~DiffRun() = default;
DiffRun::DiffRun(DiffRun&&) noexcept = default;

DiffRun compute_diff(const DiffOptions& o) {
  DiffRun run;
  run.sides = std::make_unique<DiffRun::Sides>();
  Side& a = run.sides->a;
  Side& b = run.sides->b;
  a.rules = o.rules, a.rules6 = o.rules6, a.ipsets = o.ipsets, a.ipvs = o.ipvs, a.nft = o.nft, a.cluster = o.cluster;
  b.rules = a.rules, b.rules6 = a.rules6, b.ipsets = a.ipsets, b.ipvs = a.ipvs, b.nft = a.nft, b.cluster = a.cluster;
  bool to_dumps = !o.to_rules.empty() || !o.to_rules6.empty() || !o.to_ipvs.empty() || !o.to_nft.empty();
  if (to_dumps) {
    b.rules = o.to_rules, b.rules6 = o.to_rules6, b.ipvs = o.to_ipvs, b.nft = o.to_nft;
    b.ipsets = o.to_ipsets.empty() ? o.ipsets : o.to_ipsets;
    if (o.to_cluster.empty()) b.cluster.files.clear();
  } else if (!o.to_ipsets.empty()) {
    b.ipsets = o.to_ipsets;
  }
  if (!o.to_cluster.empty()) {
    b.cluster.files = o.to_cluster;
    if (!to_dumps) b.rules = b.rules6 = b.ipvs = b.nft = "";
  }
  if (!o.to_mode.empty()) b.cluster.mode = o.to_mode;
  if (!o.to_proxy_config.empty()) b.cluster.proxy_config = o.to_proxy_config;
  if (!o.to_kube_proxy_version.empty()) b.cluster.kube_proxy_version = o.to_kube_proxy_version;
  if (!o.to_mode.empty() && !b.cluster.given())
    throw LoadError({{"--to-mode", 0, 0, "a mode is a cluster's: give --cluster FILE... --node NAME (or --to-cluster)"}});
  if (!o.to_kube_proxy_version.empty() && !b.cluster.given())
    throw LoadError({{"--to-kube-proxy-version", 0, 0, "a release is kube-proxy's: give --cluster FILE... --node NAME"}});
  if (o.to_mode.empty() && o.to_cluster.empty() && o.to_proxy_config.empty() && o.to_kube_proxy_version.empty() && !to_dumps &&
      o.to_ipsets.empty())
    throw LoadError({{"diff", 0, 0,
                      "side B is side A: change something with --to-mode, --to-cluster, --to-proxy-config, --to-rules, "
                      "--to-nft, --to-ipvs or --to-ipsets"}});
  build(a, o.node, o.seed, "side A");
  build(b, o.node, o.seed, "side B", &a);

  // Labels name what differs: the mode, else the files.
  auto release = [](const Side& s) { return s.ci ? fmt::format("{} 1.{}", s.mode, s.ci->cfg.release) : std::string(); };
  if (a.mode != b.mode) a.label = a.mode, b.label = b.mode;
  else if (a.ci && b.ci && a.ci->cfg.release != b.ci->cfg.release) a.label = release(a), b.label = release(b);
  else if (a.cluster.files != b.cluster.files && b.cluster.given()) a.label = "before", b.label = "after";
  else if (a.cluster.proxy_config != b.cluster.proxy_config)
    a.label = a.cluster.proxy_config.empty() ? "default config" : base(a.cluster.proxy_config),
    b.label = b.cluster.proxy_config.empty() ? "default config" : base(b.cluster.proxy_config);
  else {
    auto name = [](const Side& s) {
      for (const std::string* f : {&s.rules, &s.nft, &s.ipvs, &s.rules6, &s.ipsets})
        if (!f->empty()) return base(*f);
      return s.cluster.given() ? s.mode + " (generated)" : std::string("?");
    };
    a.label = name(a), b.label = name(b);
    if (a.label == b.label) a.label = "A", b.label = "B";
  }

  std::vector<sim::Flow> flows;
  const Side* with_cluster = a.ci ? &a : b.ci ? &b : nullptr;
  if (with_cluster) flows = sim::cluster_flows(with_cluster->ci->cluster, with_cluster->ci->node, with_cluster->lanes[0]->node);
  else flows = sim::dump_flows({a.lanes[0].get(), b.lanes[0].get()});
  std::vector<Diagnostic> errs;
  for (size_t i = 0; i < o.packets.size(); ++i) {
    std::string why;
    auto ps = parse_packet_spec(o.packets[i], &why);
    if (!ps) {
      errs.push_back({"--packet", 0, 0, why});
      continue;
    }
    sim::Flow f;
    f.pkt = ps->pkt;
    f.local = ps->local || (ps->in.empty() && a.lanes[0]->node.is_local(ps->pkt.t.src));
    f.reach = sim::Reach::ClusterIP;
    f.from = f.local ? sim::From::Host : sim::From::External;
    if (!f.local) {
      int16_t itf = ps->in.empty() ? sim::source_interface(a.lanes[0]->node, ps->pkt.t.src) : a.lanes[0]->node.find(ps->in);
      if (itf < 0) {
        errs.push_back({"--packet", 0, 0, fmt::format("'{}': no interface '{}' on the node", o.packets[i], ps->in)});
        continue;
      }
      f.in = a.lanes[0]->node.ifname(itf);
    }
    f.service = "--packet " + std::to_string(i + 1);
    flows.push_back(std::move(f));
  }
  if (!errs.empty()) throw LoadError(errs);
  if (flows.empty()) throw LoadError({{"diff", 0, 0, "no flows: give a cluster (its Services make the flows) or --packet SPEC"}});

  run.result = sim::diff_sides({a.lanes[0].get(), a.label, a.mode, a.ci ? a.ci->cfg.release : 0},
                               {b.lanes[0].get(), b.label, b.mode, b.ci ? b.ci->cfg.release : 0}, flows);
  return run;
}

nlohmann::json diff_json(const sim::DiffResult& r) {
  nlohmann::json j = {{"a", r.a}, {"b", r.b}, {"flows", r.flows}, {"changed", r.changed()}};
  auto& cls = j["classes"] = nlohmann::json::array();
  for (const auto& c : r.classes) {
    nlohmann::json jc = {{"key", c.key}, {"sentence", c.sentence}, {"setting", c.setting}, {"count", c.flows.size()}};
    auto& jf = jc["flows"] = nlohmann::json::array();
    for (const auto& ch : c.flows)
      jf.push_back({{"service", ch.flow.service},
                    {"reach", sim::reach_name(ch.flow.reach)},
                    {"from", sim::from_name(ch.flow.from)},
                    {"packet", flow_text(ch.flow)},
                    {"spec",
                     {{"proto", proto::name(ch.flow.pkt.t.proto)},
                      {"src", ch.flow.pkt.t.src.str()},
                      {"dst", ch.flow.pkt.t.dst.str()},
                      {"sport", ch.flow.pkt.t.sport},
                      {"dport", ch.flow.pkt.t.dport},
                      {"flags", ch.flow.pkt.t.proto == proto::TCP ? tcp_flags_letters(ch.flow.pkt.tcp_flags) : ""},
                      {"in", ch.flow.local ? nlohmann::json(nullptr) : nlohmann::json(ch.flow.in)}}},
                    {"what", ch.what},
                    {"a", behaviour_json(ch.a)},
                    {"b", behaviour_json(ch.b)}});
    cls.push_back(std::move(jc));
  }
  return j;
}

std::vector<Picture> diff_pictures(const DiffRun& run) {
  std::vector<Picture> pics;
  for (const auto& c : run.result.classes) {
    const auto& f = c.flows[0].flow;
    Picture p{fmt::format("{} — e.g. {}", c.sentence, flow_text(f)), {}};
    for (auto [side, ex] : {std::pair{&run.sides->a, &c.example_a}, std::pair{&run.sides->b, &c.example_b}}) {
      const sim::Lane& l = *side->lanes[0];
      p.panels.push_back({side->label, l.engine != nullptr, *ex, 0, f.local ? "" : f.in, nft_rows(l.nft ? &*l.nft : nullptr)});
    }
    pics.push_back(std::move(p));
  }
  return pics;
}

int run_diff(const DiffOptions& o, std::ostream& out) {
  DiffRun run = compute_diff(o);
  const sim::DiffResult& r = run.result;
  if (o.format == "json") {
    out << diff_json(r).dump(2) << "\n";
  } else if (o.format == "svg" || o.format == "html") {
    std::vector<Picture> pics = diff_pictures(run);
    if (pics.empty()) pics.push_back({fmt::format("{} and {} agree on all {} flows", r.a, r.b, r.flows), {}});
    out << (o.format == "svg" ? render_svg(pics) : render_html(pics, "svcpath diff"));
  } else {
    out << fmt::format(
               "{} -> {}: {} flows, {} change{}", r.a, r.b, r.flows, r.changed(),
               r.classes.empty() ? "" : fmt::format(", in {} class{}", r.classes.size(), r.classes.size() == 1 ? "" : "es"))
        << "\n";
    int n = 0;
    for (const auto& c : r.classes) {
      out << fmt::format("\n[{}] {} ({} flow{})\n", ++n, c.sentence, c.flows.size(), c.flows.size() == 1 ? "" : "s");
      if (!c.setting.empty()) out << "    keeps " << r.a << "'s behaviour: " << c.setting << "\n";
      size_t shown = 0;
      for (const auto& ch : c.flows) {
        if (o.limit > 0 && shown++ == size_t(o.limit)) {
          out << fmt::format("    ... and {} more (--limit 0 lists all)\n", c.flows.size() - size_t(o.limit));
          break;
        }
        out << fmt::format("    {}{} from {}: {}\n", ch.flow.service.empty() ? "" : ch.flow.service + ", ",
                           sim::reach_name(ch.flow.reach), sim::from_name(ch.flow.from), flow_text(ch.flow));
        out << fmt::format("      {:<{}} {}\n      {:<{}} {}\n", r.a + ":", std::max(r.a.size(), r.b.size()) + 1, ch.a.str(),
                           r.b + ":", std::max(r.a.size(), r.b.size()) + 1, ch.b.str());
      }
    }
  }
  return r.classes.empty() ? 0 : 1;
}

}  // namespace svcpath::cli
