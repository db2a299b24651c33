// The input route's edges as kernel 6.18 showed them in a namespace (tests/kernel/differential.py
// "edges" scenario): martians are dropped after PREROUTING has seen them (ip_route_input_slow),
// IPv6's before it (ip6_rcv_core); multicast is delivered only for joined groups; broadcasts are
// delivered, not forwarded.
#include <fstream>

#include <doctest/doctest.h>

#include "helpers.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

struct EdgeCase {
  const char* packet;  // arrives on eth0
  nf::OutcomeKind kind;
  DropReason reason;
  bool prerouting_seen;  // mangle PREROUTING walked before the verdict
};

nf::Node edge_node() {
  nf::Node n = node();
  CHECK(nf::apply_local_ip(n, "fd00::10/64@eth0").empty());
  CHECK(n.sys.set("net.ipv6.conf.all.forwarding", "1").empty());
  return n;
}

}  // namespace

TEST_CASE("input route edges: martians, multicast groups, broadcasts (kernel 6.18 by experiment)") {
  using K = nf::OutcomeKind;
  using R = DropReason;
  auto rs4 = rules("*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x1/0x1\nCOMMIT\n");
  const EdgeCase cases[] = {
      {"udp 224.0.0.5:5 -> 192.168.1.5:53", K::Dropped, R::MartianSource, true},
      {"udp 255.255.255.255:5 -> 192.168.1.5:53", K::Dropped, R::MartianSource, true},
      {"udp 127.0.0.1:5 -> 192.168.1.5:53", K::Dropped, R::MartianSource, true},
      {"udp 0.0.0.0:5 -> 10.0.0.10:53", K::Dropped, R::MartianSource, true},
      {"udp 192.168.1.1:5 -> 10.0.0.10:53", K::Dropped, R::MartianSource, true},  // a local address
      {"udp 0.0.0.1:5 -> 192.168.1.5:53", K::Forwarded, R::None, true},           // 0/8 is not martian since 5.3
      {"udp 0.1.2.3:5 -> 10.0.0.10:53", K::Delivered, R::None, true},
      {"udp 10.0.0.5:5 -> 0.0.0.0:53", K::Dropped, R::MartianDest, true},
      {"udp 10.0.0.5:5 -> 127.0.0.1:53", K::Dropped, R::MartianDest, true},
      {"udp 10.0.0.5:5 -> 224.0.0.1:53", K::Delivered, R::None, true},
      {"udp 10.0.0.5:5 -> 224.0.0.251:53", K::Dropped, R::McastNotJoined, true},
      {"udp 10.0.0.5:5 -> 239.1.1.1:53", K::Dropped, R::McastNotJoined, true},
      {"udp 10.0.0.5:5 -> 255.255.255.255:53", K::Delivered, R::None, true},
      {"udp 10.0.0.5:5 -> 10.0.0.255:53", K::Delivered, R::None, true},
      {"udp 10.0.0.5:5 -> 192.168.1.255:53", K::Delivered, R::None, true},
      {"udp 0.0.0.0:68 -> 255.255.255.255:67", K::Delivered, R::None, true},
      {"udp 0.0.0.0:5 -> 224.0.0.1:53", K::Delivered, R::None, true},
      {"udp 10.0.0.255:5 -> 10.0.0.10:53", K::Delivered, R::None, true},
      {"udp [::1]:5 -> [fd00::10]:53", K::Dropped, R::MartianSource, false},
      {"udp [fd00::5]:5 -> [::1]:53", K::Dropped, R::MartianDest, false},
      {"udp [ff02::5]:5 -> [fd00::10]:53", K::Dropped, R::MartianSource, false},
      {"udp [fd00::5]:5 -> [ff01::1]:53", K::Dropped, R::MartianDest, false},
      {"udp [fd00::5]:5 -> [ff02::1]:53", K::Delivered, R::None, true},
      {"udp [fd00::5]:5 -> [ff02::2]:53", K::Delivered, R::None, true},
      {"udp [fd00::5]:5 -> [ff02::fb]:53", K::Dropped, R::McastNotJoined, true},
      {"udp [fd00::5]:5 -> [ff0e::1234]:53", K::Dropped, R::McastNotJoined, true},
      {"udp [fd00::10]:5 -> [fd00::10]:53", K::Delivered, R::None, true},  // no local-source check in IPv6
      {"udp [::]:5 -> [fd00::10]:53", K::Delivered, R::None, true},
  };
  nf::Node n = edge_node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs4, nullptr, nullptr);
  for (auto& c : cases) {
    INFO(c.packet);
    auto o = run(dp, c.packet);
    CHECK(o.kind == c.kind);
    CHECK(o.reason == c.reason);
    bool seen = false;
    for (auto& e : o.trace) seen |= e.kind == TraceKind::Rule && e.table == "mangle" && e.chain == "PREROUTING";
    if (c.packet[4] != '[') CHECK(seen == c.prerouting_seen);  // the IPv4 rules only see IPv4
  }
}

TEST_CASE("input route edges: a joined group is delivered; route_localnet still refuses 127.0.0.1 itself") {
  nf::Node n = node();
  n.iface(n.find("eth0")).mcast_groups.push_back(*Addr::parse("239.1.1.1"));
  CHECK(n.sys.set("net.ipv4.conf.all.route_localnet", "1").empty());
  nf::Datapath dp(n);
  CHECK(run(dp, "udp 10.0.0.5:5 -> 239.1.1.1:53").kind == nf::OutcomeKind::Delivered);
  // Joined on eth0 only: the same group arriving on eth1 is dropped.
  CHECK(run(dp, "udp 192.168.1.5:5 -> 239.1.1.1:53", "eth1").reason == DropReason::McastNotJoined);
  // fib_validate_source: 127.0.0.1 is an address of lo, so a martian even with route_localnet=1.
  CHECK(run(dp, "udp 127.0.0.1:5 -> 10.0.0.10:53").reason == DropReason::MartianSource);
  CHECK(run(dp, "udp 127.0.0.5:5 -> 10.0.0.10:53").kind == nf::OutcomeKind::Delivered);
  CHECK(run(dp, "udp 10.0.0.5:5 -> 127.0.0.1:53").kind == nf::OutcomeKind::Delivered);
}

TEST_CASE("host-originated: 0.0.0.0 goes to the host through lo; 255.255.255.255 out of the source's device") {
  nf::Node n = node();
  nf::Datapath dp(n);
  auto z = run(dp, "udp 10.0.0.10:5 -> 0.0.0.0:53", "eth0", true);
  CHECK(z.kind == nf::OutcomeKind::Delivered);
  CHECK(z.out == "lo");
  auto b = run(dp, "udp 192.168.1.1:5 -> 255.255.255.255:53", "eth0", true);
  CHECK(b.kind == nf::OutcomeKind::Forwarded);
  CHECK(b.out == "eth1");
  auto m = run(dp, "udp 10.0.0.10:5 -> 239.1.1.1:53", "eth0", true);
  CHECK(m.kind == nf::OutcomeKind::Forwarded);
  CHECK(m.out == "eth0");
}

TEST_CASE("policy routing: rules by priority pick the table (fwmark, from, action), for forwarded and sent packets") {
  nf::Node n;
  nf::load_node_config(source_dir() + "/tests/data/nodes/policy-routing.yaml", n);
  auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK(run(dp, "tcp 8.8.4.4:1 -> 1.1.1.1:80", "eth1").out == "eth0");         // main: default via eth0
  CHECK(run(dp, "tcp 8.8.4.4:1 -> 1.1.1.1:80 mark=1", "eth1").out == "eth1");  // fwmark 0x1/0x1: table 100
  CHECK(run(dp, "tcp 8.8.4.4:1 -> 1.1.1.1:80 mark=2", "eth1").out == "eth0");  // mask leaves it to main
  auto p = run(dp, "tcp 172.16.0.9:1 -> 1.1.1.1:80", "eth1");                  // from 172.16/12: prohibit
  CHECK(p.kind == nf::OutcomeKind::Dropped);
  CHECK(run(dp, "tcp 10.0.0.10:5 -> 1.1.1.1:80 mark=1", "eth0", true).out == "eth1");
  CHECK(run(dp, "tcp 10.0.0.10:5 -> 10.0.0.10:80", "eth0", true).kind == nf::OutcomeKind::Delivered);  // local table first
}

TEST_CASE("policy routing: node-config rules errors name the line") {
  auto bad = [](const std::string& yaml, int line, const char* text) {
    std::string f = "/tmp/svcpath-test-rules.yaml";
    std::ofstream(f) << yaml;
    nf::Node n;
    CHECK_LOAD_ERROR(nf::load_node_config(f, n), line, text);
  };
  bad("rules:\n  - {priority: 1, table: nowhere}\n", 2, "rules[0].table");
  bad("rules:\n  - {table: main}\n", 2, "needs a priority");
  bad("rules:\n  - {priority: 1, fwmark: 0x1/0}\n", 2, "fwmark");
  bad("rules:\n  - {priority: 1, from: 10.0.0.0/8, to: fd00::/8}\n", 2, "different families");
  bad("rules:\n  - {priority: 1, colour: red}\n", 2, "unknown field 'colour'");
}

TEST_CASE("host broadcasts and joined multicast: a copy loops back through POSTROUTING, PREROUTING and INPUT first") {
  auto rs = rules(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
      "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m rpfilter --invert -j DROP\nCOMMIT\n");
  nf::Node n = node();
  n.iface(n.find("eth0")).mcast_groups.push_back(*Addr::parse("239.1.1.1"));
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  const std::vector<std::string> looped{"raw:OUTPUT:policy:1", "mangle:OUTPUT:policy:1",     "mangle:POSTROUTING:policy:1", "raw:PREROUTING:policy:2",
                                        "mangle:PREROUTING:policy:1", "mangle:INPUT:policy:1",       "mangle:POSTROUTING:policy:1"};
  for (const char* p : {"udp 10.0.0.10:5 -> 255.255.255.255:67", "udp 10.0.0.10:5 -> 10.0.0.255:67",
                        "udp 10.0.0.10:5 -> 239.1.1.1:5353"}) {
    std::string pkt = p;
    CAPTURE(pkt);
    auto o = run(dp, p, "eth0", true);
    CHECK(o.kind == nf::OutcomeKind::Forwarded);  // the original leaves; the copy is the host's own
    CHECK(o.out == "eth0");
    CHECK(trace_ids(o) == looped);  // the looped copy passes rpfilter (pkt_type LOOPBACK)
  }
  // An unjoined group: no copy.
  CHECK(trace_ids(run(dp, "udp 10.0.0.10:5 -> 239.2.2.2:5353", "eth0", true)) ==
        std::vector<std::string>{"raw:OUTPUT:policy:1", "mangle:OUTPUT:policy:1", "mangle:POSTROUTING:policy:1"});
}
