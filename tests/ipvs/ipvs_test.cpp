// IPVS schedulers and tables, checked against sequences derived by hand from the kernel's
// algorithms (../shared/design/ipvs.md §7 and §7a: the destination list is newest first).
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "helpers.hpp"
#include "ipvs/ipvs.hpp"

using namespace svcpath;
using namespace svcpath::ipvs;

namespace {

Dest dest(const char* ip, int w = 1) {
  Dest d;
  d.addr = *Addr::parse(ip);
  d.port = 80;
  d.weight = w;
  return d;
}
// A=10.0.0.1 B=.2 C=.3 D=.4
char letter(const Dest& d) { return char('A' + d.addr.b[3] - 1); }

std::string picks(Service& s, int n, const char* client = "1.1.1.1") {
  std::string out;
  Packet p = test::pkt(std::string("tcp ") + client + ":1000 -> 10.96.0.1:80");
  for (int i = 0; i < n; ++i) {
    int d = s.scheduler().schedule(s, p, nullptr, nullptr);
    out += d < 0 ? '-' : letter(s.dests[size_t(d)]);
  }
  return out;
}

// Adds A, B, C (so the list is C, B, A) with the given weights.
void abc(Service& s, int wa = 1, int wb = 1, int wc = 1) {
  s.add_dest(dest("10.0.0.1", wa));
  s.add_dest(dest("10.0.0.2", wb));
  s.add_dest(dest("10.0.0.3", wc));
}

std::string list(const Service& s) {
  std::string o;
  for (auto& d : s.dests) o += letter(d);
  return o;
}

}  // namespace

TEST_CASE("destinations are kept newest first, as list_add_rcu leaves them") {
  Service s;
  abc(s);
  CHECK(list(s) == "CBA");
}

TEST_CASE("rr: starts after the head, skips quiesced servers, cursor moves back on removal") {
  Service s;
  s.set_scheduler("rr");
  abc(s);
  CHECK(picks(s, 6) == "CBACBA");  // cursor ends on A
  s.edit_dest(1, 0, 0, 0);         // B quiesced (weight 0)
  CHECK(picks(s, 4) == "CACA");    // cursor on A again
  s.edit_dest(1, 1, 0, 0);
  CHECK(picks(s, 3) == "CBA");  // after A the scan wraps to C
  s.remove_dest(2);             // remove A, the cursor: it moves to its predecessor B
  CHECK(list(s) == "CB");
  CHECK(picks(s, 2) == "CB");
  s.remove_dest(0);            // remove C; cursor (B) stays
  CHECK(picks(s, 2) == "BB");  // the cursor's own node is checked last
  s.edit_dest(0, 0, 0, 0);
  CHECK(picks(s, 1) == "-");
}

TEST_CASE("wrr: textbook interleave when bound to a full list; a cw=1 first round after a restore") {
  // Bound to a full list (ipvsadm -E ... -s wrr): list A,B,C with weights 4,3,2.
  Service full;
  full.add_dest(dest("10.0.0.3", 2));
  full.add_dest(dest("10.0.0.2", 3));
  full.add_dest(dest("10.0.0.1", 4));
  full.set_scheduler("wrr");
  CHECK(list(full) == "ABC");
  CHECK(picks(full, 9) == "AABABCABC");
  // Weight change: cursor back to the head, cw kept (1 <= new mw 3, gcd 1).
  full.edit_dest(0, 1, 0, 0);
  CHECK(picks(full, 9) == "ABCBBCABC");
  // The same servers added one by one to a wrr service (what ipvsadm-restore does): each add leaves
  // cw = 1, so the first round visits every server once.
  Service restored;
  restored.set_scheduler("wrr");
  restored.add_dest(dest("10.0.0.3", 2));
  restored.add_dest(dest("10.0.0.2", 3));
  restored.add_dest(dest("10.0.0.1", 4));
  CHECK(picks(restored, 12) == "ABCAABABCABC");
}

TEST_CASE("lc, wlc, sed, nq: the kernel's overheads and tie-breaks") {
  auto setup = [](const char* sched, int wa, int wb, int wc) {
    Service s;
    s.set_scheduler(sched);
    abc(s, wa, wb, wc);  // list C, B, A
    return s;
  };
  auto counts = [](Service& s, char who, uint32_t active, uint32_t inactive) {
    for (auto& d : s.dests)
      if (letter(d) == who) d.activeconns = active, d.inactconns = inactive;
  };
  // lc: 256*active + inactive; C and A tie at 256, the earlier in the list (C) wins.
  Service lc = setup("lc", 1, 1, 1);
  counts(lc, 'A', 1, 0);
  counts(lc, 'B', 0, 300);
  counts(lc, 'C', 1, 0);
  CHECK(picks(lc, 1) == "C");
  counts(lc, 'C', 1, 1);
  CHECK(picks(lc, 1) == "A");
  // wlc: overhead/weight by cross-multiplication; B = 300/2 beats C = 261/1 and A = 256/1.
  Service wlc = setup("wlc", 1, 2, 1);
  counts(wlc, 'A', 1, 0);
  counts(wlc, 'B', 0, 300);
  counts(wlc, 'C', 1, 5);
  CHECK(picks(wlc, 1) == "B");
  // wlc counts inactive connections (256*A + I), unlike the textbook "active/weight".
  counts(wlc, 'B', 0, 600);
  CHECK(picks(wlc, 1) == "A");
  // sed: (active+1)/weight, inactive ignored: B = 1/2 wins even with 600 inactive.
  Service sed = setup("sed", 1, 2, 1);
  counts(sed, 'A', 1, 0);
  counts(sed, 'B', 0, 600);
  counts(sed, 'C', 1, 0);
  CHECK(picks(sed, 1) == "B");
  // A weight-0 server can seed nothing and never wins later.
  Service z = setup("wlc", 1, 1, 0);
  counts(z, 'A', 9, 0);
  counts(z, 'B', 9, 0);
  CHECK(picks(z, 1) == "B");
  // nq: the first idle server in list order wins outright, whatever the weights.
  Service nq = setup("nq", 5, 1, 5);
  counts(nq, 'A', 0, 0);
  counts(nq, 'B', 0, 0);
  counts(nq, 'C', 2, 0);
  CHECK(picks(nq, 1) == "B");
  counts(nq, 'B', 1, 0);
  CHECK(picks(nq, 1) == "A");
  counts(nq, 'A', 3, 0);  // none idle: sed rule, (3+1)/5 vs (1+1)/1 vs (2+1)/5 -> C
  CHECK(picks(nq, 1) == "C");
}

TEST_CASE("sh: buckets tiled by weight; lookup hash_32(addr) ; fallback probes (k + 2*ih)") {
  Service s;
  s.set_scheduler("sh");
  abc(s, 1, 2, 1);  // list C(1) B(2) A(1): buckets C B B A C B B A ...
  const std::vector<int>* t = s.scheduler().lookup_table();
  REQUIRE(t);
  REQUIRE(t->size() == 256);
  std::string first8;
  for (int i = 0; i < 8; ++i) first8 += letter(s.dests[size_t((*t)[size_t(i)])]);
  CHECK(first8 == "CBBACBBA");
  // 1.1.1.1 = 0x01010101: bucket = (0x01010101 * 0x61C88647) >> 24.
  uint32_t ih = (0x01010101u * 0x61C88647u) >> 24;
  const char pattern[] = "CBBA";
  CHECK(picks(s, 1) == std::string(1, pattern[ih % 4]));
  // Quiesce that server: no destination without sh-fallback...
  int chosen = (*t)[ih];
  s.edit_dest(chosen, 0, 0, 0);
  CHECK(picks(s, 1) == "-");
  // ... (the table was rebuilt with weight 0 taking one bucket per cycle)
  // with sh-fallback, probe k reads bucket (k + 2*ih) & 255.
  s.sched_flags = flag::SH_FALLBACK;
  std::string got = picks(s, 1);
  CHECK(got != "-");
  int probe = (*t)[(2 * ih) & 255];
  if (!s.dests[size_t(probe)].unavailable()) CHECK(got == std::string(1, letter(s.dests[size_t(probe)])));
}

TEST_CASE("dh: every connection of a service goes to one server, chosen by the VIP") {
  Service s;
  s.set_scheduler("dh");
  abc(s);
  std::string a = picks(s, 3, "1.1.1.1"), b = picks(s, 3, "2.2.2.2");
  CHECK(a == b);
  CHECK(a[0] == a[1]);
  // 10.96.0.1 = 0x0a600001: bucket = (addr * 2654435761) & 255, buckets cycle C B A.
  uint32_t bucket = (0x0a600001u * 2654435761u) & 255;
  CHECK(a[0] == "CBA"[bucket % 3]);
}

TEST_CASE("mh: slots claimed in turn; weights give turns; quiesce keeps the table") {
  Service s;
  s.set_scheduler("mh");
  abc(s);
  const std::vector<int>* t = s.scheduler().lookup_table();
  REQUIRE(t);
  REQUIRE(t->size() == 4093);
  auto count = [&]() {
    std::map<char, int> c;
    for (int x : *t) {
      REQUIRE(x >= 0);  // every slot filled
      c[letter(s.dests[size_t(x)])]++;
    }
    return c;
  };
  // Equal weights: each server claims one slot per round; 4093 = 3*1364 + 1, the first (C) gets one more.
  auto c1 = count();
  CHECK(c1['C'] == 1365);
  CHECK(c1['B'] == 1364);
  CHECK(c1['A'] == 1364);
  // Weights 2,1,1 (A first in list after re-adding): turns 2,1,1: 4093 = 4*1023 + 1.
  Service w;
  w.set_scheduler("mh");
  w.add_dest(dest("10.0.0.3", 1));
  w.add_dest(dest("10.0.0.2", 1));
  w.add_dest(dest("10.0.0.1", 2));
  std::map<char, int> c2;
  for (int x : *w.scheduler().lookup_table()) c2[letter(w.dests[size_t(x)])]++;
  CHECK(c2['A'] == 2047);
  CHECK(c2['B'] == 1023);
  CHECK(c2['C'] == 1023);
  // Quiescing (weight 0) keeps last_weight: the table is rebuilt identically...
  std::vector<int> before = *t;
  std::string who = picks(s, 1, "7.7.7.7");
  int idx = -1;
  for (size_t i = 0; i < s.dests.size(); ++i)
    if (letter(s.dests[i]) == who[0]) idx = int(i);
  s.edit_dest(idx, 0, 0, 0);
  CHECK(*s.scheduler().lookup_table() == before);
  // ... and only clients landing on that server change: none without fallback, another with it.
  CHECK(picks(s, 1, "7.7.7.7") == "-");
  s.sched_flags = flag::MH_FALLBACK;
  std::string again = picks(s, 1, "7.7.7.7");
  CHECK(again != "-");
  CHECK(again != who);
  // Removing a server rebuilds without it.
  s.remove_dest(idx);
  for (int x : *s.scheduler().lookup_table()) CHECK(letter(s.dests[size_t(x)]) != who[0]);
  // A server added with weight 0 gets no slots.
  Service z;
  z.set_scheduler("mh");
  z.add_dest(dest("10.0.0.1", 1));
  z.add_dest(dest("10.0.0.2", 0));
  for (int x : *z.scheduler().lookup_table()) CHECK(letter(z.dests[size_t(x)]) == 'A');
}

TEST_CASE("service table: 256 buckets, the kernel's hash, lookups count entries compared") {
  ServiceTable t;
  // proto ^ host-order addr ^ (port >> 8) ^ port, masked: TCP(6) ^ 0x0a600001 ^ 0 ^ 80 -> 0x57 & 0xff
  CHECK(ServiceTable::hash(proto::TCP, *Addr::parse("10.96.0.1"), 80) == ((6u ^ 0x0a600001u ^ 0u ^ 80u) & 255u));
  for (uint32_t i = 0; i < 2560; ++i) {
    auto s = std::make_unique<Service>();
    s->addr = Addr::v4(0x0a600000u + i);
    s->port = 80;
    REQUIRE(t.add(std::move(s)));
  }
  auto dup = std::make_unique<Service>();
  dup->addr = Addr::v4(0x0a600000u);
  dup->port = 80;
  CHECK_FALSE(t.add(std::move(dup)));
  uint64_t walked = 0;
  CHECK(t.find(proto::TCP, Addr::v4(0x0a600000u + 5), 80, &walked));
  CHECK(walked >= 1);
  CHECK(walked <= 11);  // 2560 services / 256 buckets: chains of about 10, newest first
  uint64_t miss = 0;
  CHECK_FALSE(t.find(proto::UDP, Addr::v4(0x0a600000u + 5), 80, &miss));
}

TEST_CASE("IPVS TCP states: SYN from the client opens SYN_RECV (active), the handshake ends ESTABLISHED") {
  ConnState s = ConnState::None;
  s = tcp_next(s, true, tcpflag::SYN);
  CHECK(s == ConnState::SynRecv);
  CHECK(state_active(s));
  s = tcp_next(s, false, tcpflag::SYN | tcpflag::ACK);
  CHECK(s == ConnState::SynRecv);
  s = tcp_next(s, true, tcpflag::ACK);
  CHECK(s == ConnState::Established);
  s = tcp_next(s, true, tcpflag::FIN | tcpflag::ACK);
  CHECK(s == ConnState::CloseWait);
  CHECK_FALSE(state_active(s));
  s = tcp_next(s, false, tcpflag::FIN | tcpflag::ACK);
  CHECK(s == ConnState::TimeWait);
  CHECK(state_timeout_ns(ConnState::Established, proto::TCP, {}) == 900'000'000'000ull);
  CHECK(state_timeout_ns(ConnState::Udp, proto::UDP, {}) == 300'000'000'000ull);
}
