#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.hpp"
#include "cli/picture.hpp"
#include "cli/render.hpp"
#include "cli/report.hpp"
#include "core/diag.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"
#include "helpers.hpp"
#include "kube/sim/snapshot.hpp"

using namespace svcpath;

namespace {

std::vector<uint8_t> eth(const std::vector<uint8_t>& ip, uint16_t type = 0x0800) {
  std::vector<uint8_t> f(14 + ip.size(), 0);
  const uint8_t hdr[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, uint8_t(type >> 8), uint8_t(type)};
  std::copy(hdr, hdr + 14, f.begin());
  std::copy(ip.begin(), ip.end(), f.begin() + 14);
  return f;
}

Packet udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  Packet p;
  p.t = {*Addr::parse(src), *Addr::parse(dst), sport, dport, proto::UDP};
  p.len = 64;
  return p;
}

struct Capture {
  std::filesystem::path file, out_dir;
  Capture() {
    auto base = std::filesystem::temp_directory_path() / ("svcpath-replay-" + std::to_string(::getpid()));
    std::filesystem::create_directories(base);
    file = base / "in.pcap";
    out_dir = base / "out";
    pcap::Writer w(file.string(), pcap::link::Ethernet);
    uint64_t ts = 1'700'000'000'000'000'000ull;
    // 100 DNS queries from a pod on this node to the kube-dns ClusterIP, each its own flow.
    for (uint16_t i = 0; i < 100; ++i)
      w.write(ts += 1'000'000, eth(pcap::build(udp("10.244.1.7", uint16_t(20000 + i), "172.30.0.10", 53))));
    // Not a Service: forwarded untouched.
    w.write(ts += 1'000'000, eth(pcap::build(udp("10.244.1.7", 30000, "8.8.8.8", 53))));
    // ARP, a frame cut inside the IP header, a later fragment.
    w.write(ts += 1'000'000, eth(std::vector<uint8_t>(28, 0), 0x0806));
    auto full = eth(pcap::build(udp("10.244.1.7", 30001, "172.30.0.10", 53)));
    w.write(ts += 1'000'000, std::span<const uint8_t>(full.data(), 24), uint32_t(full.size()));
    auto frag = pcap::build(udp("10.244.1.7", 30002, "172.30.0.10", 53));
    frag[7] = 0x10;
    frag[10] = frag[11] = 0;
    w.write(ts += 1'000'000, eth(frag));
    // An IPv4 header claiming a 12-byte header length: malformed.
    auto bad = pcap::build(udp("10.244.1.7", 30003, "172.30.0.10", 53));
    bad[0] = 0x43;
    w.write(ts += 1'000'000, eth(bad));
    w.close();
  }
  ~Capture() { std::filesystem::remove_all(file.parent_path()); }
};

sim::ClusterOptions basic_cluster() {
  sim::ClusterOptions c;
  std::string ex = test::source_dir() + "/examples/clusters/";
  c.files = {ex + "nodes.yaml", ex + "basic.yaml"};
  c.node = "node-a";
  c.proxy_config = ex + "proxy-config.yaml";
  return c;
}

cli::ReplayOptions options(const Capture& c) {
  cli::ReplayOptions o;
  o.cluster = basic_cluster();
  o.cluster.mode = "iptables,ipvs";
  o.pcap = c.file.string();
  o.format = "json";
  return o;
}

// Runs a command with --format json and parses what it printed.
template <class Options>
nlohmann::json run_json(int (*cmd)(const Options&, std::ostream&), const Options& o, int status = 0) {
  std::ostringstream out;
  REQUIRE(cmd(o, out) == status);
  return nlohmann::json::parse(out.str());
}
nlohmann::json replay(const cli::ReplayOptions& o, int status = 0) { return run_json(cli::run_replay, o, status); }
nlohmann::json gen(const cli::GenTrafficOptions& g) { return run_json(cli::run_gen_traffic, g); }

}  // namespace

TEST_CASE("replay: both modes see the capture's flows, spread DNS over its endpoints, and count what they skip") {
  Capture cap;
  auto j = replay(options(cap));
  CHECK(j["capture"]["frames"] == 105);
  CHECK(j["skipped"]["bad IP header"] == 1);
  CHECK(j["skipped"]["not IP"] == 1);
  CHECK(j["skipped"]["truncated (snaplen)"] == 1);
  CHECK(j["skipped"]["later fragment"] == 1);
  for (const char* mode : {"iptables", "ipvs"}) {
    CAPTURE(mode);
    auto& m = j["modes"][mode];
    CHECK(m["packets"] == 101);
    CHECK(m["new_flows"] == 101);
    CHECK(m["dnat"] == 100);
    CHECK(m["outcomes"]["forwarded"] == 101);
    auto& to = m["dnat_to"]["172.30.0.10:53"];
    REQUIRE(to.size() == 2);
    uint64_t a = to["10.244.1.3:53"], b = to["10.244.2.4:53"];
    CHECK(a + b == 100);
    // Both endpoints get traffic: statistic 0.5 in iptables mode, round robin in IPVS.
    CHECK(a > 25);
    CHECK(b > 25);
    if (std::string(mode) == "ipvs") CHECK(a == 50);
    CHECK(m["cost_per_new_packet"]["rules_evaluated"].get<double>() > 0);
  }
  // IPVS looks the service up at LOCAL_IN: the 100 ClusterIP flows, not the forwarded 8.8.8.8 one.
  CHECK(j["modes"]["ipvs"]["cost_per_new_packet"]["ipvs_svc_lookups"].get<double>() * 101 == doctest::Approx(100));
  CHECK(j["modes"]["iptables"]["cost_per_new_packet"]["ipvs_svc_lookups"].get<double>() == 0.0);
}

TEST_CASE("replay is deterministic for a seed") {
  Capture cap;
  auto o = options(cap);
  o.format = "text";
  std::ostringstream a, b;
  REQUIRE(cli::run_replay(o, a) == 0);
  REQUIRE(cli::run_replay(o, b) == 0);
  CHECK(a.str() == b.str());
  CHECK(a.str().find("== mode ipvs ==") != std::string::npos);
}

TEST_CASE("replay writes each mode's post-NAT packets with valid checksums") {
  Capture cap;
  auto o = options(cap);
  o.out_dir = cap.out_dir.string();
  auto j = replay(o);
  for (const char* mode : {"iptables", "ipvs"}) {
    CAPTURE(mode);
    CHECK(j["modes"][mode]["written"] == 101);
    pcap::Reader r((cap.out_dir / (std::string(mode) + ".pcap")).string());
    pcap::Frame f;
    pcap::Decoded d;
    std::set<std::string> dsts;
    int n = 0;
    while (r.next(f)) {
      ++n;
      REQUIRE(pcap::decode(r.linktype(), f.data, f.caplen, d) == pcap::DecodeError::None);
      CHECK(pcap::checksums_ok(f.data, f.caplen));
      dsts.insert(d.pkt.t.dst.str());
    }
    CHECK(n == 101);
    CHECK(dsts == std::set<std::string>{"10.244.1.3", "10.244.2.4", "8.8.8.8"});
  }
}

TEST_CASE("replay errors name the file") {
  cli::ReplayOptions o;
  o.rules = test::source_dir() + "/examples/rulesets/firewall.rules";
  o.pcap = "/nonexistent/cap.pcap";
  std::ostringstream out;
  CHECK_THROWS_WITH(cli::run_replay(o, out), doctest::Contains("/nonexistent/cap.pcap"));
  o.pcap.clear();
  CHECK_THROWS_AS(cli::run_replay(o, out), LoadError);
}

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

struct TmpDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("svcpath-gen-" + std::to_string(::getpid()));
  TmpDir() { std::filesystem::create_directories(dir); }
  ~TmpDir() { std::filesystem::remove_all(dir); }
};

}  // namespace

namespace {

// Both modes, side by side, on a one-sided capture from gen-traffic.
cli::ReplayOptions both_modes_answering(const std::string& pcap) {
  cli::ReplayOptions o;
  o.cluster = basic_cluster();
  o.cluster.mode = "iptables,ipvs";
  o.pcap = pcap;
  o.answer = true;
  o.format = "json";
  return o;
}

}  // namespace

TEST_CASE("gen-traffic: the same seed writes the same bytes, another seed other bytes") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.connections = 300;
  g.format = "json";
  g.out = (t.dir / "a.pcap").string();
  auto ja = gen(g);
  g.out = (t.dir / "b.pcap").string();
  auto jb = gen(g);
  g.seed = 2;
  g.out = (t.dir / "c.pcap").string();
  gen(g);
  ja.erase("file");
  jb.erase("file");
  CHECK(ja == jb);
  CHECK(slurp(t.dir / "a.pcap") == slurp(t.dir / "b.pcap"));
  CHECK(slurp(t.dir / "a.pcap") != slurp(t.dir / "c.pcap"));
  CHECK(ja["connections"] == 300);
  // TCP: SYN, ACK, 2 data, FIN = 5; UDP: 2 requests.
  uint64_t packets = ja["packets"];
  CHECK(packets > 300 * 2);
  CHECK(packets <= 300 * 5);
}

TEST_CASE("gen-traffic then replay --answer: each mode reproduces the generator's ground truth and they agree") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.connections = 400;
  g.non_service = 0.1;
  g.format = "json";
  g.out = (t.dir / "g.pcap").string();
  auto truth = gen(g);
  auto o = both_modes_answering(g.out);
  o.out_dir = (t.dir / "out").string();
  auto j = replay(o);
  uint64_t ns = truth["non_service"];
  CHECK(ns > 10);
  CHECK(j["agreement"]["ipvs"]["connections"] == 400);
  CHECK(j["agreement"]["ipvs"]["equivalent"] == 400);
  for (const char* mode : {"iptables", "ipvs"}) {
    CAPTURE(mode);
    auto& m = j["modes"][mode];
    CHECK(m["packets"] == truth["packets"]);
    CHECK(m["answers"].get<uint64_t>() > 0);
    // Every Service address with endpoints got exactly the generator's connections, DNATed once each.
    uint64_t with_endpoints = 0;
    for (auto& [key, n] : truth["per_target"].items()) {
      CAPTURE(key);
      if (key.rfind("172.30.0.99", 0) == 0 || key.find(":30099") != std::string::npos) {  // Services without endpoints
        CHECK_FALSE(m["connections_to"].contains(key));
        continue;
      }
      CHECK(m["connections_to"][key] == n);
      with_endpoints += n.get<uint64_t>();
    }
    CHECK(with_endpoints > 200);
    // Answers went back through the datapath and out: the post-NAT capture holds both directions.
    CHECK(m["written"].get<uint64_t>() > m["outcomes"]["forwarded"].get<uint64_t>());
  }
}

TEST_CASE("gen-traffic: Zipf popularity favours the first Service port") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.connections = 2000;
  g.zipf = 2;
  g.clients = "local-pods=1";
  g.format = "json";
  g.out = (t.dir / "z.pcap").string();
  auto j = gen(g);
  // Ranks follow the Services in input order: web's ClusterIP port comes first.
  uint64_t first = j["per_target"]["172.30.0.41:80"];
  uint64_t total = j["connections"];
  CHECK(double(first) / double(total) > 0.5);  // 1/H(n,2) is about 0.6 for a dozen ports
  g.zipf = 0;
  g.out = (t.dir / "u.pcap").string();
  auto u = gen(g);
  CHECK(double(u["per_target"]["172.30.0.41:80"].get<uint64_t>()) / double(total) < 0.2);
}

TEST_CASE("gen-traffic rejects what it cannot model, naming the flag") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.out = (t.dir / "x.pcap").string();
  std::ostringstream out;
  g.clients = "pods=1";
  CHECK_THROWS_WITH(cli::run_gen_traffic(g, out), doctest::Contains("unknown client kind 'pods'"));
  g.clients = "external=-1";
  CHECK_THROWS_WITH(cli::run_gen_traffic(g, out), doctest::Contains("weight must be a number"));
  g.clients = "external=0";
  CHECK_THROWS_WITH(cli::run_gen_traffic(g, out), doctest::Contains("no client kind can reach"));
  g.clients = "local-pods=1";
  g.non_service = 2;
  CHECK_THROWS_WITH(cli::run_gen_traffic(g, out), doctest::Contains("between 0 and 1"));
}

namespace {
struct Syn {
  const char* src;
  uint16_t sport;
  const char* dst;  // port 80
  uint8_t flags = tcpflag::SYN;
};
// A capture of TCP packets (SYNs unless told), replayed through basic.yaml's node-a in iptables and IPVS mode.
cli::ReplayOptions syn_replay(const std::filesystem::path& file, const std::vector<Syn>& syns) {
  pcap::Writer w(file.string(), pcap::link::Raw);
  uint64_t ts = 1'000'000'000;
  for (const Syn& s : syns) {
    Packet p;
    p.t = {*Addr::parse(s.src), *Addr::parse(s.dst), s.sport, 80, proto::TCP};
    p.tcp_flags = s.flags;
    w.write(ts += 100'000, pcap::build(p));
  }
  w.close();
  cli::ReplayOptions o;
  o.cluster = basic_cluster();
  o.cluster.mode = "iptables,ipvs";
  o.pcap = file.string();
  o.format = "json";
  return o;
}
}  // namespace

TEST_CASE("the agreement report finds kube-proxy's hairpin difference between the modes") {
  // A pod on node-b reaches the legacy Service (its only endpoint is that same pod) through node-a:
  // iptables mode masquerades hairpin traffic by source (KUBE-SEP -s POD -j KUBE-MARK-MASQ); IPVS
  // mode's KUBE-LOOP-BACK set lists only this node's endpoints, so it does not.
  TmpDir t;
  // The second connection goes to web: not a hairpin, the modes agree.
  auto o = syn_replay(t.dir / "hairpin.pcap", {{"10.244.2.50", 40000, "172.30.0.45"}, {"10.244.2.50", 40001, "172.30.0.41"}});
  auto j = replay(o);
  auto& ag = j["agreement"]["ipvs"];
  CHECK(ag["connections"] == 2);
  CHECK(ag["equivalent"] == 1);
  CHECK(ag["why"]["masquerade"] == 1);
  auto& ex = j["agreement"]["examples"];
  REQUIRE(ex.size() == 1);
  CHECK(ex[0]["connection"] == "tcp 10.244.2.50:40000 -> 172.30.0.45:80");
  CHECK(ex[0]["differs_in"] == "masquerade");
  CHECK(ex[0]["iptables"].get<std::string>().find("masqueraded") != std::string::npos);
  CHECK(ex[0]["ipvs"].get<std::string>().find("masqueraded") == std::string::npos);
  // Each side's full trace: iptables marks for masquerade in the endpoint chain; IPVS schedules at INPUT.
  std::string ipt = ex[0]["traces"]["iptables"]["trace"].dump(), ipv = ex[0]["traces"]["ipvs"]["trace"].dump();
  CHECK(ipt.find("KUBE-MARK-MASQ") != std::string::npos);
  CHECK(ipt.find("MASQUERADE") != std::string::npos);
  CHECK(ipv.find("round robin") != std::string::npos);
  CHECK(ipv.find("MASQUERADE") == std::string::npos);
  CHECK(ex[0]["traces"]["iptables"]["snat"] == true);
  CHECK(ex[0]["traces"]["ipvs"]["snat"] == false);
  // The same backend (the Service's only endpoint): a real difference, not one of choice.
  CHECK(ag["different"] == 1);
  CHECK(!ag["by_choice"].contains("hairpin masquerade"));
  // --examples 0: counted, not traced.
  o.examples = 0;
  auto quiet = replay(o);
  CHECK(quiet["agreement"]["ipvs"]["different"] == 1);
  CHECK(quiet["agreement"]["examples"].empty());
}

TEST_CASE(
    "agreement: a hairpin to the client itself in one mode and another backend in the other is a choice, not a difference") {
  // web's endpoint 10.244.1.5 on node-a opens connections to its own Service: whichever mode picks
  // the client itself masquerades (the reply must come back through the node), the other mode's
  // backend needs no masquerade. Both are right; the difference follows from the backend chosen.
  TmpDir t;
  std::vector<Syn> syns;
  for (uint16_t i = 0; i < 30; ++i) syns.push_back({"10.244.1.5", uint16_t(40000 + i), "172.30.0.41"});
  auto o = syn_replay(t.dir / "self.pcap", syns);
  auto j = replay(o);
  auto& ag = j["agreement"]["ipvs"];
  CHECK(ag["connections"] == 30);
  CHECK(ag["equivalent"] == 30);
  CHECK(ag["different"] == 0);
  CHECK(ag["why"].empty());
  CHECK(j["agreement"]["examples"].empty());
  // Both kinds of choice happen with this seed: the hairpin, and two non-client backends.
  uint64_t hairpin = ag["by_choice"].value("hairpin masquerade", uint64_t(0));
  uint64_t other = ag["by_choice"].value("other backend", uint64_t(0));
  CHECK(hairpin > 0);
  CHECK(other > 0);
  // Each mode masqueraded exactly its hairpin connections: those to the client itself.
  for (const char* mode : {"iptables", "ipvs"}) {
    CAPTURE(mode);
    auto& m = j["modes"][mode];
    CHECK(m["snat"] == m["dnat_to"]["172.30.0.41:80"].value("10.244.1.5:8080", uint64_t(0)));
  }
  // The text report says so in words.
  o.format = "text";
  std::ostringstream out;
  REQUIRE(cli::run_replay(o, out) == 0);
  CHECK(out.str().find(fmt::format("iptables vs ipvs: 30 connections, 30 equivalent, 0 different; of the equivalent, {} differ "
                                   "only by the backend chosen ({} hairpin masquerade, {} other backend)",
                                   hairpin + other, hairpin, other)) != std::string::npos);
}

TEST_CASE("agreement: a policy verdict that differs because the modes picked different backends is a choice, not a difference") {
  // The demo's web Service has an isolated endpoint (web-1, dropped by policy) and an open one: a
  // connection iptables sends to web-1 and IPVS to the other is dropped in one mode only. Given
  // IPVS's backend (a branch of its statistic match), iptables mode forwards it too.
  cli::ReplayOptions o;
  o.cluster.files = {test::source_dir() + "/examples/networkpolicy/cluster.yaml"};
  o.cluster.node = "node-a";
  o.cluster.mode = "iptables,ipvs";
  o.pcap = test::source_dir() + "/examples/pcaps/demo-node-a.pcap";
  o.answer = true;
  o.format = "json";
  auto j = replay(o);
  auto& ag = j["agreement"]["ipvs"];
  CHECK(ag["connections"] == 400);
  CHECK(ag["different"] == 0);
  CHECK(ag["why"].empty());
  CHECK(ag["by_choice"].value("other backend's outcome", uint64_t(0)) > 20);
  CHECK(j["agreement"]["examples"].empty());
  // The verdicts do differ by mode, packet for packet: the counts are of choices, not of agreement.
  CHECK(j["modes"]["iptables"]["outcomes"]["dropped (rule DROP)"] != j["modes"]["ipvs"]["outcomes"]["dropped (rule DROP)"]);
}

TEST_CASE("replay --threads gives the same report as one thread") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.connections = 3000;  // several batches
  g.format = "json";
  g.out = (t.dir / "g.pcap").string();
  gen(g);
  auto o = both_modes_answering(g.out);
  auto one = replay(o);
  o.threads = 2;
  auto two = replay(o);
  CHECK(one == two);
  o.threads = 8;  // more threads than modes: capped
  CHECK(replay(o) == one);
}

TEST_CASE("a capture cut off mid-record is replayed up to the cut, with a note and exit status 3") {
  TmpDir t;
  auto file = t.dir / "cut.pcap";
  {
    pcap::Writer w(file.string(), pcap::link::Raw);
    for (uint16_t i = 0; i < 3; ++i) w.write(1000 + i, pcap::build(udp("10.244.1.7", uint16_t(20000 + i), "172.30.0.10", 53)));
    w.close();
  }
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 5);
  cli::ReplayOptions o;
  o.cluster = basic_cluster();
  o.pcap = file.string();
  o.format = "json";
  auto j = replay(o, cli::kExitDamagedCapture);
  CHECK(j["capture"]["frames"] == 2);
  CHECK(j["capture"]["error"].get<std::string>().find("truncated") != std::string::npos);
  CHECK(j["modes"]["iptables"]["packets"] == 2);
}

TEST_CASE("gen-traffic: TCP connections open with SYN and close with FIN or, per --rst, RST") {
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.connections = 500;
  g.rst = 1;
  g.format = "json";
  g.out = (t.dir / "r.pcap").string();
  gen(g);
  pcap::Reader r(g.out);
  pcap::Frame f;
  pcap::Decoded d;
  uint64_t syn = 0, rst = 0, fin = 0, prev_ts = 0;
  bool ordered = true;
  while (r.next(f)) {
    REQUIRE(pcap::decode(r.linktype(), f.data, f.caplen, d, f.wirelen) == pcap::DecodeError::None);
    CHECK(pcap::checksums_ok(f.data + d.l3, f.caplen - d.l3));
    ordered &= f.ts_ns >= prev_ts;
    prev_ts = f.ts_ns;
    if (d.pkt.t.proto != proto::TCP) continue;
    syn += d.pkt.tcp_flags == tcpflag::SYN;
    rst += (d.pkt.tcp_flags & tcpflag::RST) != 0;
    fin += (d.pkt.tcp_flags & tcpflag::FIN) != 0;
  }
  CHECK(ordered);  // the capture is in time order, as a real one is
  CHECK(syn > 100);
  CHECK(rst == syn);
  CHECK(fin == 0);
}

TEST_CASE("IPVS mode from dumps (ipvsadm-save, ipset save, iptables-save) replays like the generated mode") {
  // The three dumps svcpath prints for node-a's IPVS mode, loaded back as a user's node dumps.
  TmpDir t;
  cli::RulesOptions ro;
  ro.cluster = basic_cluster();
  ro.cluster.mode = "ipvs";
  std::ostringstream all;
  REQUIRE(cli::run_rules(ro, all) == 0);
  std::string text = all.str();
  auto section = [&](const char* head, const char* next) {
    size_t a = text.find(head);
    REQUIRE(a != std::string::npos);
    a = text.find('\n', a) + 1;
    size_t b = next ? text.find(next, a) : std::string::npos;
    return text.substr(a, b == std::string::npos ? std::string::npos : b - a);
  };
  auto write = [&](const char* name, const std::string& body) {
    std::ofstream(t.dir / name) << body;
    return (t.dir / name).string();
  };
  cli::ReplayOptions o;
  o.ipvs = write("node.ipvs", section("# ipvsadm-save -n", "# ipset save"));
  o.ipsets = write("node.ipsets", section("# ipset save", "# iptables-save"));
  o.rules = write("node.rules", section("# iptables-save", nullptr));
  o.node.local_ips = {"10.0.0.10/24@eth0", "10.244.1.1/24@cni0"};
  o.node.sysctls = {"net.ipv4.ip_forward=1"};
  // 40 DNS queries from a pod on cni0's subnet, one flow each.
  auto file = t.dir / "dns.pcap";
  {
    pcap::Writer w(file.string(), pcap::link::Raw);
    for (uint16_t i = 0; i < 40; ++i)
      w.write(1'000'000'000ull + i * 1000, pcap::build(udp("10.244.1.7", uint16_t(20000 + i), "172.30.0.10", 53)));
    w.close();
  }
  o.pcap = file.string();
  o.format = "json";
  auto j = replay(o);
  auto& m = j["modes"]["rules"];
  CHECK(m["outcomes"]["forwarded"] == 40);
  // The dump's rr scheduler alternates the two endpoints exactly.
  CHECK(m["dnat_to"]["172.30.0.10:53"]["10.244.1.3:53"] == 20);
  CHECK(m["dnat_to"]["172.30.0.10:53"]["10.244.2.4:53"] == 20);
  CHECK(m["cost_per_new_packet"]["ipvs_svc_lookups"].get<double>() == doctest::Approx(1.0));
}

TEST_CASE("replay counts NetworkPolicy verdicts per deciding policy rule, in both modes") {
  TmpDir t;
  auto file = t.dir / "np.pcap";
  {
    pcap::Writer w(file.string(), pcap::link::Raw);
    auto syn = [](const char* src, uint16_t sport, const char* dst, uint16_t dport) {
      Packet p = udp(src, sport, dst, dport);
      p.t.proto = proto::TCP;
      p.tcp_flags = tcpflag::SYN;
      return p;
    };
    // web-1 -> db ClusterIP (allowed), debug-1 -> db ClusterIP twice (denied; a retransmission).
    w.write(1000, pcap::build(syn("10.244.1.10", 40000, "10.96.0.54", 5432)));
    w.write(2000, pcap::build(syn("10.244.1.30", 40001, "10.96.0.54", 5432)));
    w.write(3000, pcap::build(syn("10.244.1.30", 40001, "10.96.0.54", 5432)));
    w.close();
  }
  cli::ReplayOptions o;
  o.cluster.files = {test::source_dir() + "/examples/networkpolicy/cluster.yaml"};
  o.cluster.node = "node-a";
  o.cluster.mode = "iptables,ipvs";
  o.pcap = file.string();
  o.format = "json";
  auto j = replay(o);
  for (const char* mode : {"iptables", "ipvs"}) {
    INFO(mode);
    auto& p = j["modes"][mode]["policy"];
    CHECK(p["allowed"] == nlohmann::json{{"shop/db-from-web ingress[0]", 1}});
    CHECK(p["denied"] == nlohmann::json{{"tools/debug-1 egress: isolated by tools/debug-to-web-clusterip; no rule allows", 2}});
  }
}

TEST_CASE("an outcome printed as JSON reads back into the same picture") {
  cli::TraceOptions o;
  o.cluster.files = {test::source_dir() + "/examples/networkpolicy/cluster.yaml"};
  o.cluster.node = "node-a";
  o.cluster.mode = "iptables,ipvs";
  o.packets = {"tcp 10.244.1.10:40000 -> 10.96.0.54:5432 in=cni0"};
  o.format = "json";
  std::ostringstream out;
  REQUIRE(cli::run_trace(o, out) == 0);
  auto j = nlohmann::json::parse(out.str());
  for (auto& [mode, outs] : j["modes"].items()) {
    std::deque<std::string> store;
    nf::Outcome back = cli::outcome_from_json(outs[0], store);
    auto again = cli::outcome_json(back);
    // Everything a picture draws survives the trip.
    CHECK(again["trace"] == outs[0]["trace"]);
    CHECK(again["verdict"] == outs[0]["verdict"]);
    CHECK(again["dst"] == outs[0]["dst"]);
    CHECK(again["src"] == outs[0]["src"]);
    // And the picture drawn from it names the hooks in the order the packet visited them.
    std::string svg = cli::render_svg({{"p", {{mode, mode == "ipvs", {back}, 0}}}});
    CHECK(svg.find(mode == "ipvs" ? "data-hook=\"INPUT\" data-order=\"2\"" : "data-hook=\"FORWARD\" data-order=\"2\"") !=
          std::string::npos);
  }
}

TEST_CASE("a snapshot's kube-proxy.txt tells kube-proxy's mode: /proxyMode, else /configz, else its traces") {
  using sim::kube_proxy_mode;
  CHECK(kube_proxy_mode("proxyMode\tipvs\nconfigz\tunreachable\n").mode == "ipvs");
  CHECK(kube_proxy_mode("proxyMode\tipvs\n").how == "kube-proxy's /proxyMode");
  auto c = kube_proxy_mode("proxyMode\tunreachable\nconfigz\t{\"kubeproxy.config.k8s.io\":{\"mode\":\"nftables\",\"x\":1}}\n");
  CHECK(c.mode == "nftables");
  CHECK(c.how == "kube-proxy's /configz");
  auto d = kube_proxy_mode("configz\t{\"kubeproxy.config.k8s.io\":{\"mode\":\"\"}}\n");
  CHECK(d.mode == "iptables");
  CHECK(d.how == "kube-proxy's /configz: mode unset, the Linux default");
  CHECK(kube_proxy_mode("configz\t{not json\nchains\tKUBE-SERVICES in iptables-nft-save.v4\ndevice\tkube-ipvs0\n").mode ==
        "ipvs");
  auto e = kube_proxy_mode("configz\tunreachable\nmetrics\tunreachable\nchains\tKUBE-SERVICES in iptables-nft-save.v4\n");
  CHECK(e.mode == "iptables");
  CHECK(e.how == "kube-proxy's chains: KUBE-SERVICES in iptables-nft-save.v4");
  CHECK(kube_proxy_mode("chains\tnft table kube-proxy\n").mode == "nftables");
  CHECK(kube_proxy_mode("configz\tunreachable\nmetrics\tunreachable\n").mode.empty());
}

TEST_CASE("replay counts INVALID packets per drop site and new flows picked up mid-stream, and says why counts differ") {
  // A FIN/ACK with no entry is INVALID: iptables mode's KUBE-FORWARD drops it (ctstate INVALID),
  // nftables mode has no such rule. A bare ACK with no entry opens one (nf_conntrack_tcp_loose).
  TmpDir t;
  auto o = syn_replay(t.dir / "invalid.pcap", {{"10.244.1.9", 40000, "172.30.0.41", tcpflag::FIN | tcpflag::ACK},
                                               {"10.244.1.9", 40001, "172.30.0.41", tcpflag::ACK},
                                               {"10.244.1.9", 40002, "172.30.0.41"}});
  o.cluster.mode = "iptables,nftables";
  auto j = replay(o);
  auto& ipt = j["modes"]["iptables"];
  auto& nft = j["modes"]["nftables"];
  CHECK(ipt["invalid"] == 1);
  CHECK(ipt["invalid_dropped_at"] == nlohmann::json{{"filter:KUBE-FORWARD:rule:1", 1}});
  CHECK(nft["invalid"] == 1);
  CHECK(nft["invalid_dropped_at"].empty());
  for (auto* m : {&ipt, &nft}) {
    CHECK((*m)["new_flows"] == 2);
    CHECK((*m)["new_flows_midstream"] == 1);
  }
  o.format = "text";
  std::ostringstream out;
  REQUIRE(cli::run_replay(o, out) == 0);
  std::string text = out.str();
  CHECK(text.find("  (1 of the 2 new connections were picked up mid-stream: a TCP packet without SYN found no entry and "
                  "opened one (nf_conntrack_tcp_loose), as when the connection's first packet was dropped or rejected)\n") !=
        std::string::npos);
  CHECK(text.find(": 1 dropped (1 at filter:KUBE-FORWARD:rule:1))\n") != std::string::npos);
  CHECK(text.find(": no rule dropped them)\n") != std::string::npos);
  CHECK(text.find("INVALID packets dropped: iptables 1 of 1 (1 at filter:KUBE-FORWARD:rule:1), nftables none of 1.") !=
        std::string::npos);
  // The same new connections in both modes: nothing to explain there.
  CHECK(text.find("New connections differ") == std::string::npos);
}

TEST_CASE("explain_counts: sentences from the counts, none where they agree") {
  std::vector<cli::ModeCounts> m{{"iptables", 727, 327, 96, {{"filter:KUBE-FORWARD:rule:1", 52}}},
                                 {"nftables", 688, 288, 150, {}}};
  auto n = cli::explain_counts(m);
  CHECK(n.new_flows_across ==
        "New connections differ between the modes only by those picked up mid-stream (iptables 327, nftables 288): every "
        "mode saw the same 400 open with their first packet. Where a mode drops or rejects a connection's first packet it "
        "keeps no "
        "entry, so the connection's next packet opens one.");
  CHECK(
      n.invalid_across.starts_with("INVALID packets dropped: iptables 52 of 96 (52 at filter:KUBE-FORWARD:rule:1), nftables "
                                   "none of 150."));
  CHECK(n.invalid[0].ends_with(": 52 dropped (52 at filter:KUBE-FORWARD:rule:1), 44 passed"));
  m[1] = {"ipvs", 710, 300, 96, {{"filter:KUBE-FORWARD:rule:1", 52}}};
  n = cli::explain_counts(m);
  CHECK(n.new_flows_across ==
        "New connections opened by their first packet: iptables 400, ipvs 410; picked up mid-stream: "
        "iptables 327, ipvs 300.");
  CHECK(n.invalid_across.empty());
  m[1] = m[0];
  n = cli::explain_counts(m);
  CHECK(n.new_flows_across.empty());
  CHECK(cli::explain_counts({{"iptables", 10, 0, 0, {}}}).new_flows[0].empty());
}

namespace {
// The text a reader sees in a report section: tags, pictures and styles removed.
std::string section_text(const std::string& html, const std::string& id) {
  auto at = html.find("<section id=\"" + id + "\">");
  if (at == std::string::npos) return "";
  std::string sec = html.substr(at, html.find("</section>", at) - at);
  std::string text;
  bool in_tag = false;
  for (size_t i = 0; i < sec.size(); ++i) {
    if (sec.compare(i, 4, "<svg") == 0) {  // a picture's chain names are the kernel's, not labels
      i = sec.find("</svg>", i);
      if (i == std::string::npos) break;
      i += 5;
      continue;
    }
    if (sec[i] == '<') in_tag = true;
    else if (sec[i] == '>') {
      in_tag = false;
      text += ' ';
    } else if (!in_tag) text += sec[i];
  }
  return text;
}
}  // namespace

TEST_CASE("the report labels rows in plain words and shows backend shares one row per Service, a column per mode") {
  // Every kernel-work counter has a plain label; the label table lists them all.
  Counters c;
  c.for_each([&](std::string_view name, uint64_t) {
    CAPTURE(name);
    CHECK(cli::label_of(std::string(name)) != std::string(name));
  });
  CHECK(cli::label_of("ipvs_svc_lookups") == "IPVS service lookups");
  TmpDir t;
  cli::GenTrafficOptions g;
  g.cluster = basic_cluster();
  g.out = (t.dir / "g.pcap").string();
  g.connections = 150;
  g.format = "json";
  gen(g);
  cli::ReplayOptions o;
  o.cluster = basic_cluster();
  o.cluster.mode = "iptables,ipvs,nftables";
  o.pcap = g.out;
  o.answer = true;
  o.format = "json";
  cli::ReportInput in;
  in.replay = replay(o);
  std::string html = cli::render_report(in);
  std::string shown;
  for (const char* id : {"summary", "agreement", "shares", "cost"}) shown += section_text(html, id);
  REQUIRE(!shown.empty());
  // No key is a row label ("packets" is a word, but the row says which packets).
  for (auto& [key, label] : cli::counter_labels()) {
    CAPTURE(key);
    CHECK(html.find("<td>" + key + "</td>") == std::string::npos);
    if (key.find('_') != std::string::npos) CHECK(shown.find(key) == std::string::npos);
  }
  // Nor any other snake_case word.
  std::smatch m;
  CHECK_MESSAGE(!std::regex_search(shown, m, std::regex("\\b[a-z]+(_[a-z]+)+\\b")), m.str());
  CHECK(shown.find("IPVS service lookups per new connection") != std::string::npos);
  CHECK(html.find("<tr><td>Packets replayed</td>") != std::string::npos);
  // Backend shares: a header with a column per mode, then one row per Service any mode DNATed to.
  std::set<std::string> services;
  for (auto& [mode, md] : in.replay["modes"].items())
    for (auto& [svc, b] : md["dnat_to"].items()) services.insert(svc);
  REQUIRE(services.size() > 3);
  auto at = html.find("<table class=\"shares\">");
  REQUIRE(at != std::string::npos);
  std::string table = html.substr(at, html.find("</table>", at) - at);
  CHECK(table.starts_with(
      "<table class=\"shares\"><tr><th>Service</th><th>iptables mode</th><th>ipvs mode</th><th>nftables mode</th></tr>"));
  size_t rows = 0;
  for (size_t p = table.find("<tr>"); p != std::string::npos; p = table.find("<tr>", p + 1)) ++rows;
  CHECK(rows == services.size() + 1);
  for (auto& svc : services) {
    CAPTURE(svc);
    auto row = table.find("<tr><td class=\"svcname\">" + svc + "</td>");
    REQUIRE(row != std::string::npos);
    std::string r = table.substr(row, table.find("</tr>", row) - row);
    size_t cells = 0;
    for (size_t p = r.find("<td>"); p != std::string::npos; p = r.find("<td>", p + 1)) ++cells;
    CHECK(cells == 3);
  }
  // The text summary groups the shares the same way: a Service line naming the modes, then per
  // backend its packets and share in each mode.
  o.format = "text";
  std::ostringstream text;
  REQUIRE(cli::run_replay(o, text) == 0);
  std::string txt = text.str();
  auto from = txt.find("\n== backend shares per Service (DNATed packets) ==\n");
  REQUIRE(from != std::string::npos);
  std::istringstream lines(txt.substr(from + 1));
  std::string line;
  std::getline(lines, line);
  size_t heads = 0, bars = 0;
  std::regex head("^  \\S+ +iptables +ipvs +nftables$"), bar("^    -> \\S+( +[0-9]+ +[0-9.]+%){3}$");
  while (std::getline(lines, line) && !line.empty()) {
    CAPTURE(line);
    bool h = std::regex_match(line, head), b = std::regex_match(line, bar);
    CHECK((h || b));
    heads += h;
    bars += b;
  }
  CHECK(heads == services.size());
  CHECK(bars >= services.size());
  // A percentage and its count never wrap apart.
  CHECK(html.find("%&nbsp;(") != std::string::npos);
  CHECK(html.find(".pct{color:#555;min-width:110px;white-space:nowrap}") != std::string::npos);
}
