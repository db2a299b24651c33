// A REJECT's answer walks its own path (kernel 6.18 in a namespace, tests/kernel/differential.py
// "reject answers"): the reset or ICMP error is RELATED to the rejected packet's connection in the
// reply direction, walks OUTPUT and POSTROUTING (nat POSTROUTING too for a reset whose connection
// has no source binding yet), leaves de-NATed, and dies where OUTPUT drops it.
#include <algorithm>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "helpers.hpp"
#include "netfilter/reject.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

const char* kRules =
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
    "-A PREROUTING -d 10.96.0.10/32 -p tcp -j DNAT --to-destination 192.168.1.7:8080\n"
    "-A PREROUTING -d 10.96.0.10/32 -p udp -j DNAT --to-destination 192.168.1.7:8080\n"
    "-A OUTPUT -p tcp\n"
    "-A POSTROUTING -p tcp\n"
    "COMMIT\n"
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset\n"
    "-A INPUT -p udp -m udp --dport 81 -j REJECT --reject-with icmp-port-unreachable\n"
    "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset\n"
    "-A FORWARD -p udp -j REJECT --reject-with icmp-host-prohibited\n"
    "-A OUTPUT -m conntrack --ctstate RELATED --ctdir REPLY\n"
    "-A OUTPUT -d 198.51.100.0/24 -p icmp -j DROP\n"
    "COMMIT\n";

// The answer's own rule steps, as trace ids.
std::vector<std::string> answer_ids(const nf::Outcome& o) {
  std::vector<std::string> v;
  for (auto& e : o.trace)
    if (e.answer && (e.kind == TraceKind::Rule || e.kind == TraceKind::Return || e.kind == TraceKind::Policy))
      v.push_back(fmt::format("{}:{}:{}:{}", e.table, e.chain, trace_kind_name(e.kind), e.rulenum));
  return v;
}

}  // namespace

TEST_CASE("REJECT answers: a reset from INPUT is RELATED in the reply direction and walks nat POSTROUTING") {
  auto rs = rules(kRules);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = run(dp, "tcp 203.0.113.9:20000 -> 10.0.0.10:81");
  CHECK(o.kind == nf::OutcomeKind::Rejected);
  REQUIRE(o.answer);
  CHECK(o.answer->what == "tcp-reset");
  CHECK(o.answer->kind == nf::OutcomeKind::Forwarded);
  CHECK(o.answer->out == "eth0");
  CHECK(o.answer->after.t.str() == "tcp 10.0.0.10:81 -> 203.0.113.9:20000");
  CHECK(o.answer->after.tcp_flags == (tcpflag::RST | tcpflag::ACK));  // the SYN acknowledged nothing
  // nat OUTPUT is not walked (the destination binding is set); nat POSTROUTING is (no source one yet).
  CHECK(answer_ids(o) == std::vector<std::string>{"filter:OUTPUT:rule:1", "filter:OUTPUT:policy:3", "nat:POSTROUTING:rule:1",
                                                  "nat:POSTROUTING:policy:2"});
  // The packet's own path ends at the REJECT; the answer's steps come after it.
  CHECK(trace_ids(o).at(trace_ids(o).size() - answer_ids(o).size() - 1) == "filter:INPUT:rule:1");

  auto ack = run(dp, "tcp/A 203.0.113.9:20001 -> 10.0.0.10:81");
  REQUIRE(ack.answer);
  CHECK(ack.answer->after.tcp_flags == tcpflag::RST);
  auto rst = run(dp, "tcp/R 203.0.113.9:20002 -> 10.0.0.10:81");
  CHECK(rst.kind == nf::OutcomeKind::Rejected);
  CHECK(!rst.answer);  // no reset answers a reset
}

TEST_CASE("REJECT answers: an ICMP error names the packet's destination from INPUT, the route's source from FORWARD") {
  auto rs = rules(kRules);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto in = run(dp, "udp 203.0.113.9:20000 -> 10.0.0.10:81");
  REQUIRE(in.answer);
  CHECK(in.answer->what == "icmp type 3 code 3");
  CHECK(in.answer->after.t.src.str() == "10.0.0.10");
  CHECK(in.answer->after.t.dst.str() == "203.0.113.9");
  CHECK(in.answer->after.inner.str() == "udp 203.0.113.9:20000 -> 10.0.0.10:81");
  // Forwarded to 192.168.1.5 from eth1's subnet: the answer's source is what the route back picks.
  auto fwd = run(dp, "udp 192.168.1.5:20000 -> 10.0.0.99:9", "eth1");
  REQUIRE(fwd.answer);
  CHECK(fwd.answer->what == "icmp type 3 code 10");
  CHECK(fwd.answer->after.t.str() == "icmp 192.168.1.1 -> 192.168.1.5");
  CHECK(fwd.answer->out == "eth1");
}

TEST_CASE("REJECT answers: after DNAT the answer leaves de-NATed, its quoted packet too") {
  auto rs = rules(kRules);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto u = run(dp, "udp 203.0.113.9:20000 -> 10.96.0.10:80");
  CHECK(u.kind == nf::OutcomeKind::Rejected);
  REQUIRE(u.answer);
  CHECK(u.answer->after.t.src.str() == "10.96.0.10");  // nf_nat_icmp_reply_translation: outer and inner
  CHECK(u.answer->after.inner.str() == "udp 203.0.113.9:20000 -> 10.96.0.10:80");
  CHECK(u.answer->out == "eth0");
  auto t = run(dp, "tcp 203.0.113.9:20000 -> 10.96.0.10:80");
  REQUIRE(t.answer);
  CHECK(t.answer->after.t.str() == "tcp 10.96.0.10:80 -> 203.0.113.9:20000");
}

TEST_CASE("REJECT answers: OUTPUT can drop the answer; the outcome stays rejected and says where it died") {
  auto rs = rules(kRules);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = run(dp, "udp 198.51.100.7:20000 -> 10.0.0.10:81");
  CHECK(o.kind == nf::OutcomeKind::Rejected);
  CHECK(o.where == "filter:INPUT:rule:2");
  REQUIRE(o.answer);
  CHECK(o.answer->kind == nf::OutcomeKind::Dropped);
  CHECK(o.answer->where == "filter:OUTPUT:rule:2");
  CHECK(!o.answer->left());
  // Its reset is not ICMP: it leaves.
  auto t = run(dp, "tcp 198.51.100.7:20000 -> 10.0.0.10:81");
  REQUIRE(t.answer);
  CHECK(t.answer->left());
  // A policy DROP in OUTPUT (a hardened host) keeps every answer in.
  auto hard = rules(
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n"
      "-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n-A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\nCOMMIT\n");
  nf::Datapath dp2(n);
  nf::attach_iptables(dp2, &hard, nullptr, nullptr);
  auto h = run(dp2, "tcp 203.0.113.9:20000 -> 10.0.0.10:22");
  REQUIRE(h.answer);
  CHECK(h.answer->kind == nf::OutcomeKind::Dropped);
  CHECK(h.answer->where == "filter:OUTPUT:policy:2");
}

TEST_CASE("reject_kind: iptables names and nft's icmpx codes per family") {
  CHECK(nf::reject_kind("tcp-reset", Family::V4).reset);
  CHECK(nf::reject_kind("icmp-admin-prohibited", Family::V4).code == 13);
  CHECK(nf::reject_kind("icmp-admin-prohibited", Family::V6).code == 1);  // nft's icmpx admin-prohibited
  CHECK(nf::reject_kind("icmp-host-unreachable", Family::V6).code == 3);  // kernel 6.18, reject answers (nftables)
  CHECK(nf::reject_kind("icmp6-1", Family::V6).code == 1);
  CHECK(nf::reject_kind("icmp-port-unreachable", Family::V6).code == 4);  // an inet table's bare reject
  CHECK(nf::reject_kind("icmp6-adm-prohibited", Family::V6).type == 1);
}

TEST_CASE("IPv6 link-local: a forwarded fe80:: source is answered beyond scope; fe80:: destinations stay on their link") {
  nf::Node n = node();
  CHECK(nf::apply_local_ip(n, "fd00::10/64@eth0").empty());
  CHECK(nf::apply_local_ip(n, "fe80::1/64@eth0").empty());
  CHECK(nf::apply_local_ip(n, "fd00:1::10/64@eth1").empty());
  CHECK(nf::apply_route(n, "::/0=eth1@fd00:1::1").empty());
  CHECK(n.sys.set("net.ipv6.conf.all.forwarding", "1").empty());
  auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", Family::V6);
  nf::Datapath dp(n);
  nf::attach_iptables(dp, nullptr, &rs, nullptr);
  auto o = run(dp, "udp [fe80::5]:5 -> [2001:db8::9]:53");
  CHECK(o.kind == nf::OutcomeKind::Rejected);
  CHECK(o.reason == DropReason::BeyondScope);
  auto ids = trace_ids(o);
  CHECK(std::find(ids.begin(), ids.end(), "filter:FORWARD:policy:1") == ids.end());  // before FORWARD
  CHECK(std::find(ids.begin(), ids.end(), "filter:OUTPUT:policy:1") != ids.end());   // the answer's
  REQUIRE(o.answer);
  CHECK(o.answer->what == "icmp6 type 1 code 2");
  CHECK(o.answer->out == "eth0");                   // back where it came from (icmp6_iif)
  CHECK(o.answer->after.t.src.str() == "fe80::1");  // the link's own address
  // A link-local destination goes back out of the arrival interface, not the default route's.
  auto d = run(dp, "udp [fe80::5]:5 -> [fe80::6]:53");
  CHECK(d.kind == nf::OutcomeKind::Forwarded);
  CHECK(d.out == "eth0");
  // Unspecified sources are dropped there, without an answer.
  CHECK(run(dp, "udp [::]:5 -> [2001:db8::9]:53").reason == DropReason::MartianSource);

  // icmp6_send picks a forwarded packet's error source on the interface it came in on, not the
  // interface the error leaves by (kernel 6.18, reject answers IPv6).
  auto fwd =
      rules("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p udp -j REJECT\nCOMMIT\n",
            Family::V6);
  nf::Datapath dp2(n);
  nf::attach_iptables(dp2, nullptr, &fwd, nullptr);
  auto r = run(dp2, "udp [2001:db8::9]:5 -> [2001:db8:2::7]:53");
  REQUIRE(r.answer);
  CHECK(r.answer->out == "eth1");
  CHECK(r.answer->after.t.src.str() == "fd00::10");
}
