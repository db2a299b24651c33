#include "cli/render.hpp"

#include "kube/netpol/netpol.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace svcpath::cli {

namespace {

struct Colors {
  bool on;
  std::string c(const char* code, std::string_view s) const {
    if (!on) return std::string(s);
    return fmt::format("\x1b[{}m{}\x1b[0m", code, s);
  }
  std::string table(std::string_view s) const { return c("36", s); }    // cyan
  std::string chain(std::string_view s) const { return c("1;34", s); }  // bold blue
  std::string dim(std::string_view s) const { return c("2", s); }
  std::string verdict(std::string_view s) const {
    if (s == "ACCEPT" || s == "delivered" || s == "forwarded" || s == "bridged") return c("32", s);
    if (s == "DROP" || s == "REJECT" || s == "dropped" || s == "rejected") return c("1;31", s);
    if (s == "DNAT" || s == "SNAT" || s == "MASQUERADE" || s == "un-DNAT" || s == "un-SNAT") return c("35", s);
    return c("33", s);
  }
};

std::string tuple_str(const FiveTuple& t) { return t.str(); }

}  // namespace

std::string endpoint(const Addr& a, uint16_t port, uint8_t proto) { return FiveTuple::endpoint(a, port, proto); }

namespace {

// --enumerate's overview before the full traces: one row per outcome, what a reader compares first.
std::string summary_table(const std::vector<nf::Outcome>& outcomes) {
  std::vector<std::array<std::string, 5>> rows{{"#", "outcome", "backend", "masquerade", "probability"}};
  for (size_t n = 0; n < outcomes.size(); ++n) {
    const nf::Outcome& oc = outcomes[n];
    const FiveTuple& t = oc.after.t;
    std::string what(nf::outcome_name(oc.kind));
    if (oc.kind == nf::OutcomeKind::Forwarded || oc.kind == nf::OutcomeKind::Bridged) what += " out " + oc.out;
    else if (!oc.where.empty() && oc.kind != nf::OutcomeKind::Delivered) what += " at " + oc.where;
    rows.push_back({std::to_string(n + 1), what, oc.dnat ? endpoint(t.dst, t.dport, t.proto) : "-", oc.snat ? t.src.str() : "-",
                    fmt::format("{:.6f}", oc.probability)});
  }
  std::array<size_t, 5> w{};
  for (auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
  std::string o;
  for (auto& r : rows)
    o += fmt::format("  {:>{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", r[0], w[0], r[1], w[1], r[2], w[2], r[3], w[3], r[4]);
  return o;
}

}  // namespace

std::string render_text(int index, const PacketSpec& spec, const Packet& pkt, const std::string& in,
                        const std::vector<nf::Outcome>& outcomes, bool enumerated, const TextStyle& st) {
  Colors k{st.color};
  std::string o;
  std::string flags = pkt.t.proto == proto::TCP ? " [" + tcp_flags_letters(pkt.tcp_flags) + "]" : "";
  o += fmt::format("packet {}: {}{} {}\n", index, tuple_str(pkt.t), flags,
                   spec.local ? "(local process, OUTPUT path)" : fmt::format("(in {})", in));
  if (enumerated) o += summary_table(outcomes);
  for (size_t n = 0; n < outcomes.size(); ++n) {
    const nf::Outcome& oc = outcomes[n];
    if (enumerated) o += fmt::format("  outcome {}/{}  p={:.6f}\n", n + 1, outcomes.size(), oc.probability);
    std::string ind = enumerated ? "    " : "  ";
    for (auto& e : oc.trace) {
      // The answer's steps (a REJECT's reset or ICMP error) are marked where the hook is shown.
      std::string hook = fmt::format("{:<11}", e.answer ? fmt::format("{}<", hook_name(e.hook)) : std::string(hook_name(e.hook)));
      switch (e.kind) {
        case TraceKind::Rule:
        case TraceKind::Return:
        case TraceKind::Policy: {
          std::string id = fmt::format("{}:{}:{}:{}", e.table, e.chain, trace_kind_name(e.kind), e.rulenum);
          std::string shown = fmt::format("{}:{}:{}:{}", k.table(e.table), k.chain(e.chain), trace_kind_name(e.kind), e.rulenum);
          size_t pad = id.size() < 52 ? 52 - id.size() : 1;
          o += fmt::format("{}{} {}{}{}\n", ind, k.dim(hook), shown, std::string(pad, ' '),
                           e.target.empty() ? "" : k.verdict(e.target));
          if (st.verbose && !e.detail.empty()) o += fmt::format("{}{}   {}\n", ind, std::string(11, ' '), k.dim(e.detail));
          if (!e.assumed.empty()) o += fmt::format("{}{}   assumed: {}\n", ind, std::string(11, ' '), e.assumed);
          break;
        }
        case TraceKind::Nat:
          if (e.rewritten)
            o += fmt::format("{}{} {} {}: {} => {}\n", ind, k.dim(hook), k.table("nat"), k.verdict(e.target), tuple_str(e.before),
                             tuple_str(e.after));
          else o += fmt::format("{}{} {}: {}\n", ind, k.dim(hook), k.table("nat"), k.dim(e.detail));
          break;
        default:
          o += fmt::format("{}{} {}{} {}\n", ind, k.dim(hook), k.table(e.table),
                           e.target.empty() ? "" : ": " + k.verdict(e.target), e.detail);
          if (e.rewritten)
            o += fmt::format("{}{} {}{} => {}\n", ind, std::string(11, ' '), std::string(e.table.size() + 2, ' '),
                             tuple_str(e.before), tuple_str(e.after));
      }
    }
    std::string verdict(nf::outcome_name(oc.kind));
    std::string where;
    if (oc.kind == nf::OutcomeKind::Forwarded || oc.kind == nf::OutcomeKind::Bridged) {
      where = " out " + oc.out;
      if (oc.after.phys_out >= 0 && oc.out != oc.port) where += " (port " + oc.port + ")";
    } else if (oc.kind == nf::OutcomeKind::Delivered) where = " to a local socket";
    std::string extra;
    if (oc.dnat) extra += " dnat";
    if (oc.snat) extra += " snat";
    if (oc.kind == nf::OutcomeKind::Dropped || oc.kind == nf::OutcomeKind::Rejected || oc.kind == nf::OutcomeKind::Queued) {
      extra += fmt::format(" ({}{}{})", drop_reason_name(oc.reason), oc.where.empty() ? "" : " at " + oc.where,
                           oc.reject_with.empty() ? "" : ", " + oc.reject_with);
    }
    o += fmt::format("{}=> {}{}: {}{}\n", ind, k.verdict(verdict), where, tuple_str(oc.after.t), extra);
    if (const auto& a = oc.answer) {
      std::string fate = a->kind == nf::OutcomeKind::Forwarded   ? "left out " + a->out
                         : a->kind == nf::OutcomeKind::Delivered ? std::string("delivered to a local socket")
                                                                 : fmt::format("dropped ({}{})", drop_reason_name(a->reason),
                                                                               a->where.empty() ? "" : " at " + a->where);
      const FiveTuple& t = a->after.t;
      std::string shown = a->after.is_icmp()
                              ? fmt::format("{} -> {} about {}", t.src.str(), t.dst.str(), tuple_str(a->after.inner))
                              : tuple_str(t);
      o += fmt::format("{}   answer: {} {}: {}\n", ind, a->what, shown, k.verdict(fate));
    }
    if (auto line = nf::netpol::story_line(nf::netpol::story(oc.trace, oc.before)); !line.empty())
      o += fmt::format("{}   policy: {}\n", ind, line);
  }
  return o;
}

nlohmann::json packet_json(const PacketSpec& spec, const Packet& pkt, const std::string& in) {
  nlohmann::json j;
  j["spec"] = spec.text;
  j["proto"] = proto::name(pkt.t.proto);
  j["src"] = endpoint(pkt.t.src, pkt.t.sport, pkt.t.proto);
  j["dst"] = endpoint(pkt.t.dst, pkt.t.dport, pkt.t.proto);
  if (pkt.t.proto == proto::TCP) j["flags"] = tcp_flags_letters(pkt.tcp_flags);
  if (pkt.is_icmp()) {
    j["icmp_type"] = pkt.icmp_type();
    j["icmp_code"] = pkt.icmp_code();
  }
  j["local"] = spec.local;
  if (!spec.local) j["in"] = in;
  return j;
}

nlohmann::json outcome_json(const nf::Outcome& o) {
  nlohmann::json j;
  j["probability"] = o.probability;
  j["verdict"] = nf::outcome_name(o.kind);
  j["src"] = endpoint(o.after.t.src, o.after.t.sport, o.after.t.proto);
  j["dst"] = endpoint(o.after.t.dst, o.after.t.dport, o.after.t.proto);
  j["out"] = o.out;
  if (!o.port.empty() && o.port != o.out) j["port"] = o.port;
  j["dnat"] = o.dnat;
  j["snat"] = o.snat;
  j["reason"] = o.reason == DropReason::None ? "" : std::string(drop_reason_name(o.reason));
  if (!o.where.empty() && o.reason != DropReason::None) j["where"] = o.where;
  if (!o.reject_with.empty()) j["reject_with"] = o.reject_with;
  if (const auto& a = o.answer) {
    nlohmann::json aj;
    aj["what"] = a->what;
    aj["verdict"] = nf::outcome_name(a->kind);
    aj["src"] = endpoint(a->after.t.src, a->after.t.sport, a->after.t.proto);
    aj["dst"] = endpoint(a->after.t.dst, a->after.t.dport, a->after.t.proto);
    if (a->after.is_icmp()) {
      aj["icmp_type"] = a->after.icmp_type();
      aj["icmp_code"] = a->after.icmp_code();
      aj["quoted"] = {{"src", endpoint(a->after.inner.src, a->after.inner.sport, a->after.inner.proto)},
                      {"dst", endpoint(a->after.inner.dst, a->after.inner.dport, a->after.inner.proto)},
                      {"proto", proto::name(a->after.inner.proto)}};
    }
    aj["out"] = a->out;
    aj["reason"] = a->reason == DropReason::None ? "" : std::string(drop_reason_name(a->reason));
    if (!a->where.empty()) aj["where"] = a->where;
    j["answer"] = std::move(aj);
  }
  auto tr = nlohmann::json::array();
  for (auto& e : o.trace) {
    nlohmann::json t;
    t["hook"] = hook_name(e.hook);
    t["kind"] = trace_kind_name(e.kind);
    t["table"] = e.table;
    if (!e.chain.empty()) {
      t["chain"] = e.chain;
      t["rule"] = e.rulenum;
    }
    t["target"] = e.target;
    if (e.rewritten) {
      t["before"] = e.before.str();
      t["after"] = e.after.str();
    }
    if (!e.detail.empty()) t["detail"] = e.detail;
    if (!e.assumed.empty()) t["assumed"] = e.assumed;
    if (e.answer) t["answer"] = true;
    tr.push_back(std::move(t));
  }
  j["trace"] = std::move(tr);
  if (auto s = nf::netpol::story(o.trace, o.before); s.checked) {
    nlohmann::json p;
    p["allowed"] = s.allowed;
    p["by"] = s.by;
    p["hook"] = hook_name(s.hook);
    p["chain"] = s.chain;
    p["rule"] = s.rulenum;
    p["saw"] = s.seen.str();
    p["chains"] = s.path;
    if (s.dnat_hook) {
      p["dnat_hook"] = hook_name(*s.dnat_hook);
      p["dnat_by"] = s.dnat_by;
      p["dnat_before_decision"] = s.dnat_before;
    }
    j["policy"] = std::move(p);
  }
  return j;
}

}  // namespace svcpath::cli
