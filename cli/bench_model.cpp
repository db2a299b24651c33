// svcpath bench-model: the kernel cost model. Each datapath counts kernel-equivalent operations
// (rules whose matches were tested, match modules called, jumps, set lookups); the model turns the
// counts for a NEW connection into a predicted kernel time per packet:
//     ns = base + per_rule * rules_evaluated + per_match * matches_evaluated
// with its constants fitted (least squares) to a real-kernel measurement made on this machine by
// bench/kernel/measure.py, separately per back end (iptables-legacy, iptables-nft). Points used to
// fit are marked; the others are predictions checked against the kernel.
#include <array>
#include <cmath>
#include <fstream>
#include <optional>
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "core/diag.hpp"

namespace svcpath::cli {

namespace {

struct Point {
  std::string backend;
  uint32_t services = 0;
  double measured = 0;  // ns over the no-rules baseline
  Counters cost;
  bool fit = false;
};

// The first packet of a connection from node-0 to the last Service of KUBE-SERVICES, as
// bench/kernel/measure.py sends it.
Counters svcpath_cost(uint32_t services) {
  k8s::SynthSpec spec;
  spec.services = services;
  spec.endpoints = 10;
  spec.nodes = 3;
  ClusterInput ci;
  ci.cluster = k8s::synthetic_cluster(spec);
  ci.node = ci.cluster.nodes[0];
  auto lanes = cluster_lanes(ci, {"iptables"}, NodeOptions{}, 1, "off");
  Packet p;
  p.t = {Addr::v4(0x0a00000au), k8s::synthetic_cluster_ip(k8s::synthetic_service_at(services, services - 1)), 3000, 80,
         proto::TCP};
  p.tcp_flags = tcpflag::SYN;
  p.len = 40;
  NullSink quiet;
  Counters before = lanes[0]->dp->counters();
  (void)lanes[0]->dp->process(p, {true, kNoIf}, quiet);
  return lanes[0]->dp->counters() - before;
}

// Least squares for y = a + b*x1 + c*x2 (normal equations, 3x3, Cramer's rule); falls back to
// y = a + b*x1 when x2 adds nothing.
std::array<double, 3> fit(const std::vector<const Point*>& pts) {
  auto solve = [&](bool use_c) -> std::optional<std::array<double, 3>> {
    int n = use_c ? 3 : 2;
    double m[3][4] = {};
    for (auto* p : pts) {
      double x[3] = {1.0, double(p->cost.rules_evaluated), double(p->cost.matches_evaluated)};
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) m[i][j] += x[i] * x[j];
        m[i][3] += x[i] * p->measured;
      }
    }
    // Gaussian elimination.
    for (int c = 0; c < n; ++c) {
      int piv = c;
      for (int r = c + 1; r < n; ++r)
        if (std::fabs(m[r][c]) > std::fabs(m[piv][c])) piv = r;
      if (std::fabs(m[piv][c]) < 1e-9) return std::nullopt;
      for (int k = 0; k < 4; ++k) std::swap(m[c][k], m[piv][k]);
      for (int r = 0; r < n; ++r) {
        if (r == c) continue;
        double f = m[r][c] / m[c][c];
        for (int k = c; k < 4; ++k) m[r][k] -= f * m[c][k];
      }
    }
    std::array<double, 3> out{m[0][3] / m[0][0], m[1][3] / m[1][1], use_c ? m[2][3] / m[2][2] : 0.0};
    return out;
  };
  // A per-match constant only when the points' match counts differ enough to tell it from the
  // base; otherwise three points fit three constants exactly and the model learns noise.
  uint64_t lo = UINT64_MAX, hi = 0;
  for (auto* p : pts) {
    lo = std::min(lo, p->cost.matches_evaluated);
    hi = std::max(hi, p->cost.matches_evaluated);
  }
  if (pts.size() >= 4 && hi >= 2 * lo)
    if (auto r = solve(true); r && (*r)[1] >= 0 && (*r)[2] >= 0) return *r;
  if (auto r = solve(false)) return *r;
  return {0, 0, 0};
}

}  // namespace

int run_bench_model(const BenchModelOptions& o, std::ostream& out) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_input_file(o.measured));
  } catch (const nlohmann::json::parse_error& e) {
    throw LoadError({{o.measured, 0, 0, fmt::format("not JSON: {}", e.what())}});
  }
  if (!j.contains("points") || !j["points"].is_array() || j["points"].empty())
    throw LoadError({{o.measured, 0, 0, "no measured points (write it with bench/kernel/measure.py)"}});
  std::set<uint32_t> calibrate(o.calibrate.begin(), o.calibrate.end());
  std::map<uint32_t, Counters> cost;
  std::vector<Point> pts;
  for (auto& p : j["points"]) {
    Point x;
    x.backend = p.value("backend", "?");
    x.services = p.value("services", 0u);
    x.measured = p.value("cost_ns", 0.0);
    if (x.services == 0) continue;
    if (!cost.count(x.services)) cost[x.services] = svcpath_cost(x.services);
    x.cost = cost[x.services];
    x.fit = calibrate.count(x.services) > 0;
    pts.push_back(x);
  }
  std::map<std::string, std::vector<Point*>> by_backend;
  for (auto& p : pts) by_backend[p.backend].push_back(&p);
  out << fmt::format(
      "kernel cost model: ns per NEW packet over the no-rules baseline = base + per_rule * rules + per_match * matches\n"
      "fitted per back end on the services marked 'fit' ({}); the rest are predictions.\n",
      fmt::join(o.calibrate, ", "));
  nlohmann::json outj = nlohmann::json::array();
  for (auto& [backend, list] : by_backend) {
    std::vector<const Point*> fitset;
    for (auto* p : list)
      if (p->fit) fitset.push_back(p);
    if (fitset.size() < 2)
      throw LoadError({{o.measured, 0, 0, fmt::format("{}: fewer than two measured points to fit on (--calibrate)", backend)}});
    auto k = fit(fitset);
    out << fmt::format("\n{}: base {:.0f} ns, {:.2f} ns per rule evaluated, {:.2f} ns per match module\n", backend, k[0], k[1],
                       k[2]);
    out << fmt::format("  {:>8} {:>10} {:>10} {:>13} {:>13} {:>8}  {}\n", "services", "rules", "matches", "measured ns",
                       "predicted ns", "error", "");
    for (auto* p : list) {
      double pred = k[0] + k[1] * double(p->cost.rules_evaluated) + k[2] * double(p->cost.matches_evaluated);
      double err = p->measured != 0 ? 100.0 * (pred - p->measured) / p->measured : 0;
      out << fmt::format("  {:>8} {:>10} {:>10} {:>13.0f} {:>13.0f} {:>+7.1f}%  {}\n", p->services, p->cost.rules_evaluated,
                         p->cost.matches_evaluated, p->measured, pred, err, p->fit ? "fit" : "check");
      outj.push_back({{"backend", backend},
                      {"services", p->services},
                      {"rules", p->cost.rules_evaluated},
                      {"matches", p->cost.matches_evaluated},
                      {"measured_ns", p->measured},
                      {"predicted_ns", pred},
                      {"error_pct", err},
                      {"fit", p->fit}});
    }
  }
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    f << outj.dump(1) << "\n";
  }
  return 0;
}

}  // namespace svcpath::cli
