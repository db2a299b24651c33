#include <doctest/doctest.h>

#include "core/addr.hpp"
#include "core/packet_spec.hpp"
#include "core/rng.hpp"
#include "core/tuple.hpp"

using namespace svcpath;

TEST_CASE("addresses parse strictly and print canonically") {
  struct Case {
    const char* in;
    bool ok;
    const char* out;
  } cases[] = {
      {"10.0.0.1", true, "10.0.0.1"}, {"255.255.255.255", true, "255.255.255.255"},
      {"010.0.0.1", false, ""},       {"10.0.0", false, ""},
      {"10.0.0.256", false, ""},      {"", false, ""},
      {"fd00::1", true, "fd00::1"},   {"FD00:0:0::0001", true, "fd00::1"},
      {"fd00:::1", false, ""},        {"1.2.3.4 ", false, ""},
  };
  for (auto& c : cases) {
    INFO(std::string(c.in));
    std::string why;
    auto a = Addr::parse(c.in, &why);
    CHECK(a.has_value() == c.ok);
    if (a) CHECK(a->str() == c.out);
    else CHECK(!why.empty());
  }
}

TEST_CASE("prefixes: lengths, dotted masks, host bits cleared") {
  CHECK(Prefix::parse("10.1.2.3/8")->str() == "10.0.0.0/8");
  CHECK(Prefix::parse("10.0.0.0/255.255.0.0")->str() == "10.0.0.0/16");
  CHECK(Prefix::parse("10.0.0.1")->str() == "10.0.0.1/32");
  CHECK(Prefix::parse("fd00::1/64")->str() == "fd00::/64");
  CHECK_FALSE(Prefix::parse("10.0.0.0/33"));
  CHECK_FALSE(Prefix::parse("10.0.0.0/255.0.255.0"));  // not contiguous
  auto p = *Prefix::parse("10.244.0.0/16");
  CHECK(p.contains(*Addr::parse("10.244.9.9")));
  CHECK_FALSE(p.contains(*Addr::parse("10.245.0.1")));
  CHECK_FALSE(p.contains(*Addr::parse("fd00::1")));
}

TEST_CASE("port ranges, open ends and separators") {
  CHECK(PortRange::parse("80", ':')->str() == "80");
  CHECK(PortRange::parse("1000:2000", ':')->str() == "1000:2000");
  CHECK(PortRange::parse(":1024", ':')->lo == 0);
  CHECK(PortRange::parse("1024:", ':')->hi == 65535);
  CHECK(PortRange::parse("80-90", '-')->str('-') == "80-90");
  CHECK_FALSE(PortRange::parse("90:80", ':'));
  CHECK_FALSE(PortRange::parse("65536", ':'));
  CHECK_FALSE(PortRange::parse("8o", ':'));
}

TEST_CASE("5-tuple: reversed, hash, text") {
  FiveTuple t{*Addr::parse("10.0.0.1"), *Addr::parse("10.0.0.2"), 1234, 80, proto::TCP};
  CHECK(t.reversed().src == t.dst);
  CHECK(t.reversed().sport == 80);
  CHECK(t.reversed().reversed() == t);
  CHECK(FiveTupleHash{}(t) != FiveTupleHash{}(t.reversed()));
  CHECK(t.str() == "tcp 10.0.0.1:1234 -> 10.0.0.2:80");
  FiveTuple u{*Addr::parse("fd00::1"), *Addr::parse("fd00::2"), 1, 2, proto::UDP};
  CHECK(u.str() == "udp [fd00::1]:1 -> [fd00::2]:2");
}

TEST_CASE("packet specs") {
  std::string why;
  auto a = parse_packet_spec("tcp 10.0.0.2:40000 -> 172.30.0.41:80", &why);
  REQUIRE(a);
  CHECK(a->pkt.tcp_flags == tcpflag::SYN);
  CHECK(a->pkt.t.sport == 40000);
  auto b = parse_packet_spec("tcp/SA [fd00::1]:80 -> [fd00::2]:5000 in=eth1 mark=0x10 ttl=3 t=1.5", &why);
  REQUIRE(b);
  CHECK(b->pkt.tcp_flags == (tcpflag::SYN | tcpflag::ACK));
  CHECK(b->in == "eth1");
  CHECK(b->pkt.mark == 0x10);
  CHECK(b->pkt.ttl == 3);
  CHECK(b->pkt.ts_ns == 1'500'000'000ull);
  auto c = parse_packet_spec("tcp 10.0.0.2 -> 10.0.0.3:80", &why);
  REQUIRE(c);
  CHECK_FALSE(c->sport_given);
  auto d = parse_packet_spec("icmp 10.0.0.1 -> 10.0.0.2", &why);
  REQUIRE(d);
  CHECK(d->pkt.icmp_type() == 8);
  auto e = parse_packet_spec("icmp/echo-reply 10.0.0.2 -> 10.0.0.1 id=7", &why);
  REQUIRE(e);
  CHECK(e->pkt.icmp_type() == 0);
  CHECK(e->pkt.t.sport == 7);
  auto r = parse_packet_spec("tcp/A reply:2", &why);
  REQUIRE(r);
  CHECK(r->reply_of == 2);
  struct Bad {
    const char* spec;
    const char* msg;
  } bad[] = {
      {"tcp 10.0.0.1:1 10.0.0.2:2", "expected 'PROTO SRC -> DST'"},
      {"tcp 10.0.0.1:1 -> 10.0.0.2", "needs a port"},
      {"tcp [fd00::1:1 -> [fd00::2]:80", "missing ']'"},
      {"tcp 10.0.0.1:1 -> 10.0.0:80", "not an IP address"},
      {"tcp 10.0.0.1:1 -> [fd00::2]:80", "different families"},
      {"tcp/SX 10.0.0.1:1 -> 10.0.0.2:2", "TCP flags"},
      {"tcp 10.0.0.1:1 -> 10.0.0.2:70000", "0..65535"},
      {"gre 10.0.0.1 -> 10.0.0.2", "unknown protocol"},
      {"udp 10.0.0.1:1 -> 10.0.0.2:2 bogus=1", "unknown option"},
      {"icmp 10.0.0.1:5 -> 10.0.0.2", "no ports"},
  };
  for (auto& x : bad) {
    INFO(std::string(x.spec));
    std::string w;
    CHECK_FALSE(parse_packet_spec(x.spec, &w));
    CHECK_MESSAGE(w.find(x.msg) != std::string::npos, w);
  }
}

TEST_CASE("rng is deterministic per seed; chooser enumerates exact probabilities") {
  Rng a(42), b(42), c(43);
  CHECK(a.next() == b.next());
  CHECK(a.next() != c.next());
  Rng r(1);
  Chooser ch(r);
  ch.begin_enumeration();
  // Three kube-proxy-style statistic branches: 1/3, then 1/2 of the rest.
  std::vector<double> probs;
  std::vector<int> picks;
  do {
    int pick = 2;
    if (ch.bernoulli31(715827883)) pick = 0;        // lround(2^31 / 3)
    else if (ch.bernoulli31(1073741824)) pick = 1;  // 2^31 / 2
    picks.push_back(pick);
    probs.push_back(ch.path_probability());
  } while (ch.next_path());
  REQUIRE(picks == std::vector<int>{0, 1, 2});
  CHECK(probs[0] == doctest::Approx(715827883.0 / 2147483648.0));
  CHECK(probs[1] == doctest::Approx((1 - 715827883.0 / 2147483648.0) / 2));
  CHECK(probs[0] + probs[1] + probs[2] == doctest::Approx(1.0));
}

TEST_CASE("Prefix::contains agrees with masking at every length, both families") {
  Rng rng(7);
  auto rand_addr = [&](bool v4) {
    std::array<uint8_t, 16> b{};
    for (int i = 0; i < (v4 ? 4 : 16); ++i) b[size_t(i)] = uint8_t(rng.u32());
    return v4 ? Addr::v4(uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3]) : Addr::v6(b);
  };
  int hits = 0;
  for (int n = 0; n < 20000; ++n) {
    bool v4 = n % 2;
    Addr net = rand_addr(v4), a = rand_addr(v4);
    unsigned len = rng.below(v4 ? 33 : 129);
    // Half the time, make a share the prefix so both outcomes are exercised.
    if (n % 4 < 2) {
      Addr m = Addr::netmask(net.fam, len);
      for (int i = 0; i < 16; ++i)
        a.b[size_t(i)] = uint8_t((net.b[size_t(i)] & m.b[size_t(i)]) | (a.b[size_t(i)] & ~m.b[size_t(i)]));
    }
    Prefix p{net.masked(len), uint8_t(len)};
    bool want = a.masked(len) == p.addr;
    CHECK(p.contains(a) == want);
    hits += want;
    CHECK_FALSE(p.contains(rand_addr(!v4)));  // never across families
  }
  CHECK(hits > 9000);
  CHECK(Prefix{Addr::any(Family::V4), 0}.contains(*Addr::parse("255.255.255.255")));
  CHECK(Prefix::parse("10.0.0.0/8")->contains(*Addr::parse("10.255.0.1")));
  CHECK_FALSE(Prefix::parse("10.0.0.0/8")->contains(*Addr::parse("11.0.0.1")));
  CHECK(Prefix::parse("fd00::/63")->contains(*Addr::parse("fd00:0:0:1::1")));
  CHECK_FALSE(Prefix::parse("fd00::/64")->contains(*Addr::parse("fd00:0:0:1::1")));
}
