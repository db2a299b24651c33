// The manifest loader against goldens: every example cluster and every edge case under
// tests/kube/objects/cases/ loads to the same objects, notes and diagnostics as the goldens
// written by the node-tree loader before the streaming one replaced it.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "core/diag.hpp"
#include "helpers.hpp"
#include "kube/objects/cluster.hpp"
#include "kube/objects/cluster_load.hpp"
#include "kube/objects/yaml_input.hpp"

using namespace svcpath;
using namespace svcpath::test;

namespace {

std::string loc(const k8s::Loc& l) { return fmt::format("{}:{}", l.file.substr(l.file.rfind('/') + 1), l.line); }

std::string labels(const std::map<std::string, std::string>& m) {
  std::string o = "{";
  for (auto& [k, v] : m) o += fmt::format("{}={};", k, v);
  return o + "}";
}

template <class T, class F>
std::string list(const std::vector<T>& v, F&& f) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + f(v[i]);
  return o + "]";
}

std::string addr(const Addr& a) { return a.str(); }
std::string opt_bool(const std::optional<bool>& b) { return b ? (*b ? "true" : "false") : "-"; }
std::string port(const k8s::IntOrName& p) { return p.is_name ? "name:" + p.name : std::to_string(p.num); }

std::string selector(const k8s::LabelSelector& s) {
  return labels(s.match_labels) + list(s.match_expressions, [](const k8s::SelectorRequirement& r) {
           return fmt::format("{} {} {}", r.key, r.op, list(r.values, [](const std::string& v) { return v; }));
         });
}

std::string rule(const k8s::PolicyRule& r) {
  auto ports = list(r.ports, [](const k8s::PolicyPort& p) {
    return fmt::format("{}/{}-{}", p.proto, p.port ? port(*p.port) : "-", p.end_port ? std::to_string(*p.end_port) : "-");
  });
  auto peers = list(r.peers, [](const k8s::PolicyPeer& p) {
    std::string o;
    if (p.pod_selector) o += "pod" + selector(*p.pod_selector);
    if (p.namespace_selector) o += "ns" + selector(*p.namespace_selector);
    if (p.ip_block) o += "ip" + p.ip_block->cidr.str() + list(p.ip_block->except, [](const Prefix& x) { return x.str(); });
    return o;
  });
  return ports + "->" + peers;
}

std::string dump_cluster(const k8s::Cluster& c) {
  std::string o;
  for (auto& s : c.services) {
    o += fmt::format(
        "Service {}/{} @{} type={} headless={} cips={} eips={} lbsrc={} aff={}/{} etp={} itp={} hc={} ext={} labels={}\n", s.ns,
        s.name, loc(s.loc), s.type, s.headless, list(s.cluster_ips, addr), list(s.external_ips, addr),
        list(s.lb_source_ranges, [](const std::string& x) { return x; }), s.affinity_client_ip, s.affinity_timeout, s.etp_local,
        s.itp_local, s.health_check_node_port, s.external_name, labels(s.labels));
    for (auto& p : s.ports)
      o += fmt::format("  port {} {}/{} -> {} node {}\n", p.name, p.proto, p.port, port(p.target_port), p.node_port);
    for (auto& i : s.lb_ingress) o += fmt::format("  ingress {} {}\n", i.ip.str(), i.ip_mode);
  }
  for (auto& s : c.slices) {
    o += fmt::format("EndpointSlice {}/{} @{} service={} type={}\n", s.ns, s.name, loc(s.loc), s.service_name, s.address_type);
    for (auto& e : s.endpoints)
      o += fmt::format("  ep {} ready={} serving={} term={} node={} zone={} pod={}\n", list(e.addresses, addr), opt_bool(e.ready),
                       opt_bool(e.serving), opt_bool(e.terminating), e.node_name, e.zone, e.target_pod);
    for (auto& p : s.ports) o += fmt::format("  port {} {}/{}\n", p.name, p.proto, p.port ? std::to_string(*p.port) : "-");
  }
  for (auto& n : c.nodes)
    o += fmt::format("Node {} @{} int={} ext={} cidrs={} labels={}\n", n.name, loc(n.loc), list(n.internal_ips, addr),
                     list(n.external_ips, addr), list(n.pod_cidrs, [](const Prefix& p) { return p.str(); }), labels(n.labels));
  for (auto& p : c.pods)
    o += fmt::format("Pod {}/{} @{} node={} hostnet={} ips={} ports={} labels={}\n", p.ns, p.name, loc(p.loc), p.node_name,
                     p.host_network, list(p.ips, addr),
                     list(p.ports, [](const k8s::ContainerPort& x) { return fmt::format("{}:{}/{}", x.name, x.proto, x.port); }),
                     labels(p.labels));
  for (auto& n : c.namespaces) o += fmt::format("Namespace {} @{} labels={}\n", n.name, loc(n.loc), labels(n.labels));
  for (auto& p : c.policies) {
    o += fmt::format("NetworkPolicy {}/{} @{} pods={} types={}{}\n", p.ns, p.name, loc(p.loc), selector(p.pod_selector),
                     p.ingress_type ? "I" : "", p.egress_type ? "E" : "");
    for (auto& r : p.ingress) o += "  in " + rule(r) + "\n";
    for (auto& r : p.egress) o += "  out " + rule(r) + "\n";
  }
  for (auto& n : c.notes) o += "note " + n.substr(n.rfind('/') + 1) + "\n";
  return o;
}

std::string dump_proxy_config(const k8s::ProxyConfig& pc) {
  return fmt::format("mode={} cidrs={} masqall={} bit={} detect={} bridge={} prefix={} npa={} lhnp={} sched={} strictarp={}\n",
                     int(pc.mode), list(pc.cluster_cidrs, [](const Prefix& p) { return p.str(); }), pc.masquerade_all,
                     pc.masquerade_bit, pc.detect_local_mode, pc.bridge_interface, pc.interface_name_prefix,
                     list(pc.node_port_addresses, [](const std::string& x) { return x; }), pc.localhost_nodeports,
                     pc.ipvs_scheduler, pc.strict_arp);
}

// What loading one file gives: the objects, or every diagnostic, with the directory left out.
template <class F>
std::string outcome(const std::string& path, F&& load) {
  std::string dir = std::filesystem::path(path).parent_path().string() + "/";
  std::string o;
  try {
    o = load();
  } catch (const LoadError& e) {
    for (auto& d : e.diagnostics()) o += d.str() + "\n";
  }
  for (size_t at; (at = o.find(dir)) != std::string::npos;) o.erase(at, dir.size());
  return o;
}

std::string load_both(const std::string& path) {
  std::string cluster = outcome(path, [&] {
    k8s::Cluster c;
    k8s::load_cluster_file(path, c);
    return dump_cluster(c);
  });
  std::string proxy = outcome(path, [&] { return dump_proxy_config(k8s::load_proxy_config(path)); });
  return "# load_cluster_file\n" + cluster + "# load_proxy_config\n" + proxy;
}

std::vector<std::string> inputs(const std::string& dir) {
  std::vector<std::string> v;
  for (auto& e : std::filesystem::directory_iterator(dir)) v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

// Every example cluster and every edge case.
std::vector<std::string> all_inputs() {
  auto files = inputs(source_dir() + "/examples/clusters");
  auto cases = inputs(source_dir() + "/tests/kube/objects/cases");
  files.insert(files.end(), cases.begin(), cases.end());
  return files;
}

}  // namespace

TEST_CASE("loader equivalence: example clusters and edge cases load as the goldens say") {
  auto files = all_inputs();
  REQUIRE(files.size() > 30);
  for (auto& f : files) {
    INFO(f);
    test::check_golden(source_dir() + "/tests/golden/kube/objects/" + std::filesystem::path(f).filename().string() + ".txt",
                       load_both(f));
  }
}

namespace {

// Each fast parser either refuses (and yaml-cpp reads the text instead) or gives exactly what
// yaml-cpp gives: the same objects at the same lines, or the same diagnostics. Returns how many
// texts a fast parser read.
int compare_parsers(const std::vector<std::string>& files) {
  int compared = 0;
  for (auto& f : files) {
    INFO(f);
    std::string text = yaml::read_text(f);
    auto through = [&](yaml::Parser p, bool& refused) {
      return outcome(f, [&] {
        k8s::Cluster c;
        refused = !k8s::load_cluster_text(f, text, p, c);
        return dump_cluster(c);
      });
    };
    bool refused = false;
    std::string want = through(yaml::Parser::YamlCpp, refused);
    for (auto p : yaml::parsers_for(text)) {
      if (p == yaml::Parser::YamlCpp) continue;
      std::string got = through(p, refused);
      if (refused) continue;
      ++compared;
      CHECK_MESSAGE(got == want, "parser " << int(p) << "\n--- yaml-cpp\n" << want << "--- fast\n" << got);
    }
  }
  return compared;
}

}  // namespace

TEST_CASE("loader equivalence: simdjson and libyaml read every input as yaml-cpp does, or refuse it") {
  CHECK(compare_parsers(all_inputs()) >= 30);  // all but the syntax errors
}

TEST_CASE("loader equivalence over a fuzz corpus (SVCPATH_MANIFEST_CORPUS=build/fuzz/corpus/manifest)") {
  const char* dir = std::getenv("SVCPATH_MANIFEST_CORPUS");
  if (!dir) return;
  MESSAGE("a fast parser read " << compare_parsers(inputs(dir)) << " inputs");
}

namespace {

// A List of n Services, one per line in JSON or five lines each in YAML, with a word where item
// `bad_port`'s port belongs and a bad address in the last one; returns the text and, for each
// item, the line it starts on and the line and column of its port and clusterIP values.
struct LongList {
  std::string text;
  std::vector<int> item_line;
  int port_line = 0, port_col = 0, ip_line = 0, ip_col = 0;
};

LongList long_list(int n, int bad_port, bool json) {
  LongList l;
  int line = 1;
  auto put = [&](const std::string& s) {
    l.text += s;
    line += int(std::count(s.begin(), s.end(), '\n'));
  };
  auto col_of = [&](const std::string& s, const std::string& what) { return int(s.find(what)) + 1; };
  put(json ? "{\"apiVersion\": \"v1\", \"items\": [\n" : "apiVersion: v1\nitems:\n");
  for (int i = 0; i < n; ++i) {
    std::string ip = i + 1 == n ? "10.96.999.1" : fmt::format("10.96.{}.{}", i / 250, i % 250 + 1);
    std::string port = i == bad_port ? "eighty" : "80";
    l.item_line.push_back(line);
    if (json) {
      std::string s = fmt::format(
          "  {{\"kind\": \"Service\", \"metadata\": {{\"name\": \"s{}\", \"namespace\": \"x\"}}, \"spec\": {{\"clusterIP\": "
          "\"{}\", \"ports\": [{{\"port\": {}}}]}}}}{}\n",
          i, ip, i == bad_port ? "\"eighty\"" : port, i + 1 == n ? "" : ",");
      if (i == bad_port) l.port_line = line, l.port_col = col_of(s, "\"eighty\"");
      if (i + 1 == n) l.ip_line = line, l.ip_col = col_of(s, "\"10.96.999.1\"");
      put(s);
    } else {
      put(fmt::format("- kind: Service\n  metadata: {{name: s{}, namespace: x}}\n  spec:\n", i));
      if (i + 1 == n) l.ip_line = line, l.ip_col = 16;
      put(fmt::format("    clusterIP: {}\n", ip));
      if (i == bad_port) l.port_line = line, l.port_col = 20;
      put(fmt::format("    ports: [{{port: {}}}]\n", port));
    }
  }
  put(json ? "], \"kind\": \"List\"}\n" : "kind: List\n");
  return l;
}

std::vector<Diagnostic> load_errors(const std::string& path) {
  try {
    k8s::Cluster c;
    k8s::load_cluster_file(path, c);
  } catch (const LoadError& e) {
    return e.diagnostics();
  }
  return {};
}

}  // namespace

TEST_CASE("loader: a long List streams item by item and keeps every place, in YAML and kubectl's JSON") {
  for (bool json : {false, true}) {
    INFO("json: " << json);
    auto path =
        std::filesystem::temp_directory_path() / fmt::format("svcpath-long-list-{}.{}", ::getpid(), json ? "json" : "yaml");
    // Without the two mistakes every Service loads, each at the line its item starts on.
    auto good = long_list(3000, -1, json);
    std::ofstream(path) << good.text.substr(0, good.text.rfind("10.96.999.1")) << "10.96.11.251"
                        << good.text.substr(good.text.rfind("10.96.999.1") + 11);
    k8s::Cluster c;
    k8s::load_cluster_file(path.string(), c);
    REQUIRE(c.services.size() == 3000);
    for (int i : {0, 1499, 2999}) {
      CHECK(c.services[size_t(i)].name == fmt::format("s{}", i));
      CHECK(c.services[size_t(i)].loc.line == good.item_line[size_t(i)]);
    }
    // With them, both are reported where they are, in order.
    auto bad = long_list(3000, 1500, json);
    std::ofstream(path) << bad.text;
    auto d = load_errors(path.string());
    std::filesystem::remove(path);
    REQUIRE(d.size() == 2);
    CHECK(d[0].line == bad.port_line);
    CHECK(d[0].column == bad.port_col);
    CHECK(d[0].message == "spec.ports[0].port: expected integer");
    CHECK(d[1].line == bad.ip_line);
    CHECK(d[1].column == bad.ip_col);
    CHECK(d[1].message.starts_with("spec.clusterIP: '10.96.999.1' is not an IP address"));
  }
}
