#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.hpp"
#include "core/diag.hpp"
#include "pcap/decode.hpp"
#include "pcap/io.hpp"
#include "helpers.hpp"

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
    for (uint16_t i = 0; i < 100; ++i) w.write(ts += 1'000'000, eth(pcap::build(udp("10.244.1.7", uint16_t(20000 + i), "172.30.0.10", 53))));
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
    w.close();
  }
  ~Capture() { std::filesystem::remove_all(file.parent_path()); }
};

cli::ReplayOptions options(const Capture& c) {
  cli::ReplayOptions o;
  std::string ex = test::source_dir() + "/examples/clusters/";
  o.cluster.files = {ex + "nodes.yaml", ex + "basic.yaml"};
  o.cluster.node = "node-a";
  o.cluster.proxy_config = ex + "proxy-config.yaml";
  o.cluster.mode = "iptables,ipvs";
  o.pcap = c.file.string();
  o.format = "json";
  return o;
}

nlohmann::json replay(const cli::ReplayOptions& o) {
  std::ostringstream out;
  REQUIRE(cli::run_replay(o, out) == 0);
  return nlohmann::json::parse(out.str());
}

}  // namespace

TEST_CASE("replay: both modes see the capture's flows, spread DNS over its endpoints, and count what they skip") {
  Capture cap;
  auto j = replay(options(cap));
  CHECK(j["capture"]["frames"] == 104);
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
