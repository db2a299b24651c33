// svcpath: the command-line front end. Thin: parse flags, build the node and datapaths, render.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.hpp"
#include "cli/render.hpp"
#include "core/diag.hpp"
#include "core/packet_spec.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/sim/inputs.hpp"
#include "kube/sim/node_config.hpp"

using namespace svcpath;
using sim::InputKind;

#if defined(__SANITIZE_ADDRESS__)
#define SVCPATH_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SVCPATH_UNDER_ASAN 1
#endif
#endif

namespace {

// Every file flag with the kind of file it takes. After parsing, each file given is sniffed once
// (sim::what_is): a file of another kind is answered with the flag that takes it, before any loader
// reads it as what it is not.
class Doors {
 public:
  struct Door {
    const char* flag;
    InputKind kind;
    std::string_view takes = {};  // says what the flag takes more precisely than the kind does
  };
  void add(const CLI::App* app, std::initializer_list<Door> doors) {
    for (auto& d : doors) list_.push_back({app->get_option(d.flag), d});
  }
  /// Throws sim::WrongInput for the first file given to the wrong flag.
  void check() const {
    for (auto& [o, d] : list_)
      for (auto& path : o->results()) sim::expect_input(path, d.flag, d.kind, d.takes);
  }

 private:
  std::vector<std::pair<const CLI::Option*, Door>> list_;
};

void add_cluster_options(CLI::App* app, sim::ClusterOptions& c, Doors& door) {
  auto* cluster = app->add_option("--cluster", c.files,
                                  "Kubernetes objects as kubectl prints them (YAML or JSON, List or multi-document), repeatable: "
                                  "Services, EndpointSlices (or Endpoints), Nodes, Pods, Namespaces, NetworkPolicies, ServiceCIDRs")
                      ->check(CLI::ExistingFile);
  app->add_option("--node", c.node, "with --cluster: the Node object to simulate")->needs(cluster);
  app->add_option("--proxy-config", c.proxy_config,
                  "KubeProxyConfiguration (clusterCIDR, masqueradeAll, detectLocalMode, nodePortAddresses, ...)")
      ->check(CLI::ExistingFile)
      ->needs(cluster);
  app->add_option("--mode", c.mode,
                  "kube-proxy mode for --cluster: iptables, ipvs or nftables (trace, replay: several, comma-separated)")
      ->needs(cluster);
  app->add_option("--kube-proxy-version", c.kube_proxy_version,
                  "the kube-proxy release whose rules to write where releases differ, e.g. 1.33 (default: the current "
                  "release; docs/kube-proxy-versions.md)")
      ->needs(cluster);
  app->add_option("--policy-placement", c.policy,
                  "NetworkPolicies in --cluster become filter rules: auto (IPVS-aware in ipvs mode), plain (FORWARD, "
                  "INPUT for egress, OUTPUT for ingress), ipvs (also egress in OUTPUT, Service addresses skipped in "
                  "INPUT), off (default auto)")
      ->check(CLI::IsMember({"auto", "plain", "ipvs", "off"}))
      ->needs(cluster);
  door.add(app, {{"--cluster", InputKind::KubeObjects}, {"--proxy-config", InputKind::ProxyConfig}});
}

// A cluster is one input, dumps another: --cluster beside a dump would leave the dump unread.
void cluster_excludes(CLI::App* app, std::initializer_list<const char*> dumps) {
  for (auto* d : dumps) app->get_option("--cluster")->excludes(app->get_option(d));
}

// trace's and replay's node dumps: each checked for its kind, none given beside --cluster.
void add_dump_doors(CLI::App* app, Doors& door) {
  door.add(app, {{"--snapshot", InputKind::Archive},
                 {"--rules", InputKind::IptablesSave},
                 {"--rules6", InputKind::IptablesSave},
                 {"--ipsets", InputKind::IpsetSave},
                 {"--ipvs", InputKind::Ipvsadm},
                 {"--nft", InputKind::NftRuleset}});
  cluster_excludes(app, {"--snapshot", "--rules", "--rules6", "--ipsets", "--ipvs", "--nft"});
}

void add_node_options(CLI::App* app, sim::NodeOptions& n, Doors& door) {
  app->add_option("--node-config", n.node_config,
                  "YAML describing the node: interfaces, addresses, routes, sysctls (docs/node-config.md)")
      ->check(CLI::ExistingFile);
  app->add_option("--sysctl", n.sysctls, "KEY=VALUE, repeatable (e.g. net.ipv4.ip_forward=1)");
  app->add_option("--services", n.services,
                  "the node's /etc/services, for port names in an ipvsadm -L listing (default: netbase's, built in)")
      ->check(CLI::ExistingFile);
  app->add_option("--local-ip", n.local_ips, "address on this node, IP[/LEN][@IFACE] (default interface eth0), repeatable");
  app->add_option("--route", n.routes, "CIDR=IFACE[@GATEWAY] or default=IFACE, repeatable");
  app->add_option("--nfqueue", n.nfqueue,
                  "none: no program listens on NFQUEUE queues (the kernel drops, or accepts with --queue-bypass); "
                  "default: a queued packet's outcome is unsimulated");
  app->add_option("--iptables-backend", n.iptables_backend,
                  "legacy or nft: whose view of the iptables tables to simulate (iptables-nft creates only the "
                  "built-in chains a dump names and runs the security table after nat); default: the dump's header")
      ->check(CLI::IsMember({"legacy", "nft"}));
  app->add_flag("--noflush", n.noflush,
                "read the dumps as iptables-restore --noflush does: a table named again (an iptables-save dump "
                "followed by a policy engine's --noflush input) is edited, not replaced");
  door.add(app, {{"--node-config", InputKind::NodeConfig}});
}

// Edit distance with adjacent transpositions (optimal string alignment): "trase" is one from "trace".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The registered name closest to word, if close enough to be a typo (a third of its letters).
std::string nearest(std::string_view word, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = std::max<size_t>(1, word.size() / 3) + 1;
  for (auto& n : names)
    if (size_t d = edit_distance(word, n); d < best_d) best = n, best_d = d;
  return best;
}

// After a parse error: the first subcommand or --flag on the command line that CLI11 does not know,
// answered in one line with the registered name nearest to it. Empty when every word is known.
std::string misspelt(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> subs;
  for (auto* s : app.get_subcommands([](const CLI::App*) { return true; })) subs.push_back(s->get_name());
  const CLI::App* sub = nullptr;
  auto flags_of = [](const CLI::App* a, std::vector<std::string>& out) {
    for (auto* o : a->get_options())
      for (auto& n : o->get_lnames()) out.push_back("--" + n);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view w = argv[i];
    if (w == "--") break;
    if (w.starts_with("--")) {
      std::string_view name = w.substr(0, w.find('='));
      std::vector<std::string> known;
      flags_of(&app, known);
      if (sub) flags_of(sub, known);
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string near = nearest(name, known);
      std::string where = sub ? "svcpath " + sub->get_name() : "svcpath";
      if (!near.empty()) return fmt::format("{}: error: unknown flag '{}'; did you mean '{}'?", where, name, near);
      // A flag of another subcommand: say whose.
      std::vector<std::string> owners;
      for (auto* other : app.get_subcommands([](const CLI::App*) { return true; })) {
        std::vector<std::string> theirs;
        flags_of(other, theirs);
        if (std::find(theirs.begin(), theirs.end(), name) != theirs.end()) owners.push_back(other->get_name());
      }
      if (owners.size() == 1) return fmt::format("{}: error: unknown flag '{}' (svcpath {} takes it)", where, name, owners[0]);
      if (!owners.empty())
        return fmt::format("{}: error: unknown flag '{}' (svcpath {} take it)", where, name, fmt::join(owners, ", "));
      return fmt::format("{}: error: unknown flag '{}' (see {} --help)", where, name, where);
    }
    if (sub || w.starts_with('-')) continue;  // a value, or a short flag
    // The first bare word is the subcommand, unless it is --max-memory's value.
    if (i > 1 && std::string_view(argv[i - 1]) == "--max-memory") continue;
    if (std::find(subs.begin(), subs.end(), w) != subs.end()) {
      sub = app.get_subcommand(std::string(w));
      continue;
    }
    std::string near = nearest(w, subs);
    return near.empty() ? fmt::format("svcpath: error: unknown subcommand '{}' (see svcpath --help)", w)
                        : fmt::format("svcpath: error: unknown subcommand '{}'; did you mean '{}'?", w, near);
  }
  return "";
}

uint64_t physical_memory_mib() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) >> 20 : 0;
}

// RLIMIT_AS: allocations past it fail, so operator new throws bad_alloc, which main reports.
// Sanitizer runtimes reserve terabytes of address space up front, so there the cap stays off.
void cap_memory(uint64_t mib) {
#ifndef SVCPATH_UNDER_ASAN
  if (mib) {
    rlimit r{mib << 20, mib << 20};
    setrlimit(RLIMIT_AS, &r);
  }
#else
  (void)mib;
#endif
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
  // A cap on the address space turns a runaway input into an error message instead of the kernel's
  // OOM killer. Default: three quarters of the machine's memory.
  uint64_t max_memory_mib = physical_memory_mib() * 3 / 4;
  app.add_option("--max-memory", max_memory_mib,
                 "MiB of memory svcpath may use before it stops with an error (0: no cap; default: 3/4 of RAM); "
                 "may follow the subcommand")
      ->capture_default_str();
  app.fallthrough();
  Doors door;

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
  auto& [snapshot, rules, rules6, ipsets, copt, nopt, packets, packets_file, in_default, local, enumerate, seed, format, color,
         verbose, ipvs_dump, outcome, nft_dump, independent] = to;
  add_cluster_options(trace, copt, door);
  trace
      ->add_option("--snapshot", snapshot,
                   "a scripts/svcpath-snapshot archive (node-NAME-DATE.tar.gz): the node (interfaces, addresses, routes, rules, "
                   "sysctls), its dumps and its conntrack table; --rules, --rules6, --ipsets, --ipvs, --nft given with it "
                   "override its part, --node-config/--sysctl/--local-ip/--route apply on top")
      ->check(CLI::ExistingFile);
  trace->add_option("--rules", rules, "iptables-save dump (legacy or nft; ip6tables-save is detected)")->check(CLI::ExistingFile);
  trace->add_option("--rules6", rules6, "ip6tables-save dump for IPv6 packets")->check(CLI::ExistingFile);
  trace->add_option("--ipsets", ipsets, "ipset save output the rules refer to")->check(CLI::ExistingFile);
  trace
      ->add_option("--ipvs", ipvs_dump,
                   "ipvsadm-save -n (or ipvsadm -Ln) output: IPVS virtual services on the node, with --rules and "
                   "--ipsets from the same node (virtual addresses go on kube-ipvs0)")
      ->check(CLI::ExistingFile);
  trace
      ->add_option("--nft", nft_dump,
                   "nft list ruleset output (or nft -f input): nftables tables on the node, alone or with --rules "
                   "(base chains interleave with iptables tables by priority)")
      ->check(CLI::ExistingFile);
  add_node_options(trace, nopt, door);
  trace->add_option("--packet,-p", packets, "packet spec, repeatable; packets run in order through one node");
  trace->add_option("--packets", packets_file, "file with one packet spec per line (# comments)")->check(CLI::ExistingFile);
  trace->add_option("--in", in_default,
                    "receiving interface for packets without in= (default auto: the interface the source is routed "
                    "through; a source address of this node means the packet is sent by a local process)");
  trace->add_flag("--local", local, "packets are sent by a local process (OUTPUT path)");
  trace->add_flag("--enumerate", enumerate,
                  "follow every random branch (-m statistic) and list each outcome with its probability");
  trace->add_flag("--independent", independent,
                  "with several modes: sample each mode's backend on its own (default: every mode that could "
                  "choose it takes the same backend, so the panels differ only where the modes do)");
  trace->add_option("--seed", seed, "seed for sampled choices and ephemeral ports (default 1)");
  trace
      ->add_option("--format", format,
                   "text (kernel TRACE style, coloured on a terminal), json, svg (the hook diagram with the path "
                   "drawn over it, one panel per mode), html (the same, self-contained, with every step), dot (Graphviz)")
      ->check(CLI::IsMember({"text", "json", "svg", "html", "dot"}));
  trace->add_option("--outcome", outcome, "with --enumerate and a picture format: which outcome's path to draw (default 1)")
      ->check(CLI::PositiveNumber);
  trace->add_option("--color", color, "auto, always or never")->check(CLI::IsMember({"auto", "always", "never"}));
  trace->add_flag("--verbose,-v", verbose, "show each matched rule's text");
  add_dump_doors(trace, door);
  door.add(trace, {{"--packets", InputKind::PacketSpecs}});
  trace->get_option("--local")->excludes(trace->get_option("--in"));  // every packet is sent locally

  // ---- rules
  auto* rcmd = app.add_subcommand("rules", "Load rule dumps and print them back in canonical form");
  rcmd->footer(
      "Prints what iptables-save would print after loading the dump (canonical option order, /32 on\n"
      "addresses, user chains sorted), so dumps from iptables-legacy and iptables-nft compare line by line.\n"
      "Examples:\n"
      "  svcpath rules --rules node.rules              check a dump loads; print it canonically\n"
      "  svcpath rules --ipsets node.ipsets            the same for an ipset save file\n"
      "  svcpath rules --cluster objs.yaml --node n1   the node's tables after kube-proxy (iptables mode) ran\n"
      "  svcpath rules --cluster objs.yaml --node n1 --family 6 --restore-input   kube-proxy's own ip6tables input\n"
      "  svcpath rules --cluster objs.yaml --node n1 --mode nftables   what nft list ruleset shows after kube-proxy's\n"
      "      nftables mode ran (--restore-input: its nft -f transaction)\n"
      "  svcpath rules --nft ruleset.nft               check an nft list ruleset dump loads; print it as nft does\n"
      "  svcpath rules --ipvs ipvsadm-L.txt           check an ipvsadm listing or save loads; print it numeric\n"
      "  svcpath rules --cluster objs.yaml --node n1 --policy   what a policy engine loads for the node's\n"
      "      NetworkPolicies (ipset restore + iptables-restore --noflush input; --mode ipvs for IPVS-aware placement)\n"
      "With NetworkPolicies in --cluster, the node's view includes the policy engine's chains and sets\n"
      "(--policy-placement off leaves them out).");
  cli::RulesOptions ro;
  rcmd->add_option("--snapshot", ro.snapshot,
                   "a scripts/svcpath-snapshot archive: prints its ipsets, nft ruleset and the live back end's iptables-save "
                   "(-6: ip6tables-save); --rules, --ipsets, --nft given with it override its part")
      ->check(CLI::ExistingFile);
  rcmd->add_option("--rules", ro.rules, "iptables-save dump")->check(CLI::ExistingFile);
  rcmd->add_option("--ipsets", ro.ipsets, "ipset save output")->check(CLI::ExistingFile);
  rcmd->add_option("--nft", ro.nft, "nft list ruleset output or nft -f input: printed back as nft list ruleset prints it")
      ->check(CLI::ExistingFile);
  rcmd->add_option("--ipvs", ro.ipvs,
                   "ipvsadm-save or ipvsadm -L output, with -n or with names: printed back as ipvsadm-save -n prints it")
      ->check(CLI::ExistingFile);
  rcmd->add_option("--services", ro.services,
                   "the node's /etc/services, for port names in an ipvsadm -L listing (default: netbase's, built in)")
      ->check(CLI::ExistingFile);
  rcmd->add_flag("--counters,-c", ro.counters, "keep and print [packets:bytes] counters (iptables-restore -c, iptables-save -c)");
  rcmd->add_flag("--noflush", ro.noflush,
                 "read --rules as iptables-restore --noflush does: a table named again is edited, not replaced");
  rcmd->add_flag("-6", ro.v6, "the dump is ip6tables-save output");
  add_cluster_options(rcmd, ro.cluster, door);
  rcmd->add_option("--family", ro.family, "with --cluster: 4 (iptables-save) or 6 (ip6tables-save)")
      ->check(CLI::IsMember({4, 6}));
  rcmd->add_flag("--policy", ro.policy,
                 "with --cluster: print only the NetworkPolicy engine's input for the node (ipsets, filter chains)");
  rcmd->add_flag("--restore-input", ro.restore_input,
                 "with --cluster: print the iptables-restore input exactly as kube-proxy writes it, instead of the "
                 "node's iptables-save view");
  door.add(rcmd, {{"--snapshot", InputKind::Archive},
                  {"--rules", InputKind::IptablesSave},
                  {"--ipsets", InputKind::IpsetSave},
                  {"--nft", InputKind::NftRuleset},
                  {"--ipvs", InputKind::Ipvsadm}});
  cluster_excludes(rcmd, {"--snapshot", "--rules", "--ipsets", "--nft", "--ipvs", "--counters", "-6", "--noflush"});
  for (auto* f : {"--family", "--policy", "--restore-input"}) rcmd->get_option(f)->needs(rcmd->get_option("--cluster"));
  // --policy prints the policy engine's restore input already.
  rcmd->get_option("--restore-input")->excludes(rcmd->get_option("--policy"));

  // ---- replay
  auto* rp = app.add_subcommand("replay", "Replay a capture (pcap or pcapng) through each datapath and tally what happened");
  rp->footer(
      "Every packet of the capture goes through each mode's own datapath (own conntrack, own IPVS\n"
      "connection table), in capture order, with the capture's timestamps driving the timers. Packets\n"
      "from an address of this node are sent locally (OUTPUT); others arrive on the interface their\n"
      "source routes through. Frames svcpath cannot use are counted by reason, never fatal.\n"
      "Examples:\n"
      "  svcpath replay --cluster objs.yaml --node n1 --mode iptables,ipvs --pcap cap.pcapng\n"
      "  svcpath replay --rules node.rules --ipsets node.ipsets --local-ip 10.0.0.10/24 --pcap cap.pcap \\\n"
      "      --out-dir natted/        writes natted/rules.pcap: packets as they leave, checksums fixed\n"
      "Link types: Ethernet (802.1Q/QinQ), Linux cooked (SLL, SLL2), raw IP, loopback/null.\n"
      "Exit status: 0 replayed, 1 bad input, 2 bad usage, 3 the capture is damaged (a truncated record,\n"
      "an absurd length): everything before the damage was replayed and reported.");
  cli::ReplayOptions rpo;
  add_cluster_options(rp, rpo.cluster, door);
  rp->add_option(
        "--snapshot", rpo.snapshot,
        "a scripts/svcpath-snapshot archive (node-NAME-DATE.tar.gz): the node (interfaces, addresses, routes, rules, sysctls), "
        "its dumps and its conntrack table; --rules, --rules6, --ipsets, --ipvs, --nft given with it override its part, "
        "--node-config/--sysctl/--local-ip/--route apply on top; its conntrack timeouts count from the capture's first packet")
      ->check(CLI::ExistingFile);
  rp->add_option("--rules", rpo.rules, "iptables-save dump (instead of --cluster)")->check(CLI::ExistingFile);
  rp->add_option("--rules6", rpo.rules6, "ip6tables-save dump for IPv6 packets")->check(CLI::ExistingFile);
  rp->add_option("--ipsets", rpo.ipsets, "ipset save output the rules refer to")->check(CLI::ExistingFile);
  rp->add_option("--ipvs", rpo.ipvs, "ipvsadm-save -n output (IPVS mode from dumps, with --rules and --ipsets)")
      ->check(CLI::ExistingFile);
  rp->add_option("--nft", rpo.nft, "nft list ruleset output (nftables on the node, alone or with --rules)")
      ->check(CLI::ExistingFile);
  add_node_options(rp, rpo.node, door);
  rp->add_option("--pcap", rpo.pcap, "capture to replay: pcap or pcapng")->required()->check(CLI::ExistingFile);
  rp->add_option("--out-dir", rpo.out_dir, "write DIR/<mode>.pcap: each mode's packets as they leave the node (raw IP)");
  rp->add_option("--in", rpo.in_default, "receiving interface for every non-local packet (default auto)");
  rp->add_option("--seed", rpo.seed, "seed for -m statistic and scheduler choices (default 1)");
  rp->add_option("--format", rpo.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  rp->add_flag("--answer", rpo.answer,
               "the capture holds one side only (gen-traffic writes such captures): answer every packet that "
               "leaves the node as its peer would (SYN-ACK, ACK, FIN-ACK, UDP response, echo reply), through the "
               "same datapath");
  rp->add_option("--report", rpo.report,
                 "also write the HTML report (comparison, backend shares, cost plots, disagreements drawn side by side) here");
  rp->add_option("--examples", rpo.examples, "disagreeing connections to show in full (default 5)");
  rp->add_option("--threads,-j", rpo.threads,
                 "worker threads: modes run in parallel, one thread each at most; results are identical to "
                 "--threads 1 (default 1)")
      ->check(CLI::Range(1, 256));
  add_dump_doors(rp, door);
  door.add(rp, {{"--pcap", InputKind::Capture}});

  // ---- gen-traffic
  auto* gt = app.add_subcommand("gen-traffic", "Write a synthetic capture of clients talking to a node's Services");
  gt->footer(
      "Connections arrive as a Poisson process at --cps; each picks a client kind by weight and a\n"
      "Service port by popularity (uniform, or Zipf with --zipf S: rank r gets 1/r^S). TCP connections\n"
      "send SYN, ACK, --data-packets segments and FIN (or RST, --rst); UDP flows send --data-packets\n"
      "requests, so --data-packets sets the share of established packets. Only the\n"
      "client side is written (replies depend on the backend each mode picks). The ground truth —\n"
      "connections per Service address — goes to stdout; the same --seed writes the same bytes.\n"
      "Examples:\n"
      "  svcpath gen-traffic $C --out cap.pcap --connections 10000 --zipf 1.1\n"
      "  svcpath gen-traffic $C --out ext.pcap --clients external=1 --non-service 0.1\n"
      "  svcpath replay $C --mode iptables,ipvs --pcap cap.pcap --answer");
  cli::GenTrafficOptions go;
  add_cluster_options(gt, go.cluster, door);
  gt->add_option("--out,-o", go.out, "pcap file to write")->required();
  gt->add_option("--seed", go.seed, "random seed (default 1)");
  gt->add_option("--connections,-n", go.connections, "connections to generate (default 1000)");
  gt->add_option("--cps", go.cps, "new connections per second (default 1000)");
  gt->add_option("--zipf", go.zipf, "Service popularity exponent; 0 = uniform (default)")->check(CLI::NonNegativeNumber);
  gt->add_option("--data-packets", go.data_packets, "data segments per TCP connection, requests per UDP flow (default 2)");
  gt->add_option("--rtt-us", go.rtt_us, "microseconds between one connection's packets (default 200)")
      ->check(CLI::PositiveNumber);
  gt->add_option("--non-service", go.non_service, "share of connections to non-Service addresses, 0..1 (default 0)");
  gt->add_option("--rst", go.rst, "share of TCP connections closed with RST instead of FIN, 0..1 (default 0)");
  gt->add_option("--clients", go.clients,
                 "client kinds with weights: local-pods and host (to ClusterIPs), remote-pods and external (to NodePorts, "
                 "LoadBalancer and external IPs) "
                 "(default local-pods=1,remote-pods=1,external=1,host=0)");
  gt->add_option("--format", go.format, "text or json")->check(CLI::IsMember({"text", "json"}));

  // ---- demo
  auto* demo =
      app.add_subcommand("demo", "The guided tour: both kube-proxy modes on the bundled example, ending in an HTML report");
  demo->footer(
      "On examples/networkpolicy/cluster.yaml (node-a): a summary of what each kube-proxy mode builds, three\n"
      "telling packets traced through both modes, the bundled capture (examples/pcaps/demo-node-a.pcap)\n"
      "replayed, a small scaling sweep, and svcpath-demo/report.html with all of it drawn. Takes seconds.\n"
      "Examples:\n"
      "  svcpath demo\n"
      "  svcpath demo --out /tmp/tour --sweep 100,1000,10000");
  cli::DemoOptions dmo;
  demo->add_option("--out", dmo.out_dir,
                   "directory to write report.html, traces.svg, replay.json, sweep.json (default svcpath-demo)");
  demo->add_option("--examples", dmo.examples, "the examples directory (default: found from the checkout)");
  demo->add_option("--sweep", dmo.sweep, "service counts of the scaling sweep (default 100,1000,5000)")
      ->delimiter(',')
      ->check(CLI::Range(1u, 100000u));
  demo->add_option("--seed", dmo.seed, "random seed (default 1)");

  // ---- bench-model
  auto* bm = app.add_subcommand("bench-model", "The kernel cost model: predicted against a real-kernel measurement");
  bm->footer(
      "svcpath counts what the kernel would do for a NEW connection (rules evaluated, match modules\n"
      "called); the model turns counts into kernel time per packet, with constants fitted per back end\n"
      "to bench/kernel/measure.py's measurement on this machine. Points not used to fit are predictions.\n"
      "Examples:\n"
      "  sudo bench/kernel/measure.py build/release/svcpath -o kernel.json\n"
      "  svcpath bench-model --measured kernel.json --calibrate 100,2000,20000");
  cli::BenchModelOptions bmo;
  bm->add_option("--measured", bmo.measured, "bench/kernel/measure.py output")->required()->check(CLI::ExistingFile);
  bm->add_option("--calibrate", bmo.calibrate, "service counts whose points fit the constants (default 100,2000,20000)")
      ->delimiter(',');
  bm->add_option("--json", bmo.json_out, "also write predicted and measured per point as JSON");
  door.add(bm, {{"--measured", InputKind::Json, "bench/kernel/measure.py's JSON"}});

  // ---- report
  auto* rep = app.add_subcommand("report", "Write the self-contained HTML report from saved results");
  rep->footer(
      "One HTML file, nothing fetched when it is opened: the modes compared, agreement, the first\n"
      "disagreements drawn through the hooks side by side, backend shares per Service, the distribution of\n"
      "rules evaluated per packet, and scaling plots (gnuplot draws them; without it, tables).\n"
      "Examples:\n"
      "  svcpath replay $C --mode iptables,ipvs --pcap cap.pcap --format json > r.json\n"
      "  svcpath report --replay r.json -o report.html\n"
      "  svcpath report --bench bench.json -o bench.html     Google Benchmark JSON, plotted per family\n"
      "  svcpath replay $C --mode iptables,ipvs --pcap cap.pcap --report report.html   in one go");
  cli::ReportOptions repo;
  rep->add_option("--replay", repo.replay, "output of svcpath replay --format json")->check(CLI::ExistingFile);
  rep->add_option("--sweep", repo.sweep, "a scaling sweep (svcpath demo writes svcpath-demo/sweep.json)")
      ->check(CLI::ExistingFile);
  rep->add_option("--bench", repo.bench, "Google Benchmark JSON (--benchmark_format=json), repeatable")->check(CLI::ExistingFile);
  rep->add_option("--diff", repo.diff, "output of svcpath diff --format json: a section of what changes")
      ->check(CLI::ExistingFile);
  rep->add_option("--out,-o", repo.out, "HTML file to write (default report.html)");
  rep->add_option("--title", repo.title, "heading of the report");
  door.add(rep, {{"--replay", InputKind::Json, "the output of svcpath replay --format json"},
                 {"--sweep", InputKind::Json, "a scaling sweep (JSON)"},
                 {"--bench", InputKind::Json, "Google Benchmark JSON"},
                 {"--diff", InputKind::Json, "the output of svcpath diff --format json"}});

  // ---- verify
  auto* vf = app.add_subcommand("verify", "Run a dump on the local kernel and compare every packet with svcpath");
  vf->footer(
      "Loads the dump into a throwaway network namespace on this machine's kernel (root), sends --packets\n"
      "random packets drawn from the dump's own addresses, ports and interfaces (and host-originated ones;\n"
      "martians, multicast and broadcast included), and compares what the kernel did (the frame that left,\n"
      "an ICMP error or reset, or nothing; and with iptables-nft its TRACE path from xtables-monitor) with\n"
      "svcpath's outcomes and paths for the same node and packets. Prints the node it built, every\n"
      "disagreement with both sides, and 'N/M packets agree'. Same --seed, same packets, same report.\n"
      "Without --node-config the node is derived from the dump: one interface per -i/-o name (eth0, eth1\n"
      "when fewer than two), INPUT -d / OUTPUT -s host addresses as its own (docs/kernel-differential.md).\n"
      "Examples:\n"
      "  sudo svcpath verify --rules node.rules                        50 packets, iptables-nft\n"
      "  sudo svcpath verify --rules node.rules --ipsets node.ipsets --packets 500 --seed 7\n"
      "  sudo svcpath verify --rules node.rules --node-config node.yaml --backend both\n"
      "  sudo svcpath verify --nft ruleset.nft\n"
      "Exit status: 0 every packet agrees, 1 bad input (file:line: message), 2 bad usage,\n"
      "3 disagreements (or the kernel refused the dump), 4 cannot run here (not root, no network\n"
      "namespaces, a tool or python3 missing).");
  cli::VerifyOptions vo;
  vf->add_option("--snapshot", vo.snapshot,
                 "a scripts/svcpath-snapshot archive: verifies its live back end's dumps, ipsets and nft ruleset "
                 "(--rules, --rules6, --ipsets, --nft given with it override its part; the node is derived as without "
                 "--node-config)")
      ->check(CLI::ExistingFile);
  vf->add_option("--rules", vo.rules, "iptables-save (or iptables -S) dump to verify")->check(CLI::ExistingFile);
  vf->add_option("--rules6", vo.rules6, "ip6tables-save dump to verify")->check(CLI::ExistingFile);
  vf->add_option("--ipsets", vo.ipsets, "ipset save output the rules refer to")->check(CLI::ExistingFile);
  vf->add_option("--nft", vo.nft, "nft list ruleset output to verify (loaded with nft -f)")->check(CLI::ExistingFile);
  vf->add_option("--node-config", vo.node.node_config,
                 "YAML node (docs/node-config.md); interfaces become veth pairs (bridges are not recreated); "
                 "default: derived from the dump")
      ->check(CLI::ExistingFile);
  vf->add_option("--packets", vo.packets, "how many packets to send (default 50)")->check(CLI::Range(1u, 100000u));
  vf->add_option("--seed", vo.seed, "seed for drawing the packets (default 1)");
  vf->add_option("--backend", vo.backend,
                 "iptables back end the kernel loads the dump with: nft (default; TRACE paths from xtables-monitor), "
                 "legacy (paths from the kernel log), both")
      ->check(CLI::IsMember({"nft", "legacy", "both"}));
  door.add(vf, {{"--snapshot", InputKind::Archive},
                {"--rules", InputKind::IptablesSave},
                {"--rules6", InputKind::IptablesSave},
                {"--ipsets", InputKind::IpsetSave},
                {"--nft", InputKind::NftRuleset},
                {"--node-config", InputKind::NodeConfig}});

  // ---- diff
  auto* df = app.add_subcommand(
      "diff", "What changes for which flows between two nodes: two modes, configurations, clusters or dumps");
  df->footer(
      "Side A comes from the plain flags; side B is side A with the --to-* flags applied. The flows are\n"
      "every Service port on every address it answers on (ClusterIP, NodePort on each node address and\n"
      "127.0.0.1, external IPs, LoadBalancer ingress) from each kind of client (pod here, pod elsewhere,\n"
      "the node, external inside/outside loadBalancerSourceRanges), undeclared ClusterIP ports and a late\n"
      "FIN/ACK, plus any --packet. Flows whose outcome changes (verdict, backend set, masquerade) are\n"
      "grouped into classes with a sentence each, and the setting that keeps side A's behaviour.\n"
      "Exit status: 0 nothing changes, 1 something does, 2 bad input.\n"
      "Examples:\n"
      "  svcpath diff --cluster examples/clusters/basic.yaml examples/clusters/nodes.yaml --node node-a \\\n"
      "      --mode ipvs --to-mode nftables\n"
      "  svcpath diff --cluster c.yaml --node n1 --proxy-config old.yaml --to-proxy-config new.yaml\n"
      "  svcpath diff --cluster before.yaml --to-cluster after.yaml --node n1   # a Service edit, a new policy\n"
      "  svcpath diff --rules node-monday.rules --to-rules node-friday.rules --packet 'tcp 10.0.0.5:4000 -> 10.0.0.1:80'");
  cli::DiffOptions dfo;
  add_cluster_options(df, dfo.cluster, door);
  add_node_options(df, dfo.node, door);
  df->add_option("--rules", dfo.rules, "side A: iptables-save dump")->check(CLI::ExistingFile);
  df->add_option("--rules6", dfo.rules6, "side A: ip6tables-save dump")->check(CLI::ExistingFile);
  df->add_option("--ipsets", dfo.ipsets, "side A: ipset save output")->check(CLI::ExistingFile);
  df->add_option("--ipvs", dfo.ipvs, "side A: ipvsadm-save -n output")->check(CLI::ExistingFile);
  df->add_option("--nft", dfo.nft, "side A: nft list ruleset output")->check(CLI::ExistingFile);
  df->add_option("--to-mode", dfo.to_mode, "side B: the cluster in this kube-proxy mode")
      ->check(CLI::IsMember({"iptables", "ipvs", "nftables"}));
  df->add_option("--to-cluster", dfo.to_cluster, "side B: these Kubernetes objects instead (repeatable)")->check(CLI::ExistingFile);
  df->add_option("--to-proxy-config", dfo.to_proxy_config, "side B: this KubeProxyConfiguration")->check(CLI::ExistingFile);
  df->add_option("--to-kube-proxy-version", dfo.to_kube_proxy_version, "side B: kube-proxy's rules of this release (e.g. 1.35)");
  df->add_option("--to-rules", dfo.to_rules, "side B: iptables-save dump")->check(CLI::ExistingFile);
  df->add_option("--to-rules6", dfo.to_rules6, "side B: ip6tables-save dump")->check(CLI::ExistingFile);
  df->add_option("--to-ipsets", dfo.to_ipsets, "side B: ipset save output")->check(CLI::ExistingFile);
  df->add_option("--to-ipvs", dfo.to_ipvs, "side B: ipvsadm-save -n output")->check(CLI::ExistingFile);
  df->add_option("--to-nft", dfo.to_nft, "side B: nft list ruleset output")->check(CLI::ExistingFile);
  df->add_option("--packet", dfo.packets, "an extra flow, as trace's --packet (repeatable)");
  df->add_option("--format", dfo.format, "text (default), json, svg or html (one picture per class)")
      ->check(CLI::IsMember({"text", "json", "svg", "html"}));
  df->add_option("--limit", dfo.limit, "flows listed per class in text (default 5; 0 lists all)")->check(CLI::Range(0, 1000000));
  df->add_option("--seed", dfo.seed, "seed for random choices (default 1)");
  door.add(df, {{"--rules", InputKind::IptablesSave},
                {"--rules6", InputKind::IptablesSave},
                {"--ipsets", InputKind::IpsetSave},
                {"--ipvs", InputKind::Ipvsadm},
                {"--nft", InputKind::NftRuleset},
                {"--to-cluster", InputKind::KubeObjects},
                {"--to-proxy-config", InputKind::ProxyConfig},
                {"--to-rules", InputKind::IptablesSave},
                {"--to-rules6", InputKind::IptablesSave},
                {"--to-ipsets", InputKind::IpsetSave},
                {"--to-ipvs", InputKind::Ipvsadm},
                {"--to-nft", InputKind::NftRuleset}});

  // ---- gen-cluster
  auto* gc = app.add_subcommand("gen-cluster", "Write a synthetic cluster (Services, EndpointSlices, Nodes) as YAML");
  gc->footer(
      "The fixtures of the benchmarks and sweeps, for every other subcommand: Services svc-0..N-1 in\n"
      "namespace bench (ClusterIP 10.96.0.1 + i, port 80 -> 8080/TCP), one EndpointSlice each with\n"
      "--endpoints ready pods spread over the Nodes node-0.. (pod CIDRs 10.64.n.0/24). Same --seed,\n"
      "same bytes.\n"
      "Examples:\n"
      "  svcpath gen-cluster --services 50000 --endpoints 10 -o big.yaml\n"
      "  svcpath rules --cluster big.yaml --node node-0 --mode ipvs | head");
  cli::GenClusterOptions gco;
  gc->add_option("--services", gco.services, "number of Services (default 100)")->check(CLI::Range(1u, 1000000u));
  gc->add_option("--endpoints", gco.endpoints, "ready endpoints per Service (default 10)")->check(CLI::Range(0u, 1000u));
  gc->add_option("--nodes", gco.nodes, "number of Nodes (default 10)")->check(CLI::Range(1u, 1000u));
  gc->add_flag("--node-ports", gco.node_ports, "make every Service a NodePort (30000 + i mod 2768)");
  gc->add_option("--seed", gco.seed, "random seed for endpoint placement (default 1)");
  gc->add_option("--out,-o", gco.out, "YAML file to write (default: stdout)");

  // Flags that do nothing in the combination given: an error, never silently ignored.
  auto given = [](const CLI::App* a, const char* name) { return a->get_option(name)->count() > 0; };
  auto check_combinations = [&] {
    // Flags that read an iptables dump, and the flags that give one.
    struct OnDump {
      const CLI::App* app;
      const char* flag;
      std::initializer_list<const char*> dumps;
    };
    const std::initializer_list<const char*> node_dumps{"--rules", "--rules6", "--snapshot"},
        rules_dumps{"--rules", "--snapshot"};
    for (const OnDump& d :
         {OnDump{trace, "--iptables-backend", node_dumps}, OnDump{trace, "--noflush", node_dumps},
          OnDump{rp, "--iptables-backend", node_dumps}, OnDump{rp, "--noflush", node_dumps},
          OnDump{rcmd, "--noflush", rules_dumps}, OnDump{rcmd, "--counters", rules_dumps}, OnDump{rcmd, "-6", rules_dumps}}) {
      if (!d.app->parsed() || !given(d.app, d.flag)) continue;
      std::vector<std::string_view> names(d.dumps.begin(), d.dumps.end());
      if (std::any_of(names.begin(), names.end(), [&](std::string_view g) { return given(d.app, g.data()); })) continue;
      std::string list = fmt::format("{} or {}", fmt::join(names.begin(), names.end() - 1, ", "), names.back());
      throw CLI::RequiresError(d.flag, fmt::format("an iptables dump ({})", list));
    }
    if (rp->parsed() && given(rp, "--examples") && (!rpo.cluster.given() || rpo.cluster.modes().size() < 2))
      throw CLI::RequiresError("--examples", "two modes to compare (--cluster with --mode A,B)");
    if (trace->parsed()) {
      bool picture = to.format == "svg" || to.format == "html" || to.format == "dot";
      if (given(trace, "--outcome") && !(to.enumerate && picture))
        throw CLI::RequiresError("--outcome", "--enumerate and --format svg, html or dot");
      if (given(trace, "--color") && to.format != "text") throw CLI::RequiresError("--color", "--format text");
      if (given(trace, "--verbose") && to.format != "text") throw CLI::RequiresError("--verbose", "--format text");
    }
    if (gt->parsed())
      for (auto* f : {"--mode", "--policy-placement"})
        if (given(gt, f))
          throw CLI::ExcludesError(fmt::format("{} does nothing here: gen-traffic writes the same capture for every "
                                               "mode (give {} to replay)",
                                               f, f),
                                   CLI::ExitCodes::ExcludesError);
  };
  try {
    app.parse(argc, argv);
    check_combinations();
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help and --version are "parse errors" with status 0
    if (auto why = misspelt(app, argc, argv); !why.empty()) {
      std::cerr << why << "\n";
      return 2;
    }
    if (dynamic_cast<const CLI::RequiresError*>(&e) || dynamic_cast<const CLI::ExcludesError*>(&e)) {
      auto subs = app.get_subcommands();
      std::cerr << "svcpath" << (subs.empty() ? "" : " " + subs[0]->get_name()) << ": error: " << e.what() << "\n";
      return 2;
    }
    app.exit(e);
    return 2;
  }
  cap_memory(max_memory_mib);
  try {
    door.check();
    if (trace->parsed()) {
      return cli::run_trace(to, std::cout);
    }
    if (rcmd->parsed()) return cli::run_rules(ro, std::cout);
    if (vf->parsed()) {
      vo.progress = isatty(STDERR_FILENO) && vo.packets >= 100;
      return cli::run_verify(vo, std::cout);
    }
    if (gt->parsed()) return cli::run_gen_traffic(go, std::cout);
    if (gc->parsed()) return cli::run_gen_cluster(gco, std::cout);
    if (rep->parsed()) return cli::run_report(repo, std::cout);
    if (demo->parsed()) return cli::run_demo(dmo, std::cout);
    if (bm->parsed()) return cli::run_bench_model(bmo, std::cout);
    if (df->parsed()) return cli::run_diff(dfo, std::cout);
    if (rp->parsed()) {
      rpo.progress = isatty(STDERR_FILENO);
      rpo.timing = true;
      return cli::run_replay(rpo, std::cout);
    }
  } catch (const sim::WrongInput& e) {  // a file given to the wrong flag: the command line is wrong
    for (auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
    return 2;
  } catch (const LoadError& e) {
    for (auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
    return df->parsed() ? 2 : 1;  // diff's 1 means "something changes", as diff(1)'s
  } catch (const std::bad_alloc&) {
    std::cerr << fmt::format(
        "svcpath: error: out of memory: the input needs more than the {} MiB cap "
        "(--max-memory; 0 lifts it)\n",
        max_memory_mib);
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "svcpath: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
