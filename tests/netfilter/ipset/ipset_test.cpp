// ipset save/restore format: every supported type, options, round trip, errors.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "netfilter/ipset/ipset.hpp"

using namespace svcpath;

TEST_CASE("ipset save output (as ipset 7.17 prints it) loads and saves back unchanged") {
  // Taken from a real `ipset save` (bucketsize/initval kept verbatim), element order preserved.
  std::string text =
      "create A hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xbec4ccbd\n"
      "add A 10.0.0.2,tcp:53\nadd A 10.0.0.4,icmp:echo-request\nadd A 10.0.0.3,udp:53\nadd A 10.0.0.1,tcp:80\n"
      "create B bitmap:port range 0-65535\nadd B 30080\n"
      "create C hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xe5b5b9b9\n"
      "add C 10.0.0.0/24\nadd C 10.1.0.0/16\nadd C 10.0.0.5 nomatch\n"
      "create D hash:ip,port,net family inet hashsize 1024 maxelem 65536 timeout 100 comment bucketsize 12 initval 0x63b773b0\n"
      "add D 10.0.0.1,tcp:80,192.168.0.0/16 timeout 99 comment \"hi there\"\n"
      "create F hash:ip family inet6 hashsize 1024 maxelem 65536 counters bucketsize 12 initval 0x62abe354\n"
      "add F fd00::1 packets 0 bytes 0\n"
      "create H hash:ip,port,ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x7fb9d8a6\n"
      "add H 10.0.0.1,tcp:80,10.0.0.1\n"
      "create I hash:net,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x48ebaeee\n"
      "add I 10.0.0.0/8,sctp:5\n"
      "create E list:set size 8\nadd E A\n";
  nf::IpSets sets;
  nf::load_ipsets(text, "sets", sets);
  CHECK(nf::save_ipsets(sets) == text);
  CHECK(sets.find("A")->entries.size() == 4);
  CHECK(sets.find("E")->member_index[0] == sets.index_of("A"));
}

TEST_CASE("ipset input conveniences expand like ipset does") {
  nf::IpSets sets;
  nf::load_ipsets(
      "create G hash:ip family inet hashsize 1024 maxelem 65536\nadd G 10.9.0.0/30\nadd G 10.8.0.1-10.8.0.2\n"
      "create P hash:ip,port family inet hashsize 1024 maxelem 65536\nadd P 10.0.0.2,53\nadd P 10.0.0.3,udp:1-3\n"
      "add P 1.2.3.4,gre:0\n-exist add P 10.0.0.2,tcp:53\n",
      "sets", sets);
  CHECK(sets.find("G")->entries.size() == 6);
  std::string s = nf::save_ipsets(sets);
  CHECK(s.find("add P 10.0.0.2,tcp:53\n") != std::string::npos);  // plain port means tcp
  CHECK(s.find("add P 10.0.0.3,udp:2\n") != std::string::npos);
  CHECK(s.find("add P 1.2.3.4,gre:0\n") != std::string::npos);
  CHECK(sets.find("P")->entries.size() == 5);  // re-adding is harmless
}

TEST_CASE("ipset errors carry their line") {
  struct Bad {
    const char* text;
    int line;
    const char* msg;
  } bad[] = {
      {"add X 1.2.3.4\n", 1, "does not exist"},
      {"create A hash:magic\n", 1, "unsupported set type"},
      {"create A hash:ip\ncreate A hash:ip\n", 2, "already exists (created at line 1)"},
      {"create A hash:ip\nadd A 1.2.3\n", 2, "not an IP address"},
      {"create A hash:ip\nadd A fd00::1\n", 2, "does not fit the set's family"},
      {"create B bitmap:port range 0-1000\nadd B 2000\n", 2, "out of range 0-1000"},
      {"create B bitmap:port\n", 1, "needs 'range FROM-TO'"},
      {"create A hash:ip,port\nadd A 1.2.3.4,tcp:70000\n", 2, "as a tcp port"},
      {"create A hash:ip,port\nadd A 1.2.3.4,gre:5\n", 2, "pseudo port value 0 only"},
      {"create A hash:ip,port\nadd A 1.2.3.4\n", 2, "has 1 part(s)"},
      {"create A hash:ip\nadd A 10.0.0.0/8\n", 2, "more than 65536 elements"},
      {"create A hash:ip maxelem 1\nadd A 1.1.1.1\nadd A 1.1.1.2\n", 3, "maxelem 1 reached"},
      {"create A hash:ip\nadd A 1.1.1.1 nomatch\n", 2, "only valid for hash:net"},
      {"create A hash:ip\nadd A 1.1.1.1 timeout 5\n", 2, "without timeout support"},
      {"create L list:set\nadd L NOPE\n", 1, "does not exist"},
      {"frobnicate\n", 1, "unknown command"},
      {"create A hash:ip family inet7\n", 1, "family must be inet or inet6"},
      {"create A hash:ip\nadd A 1.1.1.1 comment \"x\n", 2, "unterminated quote"},
  };
  for (auto& b : bad) {
    INFO(std::string(b.text));
    nf::IpSets sets;
    CHECK_LOAD_ERROR(nf::load_ipsets(b.text, "sets", sets), b.line, b.msg);
  }
}

TEST_CASE("ipset list output reads as ipset save does, errors on the pasted file's lines") {
  const char* list =
      "Name: web\nType: hash:ip,port\nRevision: 7\n"
      "Header: family inet hashsize 1024 maxelem 65536 comment skbinfo bucketsize 12 initval 0x1234abcd\n"
      "Size in memory: 264\nReferences: 1\nNumber of entries: 2\nMembers:\n"
      "10.0.0.1,tcp:80 comment \"a\" skbmark 0x10/0xff\n10.0.0.2,udp:53 skbprio 1:2 skbqueue 3\n\n"
      "Name: ports\nType: bitmap:port\nRevision: 3\nHeader: range 0-1023\nSize in memory: 192\nReferences: 0\n"
      "Number of entries: 1\nMembers:\n22\n";
  nf::IpSets sets;
  nf::load_ipsets(list, "list.txt", sets);
  std::string saved = nf::save_ipsets(sets);
  CHECK(saved.find("add web 10.0.0.1,tcp:80 comment \"a\" skbmark 0x10/0xff\n") != std::string::npos);
  CHECK(saved.find("add web 10.0.0.2,udp:53 skbprio 1:2 skbqueue 3\n") != std::string::npos);
  CHECK(saved.find("create ports bitmap:port range 0-1023\nadd ports 22\n") != std::string::npos);
  // The same sets from their save form print the same.
  nf::IpSets again;
  nf::load_ipsets(saved, "saved", again);
  CHECK(nf::save_ipsets(again) == saved);
  // A bad member is reported on its own line of the listing.
  std::string bad = std::string(list);
  bad.replace(bad.find("10.0.0.2,udp:53"), 15, "10.0.0.300,udp:53");
  nf::IpSets b;
  CHECK_LOAD_ERROR(nf::load_ipsets(bad, "list.txt", b), 10, "10.0.0.300");
  nf::IpSets c;
  CHECK_LOAD_ERROR(nf::load_ipsets("create s hash:ip\nadd s 10.0.0.1 skbmark 0x1\n", "s", c), 2, "without skbinfo support");
}
