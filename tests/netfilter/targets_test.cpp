// Targets not covered elsewhere (REDIRECT, SNAT ranges, NOTRACK/CT, TPROXY, TCPMSS, QUEUE), and
// the IPv6 datapath.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "netfilter/nftables/hooks.hpp"

using namespace svcpath;
using namespace svcpath::test;

TEST_CASE("REDIRECT: to the receiving interface's address, or 127.0.0.1 for local traffic") {
  auto rs = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -i eth1 -p tcp --dport 80 -j REDIRECT --to-ports 3128\n"
      "-A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 3129\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto in = run(dp, "tcp 192.168.1.50:5000 -> 93.184.216.34:80", "eth1");
  CHECK(in.kind == nf::OutcomeKind::Delivered);
  CHECK(in.after.t.str() == "tcp 192.168.1.50:5000 -> 192.168.1.1:3128");
  auto out = run(dp, "tcp 10.0.0.10:5001 -> 93.184.216.34:80", "eth0", true);
  CHECK(out.kind == nf::OutcomeKind::Delivered);
  CHECK(out.out == "lo");
  CHECK(out.after.t.dst == *Addr::parse("127.0.0.1"));
  CHECK(out.after.t.dport == 3129);
}

TEST_CASE("SNAT to a port range keeps an in-range port, remaps an out-of-range one") {
  auto rs = rules(
      "*nat\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -o eth0 -p udp -j SNAT --to-source 10.0.0.10:1000-1009\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto a = run(dp, "udp 192.168.1.50:1005 -> 8.8.8.8:53", "eth1");
  CHECK(a.after.t.str() == "udp 10.0.0.10:1005 -> 8.8.8.8:53");
  auto b = run(dp, "udp 192.168.1.51:5000 -> 8.8.8.8:53", "eth1");
  CHECK(b.after.t.src == *Addr::parse("10.0.0.10"));
  CHECK(b.after.t.sport >= 1000);
  CHECK(b.after.t.sport <= 1009);
  // A clash inside the range: same port from another client must move.
  auto c = run(dp, "udp 192.168.1.52:1005 -> 8.8.8.8:53", "eth1");
  CHECK(c.after.t.sport != 1005);
  CHECK(c.after.t.sport >= 1000);
  CHECK(c.after.t.sport <= 1009);
}

TEST_CASE("NOTRACK and CT --notrack leave the packet untracked; the nat table is not consulted") {
  auto rs = rules(
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -p udp --dport 53 -j CT --notrack\n"
      "-A PREROUTING -p udp --dport 54 -j NOTRACK\nCOMMIT\n"
      "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -j DNAT --to-destination 192.168.1.20\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n-A INPUT -m state --state UNTRACKED -j ACCEPT\n"
      "-A INPUT -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  for (const char* spec : {"udp 1.1.1.1:5 -> 10.0.0.10:53", "udp 1.1.1.1:5 -> 10.0.0.10:54"}) {
    INFO(std::string(spec));
    auto o = run(dp, spec);
    CHECK(o.kind == nf::OutcomeKind::Delivered);
    CHECK_FALSE(o.dnat);
  }
  auto tracked = run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:55");
  CHECK(tracked.kind == nf::OutcomeKind::Forwarded);  // DNATed away to 192.168.1.20
  CHECK(tracked.dnat);
}

TEST_CASE("CT --zone separates conntrack entries") {
  auto rs = rules(
      "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i eth1 -j CT --zone 7\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate ESTABLISHED -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK(run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:9", "eth0").kind == nf::OutcomeKind::Delivered);
  CHECK(run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:9", "eth1").kind == nf::OutcomeKind::Delivered);
  CHECK(dp.conntrack().size() == 2);
}

TEST_CASE("TPROXY delivers to a transparent socket and marks; no socket drops") {
  auto rs = rules(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -p tcp --dport 80 -j TPROXY --on-port 15001 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1\n"
      "-A PREROUTING -p tcp --dport 81 -j TPROXY --on-port 15002\nCOMMIT\n");
  nf::Node n = node();
  n.sockets.push_back({proto::TCP, Addr::any(Family::V4), 15001, true});
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = run(dp, "tcp 1.1.1.1:5 -> 93.184.216.34:80");
  CHECK(o.kind == nf::OutcomeKind::Delivered);
  CHECK(o.after.mark == 1);
  auto d = run(dp, "tcp 1.1.1.1:6 -> 93.184.216.34:81");
  CHECK(d.kind == nf::OutcomeKind::Dropped);
  CHECK(d.reason == DropReason::TproxyNoSocket);
}

TEST_CASE("TCPMSS, LOG, NFLOG, CHECKSUM observe and continue; QUEUE queues") {
  auto rs = rules(
      "*mangle\n:FORWARD ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n"
      "-A POSTROUTING -j CHECKSUM --checksum-fill\nCOMMIT\n"
      "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j LOG\n-A FORWARD -j NFLOG\n-A FORWARD -p udp -j QUEUE\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK(run(dp, "tcp 1.1.1.1:5 -> 8.8.8.8:80").kind == nf::OutcomeKind::Forwarded);
  CHECK(run(dp, "udp 1.1.1.1:5 -> 8.8.8.8:53").kind == nf::OutcomeKind::Unsimulated);
  n.nfqueue = nf::Node::QueueListener::None;
  nf::Datapath dq(n);
  nf::attach_iptables(dq, &rs, nullptr, nullptr);
  auto q = run(dq, "udp 1.1.1.1:5 -> 8.8.8.8:53");
  CHECK(q.kind == nf::OutcomeKind::Dropped);
  CHECK(q.reason == DropReason::QueueNoListener);
}

TEST_CASE("IPv6: ip6tables DNAT, ICMPv6, and the IPv6 forwarding sysctl") {
  auto rs6 = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d fd00::10/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd01::20]:8080\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n"
      "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT\n"
      "-A FORWARD -d fd01::20/128 -p tcp -m conntrack --ctstate DNAT -j ACCEPT\n"
      "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
      Family::V6);
  nf::Node n;
  CHECK(nf::apply_local_ip(n, "fd00::10/64@eth0").empty());
  CHECK(nf::apply_local_ip(n, "fd01::1/64@eth1").empty());
  CHECK(n.sys.set("net.ipv6.conf.all.forwarding", "1").empty());
  nf::Datapath dp(n);
  nf::attach_iptables(dp, nullptr, &rs6, nullptr);
  auto o = run(dp, "tcp [fd00::99]:4000 -> [fd00::10]:80");
  CHECK(o.kind == nf::OutcomeKind::Forwarded);
  CHECK(o.out == "eth1");
  CHECK(o.after.t.str() == "tcp [fd00::99]:4000 -> [fd01::20]:8080");
  auto r = run(dp, "tcp/SA [fd01::20]:8080 -> [fd00::99]:4000", "eth1");
  CHECK(r.after.t.str() == "tcp [fd00::10]:80 -> [fd00::99]:4000");
  CHECK(run(dp, "icmp6 [fd00::99] -> [fd00::10]").kind == nf::OutcomeKind::Delivered);
  // The IPv4 forwarding sysctl does not forward IPv6.
  nf::Node v4only;
  CHECK(nf::apply_local_ip(v4only, "fd00::10/64@eth0").empty());
  CHECK(nf::apply_local_ip(v4only, "fd01::1/64@eth1").empty());
  CHECK(v4only.sys.set("net.ipv4.ip_forward", "1").empty());
  nf::Datapath dp2(v4only);
  nf::attach_iptables(dp2, nullptr, &rs6, nullptr);
  CHECK(run(dp2, "tcp [fd00::99]:4001 -> [fd00::10]:80").reason == DropReason::ForwardingOff);
}

// One NAT target for both engines (nat_target): nf_nat_setup_info never drops — a tuple it cannot
// make unique (a one-port range already in use) is bound anyway and refused when conntrack confirms
// the entry (insert clash); MASQUERADE with no address on the node to use drops (nf_nat_masquerade's
// NF_DROP; inet_select_addr falls back to other interfaces' addresses first).
TEST_CASE("NAT targets: iptables and nftables share the kernel's answers for a taken port and no address") {
  nf::Node n = node();
  nf::Node bare;  // no address but loopback's
  bare.ensure("eth0");
  bare.ensure("eth1");
  REQUIRE(nf::apply_route(bare, "default=eth0").empty());
  REQUIRE(bare.sys.set("net.ipv4.ip_forward", "1").empty());
  auto ipt = rules(
      "*nat\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -o eth0 -p udp -j SNAT --to-source 10.0.0.10:1000\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n");
  auto nft = nf::nft::load(
      "table ip t {\n"
      "\tchain post {\n"
      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\toifname \"eth0\" meta l4proto udp snat to 10.0.0.10:1000\n"
      "\t\toifname \"eth0\" masquerade\n"
      "\t}\n"
      "}\n",
      "t.nft");
  for (bool use_nft : {false, true}) {
    INFO(std::string(use_nft ? "nftables" : "iptables"));
    auto attach = [&](nf::Datapath& dp) {
      nf::attach_iptables(dp, use_nft ? nullptr : &ipt, nullptr, nullptr);
      if (use_nft) nf::nft::attach(dp, nft);
    };
    nf::Datapath dp(n);
    attach(dp);
    auto a = run(dp, "udp 192.168.1.50:5000 -> 8.8.8.8:53", "eth1");
    CHECK(a.kind == nf::OutcomeKind::Forwarded);
    CHECK(a.after.t.str() == "udp 10.0.0.10:1000 -> 8.8.8.8:53");
    auto b = run(dp, "udp 192.168.1.51:5001 -> 8.8.8.8:53", "eth1");
    CHECK(b.kind == nf::OutcomeKind::Dropped);
    CHECK(b.reason == DropReason::CtInsertClash);
    nf::Datapath dp2(bare);
    attach(dp2);
    auto c = run(dp2, "tcp 192.168.1.52:5002 -> 203.0.113.9:80", "eth1");
    CHECK(c.kind == nf::OutcomeKind::Dropped);
    CHECK(c.reason == DropReason::NatNoAddress);
  }
}

TEST_CASE("NETMAP maps the network part and keeps the host part (destination in PREROUTING, source in POSTROUTING)") {
  auto rs = rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 10.9.9.0/24 -j NETMAP --to 192.168.1.0/24\n"
      "-A POSTROUTING -o eth0 -s 192.168.1.0/24 -j NETMAP --to 10.7.7.0/24\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto in = run(dp, "tcp 8.8.8.8:5000 -> 10.9.9.42:80", "eth0");
  CHECK(in.kind == nf::OutcomeKind::Forwarded);
  CHECK(in.after.t.str() == "tcp 8.8.8.8:5000 -> 192.168.1.42:80");
  auto out = run(dp, "tcp 192.168.1.77:6000 -> 8.8.8.8:443", "eth1");
  CHECK(out.after.t.str() == "tcp 10.7.7.77:6000 -> 8.8.8.8:443");
}

TEST_CASE("DSCP and TOS rewrite the TOS byte that later rules match (ECN bits kept)") {
  auto rs = rules(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
      "-A PREROUTING -p udp -j DSCP --set-dscp 0x2e\n"
      "-A PREROUTING -p tcp -j TOS --set-tos 0x10/0x3f\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n"
      "-A INPUT -m dscp --dscp-class EF -m ecn --ecn-ip-ect 1 -j DROP\n"
      "-A INPUT -m tos --tos 0xd0/0xff -j REJECT\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto u = run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:53 tos=0x01");
  CHECK(u.kind == nf::OutcomeKind::Dropped);
  CHECK(u.after.tos == 0xb9);
  auto t = run(dp, "tcp 1.1.1.1:5 -> 10.0.0.10:80 tos=0xc4");
  CHECK(t.after.tos == 0xd0);  // (0xc4 & ~0x3f) ^ 0x10
  CHECK(t.kind == nf::OutcomeKind::Rejected);
}

TEST_CASE("CT --zone-orig mark takes the zone from the packet mark; TEE notes its copy and continues") {
  auto rs = rules(
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -j CT --zone-orig mark\n-A PREROUTING -j TRACE\nCOMMIT\n"
      "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j TEE --gateway 10.0.0.99\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  auto o = run(dp, "tcp 1.1.1.1:5 -> 10.0.0.10:80 mark=0x7");
  CHECK(o.kind == nf::OutcomeKind::Delivered);
  CHECK(o.after.ct_zone == 7);
  bool noted = false;
  for (auto& e : o.trace)
    if (e.kind == TraceKind::Note && e.detail.find("10.0.0.99") != std::string::npos) noted = true;
  CHECK(noted);
}

TEST_CASE("iptables back ends: nft creates only the built-in chains a dump names and runs security after nat INPUT") {
  const std::string dump =
      "# Generated by iptables-save v1.8.9 (nf_tables)\n"
      "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
      "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      // A conntrack user off this packet's way: without one the nat chains are never walked.
      "-A FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n"
      "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j TRACE\nCOMMIT\n";
  CHECK(nf::detect_backend(dump) == nf::XtBackend::Nft);
  CHECK(nf::detect_backend("# Generated by iptables-save v1.4.21 on Sun Jan 31 2016\n*filter\nCOMMIT\n") ==
        nf::XtBackend::Legacy);
  auto walk = [&](nf::XtBackend b) {
    nf::Ruleset rs;
    nf::RestoreOptions opt;
    opt.backend = b;
    nf::load_restore(dump, "t.rules", rs, opt);
    nf::Node n = node();
    nf::Datapath dp(n);
    nf::attach_iptables(dp, &rs, nullptr, nullptr);
    return trace_ids(run(dp, "tcp 1.1.1.1:5 -> 10.0.0.10:80"));
  };
  // legacy: every built-in chain exists (nat INPUT too), security at 50 before nat INPUT at 100.
  CHECK(walk(nf::XtBackend::Legacy) == std::vector<std::string>{"raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2",
                                                                "nat:PREROUTING:policy:1", "security:INPUT:policy:1",
                                                                "nat:INPUT:policy:1"});
  // nft: no nat INPUT (never named), security's base chain at 150.
  CHECK(walk(nf::XtBackend::Nft) == std::vector<std::string>{"raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2",
                                                             "nat:PREROUTING:policy:1", "security:INPUT:policy:1"});
}

TEST_CASE("rpfilter: a 0/8 source passes only towards broadcast or 224.0.0.0/24, else the reverse route decides") {
  auto rs = rules("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m rpfilter --invert -j DROP\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK(run(dp, "udp 0.0.0.0:68 -> 255.255.255.255:67", "eth1").kind != nf::OutcomeKind::Dropped);
  CHECK(run(dp, "udp 0.0.0.0:68 -> 8.8.8.8:67", "eth1").kind == nf::OutcomeKind::Dropped);  // default route is eth0
  CHECK(run(dp, "udp 192.168.1.7:68 -> 8.8.8.8:67", "eth1").kind != nf::OutcomeKind::Dropped);
  CHECK(run(dp, "udp 192.168.1.7:68 -> 8.8.8.8:67", "eth0").kind == nf::OutcomeKind::Dropped);
}
