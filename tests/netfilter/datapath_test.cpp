// The rule engine: every match and target against packets that should and should not match, the
// kernel's chain walk and TRACE numbering, conntrack and NAT, and the routing decisions.
#include <fstream>
#include <map>
#include <set>

#include <doctest/doctest.h>

#include "core/jhash.hpp"
#include "helpers.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

// One rule in filter INPUT (policy DROP): ACCEPT when the match list matches.
struct MatchCase {
  const char* match;   // rule options before -j ACCEPT
  const char* packet;  // packet spec (arrives on eth0 to a local address unless it says otherwise)
  bool accepted;
};

nf::Outcome input_outcome(const std::string& rule, const std::string& spec, const nf::IpSets* sets = nullptr) {
  auto rs =
      rules("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT " + rule + " -j ACCEPT\nCOMMIT\n");
  if (sets) nf::resolve_sets(rs, *sets, "test");
  nf::Node n = node();
  nf::Datapath dp(n, 7);
  nf::attach_iptables(dp, &rs, nullptr, sets);
  return run(dp, spec);
}

}  // namespace

TEST_CASE("matches: table of packets that do and do not match") {
  const MatchCase cases[] = {
      {"-s 10.1.0.0/16", "tcp 10.1.2.3:1000 -> 10.0.0.10:22", true},
      {"-s 10.1.0.0/16", "tcp 10.2.2.3:1000 -> 10.0.0.10:22", false},
      {"! -s 10.1.0.0/16", "tcp 10.2.2.3:1000 -> 10.0.0.10:22", true},
      {"-d 10.0.0.10", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-i eth0", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-i eth+", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-i eth1", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"! -i eth1", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-p udp", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-p udp", "tcp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"! -p udp", "tcp 1.1.1.1:5 -> 10.0.0.10:53", true},
      // A lone fragment is held by conntrack's defrag before any table (-f itself: exthdr_test.cpp).
      {"-f", "udp 1.1.1.1:5 -> 10.0.0.10:53 frag", false},
      {"-f", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-p tcp --dport 20:25", "tcp 1.1.1.1:5 -> 10.0.0.10:22", true},
      {"-p tcp --dport 20:25", "tcp 1.1.1.1:5 -> 10.0.0.10:26", false},
      {"-p tcp ! --dport 22", "tcp 1.1.1.1:5 -> 10.0.0.10:22", false},
      {"-p tcp --sport 5", "tcp 1.1.1.1:5 -> 10.0.0.10:22", true},
      {"-p tcp --dport 22", "tcp 1.1.1.1:5 -> 10.0.0.10:22 frag", false},  // no L4 header in a fragment
      {"-p tcp --syn", "tcp 1.1.1.1:5 -> 10.0.0.10:22", true},
      {"-p tcp --syn", "tcp/SA 1.1.1.1:5 -> 10.0.0.10:22", false},
      {"-p tcp --tcp-flags SYN,ACK ACK", "tcp/A 1.1.1.1:5 -> 10.0.0.10:22", true},
      {"-p tcp --tcp-flags SYN,ACK ACK", "tcp/SA 1.1.1.1:5 -> 10.0.0.10:22", false},
      {"-p icmp", "icmp/echo-reply 1.1.1.1 -> 10.0.0.10", true},  // -m icmp without a type: any
      {"-p udp --dport 53", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-p sctp --dport 9", "sctp 1.1.1.1:5 -> 10.0.0.10:9", true},
      {"-p tcp -m multiport --dports 22,80:90", "tcp 1.1.1.1:5 -> 10.0.0.10:85", true},
      {"-p tcp -m multiport --dports 22,80:90", "tcp 1.1.1.1:5 -> 10.0.0.10:91", false},
      {"-p tcp -m multiport --ports 5", "tcp 1.1.1.1:5 -> 10.0.0.10:91", true},
      {"-p tcp -m multiport ! --sports 5", "tcp 1.1.1.1:5 -> 10.0.0.10:91", false},
      {"-p icmp --icmp-type echo-request", "icmp 1.1.1.1 -> 10.0.0.10", true},
      {"-p icmp --icmp-type echo-reply", "icmp 1.1.1.1 -> 10.0.0.10", false},
      {"-p icmp --icmp-type 3/3", "icmp/3/3 1.1.1.1 -> 10.0.0.10", true},
      {"-p icmp --icmp-type 3/3", "icmp/3/1 1.1.1.1 -> 10.0.0.10", false},
      {"-p icmp ! --icmp-type any", "icmp 1.1.1.1 -> 10.0.0.10", false},
      {"-m comment --comment hello", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m mark --mark 0x4000/0x4000", "udp 1.1.1.1:5 -> 10.0.0.10:53 mark=0x4001", true},
      {"-m mark --mark 0x4000/0x4000", "udp 1.1.1.1:5 -> 10.0.0.10:53 mark=0x1", false},
      {"-m mark ! --mark 0x4000/0x4000", "udp 1.1.1.1:5 -> 10.0.0.10:53 mark=0x1", true},
      {"-m connmark --mark 0", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m conntrack --ctstate NEW", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m conntrack --ctstate ESTABLISHED", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m conntrack --ctstate INVALID", "tcp/A 1.1.1.1:5 -> 10.0.0.10:22", false},  // loose pickup: NEW
      {"-m conntrack --ctstate INVALID", "tcp/F 1.1.1.1:5 -> 10.0.0.10:22", true},
      {"-m conntrack --ctdir ORIGINAL", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m conntrack --ctorigdst 10.0.0.10 --ctorigdstport 53 --ctproto udp", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m conntrack --ctorigsrc 9.9.9.9", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m conntrack ! --ctstate DNAT", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m state --state NEW", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m state ! --state NEW", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m addrtype --dst-type LOCAL", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m addrtype --src-type LOCAL", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m addrtype --dst-type LOCAL --limit-iface-in", "udp 1.1.1.1:5 -> 192.168.1.1:53", false},  // local, but on eth1
      {"-m addrtype --dst-type BROADCAST", "udp 1.1.1.1:5 -> 10.0.0.255:53", true},
      {"-m addrtype --dst-type BROADCAST", "udp 1.1.1.1:5 -> 255.255.255.255:53", true},
      {"-m addrtype --dst-type MULTICAST", "udp 1.1.1.1:5 -> 224.0.0.1:5353", true},
      {"-m statistic --mode random --probability 1", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m statistic --mode random --probability 0", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m statistic --mode random ! --probability 0", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m statistic --mode nth --every 2 --packet 0", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m statistic --mode nth --every 2 --packet 1", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m iprange --src-range 1.1.1.0-1.1.1.9", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m iprange --src-range 1.1.1.2-1.1.1.9", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m iprange ! --dst-range 10.0.0.1-10.0.0.9", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m length --length 60", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m length --length 61:100", "udp 1.1.1.1:5 -> 10.0.0.10:53 len=100", true},
      {"-m length ! --length 61:100", "udp 1.1.1.1:5 -> 10.0.0.10:53 len=100", false},
      {"-m ttl --ttl-eq 64", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m ttl ! --ttl-eq 64", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m ttl --ttl-lt 10", "udp 1.1.1.1:5 -> 10.0.0.10:53 ttl=9", true},
      {"-m ttl --ttl-gt 10", "udp 1.1.1.1:5 -> 10.0.0.10:53 ttl=9", false},
      {"-m pkttype --pkt-type unicast", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m pkttype --pkt-type broadcast", "udp 1.1.1.1:5 -> 10.0.0.255:53", true},
      {"-m pkttype --pkt-type multicast", "udp 1.1.1.1:5 -> 224.0.0.1:5353", true},
      {"-m limit --limit 1/sec --limit-burst 1", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m nfacct --nfacct-name x", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m physdev --physdev-is-bridged", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m physdev ! --physdev-is-bridged", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m policy --dir in --pol none", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m policy --dir in --pol ipsec", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m socket", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m recent --set", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m recent --rcheck", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m recent ! --rcheck", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m ipvs --ipvs", "udp 1.1.1.1:5 -> 10.0.0.10:53", false},
      {"-m ipvs ! --ipvs", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
  };
  for (auto& c : cases) {
    INFO(std::string(c.match));
    INFO(std::string(c.packet));
    auto o = input_outcome(c.match, c.packet);
    CHECK((o.kind == nf::OutcomeKind::Delivered) == c.accepted);
  }
}

TEST_CASE("set match: src/dst flags per dimension, nets with nomatch, list:set") {
  nf::IpSets sets;
  nf::load_ipsets(
      "create CIP hash:ip,port family inet hashsize 1024 maxelem 65536\n"
      "add CIP 10.0.0.10,tcp:80\nadd CIP 10.0.0.10,udp:53\n"
      "create LB hash:ip,port,ip family inet hashsize 1024 maxelem 65536\nadd LB 10.0.0.10,tcp:80,1.1.1.1\n"
      "create NET hash:net family inet hashsize 1024 maxelem 65536\nadd NET 1.1.0.0/16\nadd NET 1.1.1.0/24 nomatch\n"
      "create NP bitmap:port range 0-65535\nadd NP 30080\n"
      "create L list:set size 8\nadd L NP\nadd L CIP\n",
      "sets", sets);
  struct C {
    const char* match;
    const char* packet;
    bool accepted;
  } cases[] = {
      {"-m set --match-set CIP dst,dst", "tcp 1.1.1.1:5 -> 10.0.0.10:80", true},
      {"-m set --match-set CIP dst,dst", "udp 1.1.1.1:5 -> 10.0.0.10:80", false},  // proto is part of the element
      {"-m set --match-set CIP dst,dst", "udp 1.1.1.1:5 -> 10.0.0.10:53", true},
      {"-m set --match-set CIP dst,src", "tcp 1.1.1.1:80 -> 10.0.0.10:9", true},
      {"-m set --match-set CIP dst", "tcp 1.1.1.1:5 -> 10.0.0.10:80", false},  // too few flags for 2 dimensions
      {"-m set ! --match-set CIP dst,dst", "tcp 1.1.1.1:5 -> 10.0.0.10:80", false},
      {"-m set --match-set LB dst,dst,src", "tcp 1.1.1.1:5 -> 10.0.0.10:80", true},
      {"-m set --match-set LB dst,dst,src", "tcp 1.1.1.2:5 -> 10.0.0.10:80", false},
      {"-m set --match-set NET src", "tcp 1.1.9.9:5 -> 10.0.0.10:80", true},
      {"-m set --match-set NET src", "tcp 1.1.1.9:5 -> 10.0.0.10:80", false},  // most specific is nomatch
      {"-m set --match-set NET src --return-nomatch", "tcp 1.1.1.9:5 -> 10.0.0.10:80", true},
      {"-m set --match-set NP dst", "tcp 1.1.1.1:5 -> 10.0.0.10:30080", true},
      {"-m set --match-set NP dst", "tcp 1.1.1.1:5 -> 10.0.0.10:30081", false},
      {"-m set --match-set L dst,dst", "tcp 1.1.1.1:5 -> 10.0.0.10:80", true},
      {"-m set --match-set L dst,dst", "tcp 1.1.1.1:5 -> 10.0.0.10:30080", true},
  };
  for (auto& c : cases) {
    INFO(std::string(c.match));
    INFO(std::string(c.packet));
    CHECK((input_outcome(c.match, c.packet, &sets).kind == nf::OutcomeKind::Delivered) == c.accepted);
  }
  auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set MISSING dst -j DROP\nCOMMIT\n");
  CHECK_LOAD_ERROR(nf::resolve_sets(rs, sets, "x.rules"), 3, "Set MISSING doesn't exist");
}

TEST_CASE("statistic nth: the i-th packet (from 0) matches when i % every == packet, as the kernel does") {
  // Checked against a real kernel: --every 3 --packet 1 drops packets 1, 4, 7 of 0..7.
  auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m statistic --mode nth --every 3 --packet 1 -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  std::string got;
  for (int i = 0; i < 8; ++i)
    got += run(dp, "udp 1.1.1.1:" + std::to_string(1000 + i) + " -> 10.0.0.10:9").kind == nf::OutcomeKind::Dropped ? 'D' : '.';
  CHECK(got == ".D..D..D");
}

TEST_CASE("recent: --set then --rcheck --seconds, --reap, --hitcount, --remove") {
  auto rs = rules(
      "*filter\n:INPUT ACCEPT [0:0]\n"
      "-A INPUT -p tcp --dport 1 -m recent --set --name S\n"
      "-A INPUT -p tcp --dport 2 -m recent --rcheck --seconds 10 --name S -j DROP\n"
      "-A INPUT -p tcp --dport 3 -m recent --update --seconds 60 --hitcount 3 --name S -j DROP\n"
      "-A INPUT -p tcp --dport 4 -m recent --remove --name S -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto kind = [&](const std::string& spec) { return run(dp, spec).kind; };
  CHECK(kind("tcp 1.1.1.1:100 -> 10.0.0.10:2 t=0") == nf::OutcomeKind::Delivered);   // not seen yet
  CHECK(kind("tcp 1.1.1.1:101 -> 10.0.0.10:1 t=1") == nf::OutcomeKind::Delivered);   // --set
  CHECK(kind("tcp 1.1.1.1:102 -> 10.0.0.10:2 t=5") == nf::OutcomeKind::Dropped);     // seen 4 s ago
  CHECK(kind("tcp 1.1.1.2:103 -> 10.0.0.10:2 t=5") == nf::OutcomeKind::Delivered);   // another source
  CHECK(kind("tcp 1.1.1.1:104 -> 10.0.0.10:2 t=20") == nf::OutcomeKind::Delivered);  // older than 10 s
  CHECK(kind("tcp 1.1.1.1:105 -> 10.0.0.10:3 t=21") == nf::OutcomeKind::Delivered);  // 1 hit < 3
  CHECK(kind("tcp 1.1.1.1:106 -> 10.0.0.10:1 t=22") == nf::OutcomeKind::Delivered);  // --set: 2 stamps
  CHECK(kind("tcp 1.1.1.1:107 -> 10.0.0.10:1 t=23") == nf::OutcomeKind::Delivered);  // 3 stamps
  CHECK(kind("tcp 1.1.1.1:108 -> 10.0.0.10:3 t=24") == nf::OutcomeKind::Dropped);    // 3 hits in 60 s
  CHECK(kind("tcp 1.1.1.1:109 -> 10.0.0.10:4 t=25") == nf::OutcomeKind::Dropped);    // --remove finds it
  CHECK(kind("tcp 1.1.1.1:110 -> 10.0.0.10:4 t=26") == nf::OutcomeKind::Delivered);  // gone
}

TEST_CASE("limit: a token bucket of burst packets, refilled at the rate") {
  auto rs = rules("*filter\n:INPUT DROP [0:0]\n-A INPUT -m limit --limit 1/sec --limit-burst 2 -j ACCEPT\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto ok = [&](int port, const char* t) {
    return run(dp, "udp 1.1.1.1:" + std::to_string(port) + " -> 10.0.0.10:9 t=" + t).kind == nf::OutcomeKind::Delivered;
  };
  CHECK(ok(1, "0"));
  CHECK(ok(2, "0.1"));
  CHECK_FALSE(ok(3, "0.2"));
  CHECK(ok(4, "1.3"));
  CHECK_FALSE(ok(5, "1.4"));
}

TEST_CASE("targets: MARK, CONNMARK, REJECT, LOG/NFLOG continue, NFQUEUE, TRACE") {
  auto rs = rules(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT "
      "[0:0]\n"
      "-A PREROUTING -j MARK --set-xmark 0x10/0xff\n-A PREROUTING -j MARK --or-mark 0x4000\n"
      "-A PREROUTING -j CONNMARK --save-mark\n-A PREROUTING -j LOG --log-prefix x\n-A PREROUTING -j NFLOG\n"
      "-A INPUT -m mark --mark 0x4010 -m connmark --mark 0x4010 -j MARK --xor-mark 0x1\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A INPUT -p tcp --dport 1 -j REJECT --reject-with tcp-reset\n"
      "-A INPUT -p tcp --dport 2 -j NFQUEUE --queue-num 4\n-A INPUT -p tcp --dport 3 -j NFQUEUE --queue-num 4 --queue-bypass\n"
      "-A INPUT -m mark ! --mark 0x4011 -j DROP\nCOMMIT\n"
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j TRACE\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = run(dp, "tcp 1.1.1.1:5 -> 10.0.0.10:1");
  CHECK(o.kind == nf::OutcomeKind::Rejected);
  CHECK(o.reject_with == "tcp-reset");
  CHECK(o.where == "filter:INPUT:rule:1");
  CHECK(o.after.mark == 0x4011);
  CHECK(o.after.nf_trace);
  // Whether a queue listener exists and what it answers is not in a dump: no guess by default.
  CHECK(run(dp, "tcp 1.1.1.1:6 -> 10.0.0.10:2").kind == nf::OutcomeKind::Unsimulated);
  CHECK(run(dp, "tcp 1.1.1.1:7 -> 10.0.0.10:3").kind == nf::OutcomeKind::Unsimulated);
  // --nfqueue none: the kernel's answer without a listener (nf_queue fails: drop, or accept with bypass).
  nf::Node nq = node();
  nq.nfqueue = nf::Node::QueueListener::None;
  nf::Datapath dq(nq);
  nf::attach_iptables(dq, &rs, nullptr, nullptr);
  auto q = run(dq, "tcp 1.1.1.1:6 -> 10.0.0.10:2");
  CHECK(q.kind == nf::OutcomeKind::Dropped);
  CHECK(q.reason == DropReason::QueueNoListener);
  auto b = run(dq, "tcp 1.1.1.1:7 -> 10.0.0.10:3");
  CHECK(b.kind == nf::OutcomeKind::Delivered);  // --queue-bypass with no listener: accepted
  // CONNMARK --restore-mark brings the mark back on the next packet of the connection.
  auto r2 = rules(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m mark --mark 0 -j CONNMARK --restore-mark\n"
      "-A PREROUTING -m mark --mark 0 -j MARK --set-mark 7\n-A PREROUTING -j CONNMARK --save-mark\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m mark --mark 7 -m conntrack --ctstate ESTABLISHED -j DROP\nCOMMIT\n");
  nf::Datapath dp2(n);
  nf::attach_iptables(dp2, &r2, nullptr, nullptr);
  CHECK(run(dp2, "udp 1.1.1.1:5 -> 10.0.0.10:9").kind == nf::OutcomeKind::Delivered);
  // The reply comes from the local side: sent by a local process.
  CHECK(run(dp2, "udp 10.0.0.10:9 -> 1.1.1.1:5", "eth0", true).kind == nf::OutcomeKind::Forwarded);
  CHECK(run(dp2, "udp 1.1.1.1:5 -> 10.0.0.10:9").kind == nf::OutcomeKind::Dropped);  // restored mark 7, ESTABLISHED
}

TEST_CASE("walk and TRACE numbering follow ipt_do_table") {
  auto rs = rules(
      "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n:G - [0:0]\n"
      "-A INPUT -p udp -j A\n-A INPUT -p tcp -g G\n-A INPUT -p udp --dport 7 -j DROP\n"
      "-A A -p udp --dport 1 -j RETURN\n-A A -j B\n-A A -p udp --dport 2 -j DROP\n"
      "-A B -p udp --dport 3 -j ACCEPT\n"
      "-A G -p tcp --dport 4 -j RETURN\n-A G -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  using V = std::vector<std::string>;
  // RETURN from A goes back to INPUT rule 2, then the policy (rule 4 = tail entry).
  CHECK(trace_ids(run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:1")) ==
        V{"filter:INPUT:rule:1", "filter:A:rule:1", "filter:INPUT:policy:4"});
  // Falling off B is "return:2"; an unconditional jump is a "rule".
  CHECK(trace_ids(run(dp, "udp 1.1.1.1:6 -> 10.0.0.10:2")) ==
        V{"filter:INPUT:rule:1", "filter:A:rule:2", "filter:B:return:2", "filter:A:rule:3"});
  CHECK(trace_ids(run(dp, "udp 1.1.1.1:7 -> 10.0.0.10:3")) == V{"filter:INPUT:rule:1", "filter:A:rule:2", "filter:B:rule:1"});
  // Falling off A returns to INPUT; rule 3 then drops port 7.
  CHECK(trace_ids(run(dp, "udp 1.1.1.1:8 -> 10.0.0.10:7")) ==
        V{"filter:INPUT:rule:1", "filter:A:rule:2", "filter:B:return:2", "filter:A:return:4", "filter:INPUT:rule:3"});
  // -g: RETURN from G does not come back to INPUT (nothing was pushed): the policy decides.
  auto g = run(dp, "tcp 1.1.1.1:9 -> 10.0.0.10:4");
  CHECK(trace_ids(g) == V{"filter:INPUT:rule:2", "filter:G:rule:1", "filter:INPUT:policy:4"});
  CHECK(g.kind == nf::OutcomeKind::Delivered);
  // An unconditional -j DROP in a user chain prints as "return", like the kernel's TRACE.
  auto d = run(dp, "tcp 1.1.1.1:10 -> 10.0.0.10:5");
  CHECK(trace_ids(d) == V{"filter:INPUT:rule:2", "filter:G:return:2"});
  CHECK(d.kind == nf::OutcomeKind::Dropped);
  CHECK(d.reason == DropReason::RuleDrop);
}

TEST_CASE("enumerate: kube-proxy statistic chains give each endpoint 1/n") {
  auto rs = nf::load_restore_file(source_dir() + "/examples/rulesets/kube-clusterip.rules", Family::V4);
  nf::Node n;
  nf::load_node_config(source_dir() + "/examples/nodes/kube-node.yaml", n);
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto outs = dp.enumerate(pkt("tcp 10.244.1.5:40000 -> 172.30.0.41:80"), {false, n.find("veth-web")});
  REQUIRE(outs.size() == 3);
  std::map<std::string, double> by_dst;
  for (auto& o : outs) by_dst[FiveTuple::endpoint(o.after.t.dst, o.after.t.dport, o.after.t.proto)] += o.probability;
  CHECK(by_dst["10.244.1.5:8080"] == doctest::Approx(1.0 / 3).epsilon(1e-6));
  CHECK(by_dst["10.244.2.7:8080"] == doctest::Approx(1.0 / 3).epsilon(1e-6));
  CHECK(by_dst["10.244.3.9:8080"] == doctest::Approx(1.0 / 3).epsilon(1e-6));
  // The hairpin (pod to itself via the Service) is masqueraded to the bridge address.
  for (auto& o : outs) {
    bool self = o.after.t.dst == *Addr::parse("10.244.1.5");
    CHECK(o.snat == self);
    if (self) CHECK(o.after.t.src == *Addr::parse("10.244.1.1"));
  }
  // Enumeration leaves no state behind.
  CHECK(dp.conntrack().size() == 0);
}

TEST_CASE("conntrack: the nat table runs once per connection; replies are un-NATed from the entry") {
  auto rs = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 10.0.0.10 -p tcp --dport 80 -j DNAT --to-destination 192.168.1.20:8080\n"
      "-A POSTROUTING -o eth1 -j MASQUERADE\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto first = run(dp, "tcp 1.2.3.4:5555 -> 10.0.0.10:80");
  CHECK(first.kind == nf::OutcomeKind::Forwarded);
  CHECK(first.out == "eth1");
  CHECK(first.after.t.str() == "tcp 192.168.1.1:5555 -> 192.168.1.20:8080");  // port kept: unique
  CHECK(first.dnat);
  CHECK(first.snat);
  CHECK(dp.counters().nat_table_runs == 2);  // PREROUTING and POSTROUTING, once each
  // The reply: no nat table, both rewrites undone from the entry.
  auto reply = run(dp, "tcp/SA 192.168.1.20:8080 -> 192.168.1.1:5555", "eth1");
  CHECK(reply.kind == nf::OutcomeKind::Forwarded);
  CHECK(reply.after.t.str() == "tcp 10.0.0.10:80 -> 1.2.3.4:5555");
  CHECK(reply.out == "eth0");
  CHECK(dp.counters().nat_table_runs == 2);
  CHECK(trace_ids(reply).empty());  // no rule of any table ran
  // The third packet (ACK) follows the binding too.
  auto ack = run(dp, "tcp/A 1.2.3.4:5555 -> 10.0.0.10:80");
  CHECK(ack.after.t.str() == "tcp 192.168.1.1:5555 -> 192.168.1.20:8080");
  CHECK(dp.counters().nat_table_runs == 2);
  bool skipped = false;
  for (auto& e : ack.trace)
    if (e.kind == TraceKind::Nat && e.target == "skipped") skipped = true;
  CHECK(skipped);
  // A second connection from the same source port to the same backend must get another port.
  auto other = run(dp, "tcp 1.2.3.5:5555 -> 10.0.0.10:80");
  CHECK(other.after.t.src == *Addr::parse("192.168.1.1"));
  CHECK(other.after.t.sport != 5555);
  CHECK(other.after.t.sport >= 1024);
}

TEST_CASE("conntrack TCP states: invalid first packets, reopen after close") {
  auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK(run(dp, "tcp/R 1.1.1.1:5 -> 10.0.0.10:80").kind == nf::OutcomeKind::Dropped);   // RST cannot open
  CHECK(run(dp, "tcp/SA 1.1.1.1:5 -> 10.0.0.10:80").kind == nf::OutcomeKind::Dropped);  // SYN/ACK cannot open
  CHECK(run(dp, "tcp 1.1.1.1:6 -> 10.0.0.10:80").kind == nf::OutcomeKind::Delivered);
  CHECK(run(dp, "tcp/A 1.1.1.1:6 -> 10.0.0.10:80").kind == nf::OutcomeKind::Dropped);  // ACK before SYN/ACK
  // Without loose pickup, a mid-stream ACK is invalid.
  nf::Node strict = node();
  CHECK(strict.sys.set("net.netfilter.nf_conntrack_tcp_loose", "0").empty());
  nf::Datapath dp2(strict);
  nf::attach_iptables(dp2, &rs, nullptr, nullptr);
  CHECK(run(dp2, "tcp/A 1.1.1.1:7 -> 10.0.0.10:80").kind == nf::OutcomeKind::Dropped);
  CHECK(run(dp, "tcp/A 1.1.1.1:7 -> 10.0.0.10:80").kind == nf::OutcomeKind::Delivered);  // loose (default)
  // A replied UDP flow is ESTABLISHED, and NEW again once its 120 s stream timeout has passed.
  auto r2 = rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate ESTABLISHED -j DROP\nCOMMIT\n");
  nf::Datapath dp3(n);
  nf::attach_iptables(dp3, &r2, nullptr, nullptr);
  CHECK(run(dp3, "udp 1.1.1.1:5 -> 10.0.0.10:9 t=0").kind == nf::OutcomeKind::Delivered);
  CHECK(run(dp3, "udp 10.0.0.10:9 -> 1.1.1.1:5 t=1", "eth0", true).kind == nf::OutcomeKind::Forwarded);
  CHECK(run(dp3, "udp 1.1.1.1:5 -> 10.0.0.10:9 t=20").kind == nf::OutcomeKind::Dropped);
  CHECK(run(dp3, "udp 1.1.1.1:5 -> 10.0.0.10:9 t=300").kind == nf::OutcomeKind::Delivered);
}

TEST_CASE("routing and sysctls: forwarding, route_localnet, rp_filter, loopback, no route") {
  auto rs = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 127.0.0.1:80\n"
      "-A OUTPUT -d 127.0.0.1 -p tcp --dport 9090 -j DNAT --to-destination 192.168.1.20:80\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  // A DNAT to 127.0.0.1 of a packet from the wire is a martian without route_localnet.
  auto m = run(dp, "tcp 1.1.1.1:5 -> 10.0.0.10:8080");
  CHECK(m.kind == nf::OutcomeKind::Dropped);
  CHECK(m.reason == DropReason::MartianDest);
  // A local process connecting to 127.0.0.1 DNATed to a remote: the 127/8 source may not leave eth1.
  auto l = run(dp, "tcp 127.0.0.1:5 -> 127.0.0.1:9090", "eth0", true);
  CHECK(l.kind == nf::OutcomeKind::Dropped);
  CHECK(l.reason == DropReason::LocalnetOut);
  nf::Node ln = node();
  CHECK(ln.sys.set("net.ipv4.conf.all.route_localnet", "1").empty());
  nf::Datapath dp2(ln);
  nf::attach_iptables(dp2, &rs, nullptr, nullptr);
  CHECK(run(dp2, "tcp 1.1.1.1:5 -> 10.0.0.10:8080").kind == nf::OutcomeKind::Delivered);
  auto l2 = run(dp2, "tcp 127.0.0.1:5 -> 127.0.0.1:9090", "eth0", true);
  CHECK(l2.kind == nf::OutcomeKind::Forwarded);
  CHECK(l2.out == "eth1");
  // Forwarding off.
  nf::Node off = node();
  CHECK(off.sys.set("net.ipv4.ip_forward", "0").empty());
  nf::Datapath dp3(off);
  nf::attach_iptables(dp3, &rs, nullptr, nullptr);
  auto f = run(dp3, "udp 1.1.1.1:5 -> 8.8.8.8:53");
  CHECK(f.reason == DropReason::ForwardingOff);
  // Strict rp_filter: a source routed out another interface is dropped.
  nf::Node rp = node();
  CHECK(rp.sys.set("net.ipv4.conf.all.rp_filter", "1").empty());
  nf::Datapath dp4(rp);
  nf::attach_iptables(dp4, &rs, nullptr, nullptr);
  CHECK(run(dp4, "udp 192.168.1.50:5 -> 8.8.8.8:53", "eth0").reason == DropReason::RpFilter);
  CHECK(run(dp4, "udp 192.168.1.50:5 -> 8.8.8.8:53", "eth1").kind == nf::OutcomeKind::Forwarded);
  // A local process talking to a local address goes out and back in through lo.
  auto lo = run(dp, "udp 10.0.0.10:5 -> 192.168.1.1:53", "eth0", true);
  CHECK(lo.kind == nf::OutcomeKind::Delivered);
  CHECK(lo.out == "lo");
  // No route.
  nf::Node nr;
  CHECK(nf::apply_local_ip(nr, "10.0.0.10/24@eth0").empty());
  CHECK(nr.sys.set("net.ipv4.ip_forward", "1").empty());
  nf::Datapath dp5(nr);
  nf::attach_iptables(dp5, &rs, nullptr, nullptr);
  CHECK(run(dp5, "udp 10.0.0.99:5 -> 8.8.8.8:53").reason == DropReason::NoRoute);
}

TEST_CASE("bridged frames meet iptables only with bridge-nf-call-iptables") {
  auto rs = rules(
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A FORWARD -m physdev --physdev-in veth1 --physdev-out veth2 --physdev-is-bridged -j ACCEPT\nCOMMIT\n");
  nf::Node n;
  n.add_interface("br0");
  n.iface(n.find("br0")).bridge = true;
  CHECK(nf::apply_local_ip(n, "10.1.0.1/24@br0").empty());
  for (const char* p : {"veth1", "veth2", "veth3"}) n.iface(n.add_interface(p)).master = n.find("br0");
  n.neighbors[*Addr::parse("10.1.0.2")] = n.find("veth1");
  n.neighbors[*Addr::parse("10.1.0.3")] = n.find("veth2");
  n.neighbors[*Addr::parse("10.1.0.4")] = n.find("veth3");
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto ok = run(dp, "tcp 10.1.0.2:5 -> 10.1.0.3:80", "veth1");
  CHECK(ok.kind == nf::OutcomeKind::Bridged);
  CHECK(ok.out == "veth2");
  CHECK(run(dp, "tcp 10.1.0.2:6 -> 10.1.0.4:80", "veth1").kind == nf::OutcomeKind::Dropped);  // FORWARD policy
  nf::Node off = n;
  CHECK(off.sys.set("net.bridge.bridge-nf-call-iptables", "0").empty());
  nf::Datapath dp2(off);
  nf::attach_iptables(dp2, &rs, nullptr, nullptr);
  auto b = run(dp2, "tcp 10.1.0.2:7 -> 10.1.0.4:80", "veth1");
  CHECK(b.kind == nf::OutcomeKind::Bridged);
  CHECK(trace_ids(b).empty());
}

TEST_CASE("NAT address ranges use the kernel's hash; SNAT keeps a unique source port") {
  // The same tuple always picks the same address; different sources spread over the range.
  auto rs = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -p udp -j DNAT --to-destination 192.168.1.10-192.168.1.13\nCOMMIT\n");
  nf::Node n = node();
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    nf::Datapath dp(n, uint64_t(i));
    nf::attach_iptables(dp, &rs, nullptr, nullptr);
    auto o = run(dp, "udp 1.1.1." + std::to_string(i + 1) + ":5 -> 10.0.0.10:53");
    CHECK(o.after.t.dst.host4() >= Addr::parse("192.168.1.10")->host4());
    CHECK(o.after.t.dst.host4() <= Addr::parse("192.168.1.13")->host4());
    nf::Datapath again(n, uint64_t(i + 100));
    nf::attach_iptables(again, &rs, nullptr, nullptr);
    CHECK(run(again, "udp 1.1.1." + std::to_string(i + 1) + ":5 -> 10.0.0.10:53").after.t.dst == o.after.t.dst);
    seen.insert(o.after.t.dst.str());
  }
  CHECK(seen.size() == 4);
  // lookup3's hashword of nothing is its initial value: 0xdeadbeef + (length << 2) + initval.
  CHECK(jhash2(nullptr, 0, 0) == 0xdeadbeefu);
  CHECK(jhash2(nullptr, 0, 5) == 0xdeadbeefu + 5);
}

TEST_CASE("MASQUERADE out of lo picks a universe-scope address, not 127.0.0.1 (inet_select_addr; kernel-differential finding)") {
  auto rs = test::rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -j MASQUERADE\nCOMMIT\n");
  nf::Node n = test::node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = test::run(dp, "tcp 10.0.0.10:20006 -> 10.0.0.10:1500 local");
  CHECK(o.kind == nf::OutcomeKind::Delivered);
  CHECK(o.after.t.src.str() == "10.0.0.10");
}
