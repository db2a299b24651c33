#include "cli/picture.hpp"

#include <algorithm>
#include <array>
#include <map>

#include <fmt/format.h>

#include "ipvs/engine.hpp"
#include "netfilter/iptables/hooks.hpp"

namespace svcpath::cli {

std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default:
        // Control bytes are not allowed in XML 1.0; rule comments may carry anything.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') o += "\xef\xbf\xbd";
        else o += c;
    }
  }
  return o;
}

namespace {

constexpr int kPanelW = 660, kBoxW = 150, kRowH = 15;

struct Place {
  Hook hook;
  int x, y;
};
// The classic netfilter diagram: in on the left, out on the right, the local process on top
// (INPUT into it) and below (OUTPUT out of it).
constexpr Place kPlaces[] = {
    {Hook::PreRouting, 10, 150}, {Hook::LocalIn, 250, 10},      {Hook::Forward, 250, 150},
    {Hook::LocalOut, 250, 300},  {Hook::PostRouting, 490, 150},
};

Place place(Hook h) {
  for (auto& p : kPlaces)
    if (p.hook == h) return p;
  return kPlaces[0];
}

struct TableRow {
  std::string table;  // as trace events name it
  std::string label;
  std::string chain = {};  // nftables rows: the base chain (a table may hook one hook twice)
  int priority = 0;
};

// The datapath a mode builds (iptables tables, conntrack, the nat core, and IPVS in its mode),
// read off its real registrations: each hook's rows in the order the kernel runs them. The
// security table is not drawn (SELinux labels; no Kubernetes node has rules there), nor defrag.
std::vector<TableRow> fixed_rows(Hook h, bool ipvs) {
  static const auto build = [](bool with_ipvs) {
    std::array<std::vector<TableRow>, kNumHooks> rows;
    nf::Node node;
    nf::Datapath dp(node);
    nf::attach_iptables(dp, nullptr, nullptr, nullptr);
    ipvs::Engine engine;
    if (with_ipvs) engine.attach(dp);
    for (int hk = 0; hk < kNumHooks; ++hk) {
      auto& v = rows[size_t(hk)];
      for (const nf::Registration& r : dp.registrations(Hook(hk))) {
        std::string name = r.stage->name();
        if (name == "security" || name == "defrag") continue;  // defrag only acts on fragments
        if (name == "ipvs in" || name == "ipvs out") {
          // ip_vs registers two functions at most hooks: one row, both priorities.
          if (!v.empty() && v.back().table == "ipvs") v.back().label += fmt::format("/{}", r.priority);
          else v.push_back({"ipvs", fmt::format("IPVS {}", r.priority), {}, r.priority});
        } else if (name == "conntrack-confirm") {
          v.push_back({"conntrack", "conntrack confirm", {}, r.priority});
        } else if (name == "nat") {
          v.push_back({"nat", fmt::format("nat ({}) {}", r.priority < 0 ? "DNAT" : "SNAT", r.priority), {}, r.priority});
        } else {
          v.push_back({name, fmt::format("{} {}", name, r.priority), {}, r.priority});
        }
      }
    }
    return rows;
  };
  static const auto plain = build(false), with_ipvs = build(true);
  return (ipvs ? with_ipvs : plain)[size_t(h)];
}

std::vector<TableRow> rows_of(Hook h, bool ipvs, const std::vector<NftRow>& nft) {
  std::vector<TableRow> rows = fixed_rows(h, ipvs);
  std::vector<int> prio;
  for (auto& r : rows) prio.push_back(r.priority);
  for (auto& n : nft) {
    if (n.hook != h) continue;
    // nat chains run inside the nat core: right after the iptables nat row.
    int p = n.nat ? ((h == Hook::PreRouting || h == Hook::LocalOut) ? nf::prio::NAT_DST : nf::prio::NAT_SRC) : n.priority;
    size_t at = 0;
    if (n.placed) {
      // Known only from a trace: after the fixed row the packet met last before it.
      at = 0;
      for (size_t k = 0; k < rows.size(); ++k)
        if (!n.after.empty() && rows[k].table == n.after) at = k + 1;
      while (at < rows.size() && !rows[at].chain.empty()) ++at;
      p = at < prio.size() ? prio[at] : INT32_MAX;
    } else {
      while (at < rows.size() && (prio[at] < p || (prio[at] == p && (n.nat || rows[at].table != "filter")))) ++at;
    }
    // Short enough for the box; the row's tooltip names the table.
    std::string label = n.nat ? fmt::format("nft {}", n.chain) : fmt::format("nft {} {}", n.chain, n.priority);
    rows.insert(rows.begin() + long(at), TableRow{n.table, label, n.chain});
    prio.insert(prio.begin() + long(at), p);
  }
  return rows;
}

struct Visit {
  Hook hook;
  std::vector<const TraceEvent*> events;
};

// Consecutive events at one hook are one visit; a packet may visit a hook twice (loopback, IPVS
// re-injection through OUTPUT).
std::vector<Visit> visits_of(const nf::Outcome& o) {
  std::vector<Visit> v;
  for (auto& e : o.trace) {
    if (e.answer) continue;  // a REJECT's answer is a packet of its own; the picture is the packet's
    if (v.empty() || v.back().hook != e.hook) v.push_back({e.hook, {}});
    v.back().events.push_back(&e);
  }
  return v;
}

bool visited_table(const Visit& v, const TableRow& row) {
  // A walk through an nftables base chain always names it (a rule of it, or its policy).
  for (auto* e : v.events)
    if (e->table == row.table && (row.chain.empty() || e->chain == row.chain)) return true;
  return false;
}

bool fixed_table(std::string_view t) {
  for (std::string_view f : {"raw", "mangle", "nat", "filter", "security", "conntrack", "routing", "ipvs"})
    if (t == f) return true;
  return false;
}

// A walk through a base chain starts in it (its first matching rule, or its policy), so the first
// event of each run of one nftables table's events names a base chain.
std::vector<NftRow> nft_rows_seen(const std::vector<Visit>& visits) {
  std::vector<NftRow> rows;
  for (auto& v : visits) {
    std::string last_fixed;
    std::string_view run;
    for (auto* e : v.events) {
      bool walk = e->kind == TraceKind::Rule || e->kind == TraceKind::Return || e->kind == TraceKind::Policy;
      if (fixed_table(e->table) || !walk) {
        if (fixed_table(e->table) && e->table != "routing") last_fixed = std::string(e->table);
        run = {};
        continue;
      }
      if (run == e->table) continue;
      run = e->table;
      bool known = false;
      for (auto& r : rows) known |= r.hook == v.hook && r.table == e->table && r.chain == e->chain;
      if (!known) rows.push_back({v.hook, 0, false, std::string(e->table), std::string(e->chain), last_fixed, true});
    }
  }
  return rows;
}

}  // namespace

std::vector<NftRow> nft_rows(const nf::nft::Ruleset* rs) {
  std::vector<NftRow> v;
  if (!rs) return v;
  for (auto& t : rs->tables)
    for (auto& c : t->chains)
      if (c.base) v.push_back({c.hook, c.priority, c.type == nf::nft::ChainType::Nat, t->label, c.name});
  return v;
}

namespace {

// One visit as text pieces: each piece is (shown text, hover text).
std::vector<std::pair<std::string, std::string>> step_pieces(const Visit& v) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string_view walk_table;
  for (auto* e : v.events) {
    switch (e->kind) {
      case TraceKind::Rule:
      case TraceKind::Return:
      case TraceKind::Policy: {
        bool cont = walk_table == e->table && !out.empty();
        std::string shown = fmt::format(
            "{}{}{}:{}{}", cont ? " → " : (out.empty() ? "" : "; "), cont ? "" : std::string(e->table) + " ", e->chain,
            e->kind == TraceKind::Rule ? std::to_string(e->rulenum) : std::string(trace_kind_name(e->kind)),
            e->target.empty() || e->target.starts_with("KUBE-") || e->target.starts_with("NP-") ? "" : " " + e->target);
        out.push_back({shown, e->detail.empty()
                                  ? fmt::format("{}:{}:{}:{}", e->table, e->chain, trace_kind_name(e->kind), e->rulenum)
                                  : e->detail});
        walk_table = e->table;
        break;
      }
      case TraceKind::Nat:
        walk_table = {};
        if (e->rewritten)
          out.push_back(
              {fmt::format("{}{} {} → {}", out.empty() ? "" : "; ", e->target, e->before.str(), e->after.str()), e->detail});
        else out.push_back({std::string(out.empty() ? "" : "; ") + "nat skipped: conntrack binding", e->detail});
        break;
      case TraceKind::Conntrack:
        walk_table = {};
        out.push_back({fmt::format("{}ct {}", out.empty() ? "" : "; ", e->target.empty() ? "seen" : e->target), e->detail});
        break;
      case TraceKind::Ipvs:
        walk_table = {};
        if (e->rewritten)
          out.push_back({fmt::format("{}IPVS {} → {}", out.empty() ? "" : "; ", e->before.str(), e->after.str()), e->detail});
        else if (!e->target.empty()) out.push_back({fmt::format("{}IPVS {}", out.empty() ? "" : "; ", e->target), e->detail});
        break;
      case TraceKind::Verdict:
        walk_table = {};
        out.push_back({fmt::format("{}{}", out.empty() ? "" : "; ", e->target.empty() ? e->detail : e->target), e->detail});
        break;
      default: break;  // routing notes show on the arrows' ends, not in the step list
    }
  }
  return out;
}

std::string outcome_line(const nf::Outcome& o) {
  std::string s = fmt::format("=> {}", nf::outcome_name(o.kind));
  if (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged) s += " out " + o.out;
  s += ": " + o.after.t.str();
  if (o.dnat) s += " dnat";
  if (o.snat) s += " snat";
  if (!o.where.empty() && o.reason != DropReason::None) s += fmt::format(" ({} at {})", drop_reason_name(o.reason), o.where);
  return s;
}

// Wraps pieces into lines of at most width characters, keeping each piece whole.
std::vector<std::vector<std::pair<std::string, std::string>>> wrap(const std::vector<std::pair<std::string, std::string>>& pieces,
                                                                   size_t width) {
  std::vector<std::vector<std::pair<std::string, std::string>>> lines(1);
  size_t len = 0;
  for (auto& p : pieces) {
    if (len + p.first.size() > width && len > 0) {
      lines.emplace_back();
      len = 0;
    }
    lines.back().push_back(p);
    len += p.first.size();
  }
  return lines;
}

struct PanelSvg {
  std::string body;
  int height = 0;
};

PanelSvg panel_svg(const Panel& pn) {
  PanelSvg out;
  std::string& s = out.body;
  const nf::Outcome& o = pn.outcomes.at(pn.shown);
  auto visits = visits_of(o);
  std::map<int, std::vector<size_t>> order;  // hook -> visit numbers (1-based)
  for (size_t i = 0; i < visits.size(); ++i) order[int(visits[i].hook)].push_back(i + 1);

  s += fmt::format("<text class=\"mode\" x=\"10\" y=\"-8\">{} mode</text>\n", xml_escape(pn.mode));
  // The local process and the wire ends.
  s += "<rect class=\"proc\" x=\"490\" y=\"10\" width=\"150\" height=\"40\" rx=\"6\"/>"
       "<text x=\"565\" y=\"35\" text-anchor=\"middle\">local process</text>\n";
  std::string out_if = (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged) ? " " + o.out : "";
  s += fmt::format("<text class=\"end\" x=\"10\" y=\"140\">in{}</text><text class=\"end\" x=\"560\" y=\"140\">out{}</text>\n",
                   xml_escape(pn.in.empty() ? "" : " " + pn.in), xml_escape(out_if));
  // Routing decisions.
  s += "<g class=\"route\"><circle cx=\"205\" cy=\"195\" r=\"18\"/><text x=\"205\" y=\"199\" "
       "text-anchor=\"middle\">route</text></g>\n";
  s += "<g class=\"route\"><circle cx=\"445\" cy=\"345\" r=\"18\"/><text x=\"445\" y=\"349\" "
       "text-anchor=\"middle\">route</text></g>\n";

  // Only the base chains of tables that see this packet's family; without the ruleset (a report
  // read from JSON), the ones the trace shows.
  std::vector<NftRow> nft;
  for (auto& n : pn.nft)
    if (n.table.starts_with("inet ") || n.table.starts_with(o.before.src.is_v4() ? "ip " : "ip6 ")) nft.push_back(n);
  if (pn.nft.empty()) nft = nft_rows_seen(visits);
  int bottom = 0;
  for (auto& pl : kPlaces) {
    auto rows = rows_of(pl.hook, pn.ipvs, nft);
    int h = 22 + int(rows.size()) * kRowH;
    bottom = std::max(bottom, pl.y + h);
    auto it = order.find(int(pl.hook));
    bool seen = it != order.end();
    std::string nums;
    if (seen)
      for (size_t n : it->second) nums += (nums.empty() ? "" : ",") + std::to_string(n);
    s += fmt::format("<g class=\"hook{}\" data-hook=\"{}\"{}>\n", seen ? " visited" : "", hook_name(pl.hook),
                     seen ? fmt::format(" data-order=\"{}\"", nums) : "");
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>\n", pl.x, pl.y, kBoxW, h);
    s += fmt::format("<text class=\"hookname\" x=\"{}\" y=\"{}\">{}</text>\n", pl.x + 8, pl.y + 15, hook_name(pl.hook));
    if (seen) {
      s += fmt::format(
          "<circle class=\"badge\" cx=\"{}\" cy=\"{}\" r=\"9\"/><text class=\"badgenum\" x=\"{}\" y=\"{}\" "
          "text-anchor=\"middle\">{}</text>\n",
          pl.x + kBoxW - 12, pl.y + 11, pl.x + kBoxW - 12, pl.y + 15, nums);
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      bool hit = false;
      if (seen)
        for (size_t n : it->second) hit |= visited_table(visits[n - 1], rows[r]);
      int ry = pl.y + 20 + int(r) * kRowH;
      s += fmt::format(
          "<g class=\"table{}\" data-table=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>"
          "<text x=\"{}\" y=\"{}\">{}</text>{}</g>\n",
          hit ? " hit" : "", xml_escape(rows[r].table), pl.x + 4, ry, kBoxW - 8, kRowH - 2, pl.x + 10, ry + 10,
          xml_escape(rows[r].label),
          rows[r].chain.empty() ? "" : "<title>" + xml_escape(rows[r].table + " " + rows[r].chain) + "</title>");
    }
    s += "</g>\n";
  }

  // The path: from where the packet entered, through each visit's box, to where it ended.
  auto centre = [&](Hook h) {
    Place p = place(h);
    return std::pair<int, int>{p.x + kBoxW / 2, p.y + 30};
  };
  std::vector<std::pair<int, int>> pts;
  bool local_start = !visits.empty() && visits.front().hook == Hook::LocalOut;
  pts.push_back(local_start ? std::pair<int, int>{565, 50} : std::pair<int, int>{20, 130});
  for (auto& v : visits) {
    if (v.hook == Hook::LocalIn && pts.size() > 1 && pts.back() == centre(Hook::PreRouting)) pts.push_back({205, 195});
    if (v.hook == Hook::Forward && pts.back() == centre(Hook::PreRouting)) pts.push_back({205, 195});
    if (v.hook == Hook::PostRouting && pts.back() == centre(Hook::LocalOut)) pts.push_back({445, 345});
    pts.push_back(centre(v.hook));
  }
  if (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged) pts.push_back({630, 130});
  else if (o.kind == nf::OutcomeKind::Delivered) pts.push_back({565, 30});
  std::string poly;
  for (auto& [x, y] : pts) poly += fmt::format("{},{} ", x, y);
  s += fmt::format("<polyline class=\"path\" points=\"{}\" marker-end=\"url(#arrow)\"/>\n", poly);

  // The steps, numbered as the badges: chains and rule numbers (hover: the rule), rewrites, conntrack.
  int y = std::max(432, bottom + 30);
  for (size_t i = 0; i < visits.size(); ++i) {
    auto lines = wrap(step_pieces(visits[i]), 78);
    for (size_t l = 0; l < lines.size(); ++l) {
      s += fmt::format("<text class=\"step\" data-hook=\"{}\" data-order=\"{}\" x=\"10\" y=\"{}\">", hook_name(visits[i].hook),
                       i + 1, y);
      if (l == 0) s += fmt::format("<tspan class=\"stepnum\">{} {}</tspan> ", i + 1, hook_name(visits[i].hook));
      else s += "<tspan class=\"stepnum\">   </tspan> ";
      for (auto& [shown, hover] : lines[l])
        s += fmt::format("<tspan>{}<title>{}</title></tspan>", xml_escape(shown), xml_escape(hover));
      s += "</text>\n";
      y += 15;
    }
  }
  y += 6;
  s += fmt::format("<text class=\"outcome {}\" x=\"10\" y=\"{}\">{}</text>\n", nf::outcome_name(o.kind), y,
                   xml_escape(outcome_line(o)));
  y += 16;
  if (pn.outcomes.size() > 1) {
    for (size_t k = 0; k < pn.outcomes.size(); ++k) {
      auto& oc = pn.outcomes[k];
      s += fmt::format("<text class=\"alt{}\" x=\"10\" y=\"{}\">{} outcome {}/{} p={:.4f} {}</text>\n",
                       k == pn.shown ? " shown" : "", y, k == pn.shown ? "▶" : " ", k + 1, pn.outcomes.size(), oc.probability,
                       xml_escape(outcome_line(oc)));
      y += 14;
    }
  }
  out.height = y + 10;
  return out;
}

constexpr const char* kStyle =
    "text{font:12px sans-serif;fill:#222} .mode{font:bold 14px sans-serif} .title{font:bold 15px sans-serif}"
    " .hook rect{fill:#f7f7f7;stroke:#999} .hook.visited>rect{fill:#fff4e6;stroke:#d9480f;stroke-width:2}"
    " .hookname{font-weight:bold} .table rect{fill:#fff;stroke:none} .table.hit rect{fill:#ffd8a8}"
    " .proc{fill:#e7f5ff;stroke:#1c7ed6} .route circle{fill:#f1f3f5;stroke:#868e96} .end{fill:#868e96}"
    " .badge{fill:#d9480f} .badgenum{fill:#fff;font:bold 10px sans-serif}"
    " .path{fill:none;stroke:#d9480f;stroke-width:3;stroke-opacity:.75}"
    " .step{font:12px monospace} .stepnum{font-weight:bold;fill:#d9480f}"
    " .outcome{font:bold 12px monospace} .outcome.dropped,.outcome.rejected{fill:#c92a2a}"
    " .alt{font:11px monospace;fill:#555} .alt.shown{fill:#222;font-weight:bold}";

}  // namespace

std::string render_svg(const std::vector<Picture>& pics) {
  std::string body;
  int y = 10, width = 0;
  for (size_t i = 0; i < pics.size(); ++i) {
    auto& pic = pics[i];
    body += fmt::format("<g class=\"picture\" data-index=\"{}\" transform=\"translate(0,{})\">\n", i + 1, y);
    body += fmt::format("<text class=\"title\" x=\"10\" y=\"16\">{}</text>\n", xml_escape(pic.title));
    int h = 0;
    for (size_t k = 0; k < pic.panels.size(); ++k) {
      auto ps = panel_svg(pic.panels[k]);
      body += fmt::format("<g class=\"panel\" data-mode=\"{}\" transform=\"translate({},{})\">\n{}</g>\n",
                          xml_escape(pic.panels[k].mode), int(k) * (kPanelW + 20), 44, ps.body);
      h = std::max(h, ps.height);
      width = std::max(width, int(k + 1) * (kPanelW + 20));
    }
    body += "</g>\n";
    y += h + 60;
  }
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\">\n"
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"8\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" "
      "orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#d9480f\"/></marker></defs>\n"
      "<style>{2}</style>\n{3}</svg>\n",
      std::max(width, kPanelW), y, kStyle, body);
}

std::string render_html(const std::vector<Picture>& pics, const std::string& heading) {
  std::string traces;
  for (auto& pic : pics)
    for (auto& pn : pic.panels) {
      traces +=
          fmt::format("<details><summary>{} — {} mode: every step</summary><pre>", xml_escape(pic.title), xml_escape(pn.mode));
      for (auto& e : pn.outcomes.at(pn.shown).trace) {
        traces += xml_escape(fmt::format("{:<11} {}:{}{} {} {}\n", fmt::format("{}{}", hook_name(e.hook), e.answer ? "<" : ""),
                                         e.table, e.chain, e.chain.empty() ? "" : fmt::format(":{}", e.rulenum), e.target,
                                         e.assumed.empty() ? e.detail : e.detail + "  (assumed: " + e.assumed + ")"));
        if (e.rewritten) traces += xml_escape(fmt::format("{:<11} {} → {}\n", "", e.before.str(), e.after.str()));
      }
      traces += "</pre></details>\n";
    }
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\n"
      "<style>body{{font:14px sans-serif;margin:24px;color:#222}} pre{{background:#f8f9fa;padding:8px;overflow:auto}}"
      " summary{{cursor:pointer;margin:6px 0}}</style></head>\n<body>\n<h1>{0}</h1>\n"
      "<p>Each box is a netfilter hook with its tables in priority order; the orange line is the packet's path, the "
      "numbers its visits. Hover a chain in the step list for the rule.</p>\n{1}\n{2}</body></html>\n",
      xml_escape(heading), render_svg(pics), traces);
}

std::string render_dot(const std::vector<Picture>& pics) {
  std::string o;
  int g = 0;
  for (auto& pic : pics)
    for (auto& pn : pic.panels) {
      ++g;
      const nf::Outcome& oc = pn.outcomes.at(pn.shown);
      o += fmt::format(
          "digraph svcpath_{} {{\n  label=\"{} ({} mode)\";\n  rankdir=LR;\n  node [shape=record, fontname=\"sans-serif\"];\n", g,
          xml_escape(pic.title), pn.mode);
      for (auto& pl : kPlaces) {
        std::string label = std::string(hook_name(pl.hook));
        for (auto& r : rows_of(pl.hook, pn.ipvs, pn.nft)) label += "|" + r.label;
        o += fmt::format("  {} [label=\"{{{}}}\"];\n", hook_name(pl.hook), label);
      }
      o += "  in [shape=plaintext]; out [shape=plaintext]; local [label=\"local process\", shape=box];\n";
      o += "  in -> PREROUTING [color=gray]; PREROUTING -> INPUT [color=gray]; PREROUTING -> FORWARD [color=gray];\n"
           "  INPUT -> local [color=gray]; FORWARD -> POSTROUTING [color=gray]; local -> OUTPUT [color=gray];\n"
           "  OUTPUT -> POSTROUTING [color=gray]; POSTROUTING -> out [color=gray];\n";
      auto vs = visits_of(oc);
      std::string prev = vs.empty() || vs.front().hook != Hook::LocalOut ? "in" : "local";
      for (size_t i = 0; i < vs.size(); ++i) {
        std::string label;
        for (auto& [shown, hover] : step_pieces(vs[i])) label += shown;
        std::string name(hook_name(vs[i].hook));
        o += fmt::format("  {} -> {} [color=\"#d9480f\", penwidth=3, label=\"{}. {}\"];\n", prev, name, i + 1,
                         xml_escape(label.substr(0, 120)));
        prev = name;
      }
      std::string end = oc.kind == nf::OutcomeKind::Forwarded ? "out" : oc.kind == nf::OutcomeKind::Delivered ? "local" : "";
      if (!end.empty()) o += fmt::format("  {} -> {} [color=\"#d9480f\", penwidth=3];\n", prev, end);
      else
        o += fmt::format("  end [shape=octagon, label=\"{}\"];\n  {} -> end [color=\"#c92a2a\", penwidth=3];\n",
                         xml_escape(outcome_line(oc)), prev);
      o += "}\n";
    }
  return o;
}

}  // namespace svcpath::cli
