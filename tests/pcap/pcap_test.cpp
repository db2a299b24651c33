#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "core/addr.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"

using namespace svcpath;
using namespace svcpath::pcap;

namespace {

Addr A(const char* s) { return *Addr::parse(s); }

Packet pkt(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t pr, uint16_t len = 60) {
  Packet p;
  p.t = {A(src), A(dst), sport, dport, pr};
  p.len = len;
  p.ttl = 63;
  if (pr == proto::TCP) p.tcp_flags = 0x02;
  return p;
}

std::vector<uint8_t> frame(std::initializer_list<uint8_t> head, const std::vector<uint8_t>& ip) {
  std::vector<uint8_t> f(head);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

Decoded must_decode(int lt, const std::vector<uint8_t>& f) {
  Decoded d;
  DecodeError e = decode(lt, f.data(), uint32_t(f.size()), d);
  REQUIRE_MESSAGE(e == DecodeError::None, decode_error_name(e));
  return d;
}

std::filesystem::path tmpfile(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("svcpath-test-") + std::to_string(::getpid()) + name);
}

}  // namespace

TEST_CASE("built packets carry correct checksums and decode back to the same tuple") {
  Packet cases[] = {
      pkt("10.0.0.1", 40000, "10.96.0.10", 53, proto::UDP),
      pkt("10.0.0.1", 40000, "10.96.0.1", 443, proto::TCP, 1400),
      pkt("fd00::1", 1234, "fd00:10:96::a", 80, proto::TCP),
      pkt("fd00::1", 1234, "fd00:10:96::a", 53, proto::UDP, 99),  // odd length: the pad byte counts
      pkt("10.0.0.1", 77, "10.0.0.2", 8 << 8, proto::ICMP),       // echo request, id 77
      pkt("fd00::1", 77, "fd00::2", 128 << 8, proto::ICMPV6),     // echo request, id 77
  };
  for (const Packet& p : cases) {
    CAPTURE(p.t.str());
    auto ip = build(p);
    CHECK(ip.size() >= p.len);
    CHECK(checksums_ok(ip.data(), ip.size()));
    Decoded d = must_decode(link::Raw, ip);
    CHECK(d.pkt.t == p.t);
    CHECK(d.pkt.ttl == p.ttl);
    CHECK(d.pkt.len == ip.size());
    CHECK(d.pkt.tcp_flags == p.tcp_flags);
    CHECK(d.has_l4);
    // Damage one payload-covered byte: the checksum must notice.
    ip.back() ^= 0x40;
    CHECK_FALSE(checksums_ok(ip.data(), ip.size()));
  }
}

TEST_CASE("a known IPv4 header checksums to the RFC 1071 worked value") {
  // The header used as the worked example on Wikipedia's IPv4 header checksum page.
  const uint8_t h[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                       0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK(inet_checksum(h, sizeof h) == 0xb861);
}

TEST_CASE("every supported link type unwraps to the same IP packet") {
  Packet p = pkt("10.1.2.3", 5555, "10.96.0.1", 443, proto::TCP);
  auto ip = build(p);
  const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  struct Case {
    const char* name;
    int lt;
    std::vector<uint8_t> f;
    uint16_t vlan;
    PktType type;
  } cases[] = {
      {"ethernet", link::Ethernet, frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip), 0, PktType::Host},
      {"802.1Q", link::Ethernet, frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00}, ip), 100,
       PktType::Host},
      {"QinQ", link::Ethernet,
       frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00}, ip), 10,
       PktType::Host},
      {"broadcast", link::Ethernet, frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip), 0,
       PktType::Broadcast},
      {"sll outgoing", link::Sll, frame({0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x08, 0x00}, ip), 0, PktType::Outgoing},
      {"sll2 other-host", link::Sll2, frame({0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 3, 6, 2, 0, 0, 0, 0, 2, 0, 0}, ip), 0,
       PktType::OtherHost},
      {"null little-endian", link::Null, frame({2, 0, 0, 0}, ip), 0, PktType::Host},
      {"null big-endian writer", link::Null, frame({0, 0, 0, 2}, ip), 0, PktType::Host},
      {"loop", link::Loop, frame({0, 0, 0, 2}, ip), 0, PktType::Host},
      {"raw", link::Raw, ip, 0, PktType::Host},
      {"raw (12)", link::RawAlt12, ip, 0, PktType::Host},
      {"ipv4", link::Ipv4, ip, 0, PktType::Host},
  };
  (void)bcast;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Decoded d = must_decode(c.lt, c.f);
    CHECK(d.pkt.t == p.t);
    CHECK(d.vlan == c.vlan);
    CHECK(d.pkt.pkt_type == c.type);
    CHECK(d.l3 == c.f.size() - ip.size());
    CHECK(d.l4 == d.l3 + 20);
  }
}

TEST_CASE("decode failures are named reasons, never crashes") {
  Packet p = pkt("10.1.2.3", 5555, "10.96.0.1", 443, proto::TCP);
  auto ip = build(p);
  auto eth = frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip);
  Decoded d;
  auto arp = frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06}, std::vector<uint8_t>(28, 0));
  CHECK(decode(link::Ethernet, arp.data(), uint32_t(arp.size()), d) == DecodeError::NotIp);
  CHECK(decode(147, eth.data(), uint32_t(eth.size()), d) == DecodeError::UnsupportedLink);
  // Cut inside the IP header, inside the TCP ports, inside the Ethernet header.
  CHECK(decode(link::Ethernet, eth.data(), 14 + 19, d) == DecodeError::Truncated);
  CHECK(decode(link::Ethernet, eth.data(), 14 + 22, d) == DecodeError::Truncated);
  CHECK(decode(link::Ethernet, eth.data(), 10, d) == DecodeError::Truncated);
  // Flags sit at TCP byte 13: a 34-byte snaplen (14+20) keeps no L4 at all, 14+20+14 keeps them.
  CHECK(decode(link::Ethernet, eth.data(), 14 + 20 + 14, d) == DecodeError::None);
  CHECK(d.pkt.tcp_flags == 0x02);
  auto bad = ip;
  bad[0] = 0x43;  // IHL 12 bytes
  CHECK(decode(link::Raw, bad.data(), uint32_t(bad.size()), d) == DecodeError::BadHeader);
  bad[0] = 0x55;  // version 5
  CHECK(decode(link::Raw, bad.data(), uint32_t(bad.size()), d) == DecodeError::BadHeader);
  // Every prefix length of a VLAN frame decodes to None or Truncated and never reads past caplen
  // (ASan builds check the latter).
  auto vlan = frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x64, 0x86, 0xdd},
                    build(pkt("fd00::1", 1, "fd00::2", 2, proto::UDP)));
  for (uint32_t n = 0; n <= vlan.size(); ++n) {
    std::vector<uint8_t> cut(vlan.begin(), vlan.begin() + n);
    DecodeError e = decode(link::Ethernet, cut.data(), n, d);
    CHECK((e == DecodeError::None || e == DecodeError::Truncated));
  }
}

TEST_CASE("fragments: the first carries ports, the rest match -f") {
  Packet p = pkt("10.1.2.3", 5555, "10.96.0.10", 53, proto::UDP, 200);
  auto first = build(p);
  first[6] = 0x20;  // MF
  Decoded d = must_decode(link::Raw, first);
  CHECK(d.has_l4);
  CHECK(d.pkt.more_fragments);
  CHECK_FALSE(d.pkt.fragment);
  CHECK(d.pkt.t.dport == 53);
  auto later = build(p);
  later[4] = 0x12;
  later[5] = 0x34;
  later[7] = 0x10;  // offset 16 * 8 = 128 bytes
  d = must_decode(link::Raw, later);
  CHECK_FALSE(d.has_l4);
  CHECK(d.pkt.fragment);
  CHECK(d.frag_offset == 128);
  CHECK(d.ip_id == 0x1234);
  CHECK(d.pkt.t.sport == 0);

  // IPv6: hop-by-hop options, then a fragment header, then UDP.
  Packet p6 = pkt("fd00::1", 5555, "fd00::a", 53, proto::UDP, 100);
  auto base = build(p6);
  std::vector<uint8_t> v6(base.begin(), base.begin() + 40);
  v6[6] = 0;                                                      // next: hop-by-hop
  const uint8_t hbh[8] = {44, 0, 1, 4, 0, 0, 0, 0};               // next: fragment; PadN
  const uint8_t frag[8] = {17, 0, 0x00, 0x01, 0, 0, 0xbe, 0xef};  // offset 0, M=1, id 0xbeef
  v6.insert(v6.end(), hbh, hbh + 8);
  v6.insert(v6.end(), frag, frag + 8);
  v6.insert(v6.end(), base.begin() + 40, base.end());
  v6[4] = uint8_t((v6.size() - 40) >> 8);
  v6[5] = uint8_t(v6.size() - 40);
  d = must_decode(link::Ipv6, v6);
  CHECK(d.pkt.t == p6.t);
  CHECK(d.l4 == 56);
  CHECK(d.ip_id == 0xbeef);
  CHECK(d.pkt.more_fragments);
  v6[56 - 8 + 3] = 0x81;  // offset 16 * 8, a later fragment: no ports
  d = must_decode(link::Ipv6, v6);
  CHECK(d.pkt.fragment);
  CHECK(d.pkt.t.proto == proto::UDP);
  CHECK(d.pkt.t.dport == 0);
}

TEST_CASE("NAT rewrite updates checksums incrementally to what a full recompute gives") {
  // Property: rewriting a built packet's tuple equals building the rewritten packet outright.
  std::mt19937 rng(20261129);
  auto rand_v4 = [&] { return Addr::v4(rng()); };
  auto rand_v6 = [&] {
    std::array<uint8_t, 16> b;
    for (auto& x : b) x = uint8_t(rng());
    return Addr::v6(b);
  };
  const uint8_t protos[] = {proto::TCP, proto::UDP, proto::ICMP, proto::ICMPV6};
  int checked = 0;
  for (int i = 0; i < 4000; ++i) {
    uint8_t pr = protos[i % 4];
    bool v6 = pr == proto::ICMPV6 || (pr != proto::ICMP && (i / 4) % 2);
    Packet before;
    before.t = {v6 ? rand_v6() : rand_v4(), v6 ? rand_v6() : rand_v4(), uint16_t(rng()), uint16_t(rng()), pr};
    if (before.is_icmp()) before.t.dport = uint16_t((pr == proto::ICMP ? 8 : 128) << 8);
    before.len = uint16_t(60 + rng() % 200);
    before.ttl = uint8_t(1 + rng() % 255);
    before.tcp_flags = pr == proto::TCP ? uint8_t(rng()) : 0;
    Packet after = before;
    switch (rng() % 3) {
      case 0: after.t.dst = v6 ? rand_v6() : rand_v4(); break;  // DNAT, address only
      case 1:
        after.t.dst = v6 ? rand_v6() : rand_v4();
        after.t.dport = uint16_t(rng());
        break;
      default:
        after.t.src = v6 ? rand_v6() : rand_v4();
        after.t.sport = uint16_t(rng());
        break;  // SNAT
    }
    if (before.is_icmp()) after.t.dport = before.t.dport;  // type/code do not change under NAT
    if (rng() % 2) after.ttl = uint8_t(before.ttl - 1);
    auto ip = build(before);
    Decoded d = must_decode(link::Raw, ip);
    auto out = rewrite(ip.data(), uint32_t(ip.size()), d, after);
    auto want = build(after);
    CAPTURE(before.t.str());
    CAPTURE(after.t.str());
    REQUIRE(checksums_ok(out.data(), out.size()));
    CHECK(out == want);
    ++checked;
  }
  CHECK(checked == 4000);
}

TEST_CASE("rewrite keeps a snaplen-truncated packet's checksum consistent with the original") {
  // The payload is gone, so checksums cannot be recomputed; the incremental update still moves the
  // stored checksum by exactly the NAT delta: full packet and truncated packet agree on it.
  Packet p = pkt("10.1.2.3", 5555, "10.96.0.1", 443, proto::TCP, 1200);
  auto full = build(p);
  Packet after = p;
  after.t.dst = A("10.244.1.7");
  after.t.dport = 8443;
  Decoded d = must_decode(link::Raw, full);
  auto whole = rewrite(full.data(), uint32_t(full.size()), d, after);
  Decoded dt;
  REQUIRE(decode(link::Raw, full.data(), 96, dt) == DecodeError::None);
  auto cut = rewrite(full.data(), 96, dt, after);
  REQUIRE(cut.size() == 96);
  CHECK(std::equal(cut.begin(), cut.end(), whole.begin()));
  CHECK(checksums_ok(whole.data(), whole.size()));
}

TEST_CASE("pcap files round-trip through libpcap with nanosecond timestamps") {
  auto path = tmpfile("-rt.pcap");
  std::vector<std::vector<uint8_t>> pkts;
  {
    Writer w(path.string(), link::Raw);
    for (int i = 0; i < 5; ++i) {
      pkts.push_back(build(pkt("10.0.0.1", uint16_t(40000 + i), "10.96.0.10", 53, proto::UDP)));
      w.write(1'700'000'000'123'456'789ull + uint64_t(i) * 1'000'001ull, pkts.back());
    }
    w.close();
    CHECK(w.frames_written() == 5);
  }
  Reader r(path.string());
  CHECK(r.linktype() == link::RawAlt12);  // DLT_RAW
  Frame f;
  int i = 0;
  while (r.next(f)) {
    REQUIRE(i < 5);
    CHECK(f.ts_ns == 1'700'000'000'123'456'789ull + uint64_t(i) * 1'000'001ull);
    CHECK(std::vector<uint8_t>(f.data, f.data + f.caplen) == pkts[size_t(i)]);
    ++i;
  }
  CHECK(i == 5);
  std::filesystem::remove(path);
}

TEST_CASE("pcapng files are read too, with their interface's timestamp resolution") {
  // A hand-assembled little-endian pcapng: section header, one Ethernet interface with
  // if_tsresol = 9 (nanoseconds), one enhanced packet block.
  auto ip = build(pkt("10.0.0.1", 1000, "10.96.0.1", 443, proto::TCP));
  std::vector<uint8_t> eth = frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip);
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) {
    for (int k = 0; k < 4; ++k) b.push_back(uint8_t(v >> (8 * k)));
  };
  auto u16 = [&](uint16_t v) {
    b.push_back(uint8_t(v));
    b.push_back(uint8_t(v >> 8));
  };
  // SHB
  u32(0x0a0d0d0a);
  u32(28);
  u32(0x1a2b3c4d);
  u16(1);
  u16(0);
  u32(0xffffffff);
  u32(0xffffffff);
  u32(28);
  // IDB with if_tsresol option (code 9, len 1, value 9, padded) and opt_endofopt
  u32(1);
  u32(32);
  u16(1);
  u16(0);
  u32(0);
  u16(9);
  u16(1);
  b.push_back(9);
  b.push_back(0);
  b.push_back(0);
  b.push_back(0);
  u16(0);
  u16(0);
  u32(32);
  // EPB
  uint32_t padded = uint32_t((eth.size() + 3) & ~size_t(3));
  uint32_t len = 32 + padded;
  uint64_t ts = 1'700'000'000'987'654'321ull;
  u32(6);
  u32(len);
  u32(0);
  u32(uint32_t(ts >> 32));
  u32(uint32_t(ts));
  u32(uint32_t(eth.size()));
  u32(uint32_t(eth.size()));
  b.insert(b.end(), eth.begin(), eth.end());
  b.resize(b.size() + (padded - eth.size()), 0);
  u32(len);
  auto path = tmpfile("-ng.pcapng");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  Reader r(path.string());
  CHECK(r.linktype() == link::Ethernet);
  Frame f;
  REQUIRE(r.next(f));
  CHECK(f.ts_ns == ts);
  Decoded d;
  REQUIRE(decode(r.linktype(), f.data, f.caplen, d) == DecodeError::None);
  CHECK(d.pkt.t.dport == 443);
  CHECK_FALSE(r.next(f));
  std::filesystem::remove(path);
}

TEST_CASE("unreadable captures fail with the file name and frame number") {
  CHECK_THROWS_WITH_AS(Reader("/nonexistent/x.pcap"), doctest::Contains("/nonexistent/x.pcap"), IoError);
  auto path = tmpfile("-junk.pcap");
  std::ofstream(path) << "this is not a capture file\n";
  CHECK_THROWS_AS(Reader(path.string()), IoError);
  // A valid header followed by a record that claims more bytes than the file holds.
  auto good = tmpfile("-trunc.pcap");
  {
    Writer w(good.string(), link::Raw);
    w.write(1, build(pkt("10.0.0.1", 1, "10.0.0.2", 2, proto::UDP)));
    w.write(2, build(pkt("10.0.0.1", 1, "10.0.0.2", 2, proto::UDP)));
    w.close();
  }
  std::filesystem::resize_file(good, std::filesystem::file_size(good) - 10);
  Reader r(good.string());
  Frame f;
  CHECK(r.next(f));
  CHECK_THROWS_WITH_AS(r.next(f), doctest::Contains("frame 2"), IoError);
  std::filesystem::remove(path);
  std::filesystem::remove(good);
}

TEST_CASE("tcpdump, an independent decoder, reads rewritten packets with correct checksums") {
  if (std::system("command -v tcpdump >/dev/null 2>&1") != 0) {
    MESSAGE("tcpdump not installed: skipped");
    return;
  }
  auto path = tmpfile("-nat.pcap");
  struct Case {
    Packet before;
    const char* dst;
    uint16_t dport;
    const char* want;  // what tcpdump -nn prints for the rewritten packet
  } cases[] = {
      {pkt("10.0.0.5", 40001, "10.96.0.10", 53, proto::UDP, 80), "10.244.1.7", 5353, "10.0.0.5.40001 > 10.244.1.7.5353"},
      {pkt("10.0.0.5", 40002, "10.96.0.1", 443, proto::TCP, 300), "10.244.2.9", 6443, "10.0.0.5.40002 > 10.244.2.9.6443"},
      {pkt("fd00::5", 40003, "fd00:10:96::1", 443, proto::TCP, 120), "fd00:10:244::9", 8443,
       "fd00::5.40003 > fd00:10:244::9.8443"},
      {pkt("fd00::5", 40004, "fd00:10:96::a", 53, proto::UDP, 77), "fd00:10:244::7", 53, "fd00::5.40004 > fd00:10:244::7.53"},
  };
  {
    Writer w(path.string(), link::Raw);
    uint64_t ts = 1'000'000'000;
    for (const Case& c : cases) {
      auto ip = build(c.before);
      Decoded d = must_decode(link::Raw, ip);
      Packet after = c.before;
      after.t.dst = A(c.dst);
      after.t.dport = c.dport;
      w.write(ts += 1000, rewrite(ip.data(), uint32_t(ip.size()), d, after));
    }
    w.close();
  }
  std::string cmd = "tcpdump -nn -vv -r " + path.string() + " 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  REQUIRE(f);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, f)) out += buf;
  CHECK(pclose(f) == 0);
  CAPTURE(out);
  for (const Case& c : cases) CHECK(out.find(c.want) != std::string::npos);
  // tcpdump -vv verifies IPv4 header, TCP and UDP checksums and says "incorrect" when one is off.
  CHECK(out.find("incorrect") == std::string::npos);
  CHECK(out.find("bad cksum") == std::string::npos);
  auto count = [&](const char* what) {
    size_t n = 0;
    for (size_t at = 0; (at = out.find(what, at)) != std::string::npos; ++at) ++n;
    return n;
  };
  CHECK(count("cksum 0x") == 2);  // the TCP segments: each followed by "(correct)"
  CHECK(count("(correct)") == 2);
  CHECK(count("[udp sum ok]") == 2);  // the DNS datagrams are decoded, checksum verified
  std::filesystem::remove(path);
}

TEST_CASE("IPv4 options move the transport header; SCTP carries ports; lying lengths are bad headers") {
  // IHL 7: 8 bytes of options (NOP NOP NOP NOP, then a 4-byte router alert) before UDP.
  Packet p = pkt("10.1.2.3", 5555, "10.96.0.10", 53, proto::UDP);
  auto plain = build(p);
  std::vector<uint8_t> opt(plain.begin(), plain.begin() + 20);
  const uint8_t options[8] = {1, 1, 1, 1, 0x94, 4, 0, 0};
  opt.insert(opt.end(), options, options + 8);
  opt.insert(opt.end(), plain.begin() + 20, plain.end());
  opt[0] = 0x47;
  opt[2] = uint8_t(opt.size() >> 8);
  opt[3] = uint8_t(opt.size());
  Decoded d = must_decode(link::Raw, opt);
  CHECK(d.l4 == 28);
  CHECK(d.pkt.t == p.t);

  Packet s = pkt("10.1.2.3", 3868, "10.96.0.50", 3868, proto::SCTP);
  d = must_decode(link::Raw, build(s));
  CHECK(d.pkt.t == s.t);

  // Total length 60, but the frame was 50 bytes on the wire: the length field lies.
  auto ip = build(p);
  Decoded bad;
  CHECK(decode(link::Raw, ip.data(), 50, bad, 50) == DecodeError::BadHeader);
  // The same cut by snaplen (wire length 60) is just a short capture, and decodes.
  CHECK(decode(link::Raw, ip.data(), 50, bad, 60) == DecodeError::None);
  // Ethernet padding after a short IP packet is normal.
  auto eth = frame({2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, build(pkt("10.0.0.1", 1, "10.0.0.2", 2, proto::UDP, 28)));
  eth.resize(60, 0);
  CHECK(decode(link::Ethernet, eth.data(), 60, bad, 60) == DecodeError::None);
}
