#include "cli/picture.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <queue>
#include <span>

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

// Advance widths of DejaVu Sans (Debian's sans-serif, which the browsers here draw) in thousandths
// of an em for ' '..'~', measured with a canvas' measureText; any other code point counts as a full
// em and bold as 1.2 times. DejaVu Sans Mono is 0.602 em a code point. Labels are fitted with
// these, and tests/cli/svg_check.py holds the drawing to the same measure.
constexpr unsigned short kSansWidth[95] = {
    318, 401, 460, 838, 636, 950, 780, 275, 390,  390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636, 636,
    636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
    603, 787, 695, 635, 611, 732, 684, 989, 685,  611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635,
    634, 278, 278, 579, 278, 974, 634, 612, 635,  635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838};

enum class Font { Sans, Bold, Mono };

double text_width(std::string_view s, double size, Font f) {
  double em = 0;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c & 0xC0) == 0x80) continue;  // a UTF-8 continuation byte
    if (f == Font::Mono) em += 0.602;
    else em += c >= 32 && c < 127 ? kSansWidth[c - 32] / 1000.0 : 1.0;
  }
  return em * size * (f == Font::Bold ? 1.2 : 1.0);
}

// `s` within max_w, shortened in the middle when it is not: the tail keeps more, since it is what
// tells long names apart (an endpoint's address, a chain's priority). Whole UTF-8 characters only.
std::string fit(std::string_view s, double max_w, double size, Font f) {
  if (text_width(s, size, f) <= max_w) return std::string(s);
  std::vector<std::string_view> cps;
  for (size_t i = 0; i < s.size();) {
    size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
    cps.push_back(s.substr(i, n));
    i += n;
  }
  for (size_t keep = cps.size() - 1; keep > 0; --keep) {
    size_t head = keep * 2 / 5, from = cps.size() - (keep - head);
    // Cut at separators where they are near (`service-…-shop/db`, not `service-M…T-shop/db`).
    auto sep = [&](size_t i) { return cps[i] == "-" || cps[i] == "/" || cps[i] == "_"; };
    for (size_t i = head; i > 1 && i + 4 > head; --i)
      if (sep(i - 1)) {
        head = i;
        break;
      }
    for (size_t i = from; i < cps.size() && i < from + 4; ++i)
      if (sep(i)) {
        from = i;
        break;
      }
    std::string t;
    for (size_t i = 0; i < head; ++i) t += cps[i];
    t += "…";
    for (size_t i = from; i < cps.size(); ++i) t += cps[i];
    if (text_width(t, size, f) <= max_w) return t;
  }
  return "…";
}

struct Pt {
  double x = 0, y = 0;
  bool operator==(const Pt&) const = default;
};
struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
  double r() const { return x + w; }
  double b() const { return y + h; }
  Rect grown(double m) const { return {x - m, y - m, w + 2 * m, h + 2 * m}; }
  bool inside(Pt p) const { return p.x > x && p.x < r() && p.y > y && p.y < b(); }  // strictly
};

// The panel's geometry: three columns (PREROUTING | INPUT, FORWARD | OUTPUT, POSTROUTING), the
// local process across the top, the wire (PREROUTING, FORWARD, POSTROUTING) below INPUT and OUTPUT,
// so the local path (INPUT → process → OUTPUT) and IPVS's INPUT → OUTPUT never pass FORWARD.
constexpr double kBoxW = 136, kGap = 32, kMargin = 18, kRowH = 14, kHeadH = 20, kClear = 5;
constexpr double kPanelW = 2 * kMargin + 3 * kBoxW + 2 * kGap;
constexpr double kPanelGap = 16, kMaxWidth = 1320;  // 1320: a 1400-pixel window less the report's margins
constexpr double kFont = 11, kHookFont = 11, kModeFont = 13, kTitleFont = 14;

struct Slot {
  Hook hook;
  int col, row;  // row 0 beside the local process, 1 the wire
};
constexpr Slot kSlots[] = {
    {Hook::PreRouting, 0, 1}, {Hook::LocalIn, 1, 0}, {Hook::Forward, 1, 1}, {Hook::LocalOut, 2, 0}, {Hook::PostRouting, 2, 1}};
double col_x(int c) { return kMargin + c * (kBoxW + kGap); }

// A node of the diagram the path runs between: the hooks (by Hook value), the local process, the two
// routing decisions and the wire's ends. A port is where an edge meets it and the way it leaves.
enum Node : size_t { kLocal = kNumHooks, kRoute1, kRoute2, kIn, kOut, kNumNodes };
enum Dir { kRight, kDown, kLeft, kUp };
constexpr Pt kStep[] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
struct Port {
  Pt at;
  Dir dir;
};
struct NodeBox {
  Rect r;
  std::vector<Port> ports;
};

std::vector<Port> box_ports(const Rect& r) {
  // Sides at the hook name's height, so boxes of one row of any height line up.
  return {{{r.r(), r.y + 11}, kRight}, {{r.x, r.y + 11}, kLeft}, {{r.x + r.w / 2, r.y}, kUp}, {{r.x + r.w / 2, r.b()}, kDown}};
}

struct Segment {
  Pt a, b;  // a axis-parallel stretch
};

// How far two axis-parallel stretches run over each other.
double overlap(const Segment& s, const Segment& t) {
  if (s.a.y == s.b.y && t.a.y == t.b.y && s.a.y == t.a.y)
    return std::max(
        0.0, std::min(std::max(s.a.x, s.b.x), std::max(t.a.x, t.b.x)) - std::max(std::min(s.a.x, s.b.x), std::min(t.a.x, t.b.x)));
  if (s.a.x == s.b.x && t.a.x == t.b.x && s.a.x == t.a.x)
    return std::max(
        0.0, std::min(std::max(s.a.y, s.b.y), std::max(t.a.y, t.b.y)) - std::max(std::min(s.a.y, s.b.y), std::min(t.a.y, t.b.y)));
  return 0;
}

// An orthogonal route from a port of `from` to a port of `to` that keeps kClear off every obstacle
// (boxes, routing circles and labels, themselves included): Dijkstra over the grid of the
// obstacles' edges, each bend and each stretch the path already used costing extra, so it stays
// simple and does not run back over itself. Returns the points, port to port.
std::vector<Pt> route(const NodeBox& from, const NodeBox& to, const std::vector<Rect>& obstacles, const Rect& area,
                      std::vector<Segment>& used) {
  std::vector<Rect> obs;
  for (auto& o : obstacles) obs.push_back(o.grown(kClear));
  auto outer = [](const Port& p) { return Pt{p.at.x + kStep[p.dir].x * kClear, p.at.y + kStep[p.dir].y * kClear}; };
  std::vector<double> xs{area.x, area.r()}, ys{area.y, area.b()};
  for (auto& o : obs) {
    xs.insert(xs.end(), {o.x, o.r()});
    ys.insert(ys.end(), {o.y, o.b()});
  }
  for (auto* n : {&from, &to})
    for (auto& p : n->ports) {
      xs.push_back(outer(p).x);
      ys.push_back(outer(p).y);
    }
  auto settle = [&](std::vector<double>& v, double lo, double hi) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    size_t n = v.size();
    for (size_t i = 0; i + 1 < n; ++i) v.push_back((v[i] + v[i + 1]) / 2);  // channel middles
    std::erase_if(v, [&](double d) { return d < lo || d > hi; });
    std::sort(v.begin(), v.end());
  };
  settle(xs, area.x, area.r());
  settle(ys, area.y, area.b());
  const size_t nx = xs.size(), ny = ys.size();
  auto at = [&](size_t i, size_t j) { return Pt{xs[i], ys[j]}; };
  auto free_pt = [&](Pt p) { return std::none_of(obs.begin(), obs.end(), [&](const Rect& o) { return o.inside(p); }); };
  auto free_seg = [&](Pt a, Pt b) {
    double x0 = std::min(a.x, b.x), x1 = std::max(a.x, b.x), y0 = std::min(a.y, b.y), y1 = std::max(a.y, b.y);
    for (auto& o : obs) {
      bool hit = a.y == b.y ? (a.y > o.y && a.y < o.b() && x0 < o.r() && x1 > o.x)
                            : (a.x > o.x && a.x < o.r() && y0 < o.b() && y1 > o.y);
      if (hit) return false;
    }
    return true;
  };
  auto index = [&](Pt p) {
    size_t i = size_t(std::lower_bound(xs.begin(), xs.end(), p.x) - xs.begin());
    size_t j = size_t(std::lower_bound(ys.begin(), ys.end(), p.y) - ys.begin());
    return j * nx + i;
  };
  constexpr double kBend = 24, kInf = 1e18;
  std::vector<double> cost(nx * ny * 4, kInf);
  std::vector<size_t> prev(nx * ny * 4, SIZE_MAX);
  using Item = std::pair<double, size_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> q;
  for (auto& p : from.ports) {
    size_t s = index(outer(p)) * 4 + size_t(p.dir);
    if (cost[s] > 0) q.push({cost[s] = 0, s});
  }
  while (!q.empty()) {
    auto [c, s] = q.top();
    q.pop();
    if (c > cost[s]) continue;
    size_t cell = s / 4, i = cell % nx, j = cell / nx;
    for (int d = 0; d < 4; ++d) {
      long ni = long(i) + long(kStep[d].x), nj = long(j) + long(kStep[d].y);
      if (ni < 0 || nj < 0 || ni >= long(nx) || nj >= long(ny)) continue;
      Pt a = at(i, j), b = at(size_t(ni), size_t(nj));
      if (!free_pt(b) || !free_seg(a, b)) continue;
      double len = std::abs(a.x - b.x) + std::abs(a.y - b.y);
      double again = 0;
      for (auto& u : used) again += overlap(u, {a, b});
      double nc = c + len + (size_t(d) != s % 4 ? kBend : 0) + 3 * again;
      size_t t = (size_t(nj) * nx + size_t(ni)) * 4 + size_t(d);
      if (nc < cost[t]) {
        cost[t] = nc;
        prev[t] = s;
        q.push({nc, t});
      }
    }
  }
  // The best arrival: into a port of `to`, heading inwards (or paying for the turn).
  size_t best = SIZE_MAX;
  double best_cost = kInf;
  const Port* best_port = nullptr;
  for (auto& p : to.ports)
    for (size_t d = 0; d < 4; ++d) {
      size_t s = index(outer(p)) * 4 + d;
      double c = cost[s] + (d == (size_t(p.dir) + 2) % 4 ? 0 : kBend);
      if (cost[s] < kInf && c < best_cost) best = s, best_cost = c, best_port = &p;
    }
  if (best == SIZE_MAX) return {};  // boxed in: no line is better than a false one
  std::vector<Pt> pts{best_port->at};
  for (size_t s = best; s != SIZE_MAX; s = prev[s]) {
    Pt p = at(s / 4 % nx, s / 4 / nx);
    if (pts.back() != p) pts.push_back(p);
  }
  for (auto& p : from.ports)
    if (outer(p) == pts.back()) {
      pts.push_back(p.at);
      break;
    }
  std::reverse(pts.begin(), pts.end());
  for (size_t k = 0; k + 1 < pts.size(); ++k) used.push_back({pts[k], pts[k + 1]});
  // Collinear points go: one segment per straight stretch.
  std::vector<Pt> out;
  for (auto& p : pts) {
    if (out.size() >= 2) {
      Pt a = out[out.size() - 2], b = out.back();
      if ((a.x == b.x && b.x == p.x) || (a.y == b.y && b.y == p.y)) out.pop_back();
    }
    out.push_back(p);
  }
  return out;
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
    // Drawn blue, so without an "nft" prefix; the row's tooltip names the table.
    std::string label = n.nat ? n.chain : fmt::format("{} {}", n.chain, n.priority);
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

// The outcome in two parts, where it ended and why, so a long one can break between them.
std::pair<std::string, std::string> outcome_parts(const nf::Outcome& o) {
  std::string s = fmt::format("=> {}", nf::outcome_name(o.kind));
  if (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged) s += " out " + o.out;
  s += ": " + o.after.t.str();
  if (o.dnat) s += " dnat";
  if (o.snat) s += " snat";
  std::string why;
  if (!o.where.empty() && o.reason != DropReason::None) why = fmt::format(" ({} at {})", drop_reason_name(o.reason), o.where);
  return {s, why};
}

std::string outcome_line(const nf::Outcome& o) {
  auto [s, why] = outcome_parts(o);
  return s + why;
}

constexpr double kStepW = kPanelW - 20;  // the step list's lines, monospace

// A long chain name (nftables' `endpoint-6UVIXZI4-demo/web/tcp/http__10.244.1.5/8080`) in the step
// list: shortened, the full name in the piece's hover.
std::string short_chain(std::string_view c) { return fit(c, 26 * 0.602 * kFont, kFont, Font::Mono); }

struct Piece {
  std::string shown, hover;
};

// One visit as text pieces: what is shown, and the hover (the rule, the full chain names).
std::vector<Piece> step_pieces(const Visit& v) {
  std::vector<Piece> out;
  std::string_view walk_table;
  auto sep = [&] { return out.empty() ? "" : "; "; };
  // Before and after as two pieces, so a long rewrite breaks at its arrow rather than being cut.
  auto rewrite = [&](std::string_view what, const TraceEvent& e) {
    out.push_back({fmt::format("{}{} {}", sep(), what, e.before.str()), e.detail});
    out.push_back({fmt::format(" → {}", e.after.str()), e.detail});
  };
  for (auto* e : v.events) {
    switch (e->kind) {
      case TraceKind::Rule:
      case TraceKind::Return:
      case TraceKind::Policy: {
        bool cont = walk_table == e->table && !out.empty();
        bool named = !(e->target.empty() || e->target.starts_with("KUBE-") || e->target.starts_with("NP-"));
        std::string where = e->kind == TraceKind::Rule ? std::to_string(e->rulenum) : std::string(trace_kind_name(e->kind));
        std::string target = named ? " " + e->target : "";
        // "goto endpoint-…": nftables' verdicts name chains too.
        if (auto sp = target.rfind(' '); named && sp > 0) target = target.substr(0, sp + 1) + short_chain(target.substr(sp + 1));
        std::string shown = fmt::format("{}{}{}:{}{}", cont ? " → " : sep(), cont ? "" : std::string(e->table) + " ",
                                        short_chain(e->chain), where, target);
        std::string id = fmt::format("{}:{}:{}:{}", e->table, e->chain, trace_kind_name(e->kind), e->rulenum);
        out.push_back({shown, e->detail.empty() ? id : id + (named ? " " + e->target : "") + "\n" + e->detail});
        walk_table = e->table;
        break;
      }
      case TraceKind::Nat:
        walk_table = {};
        if (e->rewritten) rewrite(e->target, *e);
        else out.push_back({std::string(sep()) + "nat skipped: conntrack binding", e->detail});
        break;
      case TraceKind::Conntrack:
        walk_table = {};
        out.push_back({fmt::format("{}ct {}", sep(), e->target.empty() ? "seen" : e->target), e->detail});
        break;
      case TraceKind::Ipvs:
        walk_table = {};
        if (e->rewritten) rewrite("IPVS", *e);
        else if (!e->target.empty()) out.push_back({fmt::format("{}IPVS {}", sep(), e->target), e->detail});
        break;
      case TraceKind::Verdict:
        walk_table = {};
        out.push_back({fmt::format("{}{}", sep(), e->target.empty() ? e->detail : e->target), e->detail});
        break;
      default: break;  // routing notes show as the path's turns, not in the step list
    }
  }
  return out;
}

// Pieces into lines no wider than width (monospace at kFont), each piece whole; a piece wider
// than a line on its own is shortened, its full text moving into the hover.
std::vector<std::vector<Piece>> wrap(std::vector<Piece> pieces, double width) {
  std::vector<std::vector<Piece>> lines(1);
  double len = 0;
  for (auto& p : pieces) {
    double w = text_width(p.shown, kFont, Font::Mono);
    if (len + w > width && len > 0) {
      lines.emplace_back();
      len = 0;
    }
    if (w > width) {
      p.hover = p.shown + "\n" + p.hover;
      p.shown = fit(p.shown, width, kFont, Font::Mono);
      w = text_width(p.shown, kFont, Font::Mono);
    }
    lines.back().push_back(std::move(p));
    len += w;
  }
  return lines;
}

// A text drawn fitted to max_w, with the full text on hover when it had to be shortened.
std::string text_el(std::string_view cls, double x, double y, std::string_view text, double max_w, double size, Font f,
                    std::string_view anchor = "") {
  std::string shown = fit(text, max_w, size, f);
  return fmt::format("<text class=\"{}\" x=\"{}\" y=\"{}\"{}>{}{}</text>", cls, x, y,
                     anchor.empty() ? "" : fmt::format(" text-anchor=\"{}\"", anchor), xml_escape(shown),
                     shown == text ? "" : "<title>" + xml_escape(text) + "</title>");
}

// The diagram of one panel, placed: computed once, then drawn (and its path routed) from it.
struct Layout {
  std::array<NodeBox, kNumNodes> nodes;
  std::array<std::vector<TableRow>, kNumHooks> rows;
  std::vector<Rect> labels;  // text outside the boxes, which the path must not run over
  Rect area;                 // where the path may run
  std::string in_label, out_label;
};

Rect label_rect(double x, double baseline, std::string_view text, double size, Font f, bool end_anchor = false) {
  double w = text_width(text, size, f);
  return {end_anchor ? x - w : x, baseline - size, w, size * 1.3};
}

Layout layout(const Panel& pn, const nf::Outcome& o, const std::vector<NftRow>& nft) {
  Layout L;
  double h[kNumHooks];
  for (auto& s : kSlots) {
    L.rows[size_t(s.hook)] = rows_of(s.hook, pn.ipvs, nft);
    h[size_t(s.hook)] = kHeadH + double(L.rows[size_t(s.hook)].size()) * kRowH + 4;
  }
  const double top = 24, row0 = top + 24 + 28;
  const double row1 = row0 + std::max(h[size_t(Hook::LocalIn)], h[size_t(Hook::LocalOut)]) + 40;
  double low = 0;
  for (auto& s : kSlots) {
    Rect r{col_x(s.col), s.row == 0 ? row0 : row1, kBoxW, h[size_t(s.hook)]};
    L.nodes[size_t(s.hook)] = {r, box_ports(r)};
    low = std::max(low, r.b());
  }
  Rect proc{col_x(1), top, col_x(2) + kBoxW - col_x(1), 24};
  L.nodes[kLocal] = {proc, {{{col_x(1) + kBoxW / 2, proc.b()}, kDown}, {{col_x(2) + kBoxW / 2, proc.b()}, kDown}}};
  auto circle = [](Pt c) {
    constexpr double r = 6;
    return NodeBox{{c.x - r, c.y - r, 2 * r, 2 * r},
                   {{{c.x + r, c.y}, kRight}, {{c.x - r, c.y}, kLeft}, {{c.x, c.y - r}, kUp}, {{c.x, c.y + r}, kDown}}};
  };
  L.nodes[kRoute1] = circle({col_x(0) + kBoxW + kGap / 2, row1 + 11});
  L.nodes[kRoute2] = circle({col_x(2) + kBoxW / 2, row1 - 20});
  const Rect& pre = L.nodes[size_t(Hook::PreRouting)].r;
  const Rect& post = L.nodes[size_t(Hook::PostRouting)].r;
  L.nodes[kIn] = {{2, pre.y + 11, 0, 0}, {{{2, pre.y + 11}, kRight}}};
  L.nodes[kOut] = {{kPanelW - 2, post.y + 11, 0, 0}, {{{kPanelW - 2, post.y + 11}, kLeft}}};
  bool fwd = o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged;
  L.in_label = fit(pn.in.empty() ? "in" : "in " + pn.in, kBoxW, kFont, Font::Sans);
  L.out_label = fit(fwd ? "out " + o.out : "out", kBoxW, kFont, Font::Sans);
  L.labels.push_back(label_rect(10, 14, pn.mode + " mode", kModeFont, Font::Bold));
  L.labels.push_back(label_rect(2, pre.y - 6, L.in_label, kFont, Font::Sans));
  L.labels.push_back(label_rect(post.r(), low + 14, L.out_label, kFont, Font::Sans, true));
  L.area = {0, 0, kPanelW, low + 30};
  return L;
}

struct PanelSvg {
  std::string body;
  double height = 0;
};

PanelSvg panel_svg(const Panel& pn) {
  PanelSvg out;
  std::string& s = out.body;
  const nf::Outcome& o = pn.outcomes.at(pn.shown);
  auto visits = visits_of(o);
  std::map<int, std::vector<size_t>> order;  // hook -> visit numbers (1-based)
  for (size_t i = 0; i < visits.size(); ++i) order[int(visits[i].hook)].push_back(i + 1);

  // Only the base chains of tables that see this packet's family; without the ruleset (a report
  // read from JSON), the ones the trace shows.
  std::vector<NftRow> nft;
  for (auto& n : pn.nft)
    if (n.table.starts_with("inet ") || n.table.starts_with(o.before.src.is_v4() ? "ip " : "ip6 ")) nft.push_back(n);
  if (pn.nft.empty()) nft = nft_rows_seen(visits);
  const Layout L = layout(pn, o, nft);

  // The nodes the path runs through: where it entered, each visit with the routing decision
  // before INPUT / FORWARD and after OUTPUT, and where it ended.
  std::vector<size_t> seq{!visits.empty() && visits.front().hook == Hook::LocalOut ? size_t(kLocal) : size_t(kIn)};
  for (auto& v : visits) {
    if (seq.back() == size_t(Hook::PreRouting) && (v.hook == Hook::LocalIn || v.hook == Hook::Forward)) seq.push_back(kRoute1);
    if (seq.back() == size_t(Hook::LocalOut) && v.hook == Hook::PostRouting) seq.push_back(kRoute2);
    seq.push_back(size_t(v.hook));
  }
  bool fwd = o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Bridged;
  if (fwd) seq.push_back(kOut);
  else if (o.kind == nf::OutcomeKind::Delivered) seq.push_back(kLocal);
  size_t ended = fwd || o.kind == nf::OutcomeKind::Delivered || visits.empty() ? SIZE_MAX : seq.back();

  s += fmt::format("<rect class=\"frame\" x=\"0\" y=\"0\" width=\"{}\" height=\"@H@\"/>\n", kPanelW);
  s += text_el("mode", 10, 14, pn.mode + " mode", kPanelW - 20, kModeFont, Font::Bold) + "\n";
  const Rect& proc = L.nodes[kLocal].r;
  s += fmt::format(
      "<rect class=\"proc\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>{}\n", proc.x, proc.y, proc.w, proc.h,
      text_el("proctext", proc.x + proc.w / 2, proc.y + 16, "local process", proc.w - 8, kFont, Font::Sans, "middle"));
  s += text_el("end", L.labels[1].x, L.labels[1].y + kFont, L.in_label, kBoxW, kFont, Font::Sans) +
       text_el("end", L.labels[2].r(), L.labels[2].y + kFont, L.out_label, kBoxW, kFont, Font::Sans, "end") + "\n";
  for (size_t r : {size_t(kRoute1), size_t(kRoute2)}) {
    const Rect& c = L.nodes[r].r;
    bool on = std::find(seq.begin(), seq.end(), r) != seq.end();
    s += fmt::format("<g class=\"route{}\"><circle cx=\"{}\" cy=\"{}\" r=\"{}\"/><title>routing decision</title></g>\n",
                     on ? " visited" : "", c.x + c.w / 2, c.y + c.h / 2, c.w / 2);
  }
  for (auto& sl : kSlots) {
    const Rect& b = L.nodes[size_t(sl.hook)].r;
    const auto& rows = L.rows[size_t(sl.hook)];
    auto it = order.find(int(sl.hook));
    bool seen = it != order.end();
    std::string nums;
    if (seen)
      for (size_t n : it->second) nums += (nums.empty() ? "" : ",") + std::to_string(n);
    s +=
        fmt::format("<g class=\"hook{}{}\" data-hook=\"{}\"{}>\n", seen ? " visited" : "", ended == size_t(sl.hook) ? " end" : "",
                    hook_name(sl.hook), seen ? fmt::format(" data-order=\"{}\"", nums) : "");
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>\n", b.x, b.y, b.w, b.h);
    double badge_w = seen ? std::max(18.0, text_width(nums, 10, Font::Bold) + 8) : 0;
    s += text_el("hookname", b.x + 8, b.y + 15, hook_name(sl.hook), kBoxW - 16 - badge_w, kHookFont, Font::Bold) + "\n";
    if (seen)
      s += fmt::format(
          "<rect class=\"badge\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\" rx=\"8\"/><text class=\"badgenum\" x=\"{}\" "
          "y=\"{}\" text-anchor=\"middle\">{}</text>\n",
          b.r() - 4 - badge_w, b.y + 3, badge_w, b.r() - 4 - badge_w / 2, b.y + 15, nums);
    for (size_t r = 0; r < rows.size(); ++r) {
      bool hit = false;
      if (seen)
        for (size_t n : it->second) hit |= visited_table(visits[n - 1], rows[r]);
      bool nftrow = !rows[r].chain.empty();
      double ry = b.y + kHeadH + double(r) * kRowH;
      std::string shown = fit(rows[r].label, kBoxW - 16, kFont, Font::Sans);
      std::string hover = nftrow ? fmt::format("nftables {} chain {}", rows[r].table, rows[r].chain) : "";
      if (shown != rows[r].label && !nftrow) hover = rows[r].label;
      s += fmt::format(
          "<g class=\"table{}{}\" data-table=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>"
          "<text class=\"row\" x=\"{}\" y=\"{}\">{}</text>{}</g>\n",
          hit ? " hit" : "", nftrow ? " nft" : "", xml_escape(rows[r].table), b.x + 4, ry, kBoxW - 8, kRowH - 1, b.x + 8, ry + 10,
          xml_escape(shown), hover.empty() ? "" : "<title>" + xml_escape(hover) + "</title>");
    }
    s += "</g>\n";
  }

  // The path, edge by edge, around every box and label.
  std::vector<Rect> obstacles = L.labels;
  for (size_t n = 0; n < kIn; ++n) obstacles.push_back(L.nodes[n].r);
  std::vector<Segment> used;
  int unrouted = 0;  // edges with no way around the obstacles: left out, and said so for the tests
  for (size_t k = 0; k + 1 < seq.size(); ++k) {
    auto pts = route(L.nodes[seq[k]], L.nodes[seq[k + 1]], obstacles, L.area, used);
    if (pts.empty()) {
      ++unrouted;
      continue;
    }
    std::string poly;
    for (auto& p : pts) poly += fmt::format("{},{} ", p.x, p.y);
    auto name = [](size_t n) -> std::string {
      constexpr const char* other[] = {"local", "route", "route", "in", "out"};
      return n < kNumHooks ? std::string(hook_name(Hook(n))) : other[n - kNumHooks];
    };
    s += fmt::format("<polyline class=\"path\" data-from=\"{}\" data-to=\"{}\" points=\"{}\" marker-end=\"url(#arrow)\"/>\n",
                     name(seq[k]), name(seq[k + 1]), poly);
  }

  // The steps, numbered as the badges: chains and rule numbers (hover: the rule), rewrites, conntrack.
  double y = L.area.b() + 16;
  for (size_t i = 0; i < visits.size(); ++i) {
    auto pieces = step_pieces(visits[i]);
    std::string num = fmt::format("{} {} ", i + 1, hook_name(visits[i].hook));
    pieces.insert(pieces.begin(), {num, ""});
    auto lines = wrap(std::move(pieces), kStepW);
    for (size_t l = 0; l < lines.size(); ++l) {
      s += fmt::format("<text class=\"step\" data-hook=\"{}\" data-order=\"{}\" x=\"10\" y=\"{}\">", hook_name(visits[i].hook),
                       i + 1, y);
      for (size_t k = 0; k < lines[l].size(); ++k) {
        auto& [shown, hover] = lines[l][k];
        if (l == 0 && k == 0) s += fmt::format("<tspan class=\"stepnum\">{}</tspan>", xml_escape(shown));
        else s += fmt::format("<tspan>{}<title>{}</title></tspan>", xml_escape(shown), xml_escape(hover));
      }
      s += "</text>\n";
      y += 14;
    }
  }
  y += 6;
  auto [where, why] = outcome_parts(o);
  for (auto& line : wrap({{where, ""}, {why, ""}}, kStepW)) {
    std::string text;
    for (auto& p : line) text += p.shown;
    s += text_el(fmt::format("outcome {}", nf::outcome_name(o.kind)), 10, y, text, kStepW, kFont, Font::Mono) + "\n";
    y += 14;
  }
  y += 2;
  if (pn.outcomes.size() > 1) {
    for (size_t k = 0; k < pn.outcomes.size(); ++k) {
      auto& oc = pn.outcomes[k];
      s += text_el(k == pn.shown ? "alt shown" : "alt", 10, y,
                   fmt::format("{} outcome {}/{} p={:.4f} {}", k == pn.shown ? "▶" : " ", k + 1, pn.outcomes.size(),
                               oc.probability, outcome_line(oc)),
                   kStepW, kFont, Font::Mono) +
           "\n";
      y += 14;
    }
  }
  out.height = y + 6;
  if (unrouted > 0)
    s.insert(0, fmt::format("<desc class=\"unrouted\">{} edges of the path could not be drawn</desc>\n", unrouted));
  auto at = s.find("@H@");
  s.replace(at, 3, fmt::format("{}", out.height));
  return out;
}

constexpr const char* kStyle =
    "text{font:11px sans-serif;fill:#222} .mode{font:bold 13px sans-serif} .title{font:bold 14px sans-serif}"
    " .legend{fill:#555} .frame{fill:none;stroke:#eee}"
    " .hook>rect{fill:#f7f7f7;stroke:#bbb} .hook:not(.visited) text{fill:#999}"
    " .hook.visited>rect{fill:#fff4e6;stroke:#d9480f;stroke-width:2} .hook.end>rect{stroke:#c92a2a;stroke-width:3}"
    " .hookname{font-weight:bold} .table rect{fill:#fff;stroke:none} .table.hit rect{fill:#ffd8a8} .table.nft text{fill:#1864ab}"
    " .proc{fill:#e7f5ff;stroke:#1c7ed6} .route circle{fill:#f1f3f5;stroke:#adb5bd} .route.visited "
    "circle{fill:#d9480f;stroke:none}"
    " .end{fill:#868e96} .hook>rect.badge{fill:#d9480f;stroke:none} .badgenum{fill:#fff;font:bold 10px sans-serif}"
    " .path{fill:none;stroke:#d9480f;stroke-width:2.5;stroke-opacity:.8;stroke-linejoin:round}"
    " .step{font:11px monospace} .stepnum{font-weight:bold;fill:#d9480f}"
    " .outcome{font:bold 11px monospace} .outcome.dropped,.outcome.rejected{fill:#c92a2a}"
    " .alt{font:11px monospace;fill:#555} .alt.shown{fill:#222;font-weight:bold}";

// One line saying what the marks mean, naming only what this picture draws (dot draws no badges,
// shading or routing circles: its edges carry the visit numbers).
std::string legend(std::span<const Panel> panels, bool dot = false) {
  bool ipvs = false, nft = false;
  for (auto& pn : panels) {
    ipvs |= pn.ipvs;
    nft |= !pn.nft.empty() || pn.mode == "nftables";
  }
  std::string rows =
      fmt::format("rows: tables in run order, with hook priorities{}", ipvs ? " (IPVS 98/99: ip_vs's two functions there)" : "");
  if (dot) return fmt::format("Orange: the packet's path, numbered in visit order · {} · grey: the hooks' other ways", rows);
  return fmt::format(
      "Orange: the packet's path, badges its visit order · {} · shaded: acted · grey: not visited{} · ●: "
      "routing decision",
      rows, nft ? " · blue: nftables base chains" : "");
}

}  // namespace

std::string render_svg(const std::vector<Picture>& pics) {
  std::string body;
  double y = 8, width = kPanelW;
  for (size_t i = 0; i < pics.size(); ++i) {
    auto& pic = pics[i];
    std::string leg = legend(pic.panels);
    double panels_w = double(pic.panels.size()) * (kPanelW + kPanelGap) - kPanelGap;
    double w = std::max({panels_w, text_width(leg, kFont, Font::Sans) + 20, kPanelW});
    width = std::max(width, w);
    body += fmt::format("<g class=\"picture\" data-index=\"{}\" transform=\"translate(0,{})\">\n", i + 1, y);
    body += text_el("title", 10, 16, pic.title, w - 20, kTitleFont, Font::Bold) + "\n";
    body += text_el("legend", 10, 32, leg, w - 20, kFont, Font::Sans) + "\n";
    double h = 0;
    for (size_t k = 0; k < pic.panels.size(); ++k) {
      auto ps = panel_svg(pic.panels[k]);
      body += fmt::format("<g class=\"panel\" data-mode=\"{}\" transform=\"translate({},{})\">\n{}</g>\n",
                          xml_escape(pic.panels[k].mode), double(k) * (kPanelW + kPanelGap), 42, ps.body);
      h = std::max(h, ps.height);
    }
    body += "</g>\n";
    y += 42 + h + 24;
  }
  // Wider than a 1400-pixel window (three modes side by side): drawn scaled to fit, the viewBox
  // keeping the geometry; in a page, max-width shrinks it further to the column.
  width = std::ceil(width);
  double scale = std::min(1.0, kMaxWidth / width);
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "style=\"max-width:100%;height:auto\">\n"
      "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"8\" refY=\"5\" markerWidth=\"5\" markerHeight=\"5\" "
      "orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#d9480f\"/></marker></defs>\n"
      "<style>{}</style>\n{}</svg>\n",
      std::ceil(width * scale), std::ceil(y * scale), width, y, kStyle, body);
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
      "numbers its visits. Hover a chain in the step list for the rule, a shortened name for the whole of it.</p>\n{1}\n{2}"
      "</body></html>\n",
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
          "digraph svcpath_{} {{\n  label=\"{} ({} mode)\\n{}\";\n  rankdir=LR;\n  node [shape=record, "
          "fontname=\"sans-serif\"];\n",
          g, xml_escape(pic.title), pn.mode, xml_escape(legend({&pn, 1}, true)));
      for (auto& sl : kSlots) {
        std::string label = std::string(hook_name(sl.hook));
        for (auto& r : rows_of(sl.hook, pn.ipvs, pn.nft)) label += "|" + std::string(r.chain.empty() ? "" : "nft ") + r.label;
        o += fmt::format("  {} [label=\"{{{}}}\"];\n", hook_name(sl.hook), label);
      }
      o += "  in [shape=plaintext]; out [shape=plaintext]; local [label=\"local process\", shape=box];\n";
      o += "  in -> PREROUTING [color=gray]; PREROUTING -> INPUT [color=gray]; PREROUTING -> FORWARD [color=gray];\n"
           "  INPUT -> local [color=gray]; FORWARD -> POSTROUTING [color=gray]; local -> OUTPUT [color=gray];\n"
           "  OUTPUT -> POSTROUTING [color=gray]; POSTROUTING -> out [color=gray];\n";
      auto vs = visits_of(oc);
      std::string prev = vs.empty() || vs.front().hook != Hook::LocalOut ? "in" : "local";
      for (size_t i = 0; i < vs.size(); ++i) {
        std::string label;
        for (auto& p : step_pieces(vs[i])) label += p.shown;
        std::string name(hook_name(vs[i].hook));
        o += fmt::format("  {} -> {} [color=\"#d9480f\", penwidth=3, label=\"{}. {}\"];\n", prev, name, i + 1,
                         xml_escape(fit(label, 120 * 0.602 * kFont, kFont, Font::Mono)));
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
