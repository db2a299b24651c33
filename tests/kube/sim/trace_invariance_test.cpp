// Tracing observes, never steers: the same packets through two identical lanes, one with a sink
// that records every event and one with the null sink, must give the same outcome, the same rewrite
// and the same counted work packet by packet. The untraced path skips building trace text (the
// zero-allocation fast path, issue 19); anything it skips that was not only text shows up here.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "kube/sim/lanes.hpp"
#include "kube/sim/traffic.hpp"

using namespace svcpath;

namespace {

// The peer's answer when the packet left the node, so reply directions (un-DNAT, IPVS out) are
// walked too: SYN -> SYN+ACK, FIN -> FIN+ACK, a UDP request -> a response.
bool peer_answer(const nf::Outcome& o, Packet& r) {
  if (o.kind != nf::OutcomeKind::Forwarded && o.kind != nf::OutcomeKind::Delivered) return false;
  const Packet& a = o.after;
  r = Packet{};
  r.t = a.t.reversed();
  r.ts_ns = a.ts_ns;
  r.len = a.len;
  if (a.t.proto == proto::UDP) return true;
  if (a.t.proto != proto::TCP || !(a.tcp_flags & (tcpflag::SYN | tcpflag::FIN))) return false;
  r.tcp_flags = uint8_t((a.tcp_flags & (tcpflag::SYN | tcpflag::FIN)) | tcpflag::ACK);
  return true;
}

void same(const nf::Outcome& quiet, const Counters& cq, const nf::Outcome& loud, const Counters& cl) {
  CHECK(quiet.kind == loud.kind);
  CHECK(quiet.reason == loud.reason);
  CHECK(quiet.after.t == loud.after.t);
  CHECK(quiet.after.mark == loud.after.mark);
  CHECK(quiet.after.ct == loud.after.ct);
  CHECK(quiet.dnat == loud.dnat);
  CHECK(quiet.snat == loud.snat);
  CHECK(quiet.out == loud.out);
  CHECK(quiet.port == loud.port);
  CHECK(quiet.where == loud.where);
  CHECK(quiet.reject_with == loud.reject_with);
  CHECK(quiet.last_hook == loud.last_hook);
  CHECK(quiet.trace.empty());
  CHECK(cq.rules_evaluated == cl.rules_evaluated);
  CHECK(cq.matches_evaluated == cl.matches_evaluated);
  CHECK(cq.chain_jumps == cl.chain_jumps);
  CHECK(cq.set_lookups == cl.set_lookups);
  CHECK(cq.ct_lookups == cl.ct_lookups);
  CHECK(cq.ct_created == cl.ct_created);
  CHECK(cq.nat_table_runs == cl.nat_table_runs);
  CHECK(cq.nat_rewrites == cl.nat_rewrites);
  CHECK(cq.route_lookups == cl.route_lookups);
  CHECK(cq.ipvs_svc_buckets_walked == cl.ipvs_svc_buckets_walked);
  CHECK(cq.ipvs_conn_entries_walked == cl.ipvs_conn_entries_walked);
  CHECK(cq.ipvs_sched_dests_scanned == cl.ipvs_sched_dests_scanned);
}

}  // namespace

TEST_CASE("a traced and an untraced run of the same capture give the same outcome per packet, in every mode") {
  sim::ClusterInput ci = test::synthetic_input(40, 3, 3);
  ci.cfg.cluster_cidrs.push_back(*Prefix::parse("10.64.0.0/10"));
  pcap::TrafficModel m;
  m.connections = 300;
  m.non_service = 0.1;
  m.rst = 0.2;
  m.host = 0.5;  // the host's own connections walk OUTPUT
  for (std::string mode : {"iptables", "ipvs", "nftables"}) {
    CAPTURE(mode);
    auto quiet_lanes = sim::cluster_lanes(ci, {mode}, sim::NodeOptions{}, 5);
    auto loud_lanes = sim::cluster_lanes(ci, {mode}, sim::NodeOptions{}, 5);
    sim::Lane& quiet = *quiet_lanes[0];
    sim::Lane& loud = *loud_lanes[0];
    pcap::Generator gen = sim::cluster_traffic(ci.cluster, ci.node, m);
    NullSink null;
    size_t packets = 0, events = 0, answers = 0;
    auto step = [&](const Packet& p, nf::Injection in) -> nf::Outcome {
      Counters q0 = quiet.dp->counters(), l0 = loud.dp->counters();
      VectorSink sink;
      nf::Outcome a = quiet.dp->process(p, in, null);
      nf::Outcome b = loud.dp->process(p, in, sink);
      CAPTURE(p.t.str());
      same(a, quiet.dp->counters() - q0, b, loud.dp->counters() - l0);
      ++packets;
      events += sink.events.size();
      return a;
    };
    Packet p;
    while (gen.next(p)) {
      bool local = quiet.node.is_local(p.t.src);
      nf::Outcome o = step(p, {local, local ? kNoIf : sim::source_interface(quiet.node, p.t.src)});
      Packet r;
      if (!peer_answer(o, r)) continue;
      bool to_local = o.kind == nf::OutcomeKind::Delivered;
      step(r, {to_local, to_local ? kNoIf : quiet.node.find(o.port.empty() ? o.out : o.port)});
      ++answers;
    }
    CHECK(packets > 1000);
    CHECK(answers > 300);
    CHECK(events > 5 * packets);  // the traced lane really traced
    CHECK(quiet.dp->conntrack().size() == loud.dp->conntrack().size());
  }
}
