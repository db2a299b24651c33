// IPVS on the hooks and kube-proxy's IPVS mode: where DNAT happens relative to the filter hooks,
// connection reuse and accounting, persistence, ipvsadm round trips, and the generated state.
#include <fstream>
#include <map>
#include <sstream>

#include <doctest/doctest.h>

#include "cli/commands.hpp"
#include "helpers.hpp"
#include "ipvs/engine.hpp"
#include "ipvs/ipvsadm.hpp"
#include "kube/proxy/ipvs.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/node.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

// Records the destination a packet has when it reaches a hook at filter priority (0): what a
// NetworkPolicy engine's chains there would see.
class Probe final : public nf::Stage {
 public:
  std::string name() const override { return "probe"; }
  Verdict run(Hook h, Packet& p, nf::HookContext&) noexcept override {
    seen.push_back({h, FiveTuple::endpoint(p.t.dst, p.t.dport, p.t.proto)});
    return Verdict::accept();
  }
  std::vector<std::pair<Hook, std::string>> seen;
  std::vector<std::string> at(Hook h) const {
    std::vector<std::string> v;
    for (auto& [hh, d] : seen)
      if (hh == h) v.push_back(d);
    return v;
  }
};

std::string ex(const std::string& f) { return source_dir() + "/examples/clusters/" + f; }

sim::ClusterInput load(const std::string& file) {
  sim::ClusterOptions o;
  o.files = {ex("nodes.yaml"), ex(file)};
  o.node = "node-a";
  o.proxy_config = ex("proxy-config.yaml");
  return sim::load_cluster(o);
}

struct IpvsNode {
  kube::ipvs::IpvsMode m;
  nf::Node node;
  std::unique_ptr<nf::Datapath> dp;
  Probe probe;
};

std::unique_ptr<IpvsNode> ipvs_node(const sim::ClusterInput& in, const std::string& sched = "rr") {
  auto n = std::make_unique<IpvsNode>();
  k8s::ProxyConfig cfg = in.cfg;
  cfg.ipvs_scheduler = sched;
  n->m = kube::ipvs::build(in.cluster, in.node, cfg, Family::V4);
  n->node = kube::kube_node(in.cluster, in.node, cfg);
  kube::ipvs::add_to_node(n->node, n->m);
  n->dp = std::make_unique<nf::Datapath>(n->node);
  nf::attach_iptables(*n->dp, &n->m.rules, nullptr, &n->m.sets);
  n->m.engine->attach(*n->dp);
  for (Hook h : {Hook::LocalIn, Hook::Forward, Hook::LocalOut}) n->dp->add_stage(h, 1, &n->probe);
  return n;
}

nf::Outcome send(nf::Datapath& dp, const nf::Node& node, const std::string& spec) {
  auto ps = parse_packet_spec(spec, nullptr);
  REQUIRE(ps);
  nf::Injection inj;
  if (node.is_local(ps->pkt.t.src)) inj.local = true;
  else inj.iif = node.lookup(ps->pkt.t.src).oif;
  VectorSink sink;
  auto o = dp.process(ps->pkt, inj, sink);
  o.trace = std::move(sink.events);
  return o;
}

}  // namespace

TEST_CASE("hook order: IPVS mode filter INPUT sees the ClusterIP, OUTPUT the pod, FORWARD nothing") {
  auto in = load("basic.yaml");
  auto n = ipvs_node(in);
  auto o = send(*n->dp, n->node, "tcp 10.244.1.9:40000 -> 172.30.0.41:80");
  CHECK(o.kind == nf::OutcomeKind::Forwarded);
  CHECK(o.dnat);
  CHECK(n->probe.at(Hook::LocalIn) == std::vector<std::string>{"172.30.0.41:80"});
  auto out = n->probe.at(Hook::LocalOut);
  REQUIRE(out.size() == 1);
  CHECK(out[0] != "172.30.0.41:80");
  CHECK(out[0] == FiveTuple::endpoint(o.after.t.dst, o.after.t.dport, proto::TCP));
  CHECK(n->probe.at(Hook::Forward).empty());
  // The same packet in iptables mode: DNAT at PREROUTING, filter FORWARD sees the pod, INPUT nothing.
  nf::Node node = kube::kube_node(in.cluster, in.node, in.cfg);
  auto rs = kube::iptables::node_ruleset(in.cluster, in.node, in.cfg, Family::V4);
  nf::Datapath dp(node);
  nf::attach_iptables(dp, &rs, nullptr, nullptr);
  Probe p;
  for (Hook h : {Hook::LocalIn, Hook::Forward, Hook::LocalOut}) dp.add_stage(h, 1, &p);
  auto oi = send(dp, node, "tcp 10.244.1.9:40000 -> 172.30.0.41:80");
  CHECK(oi.kind == nf::OutcomeKind::Forwarded);
  auto fwd = p.at(Hook::Forward);
  REQUIRE(fwd.size() == 1);
  CHECK(fwd[0] == FiveTuple::endpoint(oi.after.t.dst, oi.after.t.dport, proto::TCP));
  CHECK(p.at(Hook::LocalIn).empty());
}

TEST_CASE("IPVS: the reply is un-DNATed at FORWARD 100; the next packet reuses the connection") {
  auto in = load("basic.yaml");
  auto n = ipvs_node(in);
  auto first = send(*n->dp, n->node, "tcp 10.244.1.9:40000 -> 172.30.0.41:80 t=1");
  std::string backend = FiveTuple::endpoint(first.after.t.dst, first.after.t.dport, proto::TCP);
  CHECK(n->m.engine->conns.size() == 1);
  auto reply = send(*n->dp, n->node, "tcp/SA " + backend + " -> 10.244.1.9:40000 t=1.1");
  CHECK(reply.after.t.str() == "tcp 172.30.0.41:80 -> 10.244.1.9:40000");
  bool ipvs_out = false;
  for (auto& e : reply.trace)
    if (e.kind == TraceKind::Ipvs && e.hook == Hook::Forward && e.target == "un-DNAT") ipvs_out = true;
  CHECK(ipvs_out);
  auto ack = send(*n->dp, n->node, "tcp/A 10.244.1.9:40000 -> 172.30.0.41:80 t=1.2");
  CHECK(ack.after.t.dst == first.after.t.dst);
  CHECK(n->m.engine->conns.size() == 1);
  // The destination counts the connection as active (SYN_RECV, then ESTABLISHED).
  const ipvs::Service* vs = n->m.engine->services.find(proto::TCP, *Addr::parse("172.30.0.41"), 80);
  REQUIRE(vs);
  int d = vs->find_dest(first.after.t.dst, first.after.t.dport);
  REQUIRE(d >= 0);
  CHECK(vs->dests[size_t(d)].activeconns == 1);
  CHECK(vs->dests[size_t(d)].inactconns == 0);
}

TEST_CASE("IPVS: rr spreads new connections in the kernel's list order; lc follows the counters") {
  auto in = load("basic.yaml");
  auto n = ipvs_node(in, "rr");
  std::string seq;
  for (int i = 0; i < 6; ++i) {
    auto o = send(*n->dp, n->node, "tcp 10.244.1.9:" + std::to_string(41000 + i) + " -> 172.30.0.41:80");
    seq += std::to_string(o.after.t.dst.b[2]) + " ";
  }
  // Endpoints were added 10.244.1.5, 10.244.2.7, 10.244.3.9: the list (newest first) is 3, 2, 1.
  CHECK(seq == "3 2 1 3 2 1 ");
  auto lc = ipvs_node(in, "lc");
  std::string seq2;
  for (int i = 0; i < 3; ++i) {
    auto o = send(*lc->dp, lc->node, "tcp 10.244.1.9:" + std::to_string(42000 + i) + " -> 172.30.0.41:80");
    seq2 += std::to_string(o.after.t.dst.b[2]) + " ";
  }
  CHECK(seq2 == "3 2 1 ");  // each new SYN makes its server active, so the next least-loaded differs
}

TEST_CASE("IPVS: sessionAffinity becomes persistence; a service with no servers rejects") {
  auto in = load("basic.yaml");
  auto n = ipvs_node(in);
  const ipvs::Service* sticky = n->m.engine->services.find(proto::TCP, *Addr::parse("172.30.0.42"), 80);
  REQUIRE(sticky);
  CHECK(sticky->persistent);
  CHECK(sticky->timeout == 600);
  auto a = send(*n->dp, n->node, "tcp 10.244.1.9:43000 -> 172.30.0.42:80 t=1");
  auto b = send(*n->dp, n->node, "tcp 10.244.1.9:43001 -> 172.30.0.42:80 t=2");
  auto c = send(*n->dp, n->node, "tcp 10.244.1.9:43002 -> 172.30.0.42:80 t=3");
  CHECK(a.after.t.dst == b.after.t.dst);
  CHECK(a.after.t.dst == c.after.t.dst);
  // demo/empty has a virtual server but no real servers: IPVS answers with ICMP port unreachable.
  auto e = send(*n->dp, n->node, "tcp 10.244.1.9:43003 -> 172.30.0.99:80");
  CHECK(e.kind == nf::OutcomeKind::Rejected);
  CHECK(e.reason == DropReason::IpvsNoDest);
}

TEST_CASE("IPVS enumerate leaves the connection table and scheduler state untouched") {
  auto in = load("basic.yaml");
  auto n = ipvs_node(in);
  auto ps = parse_packet_spec("tcp 10.244.1.9:44000 -> 172.30.0.41:80", nullptr);
  nf::Injection inj{false, n->node.find("cni0")};
  auto outs = n->dp->enumerate(ps->pkt, inj);
  CHECK(outs.size() == 1);  // IPVS schedulers are deterministic: one outcome
  CHECK(n->m.engine->conns.size() == 0);
  auto o = send(*n->dp, n->node, "tcp 10.244.1.9:44000 -> 172.30.0.41:80");
  CHECK(o.after.t.dst == outs[0].after.t.dst);  // the cursor did not move during enumeration
}

TEST_CASE("kube-proxy IPVS mode: virtual servers, ipsets and kube-ipvs0 from the cluster") {
  auto in = load("traffic-policy.yaml");
  auto m = kube::ipvs::build(in.cluster, in.node, in.cfg, Family::V4);
  auto& t = m.engine->services;
  // eTP=Local LoadBalancer: the LB VIP and NodePorts get only the local endpoint.
  const ipvs::Service* lb = t.find(proto::TCP, *Addr::parse("203.0.113.50"), 443);
  REQUIRE(lb);
  REQUIRE(lb->dests.size() == 1);
  CHECK(lb->dests[0].addr == *Addr::parse("10.244.1.60"));
  const ipvs::Service* cip = t.find(proto::TCP, *Addr::parse("172.30.1.10"), 443);
  REQUIRE(cip);
  CHECK(cip->dests.size() == 2);
  const ipvs::Service* np = t.find(proto::TCP, *Addr::parse("10.0.0.10"), 31443);
  REQUIRE(np);
  CHECK(np->dests.size() == 1);
  CHECK(np->sched_name() == "rr");
  // Sets.
  auto has = [&](const char* set, const char* entry) {
    const nf::IpSet* s = m.sets.find(set);
    REQUIRE_MESSAGE(s, set);
    std::string dump = nf::save_ipsets(m.sets);
    return dump.find(std::string("add ") + set + " " + entry + "\n") != std::string::npos;
  };
  CHECK(has("KUBE-CLUSTER-IP", "172.30.1.10,tcp:443"));
  CHECK(has("KUBE-LOAD-BALANCER", "203.0.113.50,tcp:443"));
  CHECK(has("KUBE-LOAD-BALANCER-LOCAL", "203.0.113.50,tcp:443"));
  CHECK(has("KUBE-LOAD-BALANCER-FW", "203.0.113.50,tcp:443"));
  CHECK(has("KUBE-LOAD-BALANCER-SOURCE-CIDR", "203.0.113.50,tcp:443,203.0.113.0/24"));
  CHECK(has("KUBE-LOAD-BALANCER-SOURCE-IP", "203.0.113.50,tcp:443,203.0.113.50"));
  CHECK(has("KUBE-NODE-PORT-TCP", "31443"));
  CHECK(has("KUBE-NODE-PORT-LOCAL-TCP", "31443"));
  CHECK(has("KUBE-HEALTH-CHECK-NODE-PORT", "32000"));
  CHECK(has("KUBE-EXTERNAL-IP", "192.0.2.10,tcp:80"));
  CHECK(has("KUBE-LOOP-BACK", "10.244.1.60,tcp:8443,10.244.1.60"));
  CHECK(has("KUBE-IPVS-IPS", "203.0.113.50"));
  // kube-ipvs0 holds every VIP.
  nf::Node node = kube::kube_node(in.cluster, in.node, in.cfg);
  kube::ipvs::add_to_node(node, m);
  CHECK(node.is_local(*Addr::parse("172.30.1.10")));
  CHECK(node.is_local(*Addr::parse("203.0.113.50")));
  CHECK(node.sys.vs_conntrack);
}

TEST_CASE("ipvsadm-save -n and ipvsadm -Ln: load, print, and the restore reversal") {
  std::string save =
      "-A -t 10.96.0.1:443 -s rr\n"
      "-a -t 10.96.0.1:443 -r 10.0.0.12:6443 -m -w 1\n"
      "-a -t 10.96.0.1:443 -r 10.0.0.11:6443 -m -w 1\n"
      "-A -u 10.96.0.10:53 -s wrr -p 10800\n"
      "-a -u 10.96.0.10:53 -r 10.244.1.3:53 -m -w 2 -x 100 -y 50\n"
      "-A -t [fd00::1]:80 -s mh -b mh-fallback,mh-port\n"
      "-a -t [fd00::1]:80 -r [fd00:244::5]:8080 -m -w 1\n"
      "-A -f 5 -s sh -b sh-port\n";
  ipvs::ServiceTable t;
  ipvs::load_ipvsadm(save, "x.ipvs", t);
  REQUIRE(t.size() == 4);
  // Restoring with -a puts the last added first: the kernel list is .11, .12.
  const ipvs::Service* k = t.find(proto::TCP, *Addr::parse("10.96.0.1"), 443);
  REQUIRE(k);
  CHECK(k->dests[0].addr == *Addr::parse("10.0.0.11"));
  std::string once = ipvs::save_ipvsadm(t);
  CHECK(once.find("-a -t 10.96.0.1:443 -r 10.0.0.11:6443 -m -w 1\n-a -t 10.96.0.1:443 -r 10.0.0.12:6443") != std::string::npos);
  CHECK(once.find("-A -u 10.96.0.10:53 -s wrr -p 10800\n") != std::string::npos);
  CHECK(once.find("-r 10.244.1.3:53 -m -w 2 -x 100 -y 50\n") != std::string::npos);
  CHECK(once.find("-A -t [fd00::1]:80 -s mh -b mh-fallback,mh-port\n") != std::string::npos);
  CHECK(once.find("-A -f 5 -s sh -b sh-port\n") != std::string::npos);
  // Saving and restoring twice is the identity (each restore reverses the server order).
  ipvs::ServiceTable t2, t3;
  ipvs::load_ipvsadm(once, "once", t2);
  ipvs::load_ipvsadm(ipvs::save_ipvsadm(t2), "twice", t3);
  CHECK(ipvs::save_ipvsadm(t3) == once);
  // ipvsadm -Ln listing (with counters) loads in list order, keeping the counters.
  std::string ln =
      "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n"
      "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
      "TCP  10.96.0.1:443 rr\n  -> 10.0.0.11:6443               Masq    1      3          7\n"
      "  -> 10.0.0.12:6443               Masq    1      0          1\n"
      "UDP  10.96.0.10:53 rr persistent 10800\n  -> 10.244.1.3:53                Masq    1      0          12\n";
  ipvs::ServiceTable l;
  ipvs::load_ipvsadm(ln, "list", l);
  const ipvs::Service* ls = l.find(proto::TCP, *Addr::parse("10.96.0.1"), 443);
  REQUIRE(ls);
  CHECK(ls->dests[0].activeconns == 3);
  CHECK(ls->dests[0].inactconns == 7);
  CHECK(l.find(proto::UDP, *Addr::parse("10.96.0.10"), 53)->persistent);
  CHECK(ipvs::list_ipvsadm(l).find("TCP  10.96.0.1:443 rr\n  -> 10.0.0.11:6443") != std::string::npos);
  // --stats columns.
  std::string stats = "TCP  10.96.0.1:443 rr\n  -> 10.0.0.11:6443  Masq  1  12  340  290  21K  3M\n";
  ipvs::ServiceTable st;
  ipvs::load_ipvsadm(stats, "stats", st);
  CHECK(st.all()[0]->dests[0].inbytes == 21000);
}

TEST_CASE("ipvsadm errors carry their line") {
  struct Bad {
    const char* text;
    int line;
    const char* msg;
  } bad[] = {
      {"-A -t 10.96.0.1:443 -s fastest\n", 1, "unknown scheduler 'fastest'"},
      {"-a -t 10.96.0.1:443 -r 10.0.0.1:80 -m\n", 1, "does not exist"},
      {"-A -t 10.96.0.1 -s rr\n", 1, "is not address:port"},
      {"-A -t 10.96.0.1:443 -s rr\n-A -t 10.96.0.1:443 -s rr\n", 2, "already exists"},
      {"-A -t 10.96.0.1:443 -s rr\n-a -t 10.96.0.1:443 -r 10.0.0.1:80 -w many\n", 2, "is not a number"},
      {"-A -t 10.96.0.1:443 -s rr -z\n", 1, "unknown option '-z'"},
      {"  -> 10.0.0.1:80 Masq 1 0 0\n", 1, "before any virtual service"},
      {"TCP  10.96.0.1:443 rr\n  -> 10.0.0.1:80 Teleport 1 0 0\n", 2, "unknown forwarding method"},
      {"hello\n", 1, "expected an ipvsadm-save command"},
  };
  for (auto& b : bad) {
    INFO(std::string(b.text));
    ipvs::ServiceTable t;
    CHECK_LOAD_ERROR(ipvs::load_ipvsadm(b.text, "x.ipvs", t), b.line, b.msg);
  }
}

TEST_CASE("rules --mode ipvs prints ipvsadm-save, ipset save and iptables-save") {
  cli::RulesOptions o;
  o.cluster.files = {ex("nodes.yaml"), ex("basic.yaml")};
  o.cluster.node = "node-a";
  o.cluster.proxy_config = ex("proxy-config.yaml");
  o.cluster.mode = "ipvs";
  std::ostringstream out;
  CHECK(cli::run_rules(o, out) == 0);
  std::string s = out.str();
  CHECK(s.rfind("# ipvsadm-save -n\n", 0) == 0);
  CHECK(s.find("-A -u 172.30.0.10:53 -s rr\n") != std::string::npos);
  CHECK(s.find("-A -t 172.30.0.41:80 -s rr\n-a -t 172.30.0.41:80 -r 10.244.3.9:8080 -m -w 1\n") != std::string::npos);
  CHECK(s.find("-A -t 172.30.0.42:80 -s rr -p 600\n") != std::string::npos);
  CHECK(s.find("add KUBE-CLUSTER-IP 172.30.0.41,tcp:80\n") != std::string::npos);
  CHECK(s.find("-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment \"Kubernetes service cluster ip + port for masquerade "
               "purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ") != std::string::npos);
}
