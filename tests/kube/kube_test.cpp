// kube-proxy iptables mode from cluster objects: the loader, the generator's golden dumps, and
// packet-flow tables in the style of kube-proxy's own tests (checked with --enumerate).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "kube/sim/lanes.hpp"
#include "core/rng.hpp"
#include "kube/objects/cluster.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "helpers.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/ipvs.hpp"
#include "kube/proxy/model.hpp"
#include "kube/proxy/nftables.hpp"
#include "netfilter/nftables/hooks.hpp"
#include "kube/proxy/node.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

std::string ex(const std::string& f) { return source_dir() + "/examples/clusters/" + f; }

sim::ClusterInput load(const std::string& file, const std::string& node = "node-a") {
  sim::ClusterOptions o;
  o.files = {ex("nodes.yaml"), ex(file)};
  o.node = node;
  o.proxy_config = ex("proxy-config.yaml");
  return sim::load_cluster(o);
}

void golden_text(const std::string& name, const std::string& got) {
  test::check_golden(source_dir() + "/tests/golden/kube/" + name, got);
}

}  // namespace

TEST_CASE("chain names follow kube-proxy's recipe (values verified against kube-proxy)") {
  CHECK(kube::chain_hash("ns1/svc1:p80tcp") == "XPGD46QRK7WJZT7O");
  CHECK(kube::chain_hash("ns1/svc1:p80tcp10.180.0.1:80") == "SXIVWICOYRO3J4NJ");
}

TEST_CASE("loader: kinds, lists, legacy Endpoints, defaults, notes for unknown kinds") {
  auto in = load("basic.yaml");
  const k8s::Cluster& c = in.cluster;
  CHECK(c.nodes.size() == 3);
  CHECK(c.node("node-a")->pod_cidrs.size() == 2);
  CHECK(c.node("node-b")->internal_ips[0] == *Addr::parse("10.0.0.11"));
  std::map<std::string, const k8s::Service*> by;
  for (auto& s : c.services) by[s.ns + "/" + s.name] = &s;
  CHECK(by["demo/web"]->type == "NodePort");
  CHECK(by["demo/web"]->ports[0].node_port == 30080);
  CHECK(by["demo/web"]->ports[0].target_port.num == 8080);
  CHECK(by["demo/db"]->headless);
  CHECK(by["demo/external-api"]->type == "ExternalName");
  CHECK(by["demo/sticky"]->affinity_client_ip);
  CHECK(by["demo/sticky"]->affinity_timeout == 600);
  CHECK(by["kube-system/kube-dns"]->ports.size() == 3);
  CHECK(by["kube-system/kube-dns"]->ports[0].proto == proto::UDP);
  // The legacy Endpoints became a slice; its not-ready address is kept but not ready.
  bool legacy = false;
  for (auto& s : c.slices)
    if (s.service_name == "legacy") {
      legacy = true;
      REQUIRE(s.endpoints.size() == 2);
      CHECK(s.endpoints[0].is_ready());
      CHECK_FALSE(s.endpoints[1].is_ready());
    }
  CHECK(legacy);
  REQUIRE(c.notes.size() == 1);
  CHECK(c.notes[0].find("skipped kind ConfigMap") != std::string::npos);
  CHECK(in.cfg.cluster_cidrs.size() == 2);
  CHECK(in.cfg.masquerade_mark() == 0x4000);
}

TEST_CASE("loader: malformed objects name the file, line and field path") {
  struct Bad {
    const char* yaml;
    int line;
    const char* msg;
  } bad[] = {
      {"kind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {port: 80}\n  - {port: eighty}\n", 6,
       "spec.ports[1].port: expected integer"},
      {"kind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {port: 70000}\n", 5,
       "spec.ports[0].port: 70000 is out of range"},
      {"kind: Service\nmetadata: {name: a}\nspec:\n  clusterIP: 10.0.0.300\n", 4,
       "spec.clusterIP: '10.0.0.300' is not an IP address"},
      {"kind: Service\nmetadata: {name: a}\nspec:\n  type: Weird\n", 4, "spec.type: 'Weird' is not ClusterIP"},
      {"kind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {port: 80, protocol: ICMP}\n", 5, "is not TCP, UDP or SCTP"},
      {"kind: Service\nspec: {}\n", 1, "metadata: required field is missing"},
      {"kind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nendpoints:\n"
       "- addresses: [fd00::1]\n",
       5, "is not an IPv4 address"},
      {"kind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nendpoints:\n"
       "- addresses: [10.0.0.1]\n  conditions: {ready: maybe}\n",
       6, "conditions.ready: expected true or false"},
      {"kind: Node\nmetadata: {name: n}\nspec: {podCIDR: 10.0.0.0}\n", 3, "is not a CIDR"},
      {"kind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector:\n    matchExpressions:\n    - {key: a, operator: Near}\n",
       6, "is not In, NotIn, Exists or DoesNotExist"},
      {"kind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: "
       "10.0.0.0/8}\n"
       "      podSelector: {}\n",
       7, "ipBlock cannot be combined"},
      {"kind: Service\nmetadata: {name: a}\nspec: [\n", 4, "end of sequence"},  // found at end of input
      {"- just\n- a list\n", 1, "expected a Kubernetes object"},
  };
  for (auto& b : bad) {
    INFO(std::string(b.yaml));
    std::string path = "/tmp/svcpath-test-bad.yaml";
    std::ofstream(path) << b.yaml;
    k8s::Cluster c;
    CHECK_LOAD_ERROR(k8s::load_cluster_file(path, c), b.line, b.msg);
  }
}

TEST_CASE("loader: JSON as kubectl -o json prints it") {
  std::string path = "/tmp/svcpath-test.json";
  std::ofstream(path) << R"({"apiVersion":"v1","kind":"List","items":[
    {"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"x"},
     "spec":{"clusterIP":"10.96.0.5","ports":[{"name":"p","port":80,"protocol":"TCP","targetPort":"http"}]}},
    {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"a-1","namespace":"x",
     "labels":{"kubernetes.io/service-name":"a"}},"addressType":"IPv4",
     "endpoints":[{"addresses":["10.1.0.5"],"conditions":{"ready":true}}],"ports":[{"name":"p","port":8080,"protocol":"TCP"}]}]})";
  k8s::Cluster c;
  k8s::load_cluster_file(path, c);
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].ports[0].target_port.is_name);
  CHECK(c.services[0].ports[0].target_port.name == "http");
  REQUIRE(c.slices.size() == 1);
  CHECK(*c.slices[0].ports[0].port == 8080);
}

TEST_CASE("golden: the dumps kube-proxy would leave on node-a (reviewed by hand)") {
  for (const char* f : {"basic", "traffic-policy", "dual-stack"}) {
    INFO(std::string(f));
    auto in = load(std::string(f) + ".yaml");
    golden_text(std::string(f) + ".v4.rules", nf::save(kube::iptables::node_ruleset(in.cluster, in.node, in.cfg, Family::V4)));
    golden_text(std::string(f) + ".v4.input", kube::iptables::restore_input(in.cluster, in.node, in.cfg, Family::V4));
  }
  auto ds = load("dual-stack.yaml");
  golden_text("dual-stack.v6.rules", nf::save(kube::iptables::node_ruleset(ds.cluster, ds.node, ds.cfg, Family::V6)));
}

TEST_CASE("golden: kube-proxy's nftables transaction and what nft list ruleset shows after it") {
  for (const char* f : {"basic", "traffic-policy", "dual-stack"}) {
    INFO(std::string(f));
    auto in = load(std::string(f) + ".yaml");
    in.cfg.mode = k8s::ProxyMode::Nftables;
    std::string tx = kube::nftables::nft_input(in.cluster, in.node, in.cfg, Family::V4);
    golden_text(std::string(f) + ".v4.nft", tx);
    golden_text(std::string(f) + ".v4.nft-list", nf::nft::print(nf::nft::load(tx, f)));
  }
  auto ds = load("dual-stack.yaml");
  ds.cfg.mode = k8s::ProxyMode::Nftables;
  golden_text("dual-stack.v6.nft", kube::nftables::nft_input(ds.cluster, ds.node, ds.cfg, Family::V6));
}

TEST_CASE("proxy configuration variants change exactly the rules they should") {
  auto in = load("basic.yaml");
  auto text = [&](const k8s::ProxyConfig& cfg) { return kube::iptables::restore_input(in.cluster, in.node, cfg, Family::V4); };
  k8s::ProxyConfig cfg = in.cfg;
  cfg.masquerade_all = true;
  CHECK(text(cfg).find("--dport 80 -j KUBE-MARK-MASQ") != std::string::npos);  // no "! -s" part
  CHECK(text(cfg).find("! -s 10.244.0.0/16") == std::string::npos);
  cfg = in.cfg;
  cfg.cluster_cidrs.clear();  // no local-traffic detector: no masquerade rule at all
  CHECK(text(cfg).find("cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s") == std::string::npos);
  cfg = in.cfg;
  cfg.detect_local_mode = "InterfaceNamePrefix";
  cfg.interface_name_prefix = "veth";
  CHECK(text(cfg).find("--dport 80 ! -i veth+ -j KUBE-MARK-MASQ") != std::string::npos);
  cfg = in.cfg;
  cfg.masquerade_bit = 15;
  CHECK(text(cfg).find("--or-mark 0x00008000") != std::string::npos);
  cfg = in.cfg;
  cfg.localhost_nodeports = false;
  CHECK(text(cfg).find("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS") != std::string::npos);
  CHECK(text(cfg).find("KUBE-FIREWALL") == std::string::npos);
  cfg = in.cfg;
  cfg.node_port_addresses = {"10.0.0.0/24", "127.0.0.0/8"};
  CHECK(text(cfg).find("-d 10.0.0.10 -j KUBE-NODEPORTS") != std::string::npos);
  CHECK(text(cfg).find("-d 127.0.0.1 -j KUBE-NODEPORTS") != std::string::npos);
  CHECK(text(cfg).find("--dst-type LOCAL -j KUBE-NODEPORTS") == std::string::npos);
  cfg = in.cfg;
  cfg.tcp_be_liberal = true;
  CHECK(text(cfg).find("--ctstate INVALID -j DROP") == std::string::npos);
  cfg = in.cfg;
  cfg.random_fully = false;
  CHECK(text(cfg).find("--random-fully") == std::string::npos);
  cfg = in.cfg;
  cfg.nfacct = true;
  CHECK(text(cfg).find("-d 127.0.0.0/8 --dport 30080 -m nfacct --nfacct-name localhost_nps_accepted_pkts") != std::string::npos);
}

TEST_CASE("legacy IPv4 with leading zeros in Service and EndpointSlice reads as decimal, as ParseIPSloppy") {
  std::string path = (std::filesystem::temp_directory_path() / fmt::format("svcpath-zeros-{}.yaml", ::getpid())).string();
  std::ofstream(path) << "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\n"
                         "spec: {clusterIP: 172.30.0.041, externalIPs: [192.168.099.022], ports: [{port: 80}]}\n---\n"
                         "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                         "metadata: {name: s-1, namespace: ns, labels: {kubernetes.io/service-name: s}}\n"
                         "addressType: IPv4\nendpoints: [{addresses: [10.180.000.010]}]\nports: [{port: 80}]\n";
  k8s::Cluster c;
  k8s::load_cluster_file(path, c);
  std::filesystem::remove(path);
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].cluster_ips[0] == *Addr::parse("172.30.0.41"));  // decimal, not octal 33
  CHECK(c.services[0].external_ips[0] == *Addr::parse("192.168.99.22"));
  REQUIRE(c.slices.size() == 1);
  CHECK(c.slices[0].endpoints[0].addresses[0] == *Addr::parse("10.180.0.10"));
}

TEST_CASE("a healthCheckNodePort opens only for externalTrafficPolicy: Local, as kube-proxy's svcInfo gives it") {
  auto in = load("traffic-policy.yaml");
  auto ipt = [&] { return kube::iptables::restore_input(in.cluster, in.node, in.cfg, Family::V4); };
  auto ipvs_sets = [&] { return kube::ipvs::build(in.cluster, in.node, in.cfg, Family::V4).ipset_restore; };
  CHECK(ipt().find("--dport 32000 -j ACCEPT") != std::string::npos);  // demo/lb, eTP=Local
  CHECK(ipvs_sets().find("add KUBE-HEALTH-CHECK-NODE-PORT 32000") != std::string::npos);
  for (auto& s : in.cluster.services)
    if (s.health_check_node_port == 32000) s.etp_local = false;  // the same port left on a Cluster Service
  CHECK(ipt().find("--dport 32000 -j ACCEPT") == std::string::npos);
  CHECK(ipvs_sets().find("32000") == std::string::npos);
}

TEST_CASE("large-cluster mode (over 1000 endpoints) drops the per-endpoint comments") {
  k8s::Cluster c;
  k8s::Node node;
  node.name = "n";
  node.internal_ips.push_back(*Addr::parse("10.0.0.1"));
  k8s::Service s;
  s.ns = "x";
  s.name = "big";
  s.cluster_ips.push_back(*Addr::parse("10.96.0.9"));
  s.ports.push_back({"p", proto::TCP, 80, {}, 0});
  c.services.push_back(s);
  k8s::EndpointSlice sl;
  sl.ns = "x";
  sl.service_name = "big";
  sl.ports.push_back({"p", proto::TCP, uint16_t(80)});
  for (int i = 0; i < 1001; ++i) {
    k8s::Endpoint e;
    e.addresses.push_back(Addr::v4(0x0a010000u + uint32_t(i)));
    sl.endpoints.push_back(e);
  }
  c.slices.push_back(sl);
  std::string t = kube::iptables::restore_input(c, node, k8s::ProxyConfig{}, Family::V4);
  CHECK(t.find("\"x/big:p -> ") == std::string::npos);
  CHECK(t.find("-m comment --comment x/big:p -s") == std::string::npos);
  CHECK(t.find("--probability 0.0009990010 -j KUBE-SEP-") != std::string::npos);  // 1/1001
  CHECK(t.find("\"x/big:p cluster IP\"") != std::string::npos);                   // service rules keep theirs
}

namespace {

struct Flow {
  const char* packet;              // spec; the source decides the receiving interface
  std::set<std::string> dnat_to;   // every reachable destination; {"drop"}/{"reject"}/{"local"} otherwise
  bool masquerade;                 // the source is rewritten (in every outcome)
  std::set<std::string> nft = {};  // nftables mode's answer where it differs from iptables mode
};

// Each flow through iptables mode and through nftables mode (kube-proxy's two rule generators
// for the same Services must send the same packets to the same endpoints).
void check_flows(const std::string& file, const std::vector<Flow>& flows) {
  auto in = load(file);
  for (const char* mode : {"iptables", "nftables"}) {
    INFO(mode);
    bool nft_mode = std::string(mode) == "nftables";
    k8s::ProxyConfig cfg = in.cfg;
    cfg.mode = *k8s::parse_proxy_mode(mode);
    nf::Node node = kube::kube_node(in.cluster, in.node, cfg);
    auto v4 = kube::iptables::node_ruleset(in.cluster, in.node, cfg, Family::V4);
    auto v6 = kube::iptables::node_ruleset(in.cluster, in.node, cfg, Family::V6);
    nf::nft::Ruleset nft;
    if (nft_mode) {
      nf::nft::load_into(nft, kube::nftables::nft_input(in.cluster, in.node, cfg, Family::V4), "v4");
      nf::nft::load_into(nft, kube::nftables::nft_input(in.cluster, in.node, cfg, Family::V6), "v6");
    }
    for (auto& f : flows) {
      INFO(std::string(f.packet));
      nf::Datapath dp(node);
      nf::attach_iptables(dp, nft_mode ? nullptr : &v4, nft_mode ? nullptr : &v6, nullptr);
      if (nft_mode) nf::nft::attach(dp, nft);
      std::string why;
      auto ps = parse_packet_spec(f.packet, &why);
      REQUIRE_MESSAGE(ps.has_value(), why);
      nf::Injection inj;
      if (node.is_local(ps->pkt.t.src)) inj.local = true;
      else inj.iif = node.lookup(ps->pkt.t.src).oif;
      auto outs = dp.enumerate(ps->pkt, inj);
      std::set<std::string> got;
      double total = 0;
      for (auto& o : outs) {
        total += o.probability;
        if (o.kind == nf::OutcomeKind::Dropped) got.insert("drop");
        else if (o.kind == nf::OutcomeKind::Rejected) got.insert("reject");
        else if (o.kind == nf::OutcomeKind::Delivered && !o.dnat) got.insert("local");
        else got.insert(FiveTuple::endpoint(o.after.t.dst, o.after.t.dport, o.after.t.proto));
        if (o.kind == nf::OutcomeKind::Forwarded || o.kind == nf::OutcomeKind::Delivered) CHECK(o.snat == f.masquerade);
      }
      CHECK(got == (nft_mode && !f.nft.empty() ? f.nft : f.dnat_to));
      CHECK(total == doctest::Approx(1.0));
      // Uniform: every endpoint equally likely.
      if (f.dnat_to.size() > 1 && !f.dnat_to.count("drop"))
        for (auto& o : outs) CHECK(o.probability == doctest::Approx(1.0 / double(outs.size())).epsilon(1e-6));
    }
  }
}

}  // namespace

TEST_CASE("packet flows: basic cluster (node-a)") {
  check_flows("basic.yaml",
              {
                  // pod -> ClusterIP: any of three backends; no masquerade for pod sources (except hairpin).
                  {"tcp 10.244.2.9:40000 -> 172.30.0.41:80", {"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080"}, false},
                  // off-cluster source -> ClusterIP: masqueraded ("! -s 10.244.0.0/16").
                  {"tcp 192.168.5.5:40000 -> 172.30.0.41:80", {"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080"}, true},
                  // NodePort from outside: KUBE-EXT marks for masquerade.
                  {"tcp 192.168.5.5:40000 -> 10.0.0.10:30080", {"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080"}, true},
                  // the host itself -> ClusterIP: masqueraded (its source is not in the cluster CIDR).
                  {"tcp 10.0.0.10:40000 -> 172.30.0.41:80", {"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080"}, true},
                  // UDP and TCP of the same Service IP are separate service ports.
                  {"udp 10.244.2.9:5353 -> 172.30.0.10:53", {"10.244.1.3:53", "10.244.2.4:53"}, false},
                  {"tcp 10.244.2.9:5353 -> 172.30.0.10:9153", {"10.244.1.3:9153", "10.244.2.4:9153"}, false},
                  {"sctp 10.244.2.9:5000 -> 172.30.0.44:9999", {"10.244.1.40:9999"}, false},
                  {"tcp 10.244.2.9:40000 -> 172.30.0.43:8000", {"10.244.3.30:8000"}, false},
                  {"tcp 10.244.2.9:40000 -> 172.30.0.45:80",
                   {"10.244.2.50:80"},
                   false},  // legacy Endpoints, ready only
                            // no endpoints: REJECT, for the ClusterIP and the NodePort.
                  {"tcp 10.244.2.9:40000 -> 172.30.0.99:80", {"reject"}, false},
                  {"tcp 192.168.5.5:40000 -> 10.0.0.10:30099", {"reject"}, false},
                  // a port the Service does not have: not DNATed (it would be routed on, untouched); nftables
                  // mode's cluster-ips-check rejects it.
                  {"tcp 10.244.2.9:40000 -> 172.30.0.41:81", {"172.30.0.41:81"}, false, {"reject"}},
              });
}

TEST_CASE("packet flows: traffic policies and terminating endpoints (node-a)") {
  check_flows("traffic-policy.yaml",
              {
                  // eTP=Local LoadBalancer from an allowed range: only the local endpoint, source kept.
                  {"tcp 203.0.113.7:40000 -> 203.0.113.50:443", {"10.244.1.60:8443"}, false},
                  // ... from outside the source ranges: not DNATed, KUBE-PROXY-FIREWALL drops it.
                  {"tcp 198.51.100.7:40000 -> 203.0.113.50:443", {"drop"}, false},
                  // the NodePort of an eTP=Local service: local endpoint only, no masquerade.
                  {"tcp 198.51.100.7:40000 -> 10.0.0.10:31443", {"10.244.1.60:8443"}, false},
                  // A pod going to that LB IP is not in loadBalancerSourceRanges either: dropped (a real gotcha).
                  {"tcp 10.244.1.99:40000 -> 203.0.113.50:443", {"drop"}, false},
                  // Without source ranges, pod traffic to an eTP=Local LB IP is short-circuited to the
                  // cluster-wide chain (KUBE-EXT "pod traffic" rule), so it reaches the remote endpoint.
                  {"tcp 10.244.1.99:40000 -> 203.0.113.51:443", {"10.244.2.61:443"}, false},
                  // the ClusterIP of an eTP=Local service still uses every endpoint.
                  {"tcp 10.244.2.9:40000 -> 172.30.1.10:443", {"10.244.1.60:8443", "10.244.2.60:8443"}, false},
                  // eTP=Local with no local endpoint: external traffic is dropped in KUBE-EXTERNAL-SERVICES.
                  {"tcp 198.51.100.7:40000 -> 10.0.0.10:31444", {"drop"}, false},
                  {"tcp 198.51.100.7:40000 -> 203.0.113.51:443", {"drop"}, false},
                  // iTP=Local: only the local endpoint; without one, DROP.
                  {"tcp 10.244.2.9:40000 -> 172.30.1.12:80", {"10.244.1.62:80"}, false},
                  {"tcp 10.244.2.9:40000 -> 172.30.1.13:80", {"drop"}, false},
                  // externalIPs (eTP=Cluster): masqueraded.
                  {"tcp 198.51.100.7:40000 -> 192.0.2.10:80", {"10.244.3.64:80"}, true},
                  // all endpoints terminating: the serving one still takes traffic; ready beats terminating.
                  {"tcp 10.244.2.9:40000 -> 172.30.1.15:80", {"10.244.2.65:80"}, false},
                  {"tcp 10.244.2.9:40000 -> 172.30.1.16:80", {"10.244.2.66:80"}, false},
              });
}

TEST_CASE("packet flows: dual-stack, each family through its own table") {
  check_flows(
      "dual-stack.yaml",
      {
          {"tcp 10.244.2.9:40000 -> 172.30.2.10:80", {"10.244.1.70:8080", "10.244.2.70:8080"}, false},
          {"tcp [fd00:244:0:2::9]:40000 -> [fd00:30::a]:80", {"[fd00:244:0:1::70]:8080", "[fd00:244:0:2::70]:8080"}, false},
          {"tcp [fd00:99::1]:40000 -> [fd00::10]:30600", {"[fd00:244:0:1::70]:8080", "[fd00:244:0:2::70]:8080"}, true},
      });
}

TEST_CASE("session affinity: the second connection from a client sticks to the first backend") {
  auto in = load("basic.yaml");
  nf::Node node = kube::kube_node(in.cluster, in.node, in.cfg);
  auto v4 = kube::iptables::node_ruleset(in.cluster, in.node, in.cfg, Family::V4);
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    nf::Datapath dp(node, seed);
    nf::attach_iptables(dp, &v4, nullptr, nullptr);
    nf::Injection inj{false, node.find("eth0")};
    NullSink s;
    auto first = dp.process(pkt("tcp 10.244.2.9:40000 -> 172.30.0.42:80 t=1"), inj, s);
    auto second = dp.process(pkt("tcp 10.244.2.9:40001 -> 172.30.0.42:80 t=2"), inj, s);
    CHECK(first.after.t.dst == second.after.t.dst);
    // Past the 600 s timeout the choice is free again: enumerate both.
    auto later = dp.enumerate(pkt("tcp 10.244.2.9:40002 -> 172.30.0.42:80 t=700"), inj);
    CHECK(later.size() == 2);
  }
}

TEST_CASE("trace --cluster: the CLI path") {
  cli::TraceOptions o;
  o.cluster.files = {ex("nodes.yaml"), ex("basic.yaml")};
  o.cluster.node = "node-a";
  o.cluster.proxy_config = ex("proxy-config.yaml");
  o.packets = {"tcp 192.168.5.5:40000 -> 10.0.0.10:30080", "tcp/SA reply"};
  std::ostringstream out;
  CHECK(cli::run_trace(o, out) == 0);
  golden_text("trace-nodeport.txt", out.str());
  cli::TraceOptions bad = o;
  bad.cluster.node = "node-z";
  CHECK_LOAD_ERROR(cli::run_trace(bad, out), 0, "no Node 'node-z' in the input (nodes: node-a, node-b, node-c)");
}

namespace {
// basic.yaml's node-a in the given modes, the packets traced side by side.
cli::TraceOptions side_by_side(const std::string& modes, std::vector<std::string> packets, bool independent) {
  cli::TraceOptions o;
  o.cluster.files = {ex("nodes.yaml"), ex("basic.yaml")};
  o.cluster.node = "node-a";
  o.cluster.proxy_config = ex("proxy-config.yaml");
  o.cluster.mode = modes;
  o.packets = std::move(packets);
  o.independent = independent;
  return o;
}
std::string traced(const cli::TraceOptions& o) {
  std::ostringstream out;
  CHECK(cli::run_trace(o, out) == 0);
  return out.str();
}
}  // namespace

// --independent: each mode samples its own backend, as before the common choice.
TEST_CASE("golden: the same packets through iptables and IPVS mode, side by side") {
  golden_text("trace-side-by-side.txt",
              traced(side_by_side(
                  "iptables,ipvs",
                  {"tcp 10.244.1.9:40000 -> 172.30.0.41:80", "tcp/SA reply", "tcp 10.0.0.10:45000 -> 172.30.0.41:80"}, true)));
}

TEST_CASE("golden: the same packets through all three modes, side by side") {
  golden_text("trace-three-modes.txt",
              traced(side_by_side(
                  "iptables,ipvs,nftables",
                  {"tcp 10.244.1.9:40000 -> 172.30.0.41:80", "tcp/SA reply", "tcp 10.244.1.9:40001 -> 172.30.0.99:80"}, true)));
}

TEST_CASE("golden: side by side, every mode takes the backend IPVS's round robin fixed, and says so") {
  golden_text("trace-three-modes-common.txt",
              traced(side_by_side(
                  "iptables,ipvs,nftables",
                  {"tcp 10.244.1.9:40000 -> 172.30.0.41:80", "tcp/SA reply", "tcp 10.244.1.9:40001 -> 172.30.0.99:80"}, false)));
}

namespace {
// Each mode's DNAT destination of packet n (1-based) in trace --format json output.
std::map<std::string, std::string> backends(const std::string& json_lines, size_t n) {
  std::istringstream in(json_lines);
  std::string line;
  for (size_t k = 0; k < n; ++k) std::getline(in, line);
  std::map<std::string, std::string> m;
  nlohmann::json j = nlohmann::json::parse(line);
  for (auto& [mode, outs] : j["modes"].items()) m[mode] = outs[0]["dst"].get<std::string>();
  return m;
}
}  // namespace

TEST_CASE("common choice: a mode that cannot pick the backend samples on its own, and the line says so") {
  sim::ClusterOptions co;
  co.files = {ex("nodes.yaml"), ex("basic.yaml")};
  co.node = "node-a";
  co.proxy_config = ex("proxy-config.yaml");
  auto ci = sim::load_cluster(co);
  // The nftables lane sees web without its endpoint 10.244.1.5 (as in the middle of a rollout).
  auto fewer = ci;
  Addr gone = *Addr::parse("10.244.1.5");
  for (auto& sl : fewer.cluster.slices)
    std::erase_if(sl.endpoints, [&](const k8s::Endpoint& e) { return !e.addresses.empty() && e.addresses[0] == gone; });
  Packet p = pkt("tcp 10.244.1.9:40000 -> 172.30.0.41:80");
  size_t alone = 0, shared = 0;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    CAPTURE(seed);
    auto lanes = sim::cluster_lanes(ci, {"iptables"}, sim::NodeOptions{}, seed);
    lanes.push_back(std::move(sim::cluster_lanes(fewer, {"nftables"}, sim::NodeOptions{}, seed)[0]));
    std::vector<nf::Injection> inj;
    for (auto& l : lanes) inj.push_back({false, l->node.find("cni0")});
    sim::CommonChoice cc(lanes, p, inj);
    auto a = cc.run(0), b = cc.run(1);
    std::string ab = FiveTuple::endpoint(a.after.t.dst, a.after.t.dport, proto::TCP),
                bb = FiveTuple::endpoint(b.after.t.dst, b.after.t.dport, proto::TCP);
    if (a.after.t.dst == gone) {
      ++alone;
      CHECK(bb != ab);
      CHECK(cc.summary() ==
            "backend " + ab + " (sampled in iptables) in iptables; not a choice of nftables (" + bb + "), sampled on its own");
    } else {
      ++shared;
      CHECK(bb == ab);
      CHECK(cc.summary().starts_with("same backend " + ab + " in every mode (sampled in iptables)"));
    }
    // State carried forward: the flow's next packet in each lane follows its own entry.
    VectorSink s0, s1;
    CHECK(lanes[0]->dp->process(p, inj[0], s0).after.t.dst == a.after.t.dst);
    CHECK(lanes[1]->dp->process(p, inj[1], s1).after.t.dst == b.after.t.dst);
  }
  CHECK(alone > 0);
  CHECK(shared > 0);
}

TEST_CASE("side by side: the modes share the backend choice by seed, and --independent samples each on its own") {
  // Without IPVS no mode's choice is fixed: iptables samples, nftables takes the same branch. The
  // second packet is the SYN's retransmission.
  auto o = side_by_side("iptables,nftables", {"tcp 10.244.1.9:40000 -> 172.30.0.41:80", "tcp 10.244.1.9:40000 -> 172.30.0.41:80"},
                        false);
  o.format = "json";
  std::set<std::string> seen;
  bool independent_differs = false;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    o.seed = seed;
    o.independent = false;
    std::string out = traced(o);
    auto b = backends(out, 1);
    CHECK(b["iptables"] == b["nftables"]);
    seen.insert(b["iptables"]);
    // The flow's next packet follows the entry the common branch made, in both modes.
    CHECK(backends(out, 2) == b);
    CHECK(out.find("\"backend_choice\":\"same backend " + b["iptables"] + " in every mode (sampled in iptables)") !=
          std::string::npos);
    o.independent = true;
    std::string ind = traced(o);
    auto bi = backends(ind, 1);
    CHECK(bi["iptables"] == b["iptables"]);  // the first mode samples as it always did
    independent_differs |= bi["iptables"] != bi["nftables"];
    CHECK(ind.find("backend_choice") == std::string::npos);
  }
  CHECK(seen.size() == 3);  // the common choice still spreads over the Service's endpoints
  CHECK(independent_differs);
}

TEST_CASE("fuzz regression: a scalar where a mapping belongs is a file:line error, not a crash") {
  // Found by tests/fuzz/fuzz_manifest: a Node whose spec is a scalar made yaml-cpp throw
  // BadSubscript out of the loader.
  k8s::Cluster c;
  CHECK_LOAD_ERROR(k8s::load_cluster_file(test::source_dir() + "/tests/data/fuzz/manifest-scalar-spec.yaml", c), 4,
                   "unexpected YAML shape: operator[] call on a scalar (key: \"podCIDRs\")");
}

TEST_CASE("gen-cluster YAML loads back into the cluster it was written from") {
  k8s::SynthSpec spec;
  spec.services = 40;
  spec.endpoints = 3;
  spec.nodes = 4;
  spec.node_ports = true;
  auto want = k8s::synthetic_cluster(spec);
  auto path = std::filesystem::temp_directory_path() / ("svcpath-gen-cluster-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream f(path);
    cli::write_cluster_yaml(want, f);
  }
  k8s::Cluster got;
  k8s::load_cluster_file(path.string(), got);
  std::filesystem::remove(path);
  k8s::check_cluster(got);
  REQUIRE(got.services.size() == 40);
  REQUIRE(got.slices.size() == 40);
  REQUIRE(got.nodes.size() == 4);
  // The same objects make the same rules, byte for byte, on every node.
  for (size_t n = 0; n < 4; ++n)
    CHECK(kube::iptables::restore_input(got, got.nodes[n], k8s::ProxyConfig{}, Family::V4) ==
          kube::iptables::restore_input(want, want.nodes[n], k8s::ProxyConfig{}, Family::V4));
}

TEST_CASE("the destination-run index walks exactly as the linear walk: outcomes, counters, traces") {
  sim::ClusterInput ci = test::synthetic_input(300, 3, 3);
  auto lanes_fast = sim::cluster_lanes(ci, {"iptables"}, sim::NodeOptions{}, 5);
  auto lanes_slow = sim::cluster_lanes(ci, {"iptables"}, sim::NodeOptions{}, 5);
  lanes_slow[0]->xt->linear_walk = true;
  // KUBE-SERVICES is one long run of -d rules.
  const nf::Table* nat = lanes_fast[0]->v4->table(nf::TableId::Nat);
  const nf::Chain& svc = nat->chains[size_t(nat->find("KUBE-SERVICES"))];
  REQUIRE_FALSE(svc.runs.empty());
  CHECK(svc.runs[0].end - svc.runs[0].begin >= 300);
  Rng rng(11);
  for (int i = 0; i < 400; ++i) {
    uint32_t s = rng.below(300 + 20);  // some addresses no Service has
    Addr dst = k8s::synthetic_cluster_ip(s);
    std::string spec_text = fmt::format("{} 10.64.0.{}:{} -> {}:{} in=cni0", rng.below(2) ? "tcp" : "udp", 2 + rng.below(200),
                                        1024 + i, dst.str(), rng.below(4) ? 80 : 81);
    Counters a0 = lanes_fast[0]->dp->counters();
    auto fast = test::run(*lanes_fast[0]->dp, spec_text);
    Counters a = lanes_fast[0]->dp->counters() - a0;
    Counters b0 = lanes_slow[0]->dp->counters();
    auto slow = test::run(*lanes_slow[0]->dp, spec_text);
    Counters b = lanes_slow[0]->dp->counters() - b0;
    CHECK_MESSAGE(fast.kind == slow.kind, spec_text);
    CHECK(fast.after.t == slow.after.t);
    CHECK_MESSAGE(a.rules_evaluated == b.rules_evaluated, spec_text);
    CHECK(a.matches_evaluated == b.matches_evaluated);
    CHECK(test::trace_ids(fast) == test::trace_ids(slow));
  }
}
