#pragma once
// Shared test fixtures: build a node, load a ruleset from text, run packets.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables/hooks.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/objects/cluster_synth.hpp"
#include "kube/sim/inputs.hpp"
#include "kube/sim/node_config.hpp"

namespace svcpath::test {

inline std::string source_dir() { return SVCPATH_SOURCE_DIR; }

/// Compares got with the golden file at path line by line, so a failure names the first line that
/// differs (SVCPATH_UPDATE_GOLDEN=1 rewrites the file instead; review the diff).
inline void check_golden(const std::string& path, const std::string& got) {
  if (std::getenv("SVCPATH_UPDATE_GOLDEN")) {
    std::ofstream(path) << got;
    return;
  }
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "missing golden file " << path << " (run with SVCPATH_UPDATE_GOLDEN=1)");
  std::stringstream want;
  want << in.rdbuf();
  std::istringstream a(got), b(want.str());
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ga = bool(std::getline(a, la)), gb = bool(std::getline(b, lb));
    if (!ga && !gb) break;
    REQUIRE_MESSAGE(ga == gb, path << ": output and golden file differ in length at line " << line);
    REQUIRE_MESSAGE(la == lb, path << ":" << line << "\n  expected: " << lb << "\n  actual:   " << la);
  }
}

/// A synthetic cluster (services x endpoints over nodes, with NodePorts) seen from its first node.
inline sim::ClusterInput synthetic_input(uint32_t services, uint32_t endpoints, uint32_t nodes) {
  k8s::SynthSpec spec;
  spec.services = services;
  spec.endpoints = endpoints;
  spec.nodes = nodes;
  spec.node_ports = true;
  sim::ClusterInput ci;
  ci.cluster = k8s::synthetic_cluster(spec);
  ci.node = ci.cluster.nodes[0];
  return ci;
}

inline nf::Ruleset rules(const std::string& text, Family f = Family::V4) {
  nf::Ruleset rs;
  rs.family = f;
  nf::load_restore(text, "test.rules", rs);
  return rs;
}

/// A node with eth0 10.0.0.10/24, eth1 192.168.1.1/24, forwarding on, default route out eth0.
inline nf::Node node() {
  nf::Node n;
  CHECK(nf::apply_local_ip(n, "10.0.0.10/24@eth0").empty());
  CHECK(nf::apply_local_ip(n, "192.168.1.1/24@eth1").empty());
  CHECK(nf::apply_route(n, "default=eth0@10.0.0.1").empty());
  CHECK(n.sys.set("net.ipv4.ip_forward", "1").empty());
  return n;
}

inline Packet pkt(const std::string& spec) {
  std::string why;
  auto ps = parse_packet_spec(spec, &why);
  REQUIRE_MESSAGE(ps.has_value(), why);
  return ps->pkt;
}

/// Runs one packet (ingress on iif name, or local) and returns the outcome with its trace.
inline nf::Outcome run(nf::Datapath& dp, const std::string& spec, const std::string& iif = "eth0", bool local = false) {
  std::string why;
  auto ps = parse_packet_spec(spec, &why);
  REQUIRE_MESSAGE(ps.has_value(), why);
  VectorSink sink;
  nf::Injection in{local || ps->local, dp.node().find(ps->in.empty() ? iif : ps->in)};
  nf::Outcome o = dp.process(ps->pkt, in, sink);
  o.trace = std::move(sink.events);
  return o;
}

/// The kernel-TRACE ids ("nat:KUBE-SERVICES:rule:2") of the rule events, in order.
inline std::vector<std::string> trace_ids(const nf::Outcome& o) {
  std::vector<std::string> v;
  for (auto& e : o.trace)
    if (e.kind == TraceKind::Rule || e.kind == TraceKind::Return || e.kind == TraceKind::Policy)
      v.push_back(std::string(e.table) + ":" + std::string(e.chain) + ":" + std::string(trace_kind_name(e.kind)) + ":" +
                  std::to_string(e.rulenum));
  return v;
}

/// Expects a LoadError whose first diagnostic is at line and contains text.
#define CHECK_LOAD_ERROR(expr, line_, text_)                                                  \
  do {                                                                                        \
    bool thrown_ = false;                                                                     \
    try {                                                                                     \
      (void)(expr);                                                                           \
    } catch (const ::svcpath::LoadError& e_) {                                                \
      thrown_ = true;                                                                         \
      REQUIRE(!e_.diagnostics().empty());                                                     \
      CHECK_MESSAGE(e_.diagnostics()[0].line == (line_), e_.what());                          \
      CHECK_MESSAGE(e_.diagnostics()[0].message.find(text_) != std::string::npos, e_.what()); \
    }                                                                                         \
    CHECK_MESSAGE(thrown_, "expected a LoadError containing: " << (text_));                   \
  } while (0)

}  // namespace svcpath::test
