// Golden traces: the example packets through the example rulesets, compared line by line with
// reviewed expected output in tests/golden/. SVCPATH_UPDATE_GOLDEN=1 rewrites them (review the diff!).
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "cli/commands.hpp"
#include "helpers.hpp"

using namespace svcpath;

namespace {

void golden(const std::string& name, cli::TraceOptions o) {
  std::string src = test::source_dir();
  auto fix = [&](std::string& p) {
    if (!p.empty() && p[0] != '/') p = src + "/" + p;
  };
  fix(o.rules);
  fix(o.ipsets);
  fix(o.packets_file);
  fix(o.node.node_config);
  std::ostringstream out;
  CHECK(cli::run_trace(o, out) == 0);
  test::check_golden(src + "/tests/golden/" + name, out.str());
}

cli::TraceOptions kube() {
  cli::TraceOptions o;
  o.rules = "examples/rulesets/kube-clusterip.rules";
  o.node.node_config = "examples/nodes/kube-node.yaml";
  return o;
}

}  // namespace

TEST_CASE("golden: kube-proxy ClusterIP / NodePort walk-through") {
  auto o = kube();
  o.packets_file = "examples/packets/kube-clusterip.txt";
  golden("kube-clusterip.txt", o);
}

TEST_CASE("golden: every outcome of a ClusterIP connection, with probabilities") {
  auto o = kube();
  o.enumerate = true;
  o.packets = {"tcp 10.244.1.5:40000 -> 172.30.0.41:80 in=veth-web"};
  golden("kube-enumerate.txt", o);
}

TEST_CASE("golden: JSON for a NodePort connection and its reply") {
  auto o = kube();
  o.format = "json";
  o.packets = {"tcp 192.168.1.50:51000 -> 10.0.0.10:30080", "tcp/SA reply"};
  golden("kube-nodeport.json", o);
}

TEST_CASE("golden: host firewall") {
  cli::TraceOptions o;
  o.rules = "examples/rulesets/firewall.rules";
  o.node.local_ips = {"10.0.0.10/24"};
  o.packets_file = "examples/packets/firewall.txt";
  golden("firewall.txt", o);
}

TEST_CASE("golden: NAT gateway") {
  cli::TraceOptions o;
  o.rules = "examples/rulesets/nat-gateway.rules";
  o.node.node_config = "examples/nodes/nat-gateway.yaml";
  o.packets_file = "examples/packets/nat-gateway.txt";
  o.verbose = true;
  golden("nat-gateway.txt", o);
}

TEST_CASE("golden: the demo's three packets in both kube-proxy modes, with the NetworkPolicy story") {
  cli::TraceOptions o;
  o.cluster.files = {test::source_dir() + "/examples/networkpolicy/cluster.yaml"};
  o.cluster.node = "node-a";
  o.cluster.mode = "iptables,ipvs";
  o.packets = {"tcp 10.244.1.10:40000 -> 10.96.0.54:5432 in=cni0", "tcp 10.244.1.30:40001 -> 10.96.0.54:5432 in=cni0",
               "tcp 203.0.113.7:40002 -> 10.0.0.10:30080 in=eth0"};
  golden("demo.txt", o);
}
