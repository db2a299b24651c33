// Loading a node snapshot archive (see snapshot.hpp): libarchive reads the tar.gz into memory, the
// node readers build the node and the conntrack table, and the live iptables back end is chosen.
#include "kube/sim/snapshot.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/diag.hpp"

namespace svcpath::sim {

namespace {

// Members are small text; a cap keeps a hostile archive from filling memory.
constexpr size_t kMaxMember = kMaxInputFileBytes;

std::map<std::string, std::string> read_archive(const std::string& path) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    throw LoadError(path, fmt::format("cannot read as a tar.gz snapshot: {}", archive_error_string(a.get())));
  std::map<std::string, std::string> out;
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string name = archive_entry_pathname(e);
    // One top directory (node-NAME-DATE/) holds the members; "./" prefixes are tar's.
    while (name.starts_with("./")) name.erase(0, 2);
    if (auto s = name.find('/'); s != std::string::npos) name.erase(0, s + 1);
    if (name.empty() || name.find('/') != std::string::npos) continue;
    std::string text;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) {
      if (text.size() + size_t(n) > kMaxMember) throw LoadError(path + ":" + name, "member too large");
      text.append(buf, size_t(n));
    }
    if (n < 0) throw LoadError(path + ":" + name, fmt::format("damaged archive: {}", archive_error_string(a.get())));
    out[name] = std::move(text);
  }
  if (r != ARCHIVE_EOF) throw LoadError(path, fmt::format("damaged archive: {}", archive_error_string(a.get())));
  return out;
}

// Whether an iptables-save dump printed table T (a "*T" line).
// iptables-nft-save prints an nft table of an xtables name that holds chains it cannot express as
// "# Table `nat' contains incompatible base-chains..." (or "... is incompatible..."), then an empty
// block for it: that table belongs to nft, not to iptables.
bool incompatible(std::string_view save, std::string_view table) {
  return save.find(fmt::format("# Table `{}' contains incompatible", table)) != std::string_view::npos ||
         save.find(fmt::format("# Table `{}' is incompatible", table)) != std::string_view::npos;
}

bool has_table(std::string_view save, std::string_view table) {
  if (incompatible(save, table)) return false;
  size_t at = 0;
  while ((at = save.find(fmt::format("*{}\n", table), at)) != std::string_view::npos) {
    if (at == 0 || save[at - 1] == '\n') return true;
    ++at;
  }
  return false;
}

}  // namespace

DumpRules count_rules(std::string_view s) {
  DumpRules d;
  size_t at = 0;
  while (at < s.size()) {
    auto nl = s.find('\n', at);
    std::string_view line = s.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    // iptables-save -c puts the counters first: "[0:0] -A CHAIN ...".
    if (line.starts_with("[")) {
      auto sp = line.find(' ');
      line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    }
    if (line.starts_with("-A ")) {
      ++d.rules;
      if (line.substr(3).starts_with("KUBE-")) d.kube = true;
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  return d;
}

static std::string without_incompatible_tables(std::string_view save) {
  std::string out;
  bool skipping = false;
  size_t at = 0;
  while (at < save.size()) {
    auto nl = save.find('\n', at);
    std::string_view line = save.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at + 1);
    at = nl == std::string_view::npos ? save.size() : nl + 1;
    if (line.starts_with("*")) {
      std::string_view name = line.substr(1);
      while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.remove_suffix(1);
      skipping = incompatible(save, name);
    }
    // Blank lines keep the member's line numbers for errors.
    out += skipping ? std::string_view("\n") : line;
    if (skipping && line.starts_with("COMMIT")) skipping = false;
  }
  return out;
}

std::string without_xtables_tables(std::string_view text, std::string_view nft4, std::string_view nft6) {
  static constexpr std::string_view kTables[] = {"filter", "nat", "mangle", "raw", "security"};
  std::string out;
  int depth = 0;
  bool skipping = false;
  size_t at = 0;
  while (at < text.size()) {
    auto nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at + 1);
    at = nl == std::string_view::npos ? text.size() : nl + 1;
    if (depth == 0 && !skipping) {
      for (auto t : kTables) {
        if ((line.starts_with(fmt::format("table ip {} {{", t)) && has_table(nft4, t)) ||
            (line.starts_with(fmt::format("table ip6 {} {{", t)) && has_table(nft6, t)))
          skipping = true;
      }
    }
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (!quoted && c == '{') ++depth;
      else if (!quoted && c == '}') --depth;
    }
    if (!skipping) out += line;
    if (depth <= 0) {
      depth = 0;
      skipping = false;
    }
  }
  return out;
}

size_t seed_conntrack(nf::Conntrack& ct, const std::vector<nf::CtEntry>& entries, uint64_t now_ns) {
  size_t clashes = 0;
  for (nf::CtEntry e : entries) {
    // A table that lists entries of a family has conntrack attached for it.
    ct.engage(e.orig.src.fam);
    e.expires_ns += now_ns;
    if (!ct.insert(e)) ++clashes;
  }
  return clashes;
}

Snapshot load_snapshot(const std::string& path) {
  Snapshot s;
  s.path = path;
  s.members = read_archive(path);
  if (!s.members.contains(member::kManifest))
    throw LoadError(path, "not a node snapshot: no manifest member (write one with scripts/svcpath-snapshot)");
  auto text = [&](const char* m) -> const std::string* {
    auto it = s.members.find(m);
    return it == s.members.end() ? nullptr : &it->second;
  };
  auto origin = [&](const char* m) { return fmt::format("{}:{}", path, m); };

  std::vector<Diagnostic> errs;
  auto collect = [&](auto&& f) {
    try {
      f();
    } catch (const LoadError& e) {
      errs.insert(errs.end(), e.diagnostics().begin(), e.diagnostics().end());
    }
  };
  // Links before addresses (kinds and masters), addresses before routes (connected prefixes).
  if (auto t = text(member::kLink)) collect([&] { read_ip_links(*t, origin(member::kLink), s.node); });
  if (auto t = text(member::kAddr)) collect([&] { read_ip_links(*t, origin(member::kAddr), s.node); });
  if (auto t = text(member::kRoute4)) collect([&] { read_ip_routes(*t, origin(member::kRoute4), s.node, s.notes); });
  if (auto t = text(member::kRoute6)) collect([&] { read_ip_routes(*t, origin(member::kRoute6), s.node, s.notes); });
  if (auto t = text(member::kRule4)) collect([&] { read_ip_rules(*t, origin(member::kRule4), Family::V4, s.node, s.notes); });
  if (auto t = text(member::kRule6)) collect([&] { read_ip_rules(*t, origin(member::kRule6), Family::V6, s.node, s.notes); });
  if (auto t = text(member::kMaddr)) collect([&] { read_ip_maddr(*t, origin(member::kMaddr), s.node); });
  if (auto t = text(member::kSysctl)) collect([&] { read_sysctl_all(*t, origin(member::kSysctl), s.node.sys); });
  for (const char* m : {member::kConntrack4, member::kConntrack6})
    if (auto t = text(m))
      collect([&] {
        auto v = read_conntrack_list(*t, origin(m));
        s.conntrack.insert(s.conntrack.end(), v.begin(), v.end());
      });
  if (!errs.empty()) throw LoadError(errs);

  // The live iptables back end: the one holding rules; kube-proxy writes through one of them.
  static const std::string none;
  auto get = [&](const char* m) -> const std::string& {
    auto t = text(m);
    return t ? *t : none;
  };
  DumpRules leg4 = count_rules(get(member::kLegacy4)), leg6 = count_rules(get(member::kLegacy6));
  DumpRules nft4 = count_rules(get(member::kNft4)), nft6 = count_rules(get(member::kNft6));
  size_t leg = leg4.rules + leg6.rules, nft = nft4.rules + nft6.rules;
  bool leg_kube = leg4.kube || leg6.kube, nft_kube = nft4.kube || nft6.kube;
  if (leg > 0 && nft > 0) {
    s.backend = leg_kube != nft_kube ? (leg_kube ? "legacy" : "nft") : (leg > nft ? "legacy" : "nft");
    s.notes.push_back(
        fmt::format("warning: both iptables back ends hold rules (legacy {}, nft {}); using {}{}: the kernel runs both", leg, nft,
                    s.backend, leg_kube != nft_kube ? " (kube-proxy's chains are there)" : " (more rules)"));
  } else if (leg > 0) {
    s.backend = "legacy";
  } else if (nft > 0) {
    s.backend = "nft";
  }
  if (!s.backend.empty()) {
    const char* m4 = s.backend == "legacy" ? member::kLegacy4 : member::kNft4;
    const char* m6 = s.backend == "legacy" ? member::kLegacy6 : member::kNft6;
    s.notes.push_back(fmt::format("iptables back end: {} ({} IPv4 and {} IPv6 rules{})", s.backend,
                                  (s.backend == "legacy" ? leg4 : nft4).rules, (s.backend == "legacy" ? leg6 : nft6).rules,
                                  (s.backend == "legacy" ? leg_kube : nft_kube) ? ", kube-proxy's chains" : ""));
    if (text(m4)) s.rules = origin(m4), add_input_member(s.rules, without_incompatible_tables(get(m4)));
    if (text(m6) && !get(m6).empty()) s.rules6 = origin(m6), add_input_member(s.rules6, without_incompatible_tables(get(m6)));
  } else {
    // No rules anywhere still makes a node: its routing decides. The empty dump stands in.
    s.notes.push_back("iptables back end: none holds rules");
    for (const char* m : {member::kNft4, member::kLegacy4})
      if (text(m)) {
        s.rules = origin(m), add_input_member(s.rules, without_incompatible_tables(get(m)));
        break;
      }
  }
  if (auto t = text(member::kIpset); t && !t->empty()) s.ipsets = origin(member::kIpset), add_input_member(s.ipsets, *t);
  if (auto t = text(member::kIpvs); t && !t->empty()) s.ipvs = origin(member::kIpvs), add_input_member(s.ipvs, *t);
  if (auto t = text(member::kNftRuleset)) {
    std::string own = without_xtables_tables(*t, get(member::kNft4), get(member::kNft6));
    if (own.find_first_not_of(" \t\r\n") != std::string::npos) {
      s.nft = origin(member::kNftRuleset);
      add_input_member(s.nft, std::move(own));
    }
  }
  if (!s.conntrack.empty()) s.notes.push_back(fmt::format("conntrack: {} entries", s.conntrack.size()));
  if (auto t = text(member::kKubeProxy)) {
    auto kp = kube_proxy_mode(*t);
    s.kube_proxy_mode = kp.mode;
    if (!kp.mode.empty()) s.notes.push_back(fmt::format("kube-proxy: {} mode ({})", kp.mode, kp.how));
    // What svcpath then simulates is the node's tables; say when the mode's own state is missing.
    if (kp.mode == "ipvs" && s.ipvs.empty())
      s.notes.push_back(
          "warning: kube-proxy runs in IPVS mode but the snapshot has no ipvsadm-save (install ipvsadm on the "
          "node and take it again): Services are not simulated");
    if (kp.mode == "nftables" && s.nft.empty())
      s.notes.push_back("warning: kube-proxy runs in nftables mode but the snapshot has no nft ruleset with its table");
  }
  return s;
}

KubeProxyMode kube_proxy_mode(std::string_view txt) {
  std::string proxy_mode, configz, chains;
  bool ipvs_device = false;
  size_t pos = 0;
  while (pos < txt.size()) {
    size_t nl = txt.find('\n', pos);
    std::string_view line = txt.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? txt.size() : nl + 1;
    auto tab = line.find('\t');
    if (tab == std::string_view::npos) continue;
    std::string_view key = line.substr(0, tab), val = line.substr(tab + 1);
    if (key == "proxyMode" && val != "unreachable") proxy_mode = std::string(val);
    else if (key == "configz" && val != "unreachable") configz = std::string(val);
    else if (key == "chains" && chains.empty()) chains = std::string(val);
    else if (key == "device" && val == "kube-ipvs0") ipvs_device = true;
  }
  for (const char* m : {"iptables", "ipvs", "nftables"})
    if (proxy_mode == m) return {m, "kube-proxy's /proxyMode"};
  if (!configz.empty()) {
    auto j = nlohmann::json::parse(configz, nullptr, false);
    if (!j.is_discarded() && j.is_object())
      for (auto& [group, cfg] : j.items())
        if (group.starts_with("kubeproxy.config.k8s.io") && cfg.is_object() && cfg.contains("mode") && cfg["mode"].is_string()) {
          std::string m = cfg["mode"].get<std::string>();
          // An empty mode is the platform default: iptables on Linux.
          if (m.empty() || m == "iptables" || m == "ipvs" || m == "nftables")
            return {m.empty() ? "iptables" : m,
                    m.empty() ? "kube-proxy's /configz: mode unset, the Linux default" : "kube-proxy's /configz"};
        }
  }
  if (ipvs_device) return {"ipvs", "the kube-ipvs0 device"};
  if (chains.starts_with("nft table kube-proxy")) return {"nftables", "kube-proxy's nft table"};
  if (!chains.empty()) return {"iptables", fmt::format("kube-proxy's chains: {}", chains)};
  return {};
}

}  // namespace svcpath::sim
