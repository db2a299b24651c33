// Conntrack engagement (which loaded rules attach conntrack to a family, and what a packet meets
// without it) and a tuple that is its own reply. Every expectation here was seen on kernel 6.18 in
// a network namespace (tests/kernel/differential.py runs the same cases against it).
#include <algorithm>

#include <doctest/doctest.h>

#include "helpers.hpp"
#include "ipvs/engine.hpp"
#include "ipvs/ipvsadm.hpp"
#include "kube/sim/snapshot.hpp"
#include "netfilter/nftables/hooks.hpp"
#include "netfilter/nftables/nft.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

const char* kNatLogOnly =
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
    "-A PREROUTING -j LOG --log-prefix \"pre \"\n-A PREROUTING -j ACCEPT\n-A POSTROUTING -j ACCEPT\nCOMMIT\n";

bool has_nat_step(const nf::Outcome& o) {
  for (auto& id : trace_ids(o))
    if (id.starts_with("nat:")) return true;
  return false;
}

bool noted_off(const nf::Outcome& o) {
  for (auto& e : o.trace)
    if (e.kind == TraceKind::Conntrack && e.target == "off") return true;
  return false;
}

// Which families a dump (v4 and/or v6) attaches conntrack and defragmentation to.
struct Engaged {
  bool v4, v6, defrag4;
  bool operator==(const Engaged&) const = default;
};
Engaged engaged_by(const std::string& v4_text, const std::string& v6_text = "") {
  std::optional<nf::Ruleset> v4, v6;
  if (!v4_text.empty()) v4 = rules(v4_text);
  if (!v6_text.empty()) v6 = rules(v6_text, Family::V6);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, v4 ? &*v4 : nullptr, v6 ? &*v6 : nullptr, nullptr);
  auto& ct = dp.conntrack();
  return {ct.engaged(Family::V4), ct.engaged(Family::V6), ct.defrag(Family::V4)};
}

std::string table(const std::string& name, const std::string& rule) { return "*" + name + "\n-A " + rule + "\nCOMMIT\n"; }

}  // namespace

TEST_CASE("engagement: a nat table alone attaches no conntrack, so its chains are never walked") {
  auto rs = rules(kNatLogOnly);
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  CHECK_FALSE(dp.conntrack().engaged(Family::V4));
  auto o = run(dp, "udp 1.2.3.4:5 -> 192.168.1.9:53");
  CHECK(o.kind == nf::OutcomeKind::Forwarded);
  CHECK_FALSE(has_nat_step(o));
  CHECK(noted_off(o));
  CHECK(dp.conntrack().size() == 0);
  CHECK(dp.counters().ct_lookups == 0);

  // One conntrack user anywhere (here in a chain nothing jumps to) and the same packet is tracked
  // and walks nat PREROUTING and POSTROUTING.
  auto with = rules(std::string(kNatLogOnly) +
                    "*filter\n:FORWARD ACCEPT [0:0]\n:UNUSED - [0:0]\n-A UNUSED -m state --state INVALID -j DROP\nCOMMIT\n");
  nf::Datapath dp2(n);
  nf::attach_iptables(dp2, &with, nullptr, nullptr);
  auto o2 = run(dp2, "udp 1.2.3.4:5 -> 192.168.1.9:53");
  CHECK(trace_ids(o2) == std::vector<std::string>{"nat:PREROUTING:rule:1", "nat:PREROUTING:policy:2", "filter:FORWARD:policy:1",
                                                  "nat:POSTROUTING:policy:1"});
  CHECK_FALSE(noted_off(o2));
  CHECK(dp2.conntrack().size() == 1);
}

TEST_CASE("engagement: which matches and targets attach conntrack, defragmentation only, or nothing") {
  struct Case {
    const char* table;
    const char* rule;
    Engaged want;
  };
  const Engaged none{false, false, false}, ct4{true, false, true}, defrag4{false, false, true};
  const Case cases[] = {
      {"filter", "INPUT -p tcp --dport 22 -j ACCEPT", none},
      {"filter", "INPUT -p tcp -j REJECT --reject-with tcp-reset", none},
      {"filter", "INPUT -m recent --set", none},
      {"raw", "PREROUTING -j CT --notrack", none},
      {"raw", "PREROUTING -j NOTRACK", none},
      {"raw", "PREROUTING -j CT --zone 1", ct4},
      {"raw", "PREROUTING -p tcp --dport 21 -j CT --helper ftp", ct4},
      {"mangle", "PREROUTING -j CONNMARK --set-mark 1", ct4},
      {"mangle", "PREROUTING -m connmark --mark 1", ct4},
      {"filter", "INPUT -m conntrack --ctstate NEW", ct4},
      {"filter", "INPUT -m state --state NEW", ct4},
      {"filter", "INPUT -p tcp -m connlimit --connlimit-above 2", ct4},
      {"filter", "INPUT -m helper --helper ftp", ct4},
      {"nat", "POSTROUTING -o eth1 -j MASQUERADE", ct4},
      {"nat", "PREROUTING -p tcp -j DNAT --to-destination 1.2.3.4", ct4},
      {"nat", "OUTPUT -p tcp -j REDIRECT", ct4},
      {"filter", "INPUT -m socket", defrag4},
      {"mangle", "PREROUTING -p tcp -j TPROXY --on-port 1 --tproxy-mark 0x1/0x1", defrag4},
  };
  for (auto& c : cases) {
    INFO(c.table << ": " << c.rule);
    CHECK(engaged_by(table(c.table, c.rule)) == c.want);
  }
  // Per family: an ip6tables rule attaches IPv6 alone.
  CHECK(engaged_by(kNatLogOnly, table("filter", "INPUT -m conntrack --ctstate NEW")) == Engaged{false, true, false});
}

TEST_CASE("engagement: nftables ct expressions and nat statements attach the table's families; a nat chain alone does not") {
  auto engaged = [](const std::string& text) {
    auto rs = nf::nft::load(text, "t.nft");
    nf::Node n = node();
    nf::Datapath dp(n);
    nf::nft::attach(dp, rs);
    return std::pair{dp.conntrack().engaged(Family::V4), dp.conntrack().engaged(Family::V6)};
  };
  const std::string nat_only = "table ip t {\n chain pre { type nat hook prerouting priority dstnat; meta mark set 1; }\n}\n";
  CHECK(engaged(nat_only) == std::pair{false, false});
  CHECK(engaged("table ip t {\n chain pre { type nat hook prerouting priority dstnat; tcp dport 1 dnat to 1.2.3.4; }\n}\n") ==
        std::pair{true, false});
  CHECK(engaged("table ip6 t {\n chain c { type filter hook input priority 0; ct state new accept; }\n}\n") ==
        std::pair{false, true});
  // A chain no base chain jumps to counts: the expression is initialised when the rule is loaded.
  CHECK(engaged("table inet t {\n chain c { ct mark 1 accept; }\n}\n") == std::pair{true, true});
  CHECK(engaged("table inet t {\n chain c { type filter hook prerouting priority -300; notrack; }\n}\n") ==
        std::pair{false, false});

  // Without conntrack the nat chain's mark is never set: the packet is forwarded unmarked.
  auto rs = nf::nft::load(nat_only, "t.nft");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::nft::attach(dp, rs);
  auto o = run(dp, "tcp 1.2.3.4:5 -> 192.168.1.9:80");
  CHECK(o.kind == nf::OutcomeKind::Forwarded);
  CHECK(o.after.mark == 0);
  CHECK(noted_off(o));
}

TEST_CASE("engagement: a node whose table counts entries, or lists some, has conntrack attached") {
  nf::Node n = node();
  CHECK(n.sys.set("net.netfilter.nf_conntrack_count", "12").empty());
  nf::Datapath dp(n);
  CHECK(dp.conntrack().engaged(Family::V4));
  CHECK(dp.conntrack().engaged(Family::V6));
  CHECK(n.sys.set("net.netfilter.nf_conntrack_count", "x") == "sysctl net.netfilter.nf_conntrack_count needs a number, not 'x'");

  nf::Node plain = node();
  nf::Datapath dp2(plain);
  CHECK_FALSE(dp2.conntrack().engaged(Family::V6));
  nf::CtEntry e;
  e.orig = FiveTuple{*Addr::parse("2001:db8::1"), *Addr::parse("2001:db8::2"), 5, 80, proto::TCP};
  e.reply = *nf::Conntrack::invert(e.orig);
  CHECK(sim::seed_conntrack(dp2.conntrack(), {e}) == 0);
  CHECK(dp2.conntrack().engaged(Family::V6));
  CHECK_FALSE(dp2.conntrack().engaged(Family::V4));
}

TEST_CASE("conntrack: a tuple that is its own reply is found as the reply after the first packet") {
  auto rs = rules(
      "*filter\n:FORWARD ACCEPT [0:0]\n"
      "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT\n"
      "-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT\n"
      "-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -j ACCEPT\n"
      "-A FORWARD -m conntrack --ctstate INVALID -j ACCEPT\nCOMMIT\n");
  nf::Node n = node();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  // The FORWARD rule that accepted the packet tells its state and direction.
  auto where = [&](const std::string& spec, const std::string& iif = "eth0") {
    auto ids = trace_ids(run(dp, spec, iif));
    return ids.empty() ? std::string() : ids.back();
  };
  // As kernel 6.18 answers (tests/kernel/differential.py, "a tuple that is its own reply").
  CHECK(where("udp 192.168.1.7:80 -> 192.168.1.7:80") == "filter:FORWARD:rule:1");  // NEW
  CHECK(where("udp 192.168.1.7:80 -> 192.168.1.7:80") == "filter:FORWARD:rule:2");  // ESTABLISHED, reply
  CHECK(where("udp 192.168.1.7:80 -> 192.168.1.7:80", "eth1") == "filter:FORWARD:rule:2");
  CHECK(where("tcp/A 192.168.1.8:80 -> 192.168.1.8:80") == "filter:FORWARD:rule:1");  // loose pickup: NEW
  CHECK(where("tcp/A 192.168.1.8:80 -> 192.168.1.8:80") == "filter:FORWARD:rule:2");
  CHECK(where("tcp 192.168.1.8:80 -> 192.168.1.8:80") == "filter:FORWARD:rule:4");  // a SYN in the reply direction: INVALID
  CHECK(where("tcp 192.168.1.9:80 -> 192.168.1.9:80") == "filter:FORWARD:rule:1");
  CHECK(where("tcp 192.168.1.9:80 -> 192.168.1.9:80") == "filter:FORWARD:rule:2");  // simultaneous open
  // An ordinary tuple sent twice stays in the original direction: NEW until a reply.
  CHECK(where("udp 192.168.1.7:81 -> 192.168.1.7:80") == "filter:FORWARD:rule:1");
  CHECK(where("udp 192.168.1.7:81 -> 192.168.1.7:80") == "filter:FORWARD:rule:1");
}

TEST_CASE("engagement: IPVS attaches conntrack only for an FTP-NAT service (__ip_vs_update_dest)") {
  auto engaged = [](const std::string& ipvsadm) {
    ipvs::Engine e;
    ipvs::load_ipvsadm(ipvsadm, "t.ipvs", e.services);
    nf::Node n = node();
    nf::Datapath dp(n);
    e.attach(dp);
    return dp.conntrack().engaged(Family::V4);
  };
  CHECK_FALSE(engaged("-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.244.1.5:80 -m -w 1\n"));
  CHECK_FALSE(engaged("-A -t 10.96.0.1:21 -s rr\n-a -t 10.96.0.1:21 -r 10.244.1.5:21 -g -w 1\n"));
  CHECK(engaged("-A -t 10.96.0.1:21 -s rr\n-a -t 10.96.0.1:21 -r 10.244.1.5:21 -m -w 1\n"));
}

// By experiment (kernel 6.18): without nf_defrag a lone IPv4 fragment walks PREROUTING as it is,
// and ip_local_deliver's reassembly holds it before LOCAL_IN; with conntrack it is held before raw.
TEST_CASE("engagement: a lone IPv4 fragment reaches PREROUTING only without conntrack, INPUT never") {
  const std::string mangle = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x1/0x1\n"
                             "-A INPUT -j MARK --set-xmark 0x2/0x2\nCOMMIT\n";
  for (bool with_ct : {false, true}) {
    auto rs = rules(mangle + (with_ct ? "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m state --state INVALID -j ACCEPT\nCOMMIT\n" : ""));
    nf::Node n = node();
    nf::Datapath dp(n);
    nf::attach_iptables(dp, &rs, nullptr, nullptr);
    auto o = run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:53 mf");
    CHECK(o.kind == nf::OutcomeKind::Dropped);
    auto ids = trace_ids(o);
    bool pre = std::find(ids.begin(), ids.end(), "mangle:PREROUTING:rule:1") != ids.end();
    bool in = std::find(ids.begin(), ids.end(), "mangle:INPUT:rule:1") != ids.end();
    CHECK(pre == !with_ct);
    CHECK_FALSE(in);
    auto whole = run(dp, "udp 1.1.1.1:5 -> 10.0.0.10:53");
    CHECK(whole.kind == nf::OutcomeKind::Delivered);
  }
}
