// svcpath verify: the user's dump against the local kernel. This side loads and validates every
// input with svcpath's own loaders (bad input gets file:line errors and never reaches the kernel),
// then runs the kernel side shipped as scripts/svcpath_kernel/verify.py, which the
// kernel-differential test uses too (docs/kernel-differential.md).
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/diag.hpp"
#include "netfilter/iptables/iptables.hpp"

namespace svcpath::cli {
namespace fs = std::filesystem;

namespace {

// The kernel module: $SVCPATH_KERNEL_DIR, else next to the checkout the binary was built in
// (build/<preset>/svcpath -> scripts/svcpath_kernel), else the installed share directory.
fs::path find_kernel_module() {
  if (const char* dir = std::getenv("SVCPATH_KERNEL_DIR"); dir && *dir) return fs::path(dir) / "verify.py";
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (fs::exists(p / "scripts/svcpath_kernel/verify.py")) return p / "scripts/svcpath_kernel/verify.py";
      if (fs::exists(p / "share/svcpath/svcpath_kernel/verify.py")) return p / "share/svcpath/svcpath_kernel/verify.py";
    }
  return {};
}

std::string self_path() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("svcpath") : exe.string();
}

}  // namespace

static bool link_local(const Addr& a) { return !a.is_v4() && a.b[0] == 0xfe && (a.b[1] & 0xc0) == 0x80; }

// A node config (JSON, node-config.md's keys) for the parts of a node the kernel side rebuilds.
static std::string snapshot_node_config(const nf::Node& n, bool v6) {
  nlohmann::json ifs = nlohmann::json::array(), routes = nlohmann::json::array();
  for (auto& i : n.interfaces()) {
    if (i.loopback) continue;
    nlohmann::json j{{"name", i.name}, {"addresses", nlohmann::json::array()}};
    // Link-local addresses are the kernel's own doing on every device; they are not configured.
    for (auto& a : i.addrs)
      if (a.addr.is_v4() || (v6 && !link_local(a.addr))) j["addresses"].push_back(fmt::format("{}/{}", a.addr.str(), a.len));
    if (i.master >= 0) j["master"] = std::string(n.ifname(i.master));
    ifs.push_back(std::move(j));
  }
  for (auto& r : n.routes()) {
    if (r.table != nf::rt_table::Main || r.type != nf::RouteType::Unicast || r.oif < 0 ||
        (!r.dst.addr.is_v4() && (!v6 || link_local(r.dst.addr))))
      continue;
    nlohmann::json j{{"dst", r.dst.str()}, {"dev", std::string(n.ifname(r.oif))}};
    if (r.via) j["via"] = r.via->str();
    routes.push_back(std::move(j));
  }
  // The sysctls the model reads that a namespace has (bridge ones need br_netfilter loaded).
  const nf::Sysctls& sy = n.sys;
  nlohmann::json sys{{"net.ipv4.ip_forward", int(sy.ip_forward)},
                     {"net.ipv4.conf.all.rp_filter", sy.rp_filter_all},
                     {"net.ipv4.conf.all.route_localnet", int(sy.route_localnet_all)},
                     {"net.netfilter.nf_conntrack_tcp_loose", int(sy.tcp_loose)},
                     {"net.netfilter.nf_conntrack_tcp_be_liberal", int(sy.tcp_be_liberal)}};
  if (v6) sys["net.ipv6.conf.all.forwarding"] = int(sy.ip6_forward);
  for (auto& [dev, v] : sy.rp_filter)
    if (n.find(dev) >= 0 && v) sys[fmt::format("net.ipv4.conf.{}.rp_filter", dev)] = v;
  for (auto& [dev, v] : sy.route_localnet)
    if (n.find(dev) >= 0 && v) sys[fmt::format("net.ipv4.conf.{}.route_localnet", dev)] = int(v);
  return nlohmann::json{{"interfaces", ifs}, {"routes", routes}, {"sysctls", sys}}.dump();
}

int run_verify(const VerifyOptions& o_in, std::ostream& out) {
  VerifyOptions o = o_in;
  std::optional<sim::Snapshot> snap;
  if (!o.snapshot.empty()) snap = open_snapshot(o.snapshot, &o.rules, &o.rules6, &o.ipsets, nullptr, &o.nft, nullptr);
  if (o.rules.empty() && o.rules6.empty() && o.nft.empty())
    throw LoadError({{"verify", 0, 0, "give the dump to verify: --rules FILE, --rules6 FILE or --nft FILE"}});
  // Everything loads here first, exactly as trace would load it.
  ClusterOptions no_cluster;
  std::string no_ipvs;
  build_lanes({o.rules, o.rules6, o.ipsets, no_ipvs, o.nft, no_cluster, o.node, o.seed});

  fs::path module = find_kernel_module();
  if (module.empty()) {
    out.flush();
    std::fprintf(stderr,
                 "svcpath verify: cannot run here: the kernel side (scripts/svcpath_kernel/verify.py) was not found "
                 "next to the binary; set SVCPATH_KERNEL_DIR\n");
    return kVerifyUnavailable;
  }
  std::vector<std::string> args{
      "python3", module.string(),        "--svcpath", self_path(), "--packets", std::to_string(o.packets),
      "--seed",  std::to_string(o.seed), "--backend", o.backend};
  // The kernel side reads files: a snapshot's members go to a private directory while it runs.
  fs::path members;
  struct Cleanup {
    fs::path& dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } cleanup{members};
  auto private_file = [&](const std::string& name, const std::string& text) {
    if (members.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "svcpath-verify-XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
      members = tmpl;
    }
    fs::path f = members / name;
    std::ofstream(f, std::ios::binary) << text;
    return f.string();
  };
  auto add = [&](const char* flag, const std::string& v) {
    if (v.empty()) return;
    if (!o.snapshot.empty() && v.starts_with(o.snapshot + ":")) {
      args.insert(args.end(), {flag, private_file(v.substr(o.snapshot.size() + 1), read_input_file(v))});
      return;
    }
    args.insert(args.end(), {flag, fs::absolute(v).string()});
  };
  // The kernel's iptables-restore reads neither `iptables -S` output nor CRLF: it gets the same
  // lines as restore input (the tables as svcpath inferred them).
  auto add_rules = [&](const char* flag, const std::string& v) {
    if (v.empty()) return;
    if (auto text = nf::kernel_restore_input(read_input_file(v)))
      args.insert(args.end(), {flag, private_file(std::string(flag + 2) + ".restore", *text)});
    else add(flag, v);
  };
  add_rules("--rules", o.rules);
  add_rules("--rules6", o.rules6);
  add("--ipsets", o.ipsets);
  add("--nft", o.nft);
  add("--node-config", o.node.node_config);
  if (snap && o.node.node_config.empty()) {
    // The snapshot's interfaces, addresses and main-table routes, as a node config the kernel side
    // recreates (it says what it could not: bridges' ports, other tables' routes are not rebuilt;
    // IPv6 only with IPv6 rules, as the kernel side enables it only then).
    add_input_member(o.snapshot + ":node.json", snapshot_node_config(snap->node, !o.rules6.empty()));
    add("--node-config", o.snapshot + ":node.json");
  }
  if (o.progress) args.push_back("--progress");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  out.flush();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    execvp("python3", argv.data());
    std::fprintf(stderr, "svcpath verify: cannot run here: python3: %s\n", std::strerror(errno));
    _exit(kVerifyUnavailable);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    int rc = WEXITSTATUS(status);
    return rc == 0 || rc == kVerifyDisagree || rc == kVerifyUnavailable ? rc : 1;
  }
  std::fprintf(stderr, "svcpath verify: the kernel side stopped (signal %d)\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return 1;
}

}  // namespace svcpath::cli
