#pragma once
// The subcommands, separated from flag parsing so tests can run them against a stream.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "netfilter/node.hpp"
#include "netfilter/rules.hpp"

namespace svcpath::cli {

/// The node options every command shares (--node-config, --sysctl, --local-ip, --route).
struct NodeOptions {
  std::string node_config;
  std::vector<std::string> sysctls, local_ips, routes;
  /// Builds the node; throws LoadError naming the flag or file:line of each problem.
  nf::Node build() const;
};

struct TraceOptions {
  std::string rules, rules6, ipsets;
  NodeOptions node;
  std::vector<std::string> packets;
  std::string packets_file;
  std::string in_default = "eth0";
  bool local = false;
  bool enumerate = false;
  uint64_t seed = 1;
  std::string format = "text";  // text | json
  std::string color = "never";  // auto | always | never
  bool verbose = false;
};

/// svcpath trace. Throws LoadError on bad input; returns the exit status.
int run_trace(const TraceOptions& o, std::ostream& out);

std::string read_file(const std::string& path);
/// Loads an iptables-save dump; the family comes from force, else from an ip6tables-save header.
nf::Ruleset load_rules(const std::string& path, std::optional<Family> force, bool counters = false);
bool color_wanted(const std::string& mode);

}  // namespace svcpath::cli
