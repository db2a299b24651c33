#include "cli/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"

namespace svcpath::cli {

namespace {

FiveTuple tuple_of(const std::string& text) {
  std::string why;
  auto ps = parse_packet_spec(text, &why);
  return ps ? ps->pkt.t : FiveTuple{};
}

// "10.0.0.1:80" / "[fd00::1]:80" / "10.0.0.1" with a protocol -> a tuple via the packet grammar.
FiveTuple tuple_of(const std::string& proto, const std::string& src, const std::string& dst) {
  return tuple_of(fmt::format("{} {} -> {}", proto, src, dst));
}

}  // namespace

nf::Outcome outcome_from_json(const nlohmann::json& j, std::deque<std::string>& store) {
  nf::Outcome o;
  std::string verdict = j.value("verdict", "");
  for (int k = 0; k <= int(nf::OutcomeKind::Stolen); ++k)
    if (nf::outcome_name(nf::OutcomeKind(k)) == verdict) o.kind = nf::OutcomeKind(k);
  o.probability = j.value("probability", 1.0);
  o.out = j.value("out", "");
  o.dnat = j.value("dnat", false);
  o.snat = j.value("snat", false);
  o.where = j.value("where", "");
  for (auto& e : j.value("trace", nlohmann::json::array())) {
    TraceEvent t;
    std::string hook = e.value("hook", "");
    for (int h = 0; h < kNumHooks; ++h)
      if (hook_name(Hook(h)) == hook) t.hook = Hook(h);
    std::string kind = e.value("kind", "");
    for (int k = 0; k <= int(TraceKind::Note); ++k)
      if (trace_kind_name(TraceKind(k)) == kind) t.kind = TraceKind(k);
    t.table = store.emplace_back(e.value("table", ""));
    t.chain = store.emplace_back(e.value("chain", ""));
    t.rulenum = e.value("rule", 0u);
    t.target = e.value("target", "");
    t.detail = e.value("detail", "");
    if (e.contains("before")) {
      t.rewritten = true;
      t.before = tuple_of(e["before"].get<std::string>());
      t.after = tuple_of(e["after"].get<std::string>());
    }
    o.trace.push_back(std::move(t));
  }
  std::string proto = "tcp";
  if (!o.trace.empty() && o.trace.front().rewritten) proto = proto::name(o.trace.front().before.proto);
  o.after.t = tuple_of(proto, j.value("src", ""), j.value("dst", ""));
  return o;
}

std::string gnuplot_svg(const std::string& script, const std::string& data) {
  namespace fs = std::filesystem;
  if (std::getenv("SVCPATH_NO_GNUPLOT")) return "";
  std::error_code ec;
  fs::path dir = fs::temp_directory_path(ec) / fmt::format("svcpath-plot-{}", ::getpid());
  fs::create_directories(dir, ec);
  if (ec) return "";
  std::ofstream(dir / "data.txt") << data;
  std::ofstream(dir / "plot.gp") << "set terminal svg size 640,360 dynamic font 'sans-serif,11' background rgb 'white'\n"
                                 << "DATA = '" << (dir / "data.txt").string() << "'\n"
                                 << script;
  std::string cmd = fmt::format("gnuplot '{}' 2>/dev/null", (dir / "plot.gp").string());
  std::string svg;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) svg.append(buf, n);
    if (::pclose(p) != 0) svg.clear();
  }
  fs::remove_all(dir, ec);
  // Inline in HTML: drop the XML prolog and doctype gnuplot writes.
  auto at = svg.find("<svg");
  return at == std::string::npos ? "" : svg.substr(at);
}

const std::vector<std::pair<std::string, std::string>>& counter_labels() {
  static const std::vector<std::pair<std::string, std::string>> labels{
      {"packets", "Packets replayed"},
      {"new_flows", "New connections (packets that created a conntrack entry)"},
      {"dnat", "Packets DNATed to a backend"},
      {"snat", "Packets masqueraded (source NAT)"},
      {"answers", "Replies synthesized (--answer)"},
      {"invalid", "Packets conntrack found INVALID"},
      {"rules_evaluated", "Rules evaluated"},
      {"matches_evaluated", "Match modules called"},
      {"chain_jumps", "Jumps into user chains"},
      {"set_lookups", "ipset lookups"},
      {"ct_lookups", "Conntrack lookups"},
      {"ct_created", "Conntrack entries created"},
      {"nat_table_runs", "NAT table consultations"},
      {"nat_rewrites", "Packets rewritten from a NAT binding"},
      {"route_lookups", "Route lookups"},
      {"ipvs_svc_lookups", "IPVS service lookups"},
      {"ipvs_svc_buckets_walked", "IPVS service-table entries compared"},
      {"ipvs_conn_lookups", "IPVS connection lookups"},
      {"ipvs_conn_entries_walked", "IPVS connection-table entries compared"},
      {"ipvs_sched_dests_scanned", "IPVS scheduler destinations scanned"},
  };
  return labels;
}

std::string label_of(const std::string& key) {
  for (auto& [k, label] : counter_labels())
    if (k == key) return label;
  return key;
}

CountNotes explain_counts(const std::vector<ModeCounts>& modes) {
  CountNotes n;
  auto dropped = [](const ModeCounts& m) {
    uint64_t d = 0;
    for (auto& [where, k] : m.invalid_dropped_at) d += k;
    return d;
  };
  auto sites = [](const ModeCounts& m) {
    std::string at;
    for (auto& [where, k] : m.invalid_dropped_at) at += fmt::format("{}{} at {}", at.empty() ? "" : ", ", k, where);
    return at;
  };
  for (const ModeCounts& m : modes) {
    std::string nf, inv;
    if (m.midstream)
      nf = fmt::format(
          "{} of the {} new connections were picked up mid-stream: a TCP packet without SYN found no entry and opened one "
          "(nf_conntrack_tcp_loose), as when the connection's first packet was dropped or rejected",
          m.midstream, m.new_flows);
    if (m.invalid) {
      uint64_t d = dropped(m);
      std::string fate =
          d == 0 ? "no rule dropped them"
                 : fmt::format("{} dropped ({}){}", d, sites(m), d < m.invalid ? fmt::format(", {} passed", m.invalid - d) : "");
      inv = fmt::format(
          "{} packets were INVALID to conntrack (no entry they can belong to, such as a FIN/ACK of a "
          "connection that has none): {}",
          m.invalid, fate);
    }
    n.new_flows.push_back(std::move(nf));
    n.invalid.push_back(std::move(inv));
  }
  if (modes.size() < 2) return n;
  auto list = [&](auto value) {
    std::string s;
    for (const ModeCounts& m : modes) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", m.name, value(m));
    return s;
  };
  auto differ = [&](auto value) {
    return std::any_of(modes.begin(), modes.end(), [&](const ModeCounts& m) { return value(m) != value(modes[0]); });
  };
  auto opened = [](const ModeCounts& m) { return m.new_flows - m.midstream; };
  auto midstream = [](const ModeCounts& m) { return m.midstream; };
  if (differ([](const ModeCounts& m) { return m.new_flows; })) {
    if (!differ(opened))
      n.new_flows_across = fmt::format(
          "New connections differ between the modes only by those picked up mid-stream ({}): every mode saw the same {} "
          "open with their first packet. Where a mode drops or rejects a connection's first packet it keeps no entry, so the "
          "connection's next packet opens one.",
          list(midstream), opened(modes[0]));
    else
      n.new_flows_across = fmt::format("New connections opened by their first packet: {}; picked up mid-stream: {}.",
                                       list(opened), list(midstream));
  }
  if (differ(dropped))
    n.invalid_across = fmt::format(
        "INVALID packets dropped: {}. The modes' rules treat a packet without a conntrack entry differently, so the "
        "same capture loses more packets in one mode than in another.",
        list([&](const ModeCounts& m) {
          uint64_t d = dropped(m);
          return d ? fmt::format("{} of {} ({})", d, m.invalid, sites(m)) : fmt::format("none of {}", m.invalid);
        }));
  return n;
}

namespace {

std::string esc(const std::string& s) { return xml_escape(s); }

std::string num(const nlohmann::json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return fmt::format("{}", v.get<int64_t>());
  if (v.is_number_float()) return fmt::format("{:.2f}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// A row's label for a per-packet cost: "Rules evaluated per new connection".
std::string cost_label(const std::string& key, bool is_new) {
  return label_of(key) + (is_new ? " per new connection" : " per established packet");
}

std::vector<ModeCounts> mode_counts(nlohmann::json& modes, const std::vector<std::string>& names) {
  std::vector<ModeCounts> v;
  for (auto& n : names) {
    auto& m = modes[n];
    ModeCounts c{
        n, m.value("new_flows", uint64_t(0)), m.value("new_flows_midstream", uint64_t(0)), m.value("invalid", uint64_t(0)), {}};
    if (m.contains("invalid_dropped_at") && m["invalid_dropped_at"].is_object())
      for (auto& [where, k] : m["invalid_dropped_at"].items()) c.invalid_dropped_at[where] = k.get<uint64_t>();
    v.push_back(std::move(c));
  }
  return v;
}

std::string summary_table(nlohmann::json& r) {  // non-const: a missing key reads as null, never UB
  auto& modes = r["modes"];
  std::vector<std::string> names;
  for (auto& [k, v] : modes.items()) names.push_back(k);
  CountNotes notes = explain_counts(mode_counts(modes, names));
  std::string h = "<table class=\"summary\"><tr><th></th>";
  for (auto& n : names) h += "<th>" + esc(n) + "</th>";
  h += "</tr>\n";
  // A number's explanation goes right under its row, across the modes.
  auto row = [&](const std::string& label, auto get, const std::string& note = "") {
    h += "<tr><td>" + esc(label) + "</td>";
    for (auto& n : names) h += "<td class=\"n\">" + get(modes[n]) + "</td>";
    h += "</tr>\n";
    if (!note.empty()) h += fmt::format("<tr class=\"note\"><td colspan=\"{}\">{}</td></tr>\n", names.size() + 1, esc(note));
  };
  for (const char* k : {"packets", "new_flows", "dnat", "snat", "answers", "invalid"})
    if (modes[names[0]].contains(k))
      row(
          label_of(k), [&](const nlohmann::json& m) { return num(m.value(k, nlohmann::json(0))); },
          std::string(k) == "new_flows" ? notes.new_flows_across
          : std::string(k) == "invalid" ? notes.invalid_across
                                        : "");
  std::set<std::string> outcomes;
  for (auto& n : names)
    for (auto& [k, v] : modes[n]["outcomes"].items()) outcomes.insert(k);
  for (auto& oc : outcomes)
    row("Outcome: " + oc, [&](const nlohmann::json& m) { return num(m["outcomes"].value(oc, nlohmann::json(0))); });
  for (const char* which : {"cost_per_new_packet", "cost_per_established_packet"})
    for (const char* k : {"rules_evaluated", "set_lookups", "ct_lookups", "ipvs_svc_lookups"}) {
      bool any = false;
      for (auto& n : names) any |= modes[n][which].contains(k);
      if (any)
        row(cost_label(k, std::string(which) == "cost_per_new_packet"),
            [&](const nlohmann::json& m) { return num(m[which].value(k, nlohmann::json(0.0))); });
    }
  return h + "</table>\n";
}

// One row per Service, a column per mode; each cell lists the same backends in the same order,
// so a backend's share reads across the row.
std::string shares(nlohmann::json& r) {  // non-const: a missing key reads as null, never UB
  std::vector<std::string> modes;
  std::map<std::string, std::set<std::string>> services;  // service -> every backend any mode used
  for (auto& [mode, m] : r["modes"].items()) {
    modes.push_back(mode);
    if (!m.contains("dnat_to")) continue;
    for (auto& [svc, backends] : m["dnat_to"].items())
      for (auto& [b, n] : backends.items()) services[svc].insert(b);
  }
  if (services.empty()) return "";
  std::string h = "<table class=\"shares\"><tr><th>Service</th>";
  for (auto& mo : modes) h += "<th>" + esc(mo) + " mode</th>";
  h += "</tr>\n";
  for (auto& [svc, all] : services) {
    h += "<tr><td class=\"svcname\">" + esc(svc) + "</td>";
    for (auto& mo : modes) {
      auto& to = r["modes"][mo]["dnat_to"];
      nlohmann::json backends = to.is_object() && to.contains(svc) ? to[svc] : nlohmann::json::object();
      uint64_t total = 0;
      for (auto& [b, n] : backends.items()) total += n.get<uint64_t>();
      h += "<td>";
      for (auto& b : all) {
        uint64_t n = backends.value(b, uint64_t(0));
        double pct = total ? 100.0 * double(n) / double(total) : 0;
        h += fmt::format(
            "<div class=\"bar\"><span class=\"be\">{}</span><span class=\"track\"><span class=\"fill\" "
            "style=\"width:{:.1f}%\"></span></span><span class=\"pct\">{:.1f}%&nbsp;({})</span></div>",
            esc(b), pct, pct, n);
      }
      h += "</td>";
    }
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

std::string cost_plots(nlohmann::json& r) {  // non-const: a missing key reads as null, never UB
  std::string h;
  for (const char* which : {"new", "established"}) {
    // Buckets across modes, in order of their lower bound.
    std::map<uint64_t, std::string> labels;
    std::vector<std::string> modes;
    for (auto& [mode, m] : r["modes"].items()) {
      modes.push_back(mode);
      for (auto& b : m["rules_histogram"][which]) labels[b["lo"].get<uint64_t>()] = b["rules"].get<std::string>();
    }
    if (labels.empty()) continue;
    std::string data, table = "<table class=\"hist\"><tr><th>rules per packet</th>";
    for (auto& mo : modes) table += "<th>" + esc(mo) + "</th>";
    table += "</tr>";
    for (auto& [lo, label] : labels) {
      data += "\"" + label + "\"";
      table += "<tr><td>" + esc(label) + "</td>";
      for (auto& mo : modes) {
        uint64_t n = 0;
        for (auto& b : r["modes"][mo]["rules_histogram"][which])
          if (b["lo"].get<uint64_t>() == lo) n = b["packets"].get<uint64_t>();
        data += fmt::format(" {}", n);
        table += fmt::format("<td class=\"n\">{}</td>", n);
      }
      data += "\n";
      table += "</tr>";
    }
    table += "</table>";
    std::string script = fmt::format(
        "set title 'rules evaluated per {} packet'\nset style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset ylabel 'packets'\nset xlabel 'rules evaluated'\nset key top right\n"
        "set yrange [0:*]\nplot ",
        which);
    for (size_t k = 0; k < modes.size(); ++k)
      script += fmt::format("{}DATA using {}:xtic(1) title '{}'", k ? ", " : "", k + 2, modes[k]);
    script += "\n";
    std::string svg = gnuplot_svg(script, data);
    h += fmt::format("<div class=\"plot\" data-plot=\"cost-{}\">{}</div>\n<details><summary>numbers</summary>{}</details>\n",
                     which, svg.empty() ? "<p>(gnuplot not available: numbers only)</p>" : svg, table);
  }
  return h;
}

std::string disagreements(nlohmann::json& r) {  // non-const: a missing key reads as null, never UB
  if (!r.contains("agreement")) return "";
  std::string h =
      "<p>Equivalent: the same verdict, Service and masquerade, each mode's backend one the other could have "
      "picked. Some of those differ only because another backend was picked (a hairpin to the client itself is "
      "masqueraded in every mode); different: a real difference.</p>\n"
      "<table class=\"summary\"><tr><th>Mode</th><th>Compared with</th><th>Connections</th><th>Equivalent</th>"
      "<th>Of those, differing only by the backend picked</th><th>Different</th><th>What differs</th></tr>\n";
  auto reasons = [](nlohmann::json& m) {
    std::string s;
    if (m.is_object())
      for (auto& [k, v] : m.items()) s += fmt::format("{}{}: {}", s.empty() ? "" : ", ", k, num(v));
    return s;
  };
  for (auto& [mode, a] : r["agreement"].items()) {
    if (mode == "examples") continue;
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td>"
        "<td>{}</td></tr>\n",
        esc(mode), esc(a.value("against", "")), num(a["connections"]), num(a["equivalent"]), esc(reasons(a["by_choice"])),
        num(a["different"]), esc(reasons(a["why"])));
  }
  h += "</table>\n";
  auto& ex = r["agreement"]["examples"];
  if (ex.is_array() && !ex.empty()) {
    std::deque<std::string> store;
    std::vector<Picture> pics;
    for (auto& e : ex) {
      Picture p{fmt::format("{} — differs in {}", e.value("connection", ""), e.value("differs_in", "")), {}};
      for (auto& [mode, tr] : e["traces"].items()) p.panels.push_back({mode, mode == "ipvs", {outcome_from_json(tr, store)}, 0});
      pics.push_back(std::move(p));
    }
    h += "<h3>The first disagreements, side by side</h3>\n" + render_svg(pics);
  }
  return h;
}

std::string scaling(ReportInput in) {  // a copy: a missing key reads as null, never UB
  std::string h;
  if (in.sweep.is_object() && in.sweep.contains("sweep")) {
    std::map<std::string, std::vector<std::pair<double, double>>> ns, rules;
    for (auto& p : in.sweep["sweep"]) {
      ns[p["mode"]].push_back({p["services"].get<double>(), p["ns_per_packet"].get<double>()});
      rules[p["mode"]].push_back({p["services"].get<double>(), p["rules_per_packet"].get<double>()});
    }
    for (auto* series : {&ns, &rules}) {
      bool is_ns = series == &ns;
      std::string data,
          script = fmt::format(
              "set title '{}'\nset logscale xy\nset xlabel 'services'\nset ylabel '{}'\nset key top left\nset grid\nplot ",
              is_ns ? "first packet to the last service: svcpath time per packet"
                    : "first packet to the last service: rules evaluated",
              is_ns ? "ns per packet" : "rules per packet");
      int idx = 0;
      std::string table = "<table class=\"hist\"><tr><th>mode</th><th>services</th><th>value</th></tr>";
      for (auto& [mode, pts] : *series) {
        data += "# " + mode + "\n";
        for (auto& [x, y] : pts) {
          data += fmt::format("{} {}\n", x, std::max(y, 0.5));
          table += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1f}</td></tr>", esc(mode), x, y);
        }
        data += "\n\n";
        script += fmt::format("{}DATA index {} using 1:2 with linespoints lw 2 title '{}'", idx ? ", " : "", idx, mode);
        ++idx;
      }
      table += "</table>";
      script += "\n";
      std::string svg = gnuplot_svg(script, data);
      h += fmt::format("<div class=\"plot\" data-plot=\"{}\">{}</div><details><summary>numbers</summary>{}</details>\n",
                       is_ns ? "sweep-ns" : "sweep-rules", svg.empty() ? "<p>(gnuplot not available)</p>" : svg, table);
    }
  }
  for (auto& b : in.benchmarks) {
    // Google Benchmark: family/arg0/rest -> one series per family and rest, x = arg0.
    std::map<std::string, std::vector<std::pair<double, double>>> series;
    for (auto& bm : b.value("benchmarks", nlohmann::json::array())) {
      std::string name = bm.value("name", "");
      if (bm.value("run_type", "") == "aggregate") continue;
      auto slash = name.find('/');
      if (slash == std::string::npos) continue;
      auto next = name.find('/', slash + 1);
      std::string x = name.substr(slash + 1, next == std::string::npos ? std::string::npos : next - slash - 1);
      std::string key = name.substr(0, slash) + (next == std::string::npos ? "" : name.substr(next));
      try {
        series[key].push_back({std::stod(x), bm.value("real_time", 0.0)});
      } catch (const std::exception&) {
      }
    }
    if (series.empty()) continue;
    std::string data,
        script =
            "set title 'benchmarks'\nset logscale xy\nset xlabel 'first argument'\nset ylabel 'time per iteration'\n"
            "set key outside right\nset grid\nplot ";
    int idx = 0;
    for (auto& [k, pts] : series) {
      for (auto& [x, y] : pts) data += fmt::format("{} {}\n", x, y);
      data += "\n\n";
      script += fmt::format("{}DATA index {} using 1:2 with linespoints title '{}'", idx ? ", " : "", idx, k);
      ++idx;
    }
    script += "\n";
    h += fmt::format("<div class=\"plot\" data-plot=\"benchmarks\">{}</div>\n", gnuplot_svg(script, data));
  }
  return h;
}

// svcpath diff's classes: a sentence, how many flows, the setting that keeps the old behaviour, an
// example flow with both sides' behaviour; then the examples drawn side by side.
std::string diff_section(const ReportInput& in) {
  nlohmann::json d = in.diff;
  std::string a = d.value("a", "A"), b = d.value("b", "B");
  std::string h = fmt::format(
      "<p>{} flows (every Service port on every address it answers on, from each kind of client) "
      "through both; <b>{}</b> change.</p>\n",
      num(d["flows"]), num(d["changed"]));
  if (!d["classes"].is_array() || d["classes"].empty()) return h + "<p>Nothing changes.</p>\n";
  h += fmt::format(
      "<table><tr><th>what changes</th><th>flows</th><th>keeps {}'s behaviour</th><th>for example</th>"
      "<th>{}</th><th>{}</th></tr>\n",
      esc(a), esc(a), esc(b));
  auto behaviour = [](nlohmann::json x) {
    std::string s = x.value("verdict", "");
    if (x["backends"].is_array() && !x["backends"].empty())
      s += fmt::format(" by {} backend{}", x["backends"].size(), x["backends"].size() == 1 ? "" : "s");
    if (x["masqueraded"].is_array() && !x["masqueraded"].empty()) s += ", masqueraded";
    return s;
  };
  for (auto& c : d["classes"]) {
    nlohmann::json ex = c["flows"].is_array() && !c["flows"].empty() ? c["flows"][0] : nlohmann::json::object();
    h += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                     esc(c.value("sentence", "")), num(c["count"]), esc(c.value("setting", "")), esc(ex.value("packet", "")),
                     esc(behaviour(ex["a"])), esc(behaviour(ex["b"])));
  }
  h += "</table>\n";
  if (!in.diff_pictures.empty()) h += "<h3>One example per class, both sides</h3>\n" + render_svg(in.diff_pictures);
  return h;
}

constexpr const char* kCss =
    "body{font:14px sans-serif;margin:24px auto;max-width:1400px;padding:0 24px;color:#222} h1{font-size:24px}"
    " h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px} section{margin-bottom:28px}"
    " table{border-collapse:collapse;margin:12px 0 20px} td,th{border:1px solid #ddd;padding:5px 12px;vertical-align:top}"
    " th{background:#f1f3f5;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    " tr.note td{border-top:none;color:#555;font-size:13px;padding:2px 12px 8px 28px;max-width:900px}"
    " .svcname{font-weight:bold;white-space:nowrap} .bar{display:flex;align-items:center;gap:8px;font:12px monospace;"
    "margin:2px 0;white-space:nowrap} .be{width:170px;overflow:hidden;text-overflow:ellipsis}"
    " .track{display:inline-block;width:120px;height:12px;background:#f1f3f5} .fill{display:block;height:12px;"
    "background:#fd7e14} .pct{color:#555;min-width:110px;white-space:nowrap}"
    " .plot svg{max-width:100%;height:auto} details{margin:4px 0 12px} summary{cursor:pointer;color:#1c7ed6}";

}  // namespace

std::string render_report(const ReportInput& in) {
  std::string head = fmt::format("<h1>{}</h1>\n{}\n", esc(in.title), in.intro), body;
  std::string toc;
  auto section = [&](const std::string& id, const std::string& title, const std::string& html) {
    if (html.empty()) return;
    toc += fmt::format("<li><a href=\"#{}\">{}</a></li>", id, esc(title));
    body += fmt::format("<section id=\"{}\"><h2>{}</h2>\n{}</section>\n", id, esc(title), html);
  };
  if (!in.pictures.empty())
    section("traces", "Packets through the hooks, per mode",
            "<p>Each box is a netfilter hook with its tables in priority order; the "
            "orange line is the packet's path and the numbers its visits. Hover a chain for its rule.</p>\n" +
                render_svg(in.pictures));
  nlohmann::json replay = in.replay;  // read with non-const operator[]: missing keys are null, not UB
  if (replay.is_object()) {
    auto& c = replay["capture"];
    std::string cap =
        fmt::format("<p>Capture <code>{}</code>: {} frames, link type {}{}.</p>\n", esc(c.value("file", "")), num(c["frames"]),
                    num(c["linktype"]), c.contains("error") ? ", damaged: " + esc(num(c["error"])) : "");
    section("summary", "Replay: the modes compared", cap + summary_table(replay));
    section("agreement", "Agreement and disagreements", disagreements(replay));
    section("shares", "Backend shares per Service, the modes side by side (DNATed packets)", shares(replay));
    section("cost", "Cost per packet", cost_plots(replay));
  }
  if (in.diff.is_object())
    section("diff",
            in.diff_title.empty() ? fmt::format("What changes from {} to {}", in.diff.value("a", "A"), in.diff.value("b", "B"))
                                  : in.diff_title,
            diff_section(in));
  section("scaling", "Scaling with the number of Services", scaling(in));
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head>\n"
      "<body>\n{}<nav><ul>{}</ul></nav>\n{}<footer><p>Written by svcpath. Self-contained: nothing here is "
      "fetched from the network.</p></footer>\n</body></html>\n",
      esc(in.title), kCss, head, toc, body);
}

void write_report_file(const std::string& path, const ReportInput& in) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw LoadError({{path, 0, 0, "cannot create the report file"}});
  f << render_report(in);
  f.close();
  if (!f) throw LoadError({{path, 0, 0, "writing the report failed (disk full?)"}});
}

int run_report(const ReportOptions& o, std::ostream& out) {
  ReportInput in;
  in.title = o.title;
  // Where the text stops being JSON and what was expected there; never the library's own wording.
  auto load = [](const std::string& path, std::string_view expected) {
    std::string text = read_input_file(path);
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      std::string_view before = std::string_view(text).substr(0, e.byte > 0 ? size_t(e.byte - 1) : 0);
      size_t nl = before.rfind('\n');
      int line = 1 + int(std::count(before.begin(), before.end(), '\n'));
      int col = int(before.size() - (nl == std::string_view::npos ? 0 : nl + 1)) + 1;
      throw LoadError({{path, line, col, fmt::format("not JSON: expected {}", expected)}});
    }
  };
  if (o.replay.empty() && o.sweep.empty() && o.bench.empty() && o.diff.empty())
    throw LoadError({{"report", 0, 0,
                      "give --replay FILE (svcpath replay --format json), --diff FILE (svcpath diff --format json), --sweep FILE "
                      "or --bench FILE"}});
  if (!o.diff.empty()) {
    in.diff = load(o.diff, "the output of `svcpath diff --format json`");
    if (!in.diff.is_object() || !in.diff.contains("classes") || !in.diff["classes"].is_array() || !in.diff.contains("flows"))
      throw LoadError({{o.diff, 0, 0, "not the output of `svcpath diff --format json` (no classes/flows)"}});
    for (auto& c : in.diff["classes"])
      if (!c.is_object() || !c.contains("flows") || !c["flows"].is_array())
        throw LoadError({{o.diff, 0, 0, "not the output of `svcpath diff --format json` (a class without flows)"}});
  }
  if (!o.replay.empty()) {
    in.replay = load(o.replay, "the output of `svcpath replay --format json`");
    if (!in.replay.is_object() || !in.replay.contains("modes") || !in.replay.contains("capture") ||
        !in.replay["modes"].is_object() || in.replay["modes"].empty())
      throw LoadError({{o.replay, 0, 0, "not the output of `svcpath replay --format json` (no modes/capture)"}});
  }
  if (!o.sweep.empty()) in.sweep = load(o.sweep, "a scaling sweep (svcpath demo writes svcpath-demo/sweep.json)");
  for (auto& b : o.bench) in.benchmarks.push_back(load(b, "Google Benchmark JSON (--benchmark_format=json)"));
  if (in.replay.is_object()) {
    // The renderer reads these without asking; a foreign file gets empty ones, not undefined behaviour.
    for (auto& [name, m] : in.replay["modes"].items()) {
      if (!m.is_object()) throw LoadError({{o.replay, 0, 0, fmt::format("modes.{} is not an object", name)}});
      for (const char* k : {"outcomes", "dnat_to", "cost_per_new_packet", "cost_per_established_packet"})
        if (!m[k].is_object()) m[k] = nlohmann::json::object();
      for (const char* k : {"new", "established"})
        if (!m["rules_histogram"].is_object() || !m["rules_histogram"][k].is_array()) {
          if (!m["rules_histogram"].is_object()) m["rules_histogram"] = nlohmann::json::object();
          m["rules_histogram"][k] = nlohmann::json::array();
        }
    }
    if (in.replay.contains("agreement") && !in.replay["agreement"].is_object()) in.replay.erase("agreement");
  }
  try {
    write_report_file(o.out, in);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong shape in a hand-edited or foreign file: name the files, never crash.
    throw LoadError({{o.replay.empty() ? (o.sweep.empty() ? o.bench.front() : o.sweep) : o.replay, 0, 0,
                      fmt::format("unexpected JSON shape: {}", e.what())}});
  }
  out << o.out << "\n";
  return 0;
}

}  // namespace svcpath::cli
