// svcpath: the command-line front end. Thin: parse flags, build the node and datapaths, render.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/render.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables.hpp"
#include "netfilter/node_config.hpp"

using namespace svcpath;


namespace {

void add_node_options(CLI::App* app, cli::NodeOptions& n) {
  app->add_option("--node-config", n.node_config,
                  "YAML describing the node: interfaces, addresses, routes, sysctls (docs/node-config.md)")
      ->check(CLI::ExistingFile);
  app->add_option("--sysctl", n.sysctls, "KEY=VALUE, repeatable (e.g. net.ipv4.ip_forward=1)");
  app->add_option("--local-ip", n.local_ips, "address on this node, IP[/LEN][@IFACE] (default interface eth0), repeatable");
  app->add_option("--route", n.routes, "CIDR=IFACE[@GATEWAY] or default=IFACE, repeatable");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "svcpath: how a Linux node routes a packet to a Kubernetes Service, hook by hook and rule by rule.\n"
      "It loads what you already have (iptables-save, ipset save, node addresses) and shows the netfilter\n"
      "path of each packet exactly as the kernel walks it, in the kernel's TRACE vocabulary\n"
      "(table:chain:rule:N), with conntrack and NAT."};
  app.require_subcommand(1);
  app.footer(
      "Start with the bundled example:\n"
      "  svcpath trace --rules examples/rulesets/kube-clusterip.rules --node-config examples/nodes/kube-node.yaml \\\n"
      "      --packets examples/packets/kube-clusterip.txt\n"
      "Each subcommand has its own --help with examples.");
  app.set_version_flag("--version", "svcpath 0.1.0");

  // ---- trace
  auto* trace = app.add_subcommand("trace", "Trace packets through a node's netfilter hooks");
  trace->footer(
      "Examples:\n"
      "  svcpath trace --rules examples/rulesets/kube-clusterip.rules --local-ip 10.0.0.10/24 \\\n"
      "      --sysctl net.ipv4.ip_forward=1 --packet 'tcp 10.244.1.5:40000 -> 172.30.0.41:80'\n"
      "  svcpath trace --rules FILE --enumerate --packet '...'    every outcome with its probability\n"
      "  svcpath trace --rules FILE --packets flows.txt           one spec per line; conntrack carries over\n"
      "Packet spec: PROTO[/FLAGS] SRC[:PORT] -> DST[:PORT] [in=IFACE] [local] [mark=N] [ttl=N] [len=N] [t=SECONDS]\n"
      "  tcp flags as letters (tcp/SA = SYN+ACK; default SYN); icmp/echo-reply; IPv6 as [addr]:port.\n"
      "Exit status: 0 traced, 1 bad input (file:line: message on stderr), 2 bad usage.");
  cli::TraceOptions to;
  to.color = "auto";
  auto& [rules, rules6, ipsets, nopt, packets, packets_file, in_default, local, enumerate, seed, format, color,
         verbose] = to;
  trace->add_option("--rules", rules, "iptables-save dump (legacy or nft; ip6tables-save is detected)")->check(CLI::ExistingFile);
  trace->add_option("--rules6", rules6, "ip6tables-save dump for IPv6 packets")->check(CLI::ExistingFile);
  trace->add_option("--ipsets", ipsets, "ipset save output the rules refer to")->check(CLI::ExistingFile);
  add_node_options(trace, nopt);
  trace->add_option("--packet,-p", packets, "packet spec, repeatable; packets run in order through one node");
  trace->add_option("--packets", packets_file, "file with one packet spec per line (# comments)")->check(CLI::ExistingFile);
  trace->add_option("--in", in_default, "receiving interface for packets without in= (default eth0)");
  trace->add_flag("--local", local, "packets are sent by a local process (OUTPUT path)");
  trace->add_flag("--enumerate", enumerate, "follow every random branch (-m statistic) and list each outcome with its probability");
  trace->add_option("--seed", seed, "seed for sampled choices and ephemeral ports (default 1)");
  trace->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  trace->add_option("--color", color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}));
  trace->add_flag("--verbose,-v", verbose, "show each matched rule's text");

  // ---- rules
  auto* rcmd = app.add_subcommand("rules", "Load rule dumps and print them back in canonical form");
  rcmd->footer(
      "Prints what iptables-save would print after loading the dump (canonical option order, /32 on\n"
      "addresses, user chains sorted), so dumps from iptables-legacy and iptables-nft compare line by line.\n"
      "Examples:\n"
      "  svcpath rules --rules node.rules              check a dump loads; print it canonically\n"
      "  svcpath rules --ipsets node.ipsets            the same for an ipset save file");
  std::string r_rules, r_sets;
  bool r_counters = false, r_v6 = false;
  rcmd->add_option("--rules", r_rules, "iptables-save dump")->check(CLI::ExistingFile);
  rcmd->add_option("--ipsets", r_sets, "ipset save output")->check(CLI::ExistingFile);
  rcmd->add_flag("--counters,-c", r_counters, "keep and print [packets:bytes] counters (iptables-restore -c, iptables-save -c)");
  rcmd->add_flag("-6", r_v6, "the dump is ip6tables-save output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (trace->parsed()) {
      if (rules.empty() && rules6.empty()) throw LoadError({{"trace", 0, 0, "give --rules FILE (an iptables-save dump)"}});
      return cli::run_trace(to, std::cout);
    }
    if (rcmd->parsed()) {
      if (r_rules.empty() && r_sets.empty()) throw LoadError({{"rules", 0, 0, "give --rules FILE and/or --ipsets FILE"}});
      if (!r_sets.empty()) std::cout << nf::save_ipsets(nf::load_ipsets_file(r_sets));
      if (!r_rules.empty()) {
        auto rs = cli::load_rules(r_rules, r_v6 ? std::optional<Family>(Family::V6) : std::nullopt, r_counters);
        std::cout << nf::save(rs, r_counters);
      }
      return 0;
    }
  } catch (const LoadError& e) {
    for (auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "svcpath: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
