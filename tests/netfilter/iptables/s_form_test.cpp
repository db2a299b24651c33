// `iptables -S` output and CRLF files as --rules input: the table of each block inferred, several
// tables concatenated, `-S -v` counters, line numbers kept, and the save form printed back. The
// expected save text is what iptables-legacy-save 1.8.9 printed after the same rules were restored.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "netfilter/nftables/nft.hpp"

using namespace svcpath;
using svcpath::test::rules;

namespace {

std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) out += c == '\n' ? std::string("\r\n") : std::string(1, c);
  return out;
}

std::string saved(const std::string& text, Family f = Family::V4) { return nf::save(rules(text, f)); }

// The table names the blocks were read as, in order.
std::string tables(const std::string& text) {
  std::string out;
  for (auto& t : rules(text).tables) out += std::string(nf::table_name(t.id)) + " ";
  return out;
}

}  // namespace

TEST_CASE("iptables -S: one table, printed as iptables-save prints it") {
  // iptables -t filter -S, then iptables-save, of the same kernel table.
  std::string s =
      "-P INPUT DROP\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N ABC\n-N ZED\n-A INPUT -s 10.0.0.0/8 -j ABC\n"
      "-A ABC -p tcp -m tcp --dport 22 -j ACCEPT\n-A ZED -j RETURN\n";
  CHECK(saved(s) ==
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ABC - [0:0]\n:ZED - [0:0]\n"
        "-A INPUT -s 10.0.0.0/8 -j ABC\n-A ABC -p tcp -m tcp --dport 22 -j ACCEPT\n-A ZED -j RETURN\nCOMMIT\n");
}

TEST_CASE("iptables -S: the table comes from the -P lines, then from the targets") {
  CHECK(tables("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n") == "nat ");
  CHECK(tables("-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n") ==
        "mangle ");
  CHECK(tables("-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n") == "raw ");
  CHECK(tables("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n") == "filter ");
  // No -P lines (`iptables -S CHAIN` of a user chain, or hand-written): the targets decide.
  CHECK(tables("-N DOCKER\n-A DOCKER -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80\n") == "nat ");
  CHECK(tables("-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff\n") == "mangle ");
  CHECK(tables("-A PREROUTING -j CT --notrack\n") == "raw ");
  CHECK(tables("-A OUTPUT -j ACCEPT\n") == "filter ");
  // A built-in chain outside filter rules filter out; POSTROUTING and INPUT: nat (mangle has them too).
  CHECK(tables("-A POSTROUTING -j ACCEPT\n-A INPUT -j ACCEPT\n") == "nat ");
  // DROP is refused in nat: with PREROUTING that leaves mangle.
  CHECK(tables("-A PREROUTING -j DROP\n") == "mangle ");
  // A target valid in one table only outweighs -P lines that name another's chains (iptables-nft
  // lists only the base chains that exist).
  CHECK(tables("-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-A OUTPUT -d 10.0.0.1/32 -j DNAT --to-destination 10.0.0.2\n") == "nat ");
}

TEST_CASE("iptables -S: several tables concatenated, each starting at its -P run") {
  // for t in filter nat mangle raw security; do iptables -t $t -S; done (empty raw and security).
  std::string s =
      "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-A FORWARD -i eth0 -j ACCEPT\n"
      "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n-A POSTROUTING -o eth0 -j MASQUERADE\n"
      "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
      "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n"
      "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n";
  // Adjacent -P runs split where a hook does not come after the previous one (mangle's POSTROUTING,
  // raw's PREROUTING); the second filter-shaped block is security, as filter was taken.
  CHECK(tables(s) == "filter nat mangle raw security ");
  auto rs = rules(s);
  CHECK(rs.table(nf::TableId::Filter)->chains[1].policy == nf::Policy::Drop);
  CHECK(rs.table(nf::TableId::Nat)->chains[3].rules.size() == 1);
}

TEST_CASE("iptables -S -v: counters after the policy and in the rule, kept with --counters") {
  std::string s =
      "-P INPUT DROP -c 10 840\n-P FORWARD ACCEPT -c 0 0\n-P OUTPUT ACCEPT -c 0 0\n"
      "-A INPUT -s 10.0.0.0/8 -c 3 180 -j ACCEPT\n";
  nf::Ruleset rs;
  nf::RestoreOptions opt;
  opt.counters = true;
  nf::load_restore(s, "v.S", rs, opt);
  CHECK(nf::save(rs, true) ==
        "*filter\n:INPUT DROP [10:840]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[3:180] -A INPUT -s 10.0.0.0/8 -j ACCEPT\n"
        "COMMIT\n");
  CHECK(nf::save(rules(s), true).find("[10:840]") == std::string::npos);  // without --counters, zero
  CHECK_LOAD_ERROR(rules("-P INPUT DROP -c 10\n"), 1, "only '-c PACKETS BYTES' may follow it");
  CHECK_LOAD_ERROR(rules("-P INPUT DROP -c 1 2 3\n"), 1, "unexpected text after the policy's counters");
}

TEST_CASE("iptables -S: errors keep the pasted file's lines") {
  // The third line of the paste is wrong; the implicit *table and COMMIT shift nothing.
  CHECK_LOAD_ERROR(rules("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-A INPUT -s 10.0.0.300 -j ACCEPT\n"), 3, "not an IP address");
  // The second table's jump to a chain it lacks: the rule's own line.
  CHECK_LOAD_ERROR(rules("-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-A OUTPUT -j nope\n"), 5,
                   "jump to chain 'nope', which does not exist in table 'raw'");
  // *table blocks and a bare -A: restore input, and the -A is outside a table.
  CHECK_LOAD_ERROR(rules("-A INPUT -j ACCEPT\n*filter\nCOMMIT\n"), 1, "'-A' outside a table");
  CHECK_LOAD_ERROR(rules("*filter\nCOMMIT\n-A INPUT -j ACCEPT\n"), 3, "'-A' outside a table");
  // A word no -S line starts with, alone: restore's error too.
  CHECK_LOAD_ERROR(rules("-X FOO\n"), 1, "'-X' outside a table");
}

TEST_CASE("ip6tables -S: the family is guessed from IPv6 addresses or ICMPv6") {
  CHECK(nf::guess_family("-P INPUT ACCEPT\n-A INPUT -s fe80::/10 -j ACCEPT\n") == Family::V6);
  CHECK(nf::guess_family("-P INPUT ACCEPT\n-A INPUT -p ipv6-icmp -j ACCEPT\n") == Family::V6);
  CHECK(nf::guess_family("-A INPUT -j REJECT --reject-with icmp6-port-unreachable\n") == Family::V6);
  CHECK(nf::guess_family("# Generated by ip6tables-save v1.8.9\n*filter\nCOMMIT\n") == Family::V6);
  // Restore input without the header stays IPv4: its IPv6 address is the error it always was.
  CHECK(nf::guess_family("*filter\n-A INPUT -s fe80::/10 -j ACCEPT\nCOMMIT\n") == Family::V4);
  // A port after an IPv4 address is not IPv6.
  CHECK(nf::guess_family("-A OUTPUT -p tcp -j DNAT --to-destination 10.0.0.1:80\n-A INPUT -s 10.0.0.1 -j ACCEPT\n") ==
        Family::V4);
  CHECK(saved("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A INPUT -s fe80::/10 -j ACCEPT\n", Family::V6) ==
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s fe80::/10 -j ACCEPT\nCOMMIT\n");
}

TEST_CASE("CRLF line ends read as LF, in restore input and in -S output") {
  std::string lf = "*filter\n:INPUT DROP [0:0]\n-A INPUT -m comment --comment \"a b\" -j ACCEPT\nCOMMIT\n";
  CHECK(saved(crlf(lf)) == saved(lf));
  CHECK(saved("-P INPUT DROP\r\n-A INPUT -j ACCEPT\r\n") == saved("-P INPUT DROP\n-A INPUT -j ACCEPT\n"));
  // A line's column counts are unchanged by the CR at its end.
  CHECK_LOAD_ERROR(rules("*filter\r\n:INPUT ACCEPT [0:0]\r\n-A INPUT -s 1.2.3 -j ACCEPT\r\nCOMMIT\r\n"), 3, "not an IP address");
}

TEST_CASE("CRLF in the other readers: ipset save and list, nft list ruleset") {
  // ipset restore itself accepts CRLF; nft -f refuses it ("unexpected junk"), svcpath reads both.
  auto sets = [](std::string_view text) {
    nf::IpSets s;
    nf::load_ipsets(text, "t.ipsets", s);
    return nf::save_ipsets(s);
  };
  std::string save = "create s hash:ip family inet hashsize 1024 maxelem 65536 comment\nadd s 1.2.3.4 comment \"x y\"\n";
  CHECK(sets(crlf(save)) == sets(save));
  std::string list =
      "Name: s\nType: hash:ip\nRevision: 6\nHeader: family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval "
      "0x1\nSize in memory: 200\nReferences: 0\nNumber of entries: 1\nMembers:\n1.2.3.4 comment \"x y\"\n";
  CHECK(sets(crlf(list)) == sets(list));
  std::string nft =
      "table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr 1.2.3.4 "
      "drop\n\t}\n}\n";
  CHECK(nf::nft::print(nf::nft::load(crlf(nft), "t.nft")) == nf::nft::print(nf::nft::load(nft, "t.nft")));
}
