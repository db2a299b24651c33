// IPv6 extension headers: the packet spec's ext= chain, ip6tables' frag / ipv6header / hbh / dst /
// rt / ah matches and -p behind extension headers (as net/ipv6/netfilter/ip6t_*.c and
// ip6_packet_match evaluate them), and conntrack's defrag holding lone fragments. Rows whose
// answer the kernel gave in a namespace say so; tests/kernel/differential.py replays them all.
#include <doctest/doctest.h>

#include "core/ipv6_ext.hpp"
#include "helpers.hpp"
#include "netfilter/iptables/engine.hpp"
#include "netfilter/nftables/hooks.hpp"
#include "netfilter/nftables/nft.hpp"
#include "pcap/decode.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

nf::Node node6() {
  nf::Node n = node();
  CHECK(nf::apply_local_ip(n, "fd00::10/64@eth0").empty());
  CHECK(nf::apply_route(n, "::/0=eth0@fd00::1").empty());
  return n;
}

// One rule in ip6tables filter INPUT with -j DROP and the table's verdict for the packet, run by
// the engine alone: conntrack's defrag would hold the non-atomic fragments before any table
// (tested below), and the kernel's tables see them only where conntrack is not in use.
Verdict one(const std::string& match, const std::string& packet, Family fam = Family::V6) {
  auto rs = rules(
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT " + match + " -j DROP\nCOMMIT\n", fam);
  nf::Node n = node6();
  nf::Conntrack ct;
  Rng rng;
  Chooser choose(rng);
  VectorSink sink;
  Counters ctr;
  nf::RuleState st;
  nf::SetChanges changes;
  st.reset(rs);
  nf::EvalEnv env{n, nullptr, changes, ct, choose, sink, ctr, st, fam};
  Packet p = pkt(packet);
  p.iif = n.find("eth0");
  return nf::run_table(*rs.table(nf::TableId::Filter), Hook::LocalIn, p, env);
}

constexpr const char* kUdp = "udp [fd00::5]:1000 -> [fd00::10]:53";

}  // namespace

TEST_CASE("ext=: the chain is built byte for byte, padded, linked and counted in len") {
  Packet p = pkt(std::string(kUdp) + " ext=hbh/5:2,rt/type=0/left=1/addr=fd00::7,dst,frag/id=9/more,ah/spi=300");
  CHECK(p.ext_first == ext6::HOP);
  // hbh: router alert (4 bytes) then PadN of 2 to reach 8.
  const uint8_t hbh[8] = {ext6::ROUTING, 0, 5, 2, 0, 0, 1, 0};
  CHECK(std::equal(hbh, hbh + 8, p.ext));
  CHECK(p.ext[8] == ext6::DEST);  // rt: next header, 2 (one address), type 0, segments left 1
  CHECK(p.ext[9] == 2);
  CHECK(p.ext[11] == 1);
  CHECK(p.ext[32] == ext6::FRAGMENT);  // dst: 8 bytes of PadN
  CHECK(p.ext[40] == ext6::AUTH);      // frag: offset 0, M set, id 9
  CHECK(p.ext[43] == 1);
  CHECK(p.ext[47] == 9);
  CHECK(p.ext[48] == proto::UDP);  // ah: Payload Len 4 = 24 bytes
  CHECK(p.ext_len == 72);
  CHECK(p.len == 80 + 72);
  CHECK_FALSE(p.fragment);
  CHECK(p.more_fragments);
  unsigned off = 0;
  CHECK(ext6::find_hdr(p, -1, &off) == proto::UDP);
  CHECK(off == 40 + 72);
  CHECK(ext6::find_hdr(p, ext6::FRAGMENT, &off) == ext6::FRAGMENT);
  CHECK(off == 80);
}

TEST_CASE("ext=: what the kernel would not let through, or a spec cannot mean, is refused") {
  const std::pair<const char*, const char*> bad[] = {
      {"udp 1.1.1.1:5 -> 2.2.2.2:53 ext=hbh", "IPv6"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=dst,hbh", "hbh comes first"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=hbh/201:2", "type 201"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=hbh/5:4", "router alert"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=hbh/1:5/1:1", "padding"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=frag/off=12", "multiple of 8"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=frag/off=8,dst", "nothing follows a later fragment"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=ah/len=3", "N even"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=rt/addr=1.2.3.4", "not an IPv6 address"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=rt/addr=::1+::2+::3+::4+::5+::6", "do not fit"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=esp", "unknown header"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 frag", "ext=frag"},
      {"60 [fd00::5] -> [fd00::10]", "extension header"},
      {"ah [fd00::5] -> [fd00::10]", "ext=ah"},
      {"udp [fd00::5]:5 -> [fd00::10]:53 spi=5", "spi="},
      {"udp [fd00::5]:5 -> [fd00::10]:53 ext=hbh len=41", "shorter"},
  };
  for (auto& [spec, why_part] : bad) {
    std::string s = spec, why;
    CAPTURE(s);
    CHECK_FALSE(parse_packet_spec(spec, &why));
    CHECK_MESSAGE(why.find(why_part) != std::string::npos, why);
  }
  // A protocol number that is an extension header may stand behind a later fragment.
  std::string why;
  CHECK(parse_packet_spec("60 [fd00::5] -> [fd00::10] ext=frag/off=8", &why));
  CHECK(parse_packet_spec("esp [fd00::5] -> [fd00::10] spi=7 ext=dst", &why));
}

TEST_CASE("ip6tables extension-header matches, one rule each, hit or not") {
  struct Row {
    const char* match;
    const char* ext;  // appended to kUdp (or a whole spec when it starts with a protocol)
    bool hits;
  };
  const Row rows[] = {
      // frag (ip6t_frag): found anywhere in the chain; --fraglen is never tested by the kernel
      {"-m frag", "", false},
      {"-m frag", "ext=frag", true},
      {"-m frag", "ext=hbh,frag/id=3", true},
      {"-m frag --fragid 3", "ext=frag/id=3", true},
      {"-m frag --fragid 4:9", "ext=frag/id=3", false},
      {"-m frag ! --fragid 4:9", "ext=frag/id=3", true},
      {"-m frag --fraglen 99", "ext=frag", true},
      {"-m frag --fragfirst", "ext=frag/more", true},
      {"-m frag --fragfirst", "udp [fd00::5] -> [fd00::10] ext=frag/off=8", false},
      {"-m frag --fragmore", "ext=frag/more", true},
      {"-m frag --fragmore", "ext=frag", false},
      {"-m frag --fraglast", "udp [fd00::5] -> [fd00::10] ext=frag/off=1480", true},
      {"-m frag --fragres", "ext=frag", true},
      {"-m frag --fragres", "ext=frag/res=1", false},
      // ipv6header: exactly these headers, or with --soft at least these
      {"-m ipv6header --header frag --soft", "ext=hbh,frag", true},
      {"-m ipv6header --header frag", "ext=hbh,frag", false},
      {"-m ipv6header --header hop,frag,prot", "ext=hbh,frag", true},
      {"-m ipv6header ! --header frag --soft", "ext=hbh", true},
      {"-m ipv6header ! --header frag --soft", "ext=hbh,frag", false},
      {"-m ipv6header --header prot", "", true},
      {"-m ipv6header --header esp", "esp [fd00::5] -> [fd00::10]", true},
      {"-m ipv6header --header none", "59 [fd00::5] -> [fd00::10]", true},
      {"-m ipv6header --header ah,prot", "ext=ah", true},
      // hbh / dst: the whole header's length in bytes; options strictly in order
      {"-m hbh", "ext=hbh", true},
      {"-m hbh", "ext=dst", false},
      {"-m hbh --hbh-len 8", "ext=hbh", true},
      {"-m hbh --hbh-len 0", "ext=hbh", false},
      {"-m hbh ! --hbh-len 16", "ext=hbh/30:10", false},
      {"-m hbh --hbh-opts 5:2", "ext=hbh/5:2", true},
      {"-m hbh --hbh-opts 5", "ext=hbh/5:2", true},
      {"-m hbh --hbh-opts 5:3", "ext=hbh/5:2", false},
      {"-m hbh --hbh-opts 5:2,1:0", "ext=hbh/5:2", true},  // the PadN that fills the header to 8
      {"-m hbh --hbh-opts 1:4", "ext=hbh", true},
      {"-m hbh --hbh-opts 1:4,7", "ext=hbh", false},
      {"-m dst --dst-opts 30:4", "ext=dst/30:4", true},
      {"-m dst --dst-len 16", "ext=dst/30:10", true},
      {"-m dst", "ext=hbh,dst", true},
      // rt
      {"-m rt", "ext=rt", true},
      {"-m rt --rt-type 0", "ext=rt/type=2/addr=fd00::9", false},
      {"-m rt --rt-type 2", "ext=rt/type=2/addr=fd00::9", true},
      {"-m rt ! --rt-type 0", "ext=rt/type=2/addr=fd00::9", true},
      {"-m rt --rt-segsleft 1:3", "ext=rt/left=2", true},
      {"-m rt --rt-segsleft 3", "ext=rt/left=2", false},
      {"-m rt --rt-len 24", "ext=rt/addr=fd00::9", true},
      {"-m rt --rt-type 0 --rt-0-res", "ext=rt", true},
      {"-m rt --rt-type 0 --rt-0-res", "ext=rt/res=1", false},
      {"-m rt --rt-type 0 --rt-0-addrs fd00::7", "ext=rt/addr=fd00::7", true},
      {"-m rt --rt-type 0 --rt-0-addrs fd00::7", "ext=rt/addr=fd00::7+fd00::8", false},  // strict: all of them
      {"-m rt --rt-type 0 --rt-0-addrs fd00::8 --rt-0-not-strict", "ext=rt/addr=fd00::7+fd00::8", true},
      {"-m rt --rt-type 0 --rt-0-addrs fd00::8,fd00::7 --rt-0-not-strict", "ext=rt/addr=fd00::7+fd00::8", false},
      // ah (IPv6: an extension header, no -p needed) and esp
      {"-m ah", "ext=ah", true},
      {"-m ah --ahspi 300", "ext=ah/spi=300", true},
      {"-m ah --ahspi 1:299", "ext=ah/spi=300", false},
      {"-m ah --ahlen 24", "ext=ah", true},
      {"-m ah ! --ahlen 24", "ext=ah", false},
      {"-p esp -m esp --espspi 7", "esp [fd00::5] -> [fd00::10] spi=7", true},
      {"-p esp -m esp --espspi 7", "esp [fd00::5] -> [fd00::10] spi=8 ext=hbh", false},
      // -p finds the upper-layer header behind the extension headers (AH is skipped: -p ah never matches)
      {"-p udp", "ext=hbh,rt,dst,frag,ah", true},
      {"-p ah", "ext=ah", false},
      {"-p udp -m udp --dport 53", "ext=frag/more", true},
      {"-p udp", "udp [fd00::5] -> [fd00::10] ext=frag/off=8", true},  // a later fragment: the protocol, no ports
      {"-p udp -m udp --dport 53", "udp [fd00::5] -> [fd00::10] ext=frag/off=8", false},
  };
  for (auto& r : rows) {
    std::string match = r.match;
    std::string ext = r.ext;
    std::string packet = ext.empty() ? kUdp : (ext.find("->") != std::string::npos ? ext : std::string(kUdp) + " " + ext);
    CAPTURE(match);
    CAPTURE(packet);
    CHECK((one(match, packet).reason == DropReason::RuleDrop) == r.hits);
  }
}

TEST_CASE("IPv4 -f: later fragments only; their ports and SPI are not there") {
  auto hit = [](const char* m, const char* p) { return one(m, p, Family::V4).reason == DropReason::RuleDrop; };
  CHECK(hit("-f", "udp 1.1.1.1:5 -> 10.0.0.10:53 frag"));
  CHECK(hit("-f", "udp 1.1.1.1 -> 10.0.0.10 frag mf"));
  CHECK_FALSE(hit("-f", "udp 1.1.1.1:5 -> 10.0.0.10:53 mf"));  // a first fragment has offset 0
  CHECK(hit("! -f", "udp 1.1.1.1:5 -> 10.0.0.10:53 mf"));
  CHECK(hit("-p udp", "udp 1.1.1.1 -> 10.0.0.10 frag"));
  CHECK_FALSE(hit("-p udp -m udp --dport 53", "udp 1.1.1.1:5 -> 10.0.0.10:53 frag"));
  CHECK(hit("-p esp -m esp --espspi 7:9", "esp 1.1.1.1 -> 10.0.0.10 spi=8"));
  CHECK_FALSE(hit("-p esp -m esp --espspi 7:9", "esp 1.1.1.1 -> 10.0.0.10 spi=8 frag"));
  CHECK(hit("-p ah -m ah ! --ahspi 7", "ah 1.1.1.1 -> 10.0.0.10 spi=8"));
}

TEST_CASE("a later fragment whose next header is an extension header: -p hot-drops it") {
  auto v = one("-p tcp", "60 [fd00::5] -> [fd00::10] ext=frag/off=8");
  CHECK(v.kind == VerdictKind::Drop);
  CHECK(v.reason == DropReason::HotDrop);
  CHECK(one("-m frag", "60 [fd00::5] -> [fd00::10] ext=frag/off=8").reason == DropReason::RuleDrop);
}

TEST_CASE("ip6tables-save prints the matches as ip6tables-save 1.8.9 does") {
  // Each line as the real ip6tables-restore + ip6tables-save printed it (tests/kernel/roundtrip.sh
  // checks the same lines against the tools).
  const char* lines[] = {
      "-A INPUT -m frag --fragid 5:100 --fraglen 8 --fragres --fragfirst -j DROP",
      "-A INPUT -m frag ! --fragid 7 --fragmore -j DROP",
      "-A INPUT -m ipv6header --header hop-by-hop,ipv6-opts,ipv6-route,ipv6-frag,ah,esp,ipv6-nonxt,protocol -j DROP",
      "-A INPUT -m ipv6header ! --header ipv6-frag --soft -j DROP",
      "-A INPUT -m hbh ! --hbh-len 2 --hbh-opts 1:4,5 -j ACCEPT",
      "-A INPUT -m dst --dst-len 1 --dst-opts 201:16 -j ACCEPT",
      "-A INPUT -m rt --rt-type 0 --rt-segsleft 2:5 --rt-len 4 --rt-0-res --rt-0-addrs ::1,fe80::1 --rt-0-not-strict -j DROP",
      "-A INPUT -m rt ! --rt-type 2 ! --rt-segsleft 0 ! --rt-len 2 -j DROP",
      "-A INPUT -m ah --ahspi 500 --ahlen 4 --ahres -j DROP",
      "-A INPUT -m ah ! --ahspi 1:10 -j DROP",
      "-A INPUT -p esp -m esp --espspi 7 -j DROP",
      "-A INPUT -m hbh -m rt -m frag -m ah -j ACCEPT",
  };
  for (const char* l : lines) {
    std::string line = l;
    CAPTURE(line);
    auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n" + line + "\nCOMMIT\n", Family::V6);
    CHECK(nf::save(rs).find(line + "\n") != std::string::npos);
  }
  // Input forms the tools accept and print in their own way.
  const std::pair<const char*, const char*> forms[] = {
      {"-m ipv6header --header frag,hop", "-m ipv6header --header hop-by-hop,ipv6-frag"},
      {"-m ipv6header --header 0,60,IPv6-Route,auth,none,prot",
       "--header hop-by-hop,ipv6-opts,ipv6-route,ah,ipv6-nonxt,protocol"},
      {"-m frag --fragid 5:", "-m frag --fragid 5:4294967295"},
      {"-m frag ! --fragid 0:4294967295", "-m frag -j"},
      {"-m hbh --hbh-opts 0x10:0x20,300", "-m hbh --hbh-opts 16:32,44"},
      {"-m ah --ahlen 0", "-m ah -j"},
  };
  for (auto& [in, out] : forms) {
    std::string line = in;
    CAPTURE(line);
    auto rs = rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT " + line + " -j DROP\nCOMMIT\n", Family::V6);
    CHECK_MESSAGE(nf::save(rs).find(out) != std::string::npos, nf::save(rs));
  }
}

TEST_CASE("extension-header match options are checked at load, as ip6tables does") {
  auto load = [](const std::string& m) {
    return rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT " + m + " -j DROP\nCOMMIT\n", Family::V6);
  };
  CHECK_LOAD_ERROR(load("-m frag --fragmore --fraglast"), 3, "cannot be used together");
  CHECK_LOAD_ERROR(load("-m ipv6header --header tcp"), 3, "unknown header 'tcp'");
  CHECK_LOAD_ERROR(load("-m ipv6header --soft"), 3, "\"--header\" must be specified");
  CHECK_LOAD_ERROR(load("-m hbh --hbh-opts 0:3"), 3, "PAD0 has not got length");
  CHECK_LOAD_ERROR(load("-m hbh --hbh-opts 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"), 3, "too many");
  CHECK_LOAD_ERROR(load("-m rt --rt-0-res"), 3, "`--rt-type 0' required before `--rt-0-res'");
  CHECK_LOAD_ERROR(load("-m rt --rt-type 0 --rt-0-not-strict"), 3, "required before `--rt-0-not-strict'");
  CHECK_LOAD_ERROR(load("-m rt --rt-type 0 --rt-0-addrs 1.2.3.4"), 3, "bad address");
  CHECK_LOAD_ERROR(load("-m frag --fragid x"), 3, "bad range");
  // IPv4 has none of them (and ip6tables no -f).
  CHECK_LOAD_ERROR(rules("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m frag -j DROP\nCOMMIT\n"), 3, "frag");
}

TEST_CASE("defrag: a lone fragment is held before raw; an atomic one goes on without its header") {
  // Kernel 6.x in a namespace with conntrack in use: a lone first or later fragment never reaches
  // raw PREROUTING; an atomic fragment reaches it 8 bytes shorter and -m frag no longer matches.
  // (The OUTPUT rule is the conntrack user that attaches conntrack, and defrag with it.)
  auto rs = rules("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -m frag -j DROP\n"
                  "-A OUTPUT -m state --state NEW\nCOMMIT\n",
                  Family::V6);
  nf::Node n = node6();
  nf::Datapath dp(n);
  nf::attach_iptables(dp, nullptr, &rs, nullptr);
  for (const char* ext : {"ext=frag/more", "ext=hbh,frag/id=5/more"}) {
    auto o = run(dp, std::string(kUdp) + " " + ext);
    CHECK(o.kind == nf::OutcomeKind::Dropped);
    CHECK(o.reason == DropReason::FragHeld);
    CHECK(trace_ids(o).empty());
  }
  auto later = run(dp, "udp [fd00::5] -> [fd00::10] ext=frag/off=8");
  CHECK(later.reason == DropReason::FragHeld);
  // What nf_ct_frag6_gather lets through as it is: More Fragments with a length not a multiple of 8
  // (-EPROTO), or a first fragment cut before the end of its UDP header; -m frag sees those in raw.
  CHECK(run(dp, std::string(kUdp) + " ext=frag/more len=95").reason == DropReason::RuleDrop);
  CHECK(run(dp, std::string(kUdp) + " ext=frag/more len=50").reason == DropReason::RuleDrop);
  CHECK(run(dp, std::string(kUdp) + " ext=frag/more len=96").reason == DropReason::FragHeld);
  CHECK(run(dp, "udp [fd00::5] -> [fd00::10] ext=frag/off=8 len=48").reason == DropReason::FragInvalid);  // empty
  auto atomic = run(dp, std::string(kUdp) + " ext=frag");
  CHECK(atomic.kind == nf::OutcomeKind::Delivered);
  CHECK(atomic.after.ext_len == 0);
  CHECK(atomic.after.len == 80);
  // IPv4: the same for a first (mf) or later (frag) fragment.
  auto rs4 = rules("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
  nf::Datapath dp4(n);
  nf::attach_iptables(dp4, &rs4, nullptr, nullptr);
  CHECK(run(dp4, "udp 1.1.1.1:5 -> 10.0.0.10:53 mf").reason == DropReason::FragHeld);
  CHECK(run(dp4, "udp 1.1.1.1:5 -> 10.0.0.10:53 frag").reason == DropReason::FragHeld);
  CHECK(run(dp4, "udp 1.1.1.1:5 -> 10.0.0.10:53").kind == nf::OutcomeKind::Delivered);
}

TEST_CASE("pcap: the chain decodes into the packet and builds back byte for byte") {
  Packet p = pkt(std::string(kUdp) + " ext=hbh/5:2,dst/30:4,ah/spi=77");
  auto bytes = pcap::build(p);
  pcap::Decoded d;
  REQUIRE(pcap::decode(pcap::link::Raw, bytes.data(), uint32_t(bytes.size()), d) == pcap::DecodeError::None);
  CHECK(d.pkt.ext_len == p.ext_len);
  CHECK(d.pkt.ext_first == p.ext_first);
  CHECK(std::equal(p.ext, p.ext + p.ext_len, d.pkt.ext));
  CHECK(d.pkt.t == p.t);
  CHECK(pcap::checksums_ok(bytes.data(), bytes.size()));
  Packet e = pkt("esp [fd00::5] -> [fd00::10] spi=4242");
  auto eb = pcap::build(e);
  REQUIRE(pcap::decode(pcap::link::Raw, eb.data(), uint32_t(eb.size()), d) == pcap::DecodeError::None);
  CHECK(d.pkt.spi == 4242);
}

TEST_CASE("nft: ip6 nexthdr is the fixed header's field, meta l4proto the protocol behind the chain") {
  nf::Node n = node6();
  auto run_nft = [&](const char* expr, const char* spec) {
    auto rs = nf::nft::load(std::string("table ip6 t {\n chain c {\n  type filter hook input priority 0; policy accept;\n  ") +
                                expr + " drop\n }\n}\n",
                            "t.nft");
    nf::Datapath dp(n);
    nf::nft::attach(dp, rs);
    return run(dp, spec).kind == nf::OutcomeKind::Dropped;
  };
  CHECK(run_nft("ip6 nexthdr 0", "udp [fd00::5]:1 -> [fd00::10]:53 ext=hbh"));
  CHECK_FALSE(run_nft("ip6 nexthdr 17", "udp [fd00::5]:1 -> [fd00::10]:53 ext=hbh"));
  CHECK(run_nft("ip6 nexthdr 17", "udp [fd00::5]:1 -> [fd00::10]:53"));
  CHECK(run_nft("meta l4proto udp", "udp [fd00::5]:1 -> [fd00::10]:53 ext=hbh"));
}
