// NetworkPolicy: the API's semantics against a hand-written allow/deny table covering every
// selector and port form, the compiled filter rules against the same table in both kube-proxy
// modes, and the ordering facts (where DNAT happens relative to the policy check) in traces.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "kube/sim/lanes.hpp"
#include "helpers.hpp"
#include "kube/netpol/netpol.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

sim::ClusterInput load(const std::string& file, const std::string& node) {
  sim::ClusterOptions o;
  o.files = {source_dir() + "/" + file};
  o.node = node;
  return sim::load_cluster(o);
}

nf::netpol::Peer peer(const k8s::Cluster& c, const std::string& ip) {
  Addr a = *Addr::parse(ip);
  return {a, nf::netpol::pod_by_ip(c, a)};
}

struct Row {
  const char* src;
  const char* dst;
  const char* proto;
  uint16_t port;
  bool allowed;
  const char* why;
};

// 10.1.1.x are pods (tests/data/netpol/forms.yaml), 192.0.2.x is outside the cluster.
const Row kForms[] = {
    {"10.1.1.11", "10.1.1.10", "tcp", 8080, true, "named port http, podSelector In"},
    {"10.1.1.11", "10.1.1.10", "tcp", 8081, false, "named port resolves to 8080 only"},
    {"10.1.1.21", "10.1.1.10", "tcp", 8080, false, "podSelector alone means the policy's namespace"},
    {"10.1.1.12", "10.1.1.10", "tcp", 8080, false, "tier In [frontend] needs the label"},
    {"10.1.1.20", "10.1.1.10", "udp", 53, true, "namespaceSelector matchLabels, UDP"},
    {"10.1.1.20", "10.1.1.10", "tcp", 53, false, "the UDP rule does not open TCP"},
    {"10.1.1.12", "10.1.1.10", "sctp", 9000, true, "namespace Exists and pod DoesNotExist, both"},
    {"10.1.1.20", "10.1.1.10", "sctp", 9000, true, "another namespace with env, pod without tier"},
    {"10.1.1.30", "10.1.1.10", "sctp", 9000, false, "namespace without env"},
    {"10.1.1.11", "10.1.1.10", "sctp", 9000, false, "pod with tier"},
    {"192.0.2.5", "10.1.1.10", "tcp", 8050, true, "ipBlock, port inside port..endPort"},
    {"192.0.2.99", "10.1.1.10", "tcp", 8050, false, "ipBlock except"},
    {"192.0.2.5", "10.1.1.10", "tcp", 8101, false, "past endPort"},
    {"10.1.1.11", "10.1.1.50", "tcp", 80, false, "ingress: [] denies everything"},
    {"10.1.1.11", "10.1.1.40", "tcp", 80, true, "a pod no policy selects is unrestricted"},
    {"10.1.1.60", "10.1.1.11", "tcp", 80, true, "egress to app NotIn [api, deny]"},
    {"10.1.1.60", "10.1.1.10", "tcp", 8080, false, "egress NotIn excludes api"},
    {"10.1.1.60", "10.1.1.20", "tcp", 80, false, "egress podSelector is the policy's namespace only"},
    {"10.1.1.11", "10.1.1.60", "tcp", 80, false, "egress rules present: policyTypes defaults to Ingress+Egress"},
    {"10.1.1.11", "10.1.1.70", "tcp", 80, true, "union of two policies: the first"},
    {"10.1.1.21", "10.1.1.70", "tcp", 80, true, "union of two policies: the second (namespaceSelector {})"},
    {"10.1.1.30", "10.1.1.70", "tcp", 80, false, "neither policy"},
    {"10.1.1.60", "192.0.2.5", "tcp", 443, false, "egress to outside: no rule"},
    {"10.1.1.40", "192.0.2.5", "tcp", 443, true, "unrestricted pod to outside"},
};

}  // namespace

TEST_CASE("NetworkPolicy semantics: every selector and port form against the allow/deny table") {
  auto ci = load("tests/data/netpol/forms.yaml", "n1");
  REQUIRE(ci.cluster.policies.size() == 5);
  for (auto& r : kForms) {
    uint8_t pr = std::string(r.proto) == "udp" ? proto::UDP : std::string(r.proto) == "sctp" ? proto::SCTP : proto::TCP;
    bool got = nf::netpol::connection_allowed(ci.cluster, peer(ci.cluster, r.src), peer(ci.cluster, r.dst), pr, r.port);
    CHECK_MESSAGE(got == r.allowed, fmt::format("{} -> {} {}/{}: {}", r.src, r.dst, r.proto, r.port, r.why));
  }
}

TEST_CASE("compiled NetworkPolicy rules enforce the same table in both kube-proxy modes") {
  auto ci = load("tests/data/netpol/forms.yaml", "n1");
  auto lanes = sim::cluster_lanes(ci, {"iptables", "ipvs"}, sim::NodeOptions{}, 1);
  for (auto& lane : lanes) {
    for (auto& r : kForms) {
      bool external = std::string(r.src).starts_with("192.");
      std::string spec = fmt::format("{} {}:40000 -> {}:{} in={}", r.proto, r.src, r.dst, r.port, external ? "eth0" : "cni0");
      auto o = run(*lane->dp, spec);
      bool policy_drop = o.kind == nf::OutcomeKind::Dropped && o.where.starts_with("filter:NP-");
      CHECK_MESSAGE(policy_drop == !r.allowed,
                    fmt::format("{}: {}: {} (got {} {})", lane->name, spec, r.why, nf::outcome_name(o.kind), o.where));
      if (!r.allowed) continue;
      CHECK_MESSAGE(o.kind == nf::OutcomeKind::Forwarded, lane->name, ": ", spec);
    }
  }
}

TEST_CASE("a denied connection names the policy state, an allowed one the rule that allowed it") {
  auto ci = load("tests/data/netpol/forms.yaml", "n1");
  auto lanes = sim::cluster_lanes(ci, {"iptables"}, sim::NodeOptions{}, 1);
  auto o = run(*lanes[0]->dp, "tcp 10.1.1.11:1 -> 10.1.1.10:8080 in=cni0");
  auto s = nf::netpol::story(o.trace, o.before);
  CHECK(s.allowed);
  CHECK(s.by == "a/api-policy ingress[0]");
  o = run(*lanes[0]->dp, "tcp 10.1.1.30:1 -> 10.1.1.70:80 in=cni0");
  s = nf::netpol::story(o.trace, o.before);
  CHECK_FALSE(s.allowed);
  CHECK(s.by == "a/multi-1 ingress: isolated by a/multi-a, a/multi-b; no rule allows");
  CHECK(s.hook == Hook::Forward);
}

TEST_CASE("where DNAT happens relative to the policy check, per mode (examples/networkpolicy)") {
  auto ci = load("examples/networkpolicy/cluster.yaml", "node-a");
  auto lanes = sim::cluster_lanes(ci, {"iptables", "ipvs"}, sim::NodeOptions{}, 1);
  auto& ipt = *lanes[0]->dp;
  auto& ipvs = *lanes[1]->dp;

  SUBCASE("iptables mode: nat PREROUTING rewrites first, FORWARD's policy chain sees the pod") {
    auto o = run(ipt, "tcp 10.244.1.10:40000 -> 10.96.0.54:5432 in=cni0");  // web-1 -> db ClusterIP
    auto s = nf::netpol::story(o.trace, o.before);
    REQUIRE(s.checked);
    CHECK(s.allowed);
    CHECK(s.by == "shop/db-from-web ingress[0]");
    CHECK(s.hook == Hook::Forward);
    CHECK(*s.dnat_hook == Hook::PreRouting);
    CHECK(s.dnat_by == "nat");
    CHECK(s.dnat_before);
    CHECK(s.seen.str() == "tcp 10.244.1.10:40000 -> 10.244.1.20:5432");
  }
  SUBCASE("iptables mode: host to ClusterIP is DNATed in nat OUTPUT, checked in filter OUTPUT") {
    auto o = run(ipt, "tcp 10.0.0.10:40000 -> 10.96.0.54:5432 local");
    auto s = nf::netpol::story(o.trace, o.before);
    CHECK_FALSE(s.allowed);
    CHECK(s.hook == Hook::LocalOut);
    CHECK(*s.dnat_hook == Hook::LocalOut);
    CHECK(s.seen.dst.str() == "10.244.1.20");
  }
  SUBCASE("IPVS mode: filter INPUT sees the ClusterIP, IPVS rewrites at LOCAL_IN, OUTPUT sees the pod") {
    auto o = run(ipvs, "tcp 10.244.1.30:40000 -> 10.96.0.54:5432 in=cni0");  // debug-1 -> db ClusterIP
    auto s = nf::netpol::story(o.trace, o.before);
    CHECK_FALSE(s.allowed);
    CHECK(s.hook == Hook::LocalOut);
    CHECK(*s.dnat_hook == Hook::LocalIn);
    CHECK(s.dnat_by == "ipvs");
    CHECK(s.seen.str() == "tcp 10.244.1.30:40000 -> 10.244.1.20:5432");
    bool forward = false;
    for (auto& e : o.trace) forward |= e.hook == Hook::Forward;
    CHECK_FALSE(forward);  // FORWARD is never traversed
  }
  SUBCASE("an ipBlock naming the ClusterIP never matches once the policy sees the pod") {
    auto o = run(ipt, "tcp 10.244.1.30:40000 -> 10.96.0.80:80 in=cni0");
    auto s = nf::netpol::story(o.trace, o.before);
    CHECK_FALSE(s.allowed);
    CHECK(s.by.starts_with("tools/debug-1 egress"));
    o = run(ipvs, "tcp 10.244.1.30:40001 -> 10.96.0.80:80 in=cni0");
    s = nf::netpol::story(o.trace, o.before);
    CHECK_FALSE(s.allowed);
    CHECK(s.hook == Hook::LocalOut);
  }
  SUBCASE("IPVS mode with plain placement: INPUT checks egress against the ClusterIP, so it matches") {
    auto lanes2 = sim::cluster_lanes(ci, {"ipvs"}, sim::NodeOptions{}, 1, "plain");
    auto o = run(*lanes2[0]->dp, "tcp 10.244.1.30:40000 -> 10.96.0.80:80 in=cni0");
    auto s = nf::netpol::story(o.trace, o.before);
    CHECK(s.allowed);
    CHECK(s.by == "tools/debug-to-web-clusterip egress[0]");
    CHECK(s.hook == Hook::LocalIn);
    CHECK(s.seen.dst.str() == "10.96.0.80");
    CHECK_FALSE(s.dnat_before);
  }
}
