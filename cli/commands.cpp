// The subcommands' work, callable from tests with an output stream.
#include "cli/commands.hpp"

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "kube/sim/lanes.hpp"
#include "cli/picture.hpp"
#include "cli/render.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/nftables.hpp"
#include "kube/proxy/node.hpp"
#include "ipvs/ipvsadm.hpp"
#include "kube/proxy/ipvs.hpp"
#include "kube/sim/node_config.hpp"

namespace svcpath::cli {

bool color_wanted(const std::string& mode) {
  if (mode == "always") return true;
  if (mode == "never") return false;
  return isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR");
}

sim::Snapshot open_snapshot(const std::string& path, std::string* rules, std::string* rules6, std::string* ipsets,
                            std::string* ipvs, std::string* nft, NodeOptions* node) {
  sim::Snapshot s = sim::load_snapshot(path);
  for (auto& n : s.notes) std::cerr << "svcpath: snapshot " << path << ": " << n << "\n";
  auto fill = [&](std::string* slot, const std::string& from, const char* flag) {
    if (!slot || from.empty()) return;
    if (slot->empty()) *slot = from;
    else std::cerr << "svcpath: snapshot " << path << ": " << flag << " given, overrides the snapshot's\n";
  };
  fill(rules, s.rules, "--rules");
  fill(rules6, s.rules6, "--rules6");
  fill(ipsets, s.ipsets, "--ipsets");
  fill(ipvs, s.ipvs, "--ipvs");
  fill(nft, s.nft, "--nft");
  if (node) {
    if (!node->node_config.empty())
      std::cerr << "svcpath: snapshot " << path << ": --node-config applies on top of the snapshot's node\n";
    node->snapshot = std::make_shared<const nf::Node>(s.node);
    if (node->iptables_backend.empty()) node->iptables_backend = s.backend;
  }
  return s;
}

void seed_lanes(const sim::Snapshot& s, std::vector<std::unique_ptr<Lane>>& lanes, uint64_t now_ns) {
  for (auto& l : lanes) {
    size_t clash = sim::seed_conntrack(l->dp->conntrack(), s.conntrack, now_ns);
    if (clash)
      std::cerr << "svcpath: snapshot " << s.path << ": " << clash << " conntrack entries clash with another's tuple, skipped\n";
  }
}

int run_trace(const TraceOptions& o_in, std::ostream& out) {
  TraceOptions o = o_in;
  std::optional<sim::Snapshot> snap;
  if (!o.snapshot.empty()) snap = open_snapshot(o.snapshot, &o.rules, &o.rules6, &o.ipsets, &o.ipvs, &o.nft, &o.node);
  if (o.rules.empty() && o.rules6.empty() && o.ipvs.empty() && o.nft.empty() && !o.cluster.given())
    throw LoadError({{"trace", 0, 0, "give --rules FILE (an iptables-save dump) or --cluster FILE... --node NAME"}});
  auto lanes = build_lanes({o.rules, o.rules6, o.ipsets, o.ipvs, o.nft, o.cluster, o.node, o.seed});
  if (snap) seed_lanes(*snap, lanes);
  const nf::Node& node = lanes[0]->node;

  std::vector<std::pair<std::string, std::string>> specs;  // (origin, text)
  for (auto& p : o.packets) specs.push_back({"--packet", p});
  if (!o.packets_file.empty()) {
    std::string text = read_input_file(o.packets_file);
    std::istringstream is(text);
    std::string line;
    int ln = 0;
    while (std::getline(is, line)) {
      ++ln;
      auto h = line.find('#');
      if (h != std::string::npos) line.resize(h);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (line.back() == '\r') line.pop_back();
      specs.push_back({fmt::format("{}:{}", o.packets_file, ln), line});
    }
  }
  if (specs.empty()) throw LoadError({{"trace", 0, 0, "no packets: give --packet SPEC or --packets FILE"}});

  // Parse every spec before running any, so a typo on line 9 costs nothing.
  std::vector<PacketSpec> parsed;
  std::vector<Diagnostic> errs;
  Rng ephemeral(o.seed ^ 0x65706865ull);
  int n = 0;
  for (auto& [origin, text] : specs) {
    ++n;
    std::string why;
    auto ps = parse_packet_spec(text, &why);
    if (!ps) {
      errs.push_back({origin, 0, 0, why});
      continue;
    }
    if (int of = ps->reply_of == 0 ? n - 1 : ps->reply_of; ps->reply_of >= 0 && (of < 1 || of >= n)) {
      errs.push_back({origin, 0, 0,
                      n == 1 ? fmt::format("'{}': nothing to answer yet: this is the first packet (a reply answers an "
                                           "earlier one)",
                                           text)
                             : fmt::format("'{}': there is no earlier packet {} to reply to (packets 1..{} came before it)", text,
                                           of, n - 1)});
      continue;
    }
    if (!ps->sport_given) ps->pkt.t.sport = uint16_t(32768 + ephemeral.below(60999 - 32768 + 1));  // ip_local_port_range
    if (o.local) ps->local = true;
    if (ps->in.empty() && ps->reply_of < 0) {
      if (o.in_default != "auto") ps->in = o.in_default;
      else if (!ps->local && node.is_local(ps->pkt.t.src)) ps->local = true;  // sent by this host
      else {
        int16_t i = source_interface(node, ps->pkt.t.src);
        ps->in = i >= 0 ? std::string(node.ifname(i)) : "eth0";
      }
    }
    if (ps->reply_of < 0 && !ps->local && node.find(ps->in) < 0) {
      std::string known;
      for (auto& i : node.interfaces()) known += (known.empty() ? "" : ", ") + i.name;
      errs.push_back({origin, 0, 0, fmt::format("unknown interface '{}' (this node has: {})", ps->in, known)});
      continue;
    }
    const Lane& l0 = *lanes[0];
    bool have = ps->pkt.t.src.is_v4() ? bool(l0.v4) : bool(l0.v6);
    if (ps->reply_of < 0 && !have && (l0.v4 || l0.v6))
      errs.push_back({origin, 0, 0,
                      fmt::format("an IPv{} packet, but no IPv{} ruleset was given ({})", ps->pkt.t.src.is_v4() ? 4 : 6,
                                  ps->pkt.t.src.is_v4() ? 4 : 6, ps->pkt.t.src.is_v4() ? "--rules" : "--rules6")});
    parsed.push_back(std::move(*ps));
  }
  if (!errs.empty()) throw LoadError(errs);

  TextStyle style{color_wanted(o.color), o.verbose};
  bool multi = lanes.size() > 1;
  bool picture = o.format == "svg" || o.format == "html" || o.format == "dot";
  std::vector<Picture> pictures;
  int idx = 0;
  for (auto& spec : parsed) {
    ++idx;
    if (picture) pictures.push_back({fmt::format("packet {}: {}", idx, spec.text), {}});
    nlohmann::json jmodes = nlohmann::json::object();
    nlohmann::json jpacket;
    // Side by side, the modes share the backend choice unless --independent (a reply follows its entry).
    std::optional<sim::CommonChoice> common;
    if (multi && !o.independent && spec.reply_of < 0) {
      std::vector<nf::Injection> injs;
      for (auto& lp : lanes) injs.push_back({spec.local, spec.local ? kNoIf : lp->node.find(spec.in)});
      common.emplace(lanes, spec.pkt, injs);
    }
    for (auto& lp : lanes) {
      Lane& l = *lp;
      PacketSpec ps = spec;
      if (ps.reply_of >= 0) {
        int of = ps.reply_of == 0 ? idx - 1 : ps.reply_of;  // an earlier packet: checked while parsing
        const nf::Outcome& prev = l.sent[size_t(of - 1)];
        if (prev.kind != nf::OutcomeKind::Forwarded && prev.kind != nf::OutcomeKind::Delivered &&
            prev.kind != nf::OutcomeKind::Bridged)
          throw LoadError({{specs[size_t(idx - 1)].first, 0, 0,
                            fmt::format("'{}': packet {} was {}{}, nothing answers it", ps.text, of, nf::outcome_name(prev.kind),
                                        multi ? " in mode " + l.name : "")}});
        uint8_t keep_proto = ps.pkt.t.proto;
        uint16_t icmp_word = ps.pkt.t.dport;
        if (keep_proto != prev.after.t.proto)
          throw LoadError({{specs[size_t(idx - 1)].first, 0, 0,
                            fmt::format("'{}': packet {} was {}", ps.text, of, proto::name(prev.after.t.proto))}});
        ps.pkt.t = prev.after.t.reversed();
        ps.pkt.t.proto = keep_proto;
        if (ps.pkt.is_icmp()) {
          ps.pkt.t.sport = prev.after.t.sport;  // the echo id stays on the source side
          ps.pkt.t.dport = icmp_word;
          if (ps.text.find('/') == std::string::npos) ps.pkt.t.dport = uint16_t((ps.pkt.t.proto == proto::ICMP ? 0 : 129) << 8);
        }
        // The answer comes back on the interface the packet left through; a local socket answers locally.
        ps.local = prev.kind == nf::OutcomeKind::Delivered;
        if (!ps.local) ps.in = prev.port.empty() ? prev.out : prev.port;
        if (!ps.local && l.node.find(ps.in) < 0) ps.in = "eth0";
      }
      nf::Injection inj{ps.local, ps.local ? kNoIf : l.node.find(ps.in)};
      std::vector<nf::Outcome> outs;
      if (o.enumerate) {
        outs = l.dp->enumerate(ps.pkt, inj);
        NullSink quiet;
        // The sampled (or common) branch carries state forward.
        l.sent.push_back(common ? common->run(size_t(&lp - lanes.data())) : l.dp->process(ps.pkt, inj, quiet));
      } else if (common) {
        outs.push_back(common->run(size_t(&lp - lanes.data())));
        l.sent.push_back(outs.back());
      } else {
        VectorSink sink;
        outs.push_back(l.dp->process(ps.pkt, inj, sink));
        outs.back().trace = std::move(sink.events);
        l.sent.push_back(outs.back());
      }
      if (picture) {
        size_t shown = std::min(o.outcome > 0 ? size_t(o.outcome - 1) : 0, outs.size() - 1);
        pictures.back().panels.push_back(
            {l.name, l.engine != nullptr, std::move(outs), shown, ps.local ? "" : ps.in, nft_rows(l.nft ? &*l.nft : nullptr)});
      } else if (o.format == "json") {
        if (jpacket.is_null()) jpacket = packet_json(ps, ps.pkt, ps.in);
        auto arr = nlohmann::json::array();
        for (auto& oc : outs) arr.push_back(outcome_json(oc));
        jmodes[l.name] = std::move(arr);
      } else {
        if (multi) out << "== mode " << l.name << " ==\n";
        out << render_text(idx, ps, ps.pkt, ps.in, outs, o.enumerate, style);
        if (multi && lp != lanes.back()) out << "\n";
      }
    }
    std::string shared = common ? common->summary() : "";
    if (!shared.empty()) shared += "; --independent to sample each mode on its own";
    if (picture) {
      if (!shared.empty()) pictures.back().title += " — " + shared;  // written once all packets ran
    } else if (o.format == "json") {
      nlohmann::json j;
      j["packet"] = std::move(jpacket);
      if (!shared.empty()) j["backend_choice"] = shared;
      if (multi) j["modes"] = std::move(jmodes);
      else j["outcomes"] = std::move(jmodes.begin().value());
      out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      if (!shared.empty()) out << "\n" << shared << "\n";
      if (idx < int(parsed.size())) out << "\n";
    }
  }
  if (o.format == "svg") out << render_svg(pictures);
  else if (o.format == "html") out << render_html(pictures, "svcpath trace");
  else if (o.format == "dot") out << render_dot(pictures);
  return 0;
}

}  // namespace svcpath::cli

namespace svcpath::cli {

int run_rules(const RulesOptions& o_in, std::ostream& out) {
  RulesOptions o = o_in;
  if (!o.snapshot.empty()) {
    std::string rules6;
    auto s = open_snapshot(o.snapshot, &o.rules, &rules6, &o.ipsets, nullptr, &o.nft, nullptr);
    // rules prints one dump: IPv6 with -6, and the snapshot's IPv4 dump otherwise.
    if (o.v6 && o_in.rules.empty()) o.rules = rules6;
    if (o.v6 && o.rules.empty()) throw LoadError(o.snapshot, "no ip6tables rules in the snapshot");
  }
  if (o.rules.empty() && o.ipsets.empty() && o.nft.empty() && o.ipvs.empty() && !o.cluster.given())
    throw LoadError(
        {{"rules", 0, 0, "give --rules FILE, --ipsets FILE, --nft FILE, --ipvs FILE, or --cluster FILE... --node NAME"}});
  if (o.cluster.given()) {
    ClusterInput ci = load_cluster(o.cluster);
    Family fam = o.family == 6 ? Family::V6 : Family::V4;
    auto modes = o.cluster.modes();
    if (modes.size() != 1) throw LoadError({{"--mode", 0, 0, "rules prints one mode at a time"}});
    bool with_policy = o.cluster.policy != "off" && !ci.cluster.policies.empty();
    auto where = policy_placement(o.cluster.policy, modes[0]);
    if (o.policy) {
      auto np = nf::netpol::compile(ci.cluster, ci.node, fam, where);
      out << "# NetworkPolicy: " << ci.cluster.policies.size() << " policies, " << np.pods << " isolated pods on " << ci.node.name
          << "\n# ipset restore input\n"
          << np.ipsets << "# iptables-restore --noflush input\n"
          << np.rules;
      return 0;
    }
    if (modes[0] == "nftables") {
      k8s::ProxyConfig cfg = ci.cfg;
      cfg.mode = k8s::ProxyMode::Nftables;
      std::string tx = kube::nftables::nft_input(ci.cluster, ci.node, cfg, fam);
      if (o.restore_input) {
        out << "# nft -f input (kube-proxy's transaction)\n" << tx;
      } else {
        if (with_policy) {
          nf::Ruleset rs;
          rs.family = fam;
          nf::IpSets sets;
          nf::netpol::apply(nf::netpol::compile(ci.cluster, ci.node, fam, where), rs, sets);
          out << "# ipset save\n" << nf::save_ipsets(sets) << "# iptables-save\n" << nf::save(rs) << "# nft list ruleset\n";
        }
        out << nf::nft::print(nf::nft::load(tx, "kube-proxy nftables"));
      }
      return 0;
    }
    if (modes[0] == "ipvs") {
      auto m = kube::ipvs::build(ci.cluster, ci.node, ci.cfg, fam);
      if (with_policy && !o.restore_input)
        nf::netpol::apply(nf::netpol::compile(ci.cluster, ci.node, fam, where), m.rules, m.sets);
      if (o.restore_input) {
        out << "# ipvsadm-restore input\n" << ipvs::save_ipvsadm(m.engine->services);
        out << "# ipset restore input\n" << m.ipset_restore;
        out << "# iptables-restore input\n" << m.restore_input;
      } else {
        out << "# ipvsadm-save -n\n" << ipvs::save_ipvsadm(m.engine->services);
        out << "# ipset save\n" << nf::save_ipsets(m.sets);
        out << "# iptables-save\n" << nf::save(m.rules);
      }
      return 0;
    }
    if (o.restore_input) out << kube::iptables::restore_input(ci.cluster, ci.node, ci.cfg, fam);
    else {
      auto rs = kube::iptables::node_ruleset(ci.cluster, ci.node, ci.cfg, fam);
      if (with_policy) {
        nf::IpSets sets;
        auto np = nf::netpol::compile(ci.cluster, ci.node, fam, where);
        nf::netpol::apply(np, rs, sets);
        out << "# ipset save\n" << nf::save_ipsets(sets) << "# iptables-save\n";
      }
      out << nf::save(rs);
    }
    return 0;
  }
  sim::check_services_flag(o.services, o.ipvs);
  nf::IpSets sets;
  if (!o.ipsets.empty()) {
    sets = nf::load_ipsets_file(o.ipsets);
    out << nf::save_ipsets(sets);
  }
  // Numeric whatever form was read (ipvsadm -L names included), as ipvsadm-save -n prints.
  if (!o.ipvs.empty()) out << ipvs::save_ipvsadm(sim::load_ipvs_dump(o.ipvs, o.services));
  if (!o.nft.empty()) out << nf::nft::print(nf::nft::load_file(o.nft));
  if (!o.rules.empty()) {
    auto rs = load_rules(o.rules, o.v6 ? std::optional<Family>(Family::V6) : std::nullopt, o.counters, "", o.noflush);
    // iptables-restore refuses a rule naming a set the kernel does not have; so does svcpath.
    nf::resolve_sets(rs, sets, o.rules);
    out << nf::save(rs, o.counters);
  }
  return 0;
}

}  // namespace svcpath::cli
