// -j SET at run time (xt_SET): elements the packets add and delete, which later packets' -m set
// then sees; the element the kernel's kadt builds (a hash:net at its most specific prefix in use,
// hash:ip under its netmask), timeouts, --exist, maxelem, list:set members in order, --map-set.
// The kernel-differential "SET target" scenario checks the same against the real kernel.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "helpers.hpp"
#include "netfilter/iptables/engine.hpp"
#include "netfilter/iptables/hooks.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

struct Fixture {
  nf::IpSets sets;
  nf::Ruleset rs;
  nf::Node n = node();
  nf::Datapath dp{n};
  nf::Xtables* x = nullptr;
  Fixture(const std::string& ipsets, const std::string& text) {
    nf::load_ipsets(ipsets, "t.ipsets", sets);
    rs = rules(text);
    nf::resolve_sets(rs, sets, "test.rules");
    x = &nf::attach_iptables(dp, &rs, nullptr, &sets);
  }
  nf::OutcomeKind kind(const std::string& spec) { return run(dp, spec).kind; }
};

constexpr const char* kFilter = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";

}  // namespace

TEST_CASE("SET --add-set/--del-set change what later packets' -m set sees") {
  Fixture f("create banned hash:ip family inet\n", std::string(kFilter) +
                                                       "-A INPUT -p udp --dport 8 -j SET --del-set banned src\n"
                                                       "-A INPUT -m set --match-set banned src -j DROP\n"
                                                       "-A INPUT -p udp --dport 7 -j SET --add-set banned src\nCOMMIT\n");
  CHECK(f.kind("udp 10.0.0.5:1000 -> 10.0.0.10:53") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.5:1000 -> 10.0.0.10:7") == nf::OutcomeKind::Delivered);  // added on the way
  CHECK(f.kind("udp 10.0.0.5:1000 -> 10.0.0.10:53") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.6:1000 -> 10.0.0.10:53") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.5:1000 -> 10.0.0.10:8") == nf::OutcomeKind::Delivered);  // deleted first
  CHECK(f.kind("udp 10.0.0.5:1000 -> 10.0.0.10:53") == nf::OutcomeKind::Delivered);
  // The loaded sets stay as loaded: what changed lives with the datapath.
  CHECK(f.sets.at(0).entries.empty());
}

TEST_CASE("SET adds to a hash:net at its most specific prefix in use, to a hash:ip under its netmask") {
  // By experiment on the kernel: with 192.168.0.0/16 present, adding 10.0.1.77 adds 10.0.0.0/16;
  // an empty hash:net takes the host address; hash:ip netmask 24 adds the /24's address.
  Fixture f(
      "create nets hash:net family inet\nadd nets 192.168.0.0/16\ncreate empty hash:net family inet\n"
      "create m24 hash:ip family inet netmask 24\n",
      std::string(kFilter) +
          "-A INPUT -p udp --dport 9 -j SET --add-set nets src\n"
          "-A INPUT -p udp --dport 9 -j SET --add-set empty src\n"
          "-A INPUT -p udp --dport 9 -j SET --add-set m24 src\n"
          "-A INPUT -p udp --dport 1 -m set --match-set nets src -j DROP\n"
          "-A INPUT -p udp --dport 2 -m set --match-set empty src -j DROP\n"
          "-A INPUT -p udp --dport 3 -m set --match-set m24 src -j DROP\nCOMMIT\n");
  CHECK(f.kind("udp 10.0.1.77:5 -> 10.0.0.10:9") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.200.1:5 -> 10.0.0.10:1") == nf::OutcomeKind::Dropped);  // in 10.0.0.0/16
  CHECK(f.kind("udp 10.1.0.1:5 -> 10.0.0.10:1") == nf::OutcomeKind::Delivered);  // not
  CHECK(f.kind("udp 10.0.1.77:5 -> 10.0.0.10:2") == nf::OutcomeKind::Dropped);   // the host itself
  CHECK(f.kind("udp 10.0.1.78:5 -> 10.0.0.10:2") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.1.200:5 -> 10.0.0.10:3") == nf::OutcomeKind::Dropped);  // same /24
  CHECK(f.kind("udp 10.0.2.1:5 -> 10.0.0.10:3") == nf::OutcomeKind::Delivered);
}

TEST_CASE("SET timeouts: the set's default, --timeout, and --exist refreshing a live element") {
  Fixture f("create t hash:ip family inet timeout 10\ncreate plain hash:ip family inet\n",
            std::string(kFilter) +
                "-A INPUT -p udp --dport 1 -j SET --add-set t src\n"
                "-A INPUT -p udp --dport 2 -j SET --add-set t src --timeout 100\n"
                "-A INPUT -p udp --dport 3 -j SET --add-set t src --exist --timeout 100\n"
                "-A INPUT -p udp --dport 4 -j SET --add-set plain src --timeout 1\n"
                "-A INPUT -m set --match-set t src -j DROP\n"
                "-A INPUT -p udp --dport 5 -m set --match-set plain src -j DROP\nCOMMIT\n");
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:1 t=0") == nf::OutcomeKind::Dropped);  // added, 10 s
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:53 t=9.9") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:53 t=10") == nf::OutcomeKind::Delivered);  // timed out
  CHECK(f.kind("udp 10.0.0.6:5 -> 10.0.0.10:1 t=20") == nf::OutcomeKind::Dropped);
  // Without --exist a live element keeps its timeout: --timeout 100 does not extend it.
  CHECK(f.kind("udp 10.0.0.6:5 -> 10.0.0.10:2 t=25") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.6:5 -> 10.0.0.10:53 t=30") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.7:5 -> 10.0.0.10:1 t=40") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.7:5 -> 10.0.0.10:3 t=45") == nf::OutcomeKind::Dropped);  // refreshed to 145
  CHECK(f.kind("udp 10.0.0.7:5 -> 10.0.0.10:53 t=144") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.7:5 -> 10.0.0.10:53 t=145") == nf::OutcomeKind::Delivered);
  // A set created without timeout keeps what a SET --timeout adds for good.
  CHECK(f.kind("udp 10.0.0.8:5 -> 10.0.0.10:4 t=0") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.8:5 -> 10.0.0.10:5 t=1000") == nf::OutcomeKind::Dropped);
}

TEST_CASE("SET: maxelem bounds additions; a list:set adds to and deletes from its first member that takes it") {
  Fixture f(
      "create small hash:ip family inet maxelem 2\ncreate a hash:ip family inet\nadd a 10.0.0.5\n"
      "create b hash:ip family inet\ncreate l list:set\nadd l a\nadd l b\n",
      std::string(kFilter) +
          "-A INPUT -p udp --dport 1 -j SET --add-set small src\n"
          "-A INPUT -p udp --dport 2 -m set --match-set small src -j DROP\n"
          "-A INPUT -p udp --dport 3 -j SET --add-set l src\n"
          "-A INPUT -p udp --dport 4 -j SET --del-set l src\n"
          "-A INPUT -p udp --dport 5 -m set --match-set b src -j DROP\n"
          "-A INPUT -p udp --dport 6 -m set --match-set a src -j DROP\nCOMMIT\n");
  for (auto src : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) f.kind(fmt::format("udp {}:5 -> 10.0.0.10:1", src));
  CHECK(f.kind("udp 10.0.0.2:5 -> 10.0.0.10:2") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.3:5 -> 10.0.0.10:2") == nf::OutcomeKind::Delivered);  // the set was full
  // 10.0.0.5 is in a already (EEXIST), so list_set_kadd goes on and b takes it.
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:3") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:5") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.9:5 -> 10.0.0.10:3") == nf::OutcomeKind::Delivered);  // new: a takes it
  CHECK(f.kind("udp 10.0.0.9:5 -> 10.0.0.10:6") == nf::OutcomeKind::Dropped);
  CHECK(f.kind("udp 10.0.0.9:5 -> 10.0.0.10:5") == nf::OutcomeKind::Delivered);
  // --del-set on the list deletes from the first member holding it: a.
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:4") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:6") == nf::OutcomeKind::Delivered);
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:5") == nf::OutcomeKind::Dropped);
}

TEST_CASE("SET --map-set --map-mark sets the packet mark from the element's skbinfo") {
  Fixture f("create m hash:ip family inet skbinfo\nadd m 10.0.0.5 skbmark 0x10/0xf0\n",
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
            "-A PREROUTING -j SET --map-set m src --map-mark\nCOMMIT\n"
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m mark --mark 0x13 -j DROP\nCOMMIT\n");
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:53 mark=0x23") == nf::OutcomeKind::Dropped);     // (0x23 & ~0xf0) ^ 0x10
  CHECK(f.kind("udp 10.0.0.6:5 -> 10.0.0.10:53 mark=0x13") == nf::OutcomeKind::Dropped);     // no element: unchanged
  CHECK(f.kind("udp 10.0.0.5:5 -> 10.0.0.10:53 mark=0x103") == nf::OutcomeKind::Delivered);  // 0x113
}

TEST_CASE("SET names sets that must exist and fit the ruleset's family") {
  nf::IpSets sets;
  nf::load_ipsets("create s6 hash:ip family inet6\n", "t.ipsets", sets);
  auto rs = rules(std::string(kFilter) + "-A INPUT -j SET --add-set nosuch src\n-A INPUT -j SET --del-set s6 src\nCOMMIT\n");
  try {
    nf::resolve_sets(rs, sets, "x.rules");
    FAIL("loaded");
  } catch (const LoadError& e) {
    REQUIRE(e.diagnostics().size() == 2);
    CHECK(e.diagnostics()[0].message == "Set nosuch doesn't exist (load it with --ipsets)");
    CHECK(e.diagnostics()[1].message == "set s6 is family inet6, the ruleset is IPv4");
  }
}
