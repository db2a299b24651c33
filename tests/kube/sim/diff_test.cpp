// svcpath diff: the documented kube-proxy migration differences each appear as their own class,
// only where they apply, and nothing else changes between modes on the example clusters.
#include <filesystem>
#include <fstream>
#include <map>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include "helpers.hpp"
#include "kube/sim/diff.hpp"
#include "kube/sim/lanes.hpp"

using namespace svcpath;
using namespace svcpath::sim;

namespace {

struct Sides {
  ClusterInput ci;
  std::vector<std::unique_ptr<Lane>> lanes;
  std::vector<Flow> flows;
};

Sides sides(const std::vector<std::string>& files, const std::string& node, const std::vector<std::string>& modes,
            const std::string& proxy_config = "") {
  ClusterOptions co;
  for (const auto& f : files) co.files.push_back(test::source_dir() + "/examples/clusters/" + f);
  co.node = node;
  co.proxy_config = proxy_config;
  Sides s{load_cluster(co), {}, {}};
  s.lanes = cluster_lanes(s.ci, modes, NodeOptions{}, 1);
  s.flows = cluster_flows(s.ci.cluster, s.ci.node, s.lanes[0]->node);
  return s;
}

// class key -> number of flows
std::map<std::string, size_t> classes(const DiffResult& r) {
  std::map<std::string, size_t> m;
  for (const auto& c : r.classes) m[c.key] = c.flows.size();
  return m;
}

const DiffClass* find(const DiffResult& r, const std::string& key) {
  for (const auto& c : r.classes)
    if (c.key == key) return &c;
  return nullptr;
}

}  // namespace

TEST_CASE("iptables to nftables: exactly the documented migration differences") {
  auto s = sides({"basic.yaml", "nodes.yaml"}, "node-a", {"iptables", "nftables"});
  auto r = diff_sides({s.lanes[0].get(), "iptables", "iptables"}, {s.lanes[1].get(), "nftables", "nftables"}, s.flows);
  CHECK(r.flows == s.flows.size());
  // web's NodePort on cni0's address (3 clients) and empty's (3): primary address only.
  CHECK(classes(r) ==
        std::map<std::string, size_t>{
            {"nodeport-secondary", 6}, {"nodeport-loopback", 2}, {"clusterip-undeclared-port", 8}, {"conntrack-invalid", 2}});
  const DiffClass* lo = find(r, "nodeport-loopback");
  REQUIRE(lo);
  CHECK(lo->sentence == "NodePort on 127.0.0.1 is no longer served: nftables mode does not support NodePorts on localhost");
  CHECK(lo->setting.empty());  // nothing in nftables mode restores it
  CHECK(lo->flows[0].a.verdict == "answered");
  CHECK(lo->flows[0].b.verdict == "delivered to the node");
  const DiffClass* sec = find(r, "nodeport-secondary");
  REQUIRE(sec);
  CHECK(sec->setting.find("--nodeport-addresses 0.0.0.0/0") != std::string::npos);
  const DiffClass* inv = find(r, "conntrack-invalid");
  REQUIRE(inv);
  CHECK(inv->setting.find("--conntrack-tcp-be-liberal") != std::string::npos);
  CHECK(inv->flows[0].a.verdict == "dropped");
  CHECK(inv->flows[0].b.verdict == "forwarded without DNAT");
  const DiffClass* und = find(r, "clusterip-undeclared-port");
  REQUIRE(und);
  CHECK(und->flows[0].b.verdict == "rejected (icmp-port-unreachable)");
  CHECK(!inv->example_a.empty());
  CHECK(!inv->example_b.empty());
}

TEST_CASE("ipvs to nftables: only the NodePort addresses change on the bundled cluster") {
  auto s = sides({"basic.yaml", "nodes.yaml"}, "node-a", {"ipvs", "nftables"});
  auto r = diff_sides({s.lanes[0].get(), "ipvs", "ipvs"}, {s.lanes[1].get(), "nftables", "nftables"}, s.flows);
  CHECK(classes(r) == std::map<std::string, size_t>{{"nodeport-secondary", 6}});
}

TEST_CASE("the same mode on both sides changes nothing") {
  auto s = sides({"basic.yaml", "nodes.yaml"}, "node-a", {"nftables", "nftables"});
  auto r = diff_sides({s.lanes[0].get(), "A", "nftables"}, {s.lanes[1].get(), "B", "nftables"}, s.flows);
  CHECK(r.classes.empty());
  CHECK(r.changed() == 0);
}

TEST_CASE("an IPVS lane's backends are every available real server, not the one rr picks next") {
  auto s = sides({"basic.yaml", "nodes.yaml"}, "node-a", {"ipvs", "iptables"});
  for (const Flow& f : s.flows) {
    if (f.service != "demo/web:http" || f.reach != Reach::ClusterIP || f.from != From::LocalPod) continue;
    uint16_t pa = 20000, pb = 20000;
    auto ipvs = behaviour(flow_outcomes(*s.lanes[0], f, pa));
    auto ipt = behaviour(flow_outcomes(*s.lanes[1], f, pb));
    CHECK(pa == 20006);  // two connections per real server sampled
    CHECK(pb == 20000);  // iptables forks: enumeration alone
    CHECK(ipvs.backends.size() == 3);
    CHECK(ipvs == ipt);
    return;
  }
  FAIL("no ClusterIP flow from a local pod to demo/web");
}

TEST_CASE("flows cover every address a Service answers on, from every kind of client") {
  auto s = sides({"basic.yaml", "nodes.yaml"}, "node-a", {"iptables"});
  std::map<Reach, size_t> by;
  for (const Flow& f : s.flows) ++by[f.reach];
  CHECK(by[Reach::ClusterIP] > 0);
  CHECK(by[Reach::NodePort] == 6);           // web and empty, from outside, a local pod and the host
  CHECK(by[Reach::NodePortSecondary] == 6);  // the same on cni0's address
  CHECK(by[Reach::NodePortLoopback] == 2);
  CHECK(by[Reach::PodIP] == 2);  // the late FIN/ACK, IPv4 and IPv6
  for (const Flow& f : s.flows) {
    CHECK((f.local || !f.in.empty()));
    if (f.from == From::Host) CHECK(f.local);
  }
}

TEST_CASE("nftables mode 1.33 to 1.35: the node's own connections to an eTP=Local external address") {
  ClusterOptions co;
  for (const char* f : {"traffic-policy.yaml", "nodes.yaml"}) co.files.push_back(test::source_dir() + "/examples/clusters/" + f);
  co.node = "node-a";
  co.kube_proxy_version = "1.33";
  auto old_ci = load_cluster(co);
  co.kube_proxy_version = "";
  auto new_ci = load_cluster(co);
  CHECK(old_ci.cfg.release == 33);
  CHECK(new_ci.cfg.release == k8s::ProxyConfig::kCurrentRelease);
  auto a = cluster_lanes(old_ci, {"nftables"}, NodeOptions{}, 1);
  auto b = cluster_lanes(new_ci, {"nftables"}, NodeOptions{}, 1);
  auto flows = cluster_flows(new_ci.cluster, new_ci.node, b[0]->node);
  auto r = diff_sides({a[0].get(), "1.33", "nftables", 33}, {b[0].get(), "1.35", "nftables", 35}, flows);
  // lb-elsewhere has its only endpoint on node-b: before 1.34 filter-output's endpoint check ran
  // before DNAT and dropped the host's connection to the LoadBalancer IP (kubernetes#131765).
  CHECK(classes(r) == std::map<std::string, size_t>{{"nftables-local-to-external", 1}});
  const DiffClass* c = find(r, "nftables-local-to-external");
  REQUIRE(c);
  CHECK(c->flows[0].flow.service == "demo/lb-elsewhere:https");
  CHECK(c->flows[0].a.verdict == "dropped");
  CHECK(c->flows[0].b.verdict == "answered");
}

TEST_CASE("with a ServiceCIDR, an unallocated ClusterIP is probed: nftables mode drops it, iptables mode routes it on") {
  std::string path = (std::filesystem::temp_directory_path() / fmt::format("svcpath-scidr-{}.yaml", ::getpid())).string();
  std::ofstream(path) << "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\n"
                         "spec: {cidrs: [172.30.0.0/16]}\n";
  ClusterOptions co;
  for (const char* f : {"basic.yaml", "nodes.yaml"}) co.files.push_back(test::source_dir() + "/examples/clusters/" + f);
  co.files.push_back(path);
  co.node = "node-a";
  auto ci = load_cluster(co);
  std::filesystem::remove(path);
  REQUIRE(ci.cluster.service_cidrs.size() == 1);
  auto lanes = cluster_lanes(ci, {"iptables", "nftables"}, NodeOptions{}, 1);
  auto flows = cluster_flows(ci.cluster, ci.node, lanes[0]->node);
  auto r = diff_sides({lanes[0].get(), "iptables", "iptables"}, {lanes[1].get(), "nftables", "nftables"}, flows);
  const DiffClass* c = find(r, "clusterip-unallocated");
  REQUIRE(c);
  REQUIRE(c->flows.size() == 1);
  CHECK(c->flows[0].flow.pkt.t.dst == *Addr::parse("172.30.255.254"));
  CHECK(c->flows[0].a.verdict == "forwarded without DNAT");
  CHECK(c->flows[0].b.verdict == "dropped");
  CHECK(classes(r).size() == 5);  // the four documented classes of this cluster, and this one
}

TEST_CASE("dual-stack flows: every flow's source is of its destination's family") {
  auto s = sides({"dual-stack.yaml", "nodes.yaml"}, "node-a", {"iptables"});
  size_t v6_external = 0;
  for (const Flow& f : s.flows) {
    INFO(f.pkt.t.str());
    CHECK(f.pkt.t.src.fam == f.pkt.t.dst.fam);
    if (f.pkt.t.dst.fam == Family::V6 && f.from == From::External) ++v6_external;
  }
  CHECK(v6_external > 0);
}
