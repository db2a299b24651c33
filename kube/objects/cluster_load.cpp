// Kubernetes manifests -> core::k8s values. Every field is checked as it is read; a bad one is
// reported with file:line:col and its path ("spec.ports[1].port: expected integer"), and loading
// goes on so one pass reports every problem.
#include <algorithm>
#include <fstream>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "kube/objects/cluster_load.hpp"
#include "core/diag.hpp"
#include "ipvs/ipvs.hpp"
#include "kube/objects/yaml_input.hpp"

namespace svcpath::k8s {

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (auto& r : match_expressions) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    bool in = has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    if (r.op == "In" && !in) return false;
    if (r.op == "NotIn" && in) return false;
    if (r.op == "Exists" && !has) return false;
    if (r.op == "DoesNotExist" && has) return false;
  }
  return true;
}

const Node* Cluster::node(std::string_view name) const {
  for (auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

namespace {

// kube-proxy reads Service and EndpointSlice addresses with netutils.ParseIPSloppy: the API server
// still accepts legacy IPv4 with leading zeros ("172.30.0.041"), read as decimal (41), not octal.
std::optional<Addr> parse_ip_sloppy(const std::string& s, std::string* why) {
  if (auto a = Addr::parse(s, why)) return a;
  std::string out;
  size_t start = 0;
  int parts = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && s[i] != '.') {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      continue;
    }
    std::string_view part(s.data() + start, i - start);
    if (part.empty()) return std::nullopt;
    while (part.size() > 1 && part[0] == '0') part.remove_prefix(1);
    out += (parts++ ? "." : "") + std::string(part);
    start = i + 1;
  }
  if (parts != 4) return std::nullopt;
  return Addr::parse(out, why);
}

}  // namespace

namespace {

class Reader {
 public:
  Reader(Diagnostics& d, std::string file) : d_(d), file_(std::move(file)) {}

  void err(const yaml::Ref& at, const std::string& path, const std::string& msg) {
    auto m = at.Mark();
    error(m.line + 1, m.column + 1, path.empty() ? msg : fmt::format("{}: {}", path, msg));
  }
  void error(int line, int column, std::string msg) {
    if (!holding_) return d_.error(line, column, std::move(msg));
    if (held_.size() < kMaxHeld) held_.push_back({file_, line, column, std::move(msg)});
  }
  // While a List's items stream in before its kind is known, their errors wait: take() ends the
  // wait, and the caller reports them (it was a List) or forgets them (it was not).
  void hold() { holding_ = true; }
  std::vector<Diagnostic> take() {
    holding_ = false;
    return std::move(held_);
  }
  void report(std::vector<Diagnostic>& held) {
    for (auto& h : held) d_.error(h.line, h.column, std::move(h.message));
  }
  Loc loc(const yaml::Ref& n) const { return {file_, n.Mark().line + 1}; }
  const std::string& file() const { return file_; }

  // A required or optional scalar string.
  std::optional<std::string> str(const yaml::Ref& parent, const char* key, const std::string& path, bool required) {
    yaml::Ref n = parent[key];
    if (!n || n.IsNull()) {
      if (required) err(parent, join(path, key), "required field is missing");
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      err(n, join(path, key), "expected a string");
      return std::nullopt;
    }
    return n.Scalar();
  }
  // An unquoted decimal integer, or nullopt.
  static std::optional<long long> decimal(const yaml::Ref& n) {
    if (!n.IsScalar() || n.Tag() == "!") return std::nullopt;
    const std::string& s = n.Scalar();
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || end != s.c_str() + s.size()) return std::nullopt;
    return v;
  }
  std::optional<int64_t> integer(const yaml::Ref& n, const std::string& p, int64_t lo, int64_t hi) {
    auto v = decimal(n);
    if (!v) {
      err(n, p, "expected integer");
      return std::nullopt;
    }
    if (*v < lo || *v > hi) {
      err(n, p, fmt::format("{} is out of range {}..{}", *v, lo, hi));
      return std::nullopt;
    }
    return *v;
  }
  std::optional<int64_t> integer(const yaml::Ref& parent, const char* key, const std::string& path, int64_t lo, int64_t hi,
                                 bool required) {
    yaml::Ref n = parent[key];
    if (!n || n.IsNull()) {
      if (required) err(parent, join(path, key), "required field is missing");
      return std::nullopt;
    }
    // The field's path is spelled out only for a message.
    if (auto v = decimal(n); v && *v >= lo && *v <= hi) return *v;
    return integer(n, join(path, key), lo, hi);
  }
  std::optional<bool> boolean(const yaml::Ref& parent, const char* key, const std::string& path) {
    yaml::Ref n = parent[key];
    if (!n || n.IsNull()) return std::nullopt;
    if (n.IsScalar() && n.Tag() != "!") {
      if (n.Scalar() == "true") return true;
      if (n.Scalar() == "false") return false;
    }
    err(n, join(path, key), "expected true or false");
    return std::nullopt;
  }
  // Calls f(item, "path[i]") for each element; a missing field is an empty list.
  template <class F>
  void each(const yaml::Ref& parent, const char* key, const std::string& path, F&& f) {
    yaml::Ref n = parent[key];
    if (!n || n.IsNull()) return;
    if (!n.IsSequence()) {
      err(n, join(path, key), "expected a list");
      return;
    }
    std::string list = join(path, key);
    for (size_t i = 0; i < n.size(); ++i) f(n[i], fmt::format("{}[{}]", list, i));
  }
  std::map<std::string, std::string> string_map(const yaml::Ref& parent, const char* key, const std::string& path) {
    std::map<std::string, std::string> m;
    yaml::Ref n = parent[key];
    if (!n || n.IsNull()) return m;
    if (!n.IsMap()) {
      err(n, join(path, key), "expected a mapping");
      return m;
    }
    for (auto kv : n) {
      if (!kv.second.IsScalar()) {
        err(kv.second, join(join(path, key), kv.first.Scalar().c_str()), "expected a string");
        continue;
      }
      m[kv.first.Scalar()] = kv.second.Scalar();
    }
    return m;
  }
  std::optional<Addr> addr(const yaml::Ref& n, const std::string& p) {
    if (!n.IsScalar()) {
      err(n, p, "expected an IP address");
      return std::nullopt;
    }
    std::string why;
    auto a = parse_ip_sloppy(n.Scalar(), &why);
    if (!a) err(n, p, why);
    return a;
  }
  std::optional<Prefix> prefix(const yaml::Ref& n, const std::string& p) {
    if (!n.IsScalar()) {
      err(n, p, "expected a CIDR");
      return std::nullopt;
    }
    std::string why;
    auto s = n.Scalar();
    if (s.find('/') == std::string::npos) {
      err(n, p, fmt::format("'{}' is not a CIDR (expected address/length)", s));
      return std::nullopt;
    }
    auto pf = Prefix::parse(s, &why);
    if (!pf) err(n, p, why);
    return pf;
  }
  std::optional<uint8_t> protocol(const yaml::Ref& parent, const std::string& path) {
    auto s = str(parent, "protocol", path, false);
    if (!s) return proto::TCP;  // the API default
    if (*s == "TCP") return proto::TCP;
    if (*s == "UDP") return proto::UDP;
    if (*s == "SCTP") return proto::SCTP;
    err(parent["protocol"], join(path, "protocol"), fmt::format("'{}' is not TCP, UDP or SCTP", *s));
    return std::nullopt;
  }
  std::optional<IntOrName> int_or_name(const yaml::Ref& n, const std::string& p) {
    if (!n.IsScalar()) {
      err(n, p, "expected a port number or name");
      return std::nullopt;
    }
    IntOrName v;
    const std::string& s = n.Scalar();
    bool digits = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(uint8_t(c)); });
    if (digits && n.Tag() != "!") {
      auto x = integer(n, p, 1, 65535);
      if (!x) return std::nullopt;
      v.num = uint16_t(*x);
    } else {
      if (s.empty() || s.size() > 15) {
        err(n, p, fmt::format("'{}' is not a valid port name (1..15 characters)", s));
        return std::nullopt;
      }
      v.is_name = true;
      v.name = s;
    }
    return v;
  }
  std::optional<LabelSelector> selector(const yaml::Ref& n, const std::string& p) {
    LabelSelector s;
    if (!n || n.IsNull()) return s;
    if (!n.IsMap()) {
      err(n, p, "expected a label selector");
      return std::nullopt;
    }
    s.match_labels = string_map(n, "matchLabels", p);
    each(n, "matchExpressions", p, [&](const yaml::Ref& e, const std::string& ep) {
      SelectorRequirement r;
      auto key = str(e, "key", ep, true);
      auto op = str(e, "operator", ep, true);
      if (!key || !op) return;
      if (*op != "In" && *op != "NotIn" && *op != "Exists" && *op != "DoesNotExist") {
        err(e["operator"], ep + ".operator", fmt::format("'{}' is not In, NotIn, Exists or DoesNotExist", *op));
        return;
      }
      r.key = *key;
      r.op = *op;
      each(e, "values", ep, [&](const yaml::Ref& v, const std::string& vp) {
        if (v.IsScalar()) r.values.push_back(v.Scalar());
        else err(v, vp, "expected a string");
      });
      if ((r.op == "In" || r.op == "NotIn") && r.values.empty()) err(e, ep + ".values", "must be non-empty for In and NotIn");
      if ((r.op == "Exists" || r.op == "DoesNotExist") && !r.values.empty())
        err(e, ep + ".values", "must be empty for Exists and DoesNotExist");
      s.match_expressions.push_back(std::move(r));
    });
    return s;
  }

  static std::string join(const std::string& path, const char* key) { return path.empty() ? std::string(key) : path + "." + key; }

 private:
  static constexpr size_t kMaxHeld = 50;  // no more reach the user (Diagnostics' own limit)
  Diagnostics& d_;
  std::string file_;
  bool holding_ = false;
  std::vector<Diagnostic> held_;
};

struct Meta {
  std::string ns, name;
  std::map<std::string, std::string> labels;
};

// RFC 1123 label (dots=false) or subdomain (dots=true), as Kubernetes validates names.
bool dns1123(std::string_view s, size_t max, bool dots) {
  if (s.empty() || s.size() > max) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s)
    if (!alnum(c) && c != '-' && !(dots && c == '.')) return false;
  return true;
}

// A name as it can be shown in a message: control bytes and non-ASCII as \xNN.
std::string printable(std::string_view s) {
  std::string o;
  for (unsigned char c : s.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f) o += char(c);
    else o += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > 80) o += "...";
  return o;
}

Meta meta(Reader& r, const yaml::Ref& obj, bool namespaced) {
  Meta m;
  yaml::Ref md = obj["metadata"];
  if (!md || md.IsNull()) {
    r.err(obj, "metadata", "required field is missing");
    return m;
  }
  if (!md.IsMap()) {
    r.err(md, "metadata", "expected a mapping");
    return m;
  }
  m.name = r.str(md, "name", "metadata", true).value_or("");
  if (namespaced) m.ns = r.str(md, "namespace", "metadata", false).value_or("default");
  // The API server's own name rules; anything else (a NUL, a space, stray bytes) is not from a cluster.
  if (!m.name.empty() && !dns1123(m.name, 253, true))
    r.err(
        md["name"], "metadata.name",
        fmt::format("'{}' is not a valid object name (lowercase letters, digits, '-' and '.', at most 253)", printable(m.name)));
  if (namespaced && !dns1123(m.ns, 63, false))
    r.err(md["namespace"], "metadata.namespace",
          fmt::format("'{}' is not a valid namespace name (lowercase letters, digits and '-', at most 63)", printable(m.ns)));
  m.labels = r.string_map(md, "labels", "metadata");
  return m;
}

void load_service(Reader& r, const yaml::Ref& o, Cluster& c) {
  Service s;
  Meta m = meta(r, o, true);
  s.ns = m.ns;
  s.name = m.name;
  s.labels = m.labels;
  s.loc = r.loc(o);
  yaml::Ref spec = o["spec"];
  if (!spec || !spec.IsMap()) {
    r.err(o, "spec", "required field is missing");
    return;
  }
  s.type = r.str(spec, "type", "spec", false).value_or("ClusterIP");
  if (s.type != "ClusterIP" && s.type != "NodePort" && s.type != "LoadBalancer" && s.type != "ExternalName")
    r.err(spec["type"], "spec.type", fmt::format("'{}' is not ClusterIP, NodePort, LoadBalancer or ExternalName", s.type));
  s.external_name = r.str(spec, "externalName", "spec", false).value_or("");
  // clusterIPs (dual-stack) wins over clusterIP; "None" means headless.
  std::vector<std::string> cips;
  r.each(spec, "clusterIPs", "spec", [&](const yaml::Ref& n, const std::string& p) {
    if (n.IsScalar()) cips.push_back(n.Scalar());
    else r.err(n, p, "expected a string");
  });
  if (cips.empty())
    if (auto one = r.str(spec, "clusterIP", "spec", false)) cips.push_back(*one);
  for (size_t i = 0; i < cips.size(); ++i) {
    if (cips[i] == "None") {
      s.headless = true;
      continue;
    }
    if (cips[i].empty()) continue;
    std::string why;
    auto a = parse_ip_sloppy(cips[i], &why);
    // An address from clusterIP is still reported under clusterIPs when that key is there. Where
    // clusterIPs has no element i (null, empty), yaml-cpp's lookup made one up with no place in the
    // file: line 0; a scalar throws BadSubscript, as it did.
    yaml::Ref ips = spec["clusterIPs"];
    bool placeless = ips && !ips.IsScalar() && !(ips.IsSequence() && i < ips.size());
    yaml::Ref at = placeless ? yaml::Ref() : ips ? ips[i] : spec["clusterIP"];
    std::string where = ips ? fmt::format("spec.clusterIPs[{}]", i) : "spec.clusterIP";
    if (!a && placeless) r.error(0, 0, fmt::format("{}: {}", where, why));
    else if (!a) r.err(at, where, why);
    else s.cluster_ips.push_back(*a);
  }
  r.each(spec, "externalIPs", "spec", [&](const yaml::Ref& n, const std::string& p) {
    if (auto a = r.addr(n, p)) s.external_ips.push_back(*a);
  });
  r.each(spec, "loadBalancerSourceRanges", "spec", [&](const yaml::Ref& n, const std::string& p) {
    if (!n.IsScalar()) return r.err(n, p, "expected a CIDR");
    std::string t = n.Scalar();
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    std::string why;
    if (!Prefix::parse(t, &why)) return r.err(n, p, why);
    s.lb_source_ranges.push_back(t);
  });
  std::set<std::string> port_names;
  r.each(spec, "ports", "spec", [&](const yaml::Ref& n, const std::string& p) {
    ServicePort sp;
    sp.name = r.str(n, "name", p, false).value_or("");
    auto pr = r.protocol(n, p);
    auto port = r.integer(n, "port", p, 1, 65535, true);
    if (!pr || !port) return;
    sp.proto = *pr;
    sp.port = uint16_t(*port);
    if (n["targetPort"]) {
      if (auto t = r.int_or_name(n["targetPort"], p + ".targetPort")) sp.target_port = *t;
    } else {
      sp.target_port.num = sp.port;
    }
    if (auto np = r.integer(n, "nodePort", p, 1, 65535, false)) sp.node_port = uint16_t(*np);
    if (!port_names.insert(sp.name + "/" + std::to_string(sp.proto) + "/" + std::to_string(sp.port)).second)
      r.err(n, p, "duplicate port");
    s.ports.push_back(sp);
  });
  if (auto sa = r.str(spec, "sessionAffinity", "spec", false)) {
    if (*sa == "ClientIP") s.affinity_client_ip = true;
    else if (*sa != "None") r.err(spec["sessionAffinity"], "spec.sessionAffinity", "expected None or ClientIP");
  }
  if (yaml::Ref cfg = spec["sessionAffinityConfig"]; cfg && cfg["clientIP"])
    if (auto t = r.integer(cfg["clientIP"], "timeoutSeconds", "spec.sessionAffinityConfig.clientIP", 1, 86400, false))
      s.affinity_timeout = int(*t);
  for (auto [key, dst] : {std::pair{"externalTrafficPolicy", &s.etp_local}, std::pair{"internalTrafficPolicy", &s.itp_local}}) {
    if (auto v = r.str(spec, key, "spec", false)) {
      if (*v == "Local") *dst = true;
      else if (*v != "Cluster") r.err(spec[key], Reader::join("spec", key), "expected Cluster or Local");
    }
  }
  if (auto h = r.integer(spec, "healthCheckNodePort", "spec", 1, 65535, false)) s.health_check_node_port = uint16_t(*h);
  if (yaml::Ref st = o["status"]; st && st["loadBalancer"])
    r.each(st["loadBalancer"], "ingress", "status.loadBalancer", [&](const yaml::Ref& n, const std::string& p) {
      if (!n["ip"]) return;  // hostname-only ingress: no VIP for kube-proxy
      auto a = r.addr(n["ip"], p + ".ip");
      if (!a) return;
      LbIngress in;
      in.ip = *a;
      in.ip_mode = r.str(n, "ipMode", p, false).value_or("VIP");
      s.lb_ingress.push_back(in);
    });
  c.services.push_back(std::move(s));
}

Endpoint load_endpoint(Reader& r, const yaml::Ref& n, const std::string& p, const std::string& ns) {
  Endpoint e;
  r.each(n, "addresses", p, [&](const yaml::Ref& a, const std::string& ap) {
    if (auto x = r.addr(a, ap)) e.addresses.push_back(*x);
  });
  if (yaml::Ref cond = n["conditions"]; cond && cond.IsMap()) {
    e.ready = r.boolean(cond, "ready", p + ".conditions");
    e.serving = r.boolean(cond, "serving", p + ".conditions");
    e.terminating = r.boolean(cond, "terminating", p + ".conditions");
  }
  e.node_name = r.str(n, "nodeName", p, false).value_or("");
  e.zone = r.str(n, "zone", p, false).value_or("");
  if (yaml::Ref tr = n["targetRef"]; tr && tr.IsMap() && tr["kind"] && tr["kind"].Scalar() == "Pod")
    e.target_pod = (tr["namespace"] ? tr["namespace"].Scalar() : ns) + "/" + (tr["name"] ? tr["name"].Scalar() : "");
  return e;
}

void load_slice(Reader& r, const yaml::Ref& o, Cluster& c) {
  EndpointSlice s;
  Meta m = meta(r, o, true);
  s.ns = m.ns;
  s.name = m.name;
  s.loc = r.loc(o);
  auto it = m.labels.find("kubernetes.io/service-name");
  if (it == m.labels.end()) {
    c.notes.push_back(fmt::format("{}:{}: EndpointSlice {}/{} has no kubernetes.io/service-name label; ignored", r.file(),
                                  s.loc.line, s.ns, s.name));
    return;
  }
  s.service_name = it->second;
  s.address_type = r.str(o, "addressType", "", true).value_or("IPv4");
  if (s.address_type != "IPv4" && s.address_type != "IPv6" && s.address_type != "FQDN")
    r.err(o["addressType"], "addressType", "expected IPv4, IPv6 or FQDN");
  r.each(o, "endpoints", "", [&](const yaml::Ref& n, const std::string& p) {
    if (s.address_type == "FQDN") return;
    Endpoint e = load_endpoint(r, n, p, s.ns);
    for (auto& a : e.addresses)
      if ((a.is_v4()) != (s.address_type == "IPv4"))
        r.err(n, p + ".addresses", fmt::format("{} is not an {} address", a.str(), s.address_type));
    s.endpoints.push_back(std::move(e));
  });
  r.each(o, "ports", "", [&](const yaml::Ref& n, const std::string& p) {
    EndpointPort ep;
    ep.name = r.str(n, "name", p, false).value_or("");
    auto pr = r.protocol(n, p);
    if (!pr) return;
    ep.proto = *pr;
    if (auto v = r.integer(n, "port", p, 1, 65535, false)) ep.port = uint16_t(*v);
    s.ports.push_back(ep);
  });
  c.slices.push_back(std::move(s));
}

// Legacy v1 Endpoints become one slice per subset and family, as the EndpointSlice mirroring
// controller would produce (notReadyAddresses: ready=false).
void load_endpoints(Reader& r, const yaml::Ref& o, Cluster& c) {
  Meta m = meta(r, o, true);
  int k = 0;
  r.each(o, "subsets", "", [&](const yaml::Ref& sub, const std::string& p) {
    EndpointSlice s4, s6;
    s4.ns = s6.ns = m.ns;
    s4.service_name = s6.service_name = m.name;
    s4.name = fmt::format("{}-legacy-{}", m.name, k);
    s6.name = s4.name + "-v6";
    s6.address_type = "IPv6";
    s4.loc = s6.loc = r.loc(sub);
    ++k;
    for (auto [key, ready_binding] : {std::pair{"addresses", true}, std::pair{"notReadyAddresses", false}}) {
      bool ready = ready_binding;  // lambdas may not capture structured bindings before C++20's fix (clang 14)
      r.each(sub, key, p, [&](const yaml::Ref& n, const std::string& ap) {
        auto a = r.addr(n["ip"], ap + ".ip");
        if (!a) return;
        Endpoint e;
        e.addresses.push_back(*a);
        e.ready = ready;
        e.node_name = r.str(n, "nodeName", ap, false).value_or("");
        (a->is_v4() ? s4 : s6).endpoints.push_back(e);
      });
    }
    r.each(sub, "ports", p, [&](const yaml::Ref& n, const std::string& pp) {
      EndpointPort ep;
      ep.name = r.str(n, "name", pp, false).value_or("");
      auto pr = r.protocol(n, pp);
      auto v = r.integer(n, "port", pp, 1, 65535, true);
      if (!pr || !v) return;
      ep.proto = *pr;
      ep.port = uint16_t(*v);
      s4.ports.push_back(ep);
      s6.ports.push_back(ep);
    });
    if (!s4.endpoints.empty()) c.slices.push_back(s4);
    if (!s6.endpoints.empty()) c.slices.push_back(s6);
  });
}

void load_node(Reader& r, const yaml::Ref& o, Cluster& c) {
  Node n;
  Meta m = meta(r, o, false);
  n.name = m.name;
  n.labels = m.labels;
  n.loc = r.loc(o);
  if (yaml::Ref spec = o["spec"]) {
    std::vector<std::string> seen;
    r.each(spec, "podCIDRs", "spec", [&](const yaml::Ref& x, const std::string& p) {
      if (auto pf = r.prefix(x, p)) n.pod_cidrs.push_back(*pf);
    });
    if (n.pod_cidrs.empty() && spec["podCIDR"])
      if (auto pf = r.prefix(spec["podCIDR"], "spec.podCIDR")) n.pod_cidrs.push_back(*pf);
  }
  if (yaml::Ref st = o["status"])
    r.each(st, "addresses", "status", [&](const yaml::Ref& x, const std::string& p) {
      auto type = r.str(x, "type", p, true);
      auto addr = r.str(x, "address", p, true);
      if (!type || !addr) return;
      if (*type != "InternalIP" && *type != "ExternalIP") return;  // Hostname, InternalDNS...
      std::string why;
      auto a = Addr::parse(*addr, &why);
      if (!a) return r.err(x["address"], p + ".address", why);
      (*type == "InternalIP" ? n.internal_ips : n.external_ips).push_back(*a);
    });
  c.nodes.push_back(std::move(n));
}

void load_pod(Reader& r, const yaml::Ref& o, Cluster& c) {
  Pod p;
  Meta m = meta(r, o, true);
  p.ns = m.ns;
  p.name = m.name;
  p.labels = m.labels;
  p.loc = r.loc(o);
  if (yaml::Ref spec = o["spec"]) {
    p.node_name = r.str(spec, "nodeName", "spec", false).value_or("");
    p.host_network = r.boolean(spec, "hostNetwork", "spec").value_or(false);
    r.each(spec, "containers", "spec", [&](const yaml::Ref& ct, const std::string& cp) {
      r.each(ct, "ports", cp, [&](const yaml::Ref& n, const std::string& pp) {
        ContainerPort port;
        port.name = r.str(n, "name", pp, false).value_or("");
        auto pr = r.protocol(n, pp);
        auto v = r.integer(n, "containerPort", pp, 1, 65535, true);
        if (!pr || !v) return;
        port.proto = *pr;
        port.port = uint16_t(*v);
        p.ports.push_back(port);
      });
    });
  }
  if (yaml::Ref st = o["status"]) {
    r.each(st, "podIPs", "status", [&](const yaml::Ref& n, const std::string& pp) {
      if (auto a = r.addr(n["ip"], pp + ".ip")) p.ips.push_back(*a);
    });
    if (p.ips.empty() && st["podIP"])
      if (auto a = r.addr(st["podIP"], "status.podIP")) p.ips.push_back(*a);
  }
  c.pods.push_back(std::move(p));
}

void load_namespace(Reader& r, const yaml::Ref& o, Cluster& c) {
  Namespace n;
  Meta m = meta(r, o, false);
  n.name = m.name;
  n.labels = m.labels;
  n.loc = r.loc(o);
  c.namespaces.push_back(std::move(n));
}

void load_service_cidr(Reader& r, const yaml::Ref& o, Cluster& c) {
  meta(r, o, false);
  yaml::Ref spec = o["spec"];
  if (!spec || !spec.IsMap()) return r.err(o, "spec", "required field is missing");
  r.each(spec, "cidrs", "spec", [&](const yaml::Ref& n, const std::string& p) {
    if (auto pf = r.prefix(n, p)) c.service_cidrs.push_back(*pf);
  });
}

void load_policy(Reader& r, const yaml::Ref& o, Cluster& c) {
  NetworkPolicy np;
  Meta m = meta(r, o, true);
  np.ns = m.ns;
  np.name = m.name;
  np.loc = r.loc(o);
  yaml::Ref spec = o["spec"];
  if (!spec || !spec.IsMap()) return r.err(o, "spec", "required field is missing");
  if (!spec["podSelector"]) r.err(spec, "spec.podSelector", "required field is missing");
  if (auto s = r.selector(spec["podSelector"], "spec.podSelector")) np.pod_selector = *s;
  auto rules = [&](const char* key, const char* peers_key, std::vector<PolicyRule>& out) {
    r.each(spec, key, "spec", [&](const yaml::Ref& n, const std::string& p) {
      PolicyRule rule;
      r.each(n, "ports", p, [&](const yaml::Ref& pn, const std::string& pp) {
        PolicyPort port;
        auto pr = r.protocol(pn, pp);
        if (!pr) return;
        port.proto = *pr;
        if (pn["port"]) port.port = r.int_or_name(pn["port"], pp + ".port");
        if (auto e = r.integer(pn, "endPort", pp, 1, 65535, false)) {
          port.end_port = uint16_t(*e);
          if (!port.port || port.port->is_name) r.err(pn["endPort"], pp + ".endPort", "needs a numeric port");
          else if (*e < port.port->num) r.err(pn["endPort"], pp + ".endPort", "must not be below port");
        }
        rule.ports.push_back(port);
      });
      r.each(n, peers_key, p, [&](const yaml::Ref& pn, const std::string& pp) {
        PolicyPeer peer;
        if (pn["podSelector"]) peer.pod_selector = r.selector(pn["podSelector"], pp + ".podSelector");
        if (pn["namespaceSelector"]) peer.namespace_selector = r.selector(pn["namespaceSelector"], pp + ".namespaceSelector");
        if (yaml::Ref ib = pn["ipBlock"]) {
          IpBlock b;
          auto cidr = r.str(ib, "cidr", pp + ".ipBlock", true);
          if (cidr) {
            if (auto pf = r.prefix(ib["cidr"], pp + ".ipBlock.cidr")) b.cidr = *pf;
            r.each(ib, "except", pp + ".ipBlock", [&](const yaml::Ref& e, const std::string& ep) {
              if (auto pf = r.prefix(e, ep)) b.except.push_back(*pf);
            });
            peer.ip_block = b;
          }
          if (peer.pod_selector || peer.namespace_selector)
            r.err(pn, pp, "ipBlock cannot be combined with podSelector or namespaceSelector");
        }
        if (!peer.pod_selector && !peer.namespace_selector && !peer.ip_block)
          r.err(pn, pp, "a peer needs podSelector, namespaceSelector or ipBlock");
        rule.peers.push_back(std::move(peer));
      });
      out.push_back(std::move(rule));
    });
  };
  rules("ingress", "from", np.ingress);
  rules("egress", "to", np.egress);
  bool types_given = false;
  r.each(spec, "policyTypes", "spec", [&](const yaml::Ref& n, const std::string& p) {
    types_given = true;
    if (n.IsScalar() && n.Scalar() == "Ingress") np.ingress_type = true;
    else if (n.IsScalar() && n.Scalar() == "Egress") np.egress_type = true;
    else r.err(n, p, "expected Ingress or Egress");
  });
  if (!types_given) {
    // API default: Ingress always; Egress when egress rules are present.
    np.ingress_type = true;
    np.egress_type = spec["egress"] && spec["egress"].IsSequence() && spec["egress"].size() > 0;
  }
  c.policies.push_back(std::move(np));
}

bool is_list_kind(const std::string& kind) { return kind == "List" || kind.ends_with("List"); }

void load_kind(Reader& r, const yaml::Ref& o, const std::string& kind, Cluster& c, int depth);

void load_object(Reader& r, const yaml::Ref& o, Cluster& c, int depth) {
  if (!o || o.IsNull()) return;
  if (!o.IsMap()) return r.err(o, "", "expected a Kubernetes object (a mapping with kind)");
  if (auto kind = r.str(o, "kind", "", true)) load_kind(r, o, *kind, c, depth);
}

void load_kind(Reader& r, const yaml::Ref& o, const std::string& kind, Cluster& c, int depth) {
  if (is_list_kind(kind)) {
    if (depth > 2) return r.err(o, "items", "lists nested too deep");
    yaml::Ref items = o["items"];
    if (items && !items.IsSequence()) return r.err(items, "items", "expected a list");
    if (items)
      for (auto it : items) load_object(r, it, c, depth + 1);
    return;
  }
  if (kind == "Service") load_service(r, o, c);
  else if (kind == "EndpointSlice") load_slice(r, o, c);
  else if (kind == "Endpoints") load_endpoints(r, o, c);
  else if (kind == "Node") load_node(r, o, c);
  else if (kind == "Pod") load_pod(r, o, c);
  else if (kind == "Namespace") load_namespace(r, o, c);
  else if (kind == "NetworkPolicy") load_policy(r, o, c);
  else if (kind == "ServiceCIDR") load_service_cidr(r, o, c);
  else c.notes.push_back(fmt::format("{}:{}: skipped kind {} (not used by svcpath)", r.file(), o.Mark().line + 1, kind));
}

template <class T>
void append(std::vector<T>& dst, std::vector<T>& src) {
  if (dst.empty()) dst.swap(src);
  else dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  src.clear();
}

void append(Cluster& dst, Cluster& src) {
  append(dst.services, src.services);
  append(dst.slices, src.slices);
  append(dst.nodes, src.nodes);
  append(dst.pods, src.pods);
  append(dst.namespaces, src.namespaces);
  append(dst.policies, src.policies);
  append(dst.service_cidrs, src.service_cidrs);
  append(dst.notes, src.notes);
}

// A field of the wrong shape (a scalar where a mapping belongs, say) that the reader did not check
// first: still an error at the place in the file, never a crash. As yaml-cpp's node tree did, it
// ends the reading of its document.
void shape_error(Reader& r, const YAML::Exception& e) {
  r.error(e.mark.line + 1, e.mark.column + 1, fmt::format("unexpected YAML shape: {}", e.msg));
}

// Objects from a streamed file. A List's items arrive before its kind may have been read (kubectl's
// JSON puts "items" before "kind"), so they load into `items_` with their errors held, and join the
// cluster once the document shows it was a List.
class ClusterSink final : public yaml::Sink {
 public:
  ClusterSink(Reader& r, Cluster& c) : r_(r), c_(c) {}

  void item(yaml::Ref it) override {
    if (aborted_) return;
    r_.hold();
    try {
      load_object(r_, it, items_, 1);
    } catch (const YAML::Exception& e) {
      shape_error(r_, e);
      aborted_ = true;
    }
  }
  void document(yaml::Doc& doc, bool items_streamed) override {
    yaml::Ref root = doc.root();
    try {
      if (!items_streamed) return load_object(r_, root, c_, 0);
      auto held = r_.take();
      Cluster items = std::exchange(items_, Cluster());
      aborted_ = false;
      // The root is a mapping (it had an items key): the checks load_object makes before a List's
      // items, whose objects and errors then count.
      auto kind = r_.str(root, "kind", "", true);
      if (kind && is_list_kind(*kind)) {
        r_.report(held);
        append(c_, items);
      } else if (kind) {
        load_kind(r_, root, *kind, c_, 0);
      }
    } catch (const YAML::Exception& e) {
      shape_error(r_, e);
    }
  }

 private:
  Reader& r_;
  Cluster& c_;
  Cluster items_;
  bool aborted_ = false;
};

}  // namespace

bool load_cluster_text(const std::string& path, const std::string& text, yaml::Parser parser, Cluster& c) {
  Diagnostics d(path);
  Reader r(d, path);
  ClusterSink sink(r, c);
  if (!yaml::stream_documents(path, text, parser, sink)) return false;
  d.throw_if_errors();
  return true;
}

void load_cluster_file(const std::string& path, Cluster& out) {
  std::string text = yaml::read_text(path);
  Cluster c;
  // A parser that refuses the text leaves no trace: the next one starts over.
  for (auto parser : yaml::parsers_for(text)) {
    c = Cluster();
    if (load_cluster_text(path, text, parser, c)) break;
  }
  append(out, c);
}

void check_cluster(const Cluster& c) {
  std::set<std::pair<std::string, std::string>> services;
  for (auto& s : c.services) services.emplace(s.ns, s.name);
  std::vector<Diagnostic> d;
  for (auto& sl : c.slices)
    if (!services.count({sl.ns, sl.service_name}))
      d.push_back({sl.loc.file, sl.loc.line, 0,
                   fmt::format("EndpointSlice {}/{} belongs to Service {}/{}, which is not in the input "
                               "(give the Service's manifest too)",
                               sl.ns, sl.name, sl.ns, sl.service_name)});
  if (!d.empty()) throw LoadError(std::move(d));
}

namespace {

ProxyConfig load_proxy_config_doc(const std::string& path, const yaml::Ref* cfg);

// Keeps the last KubeProxyConfiguration document of a file.
class ProxyConfigSink final : public yaml::Sink {
 public:
  bool stream_items() const override { return false; }
  void item(yaml::Ref) override {}
  void document(yaml::Doc& doc, bool) override {
    yaml::Ref root = doc.root();
    if (root.IsMap() && root["kind"] && root["kind"].Scalar() == "KubeProxyConfiguration") {
      cfg = std::move(doc);
      found = true;
    }
  }
  yaml::Doc cfg;
  bool found = false;
};

}  // namespace

ProxyConfig load_proxy_config(const std::string& path) {
  std::string text = yaml::read_text(path);
  ProxyConfigSink sink;
  for (auto parser : yaml::parsers_for(text)) {
    sink = ProxyConfigSink();
    if (yaml::stream_documents(path, text, parser, sink)) break;
  }
  yaml::Ref root = sink.cfg.root();
  try {
    return load_proxy_config_doc(path, sink.found ? &root : nullptr);
  } catch (const YAML::Exception& e) {
    throw LoadError({{path, e.mark.line + 1, e.mark.column + 1, fmt::format("unexpected YAML shape: {}", e.msg)}});
  }
}

std::optional<ProxyMode> parse_proxy_mode(std::string_view s) {
  if (s == "iptables") return ProxyMode::Iptables;
  if (s == "ipvs") return ProxyMode::Ipvs;
  if (s == "nftables") return ProxyMode::Nftables;
  return std::nullopt;
}

namespace {

ProxyConfig load_proxy_config_doc(const std::string& path, const yaml::Ref* cfg) {
  Diagnostics d(path);
  Reader r(d, path);
  ProxyConfig pc;
  pc.loc = {path, 1};
  if (!cfg) throw LoadError({{path, 1, 0, "no kind: KubeProxyConfiguration document in this file"}});
  const yaml::Ref& o = *cfg;
  if (auto m = r.str(o, "mode", "", false); m && !m->empty()) {
    if (auto mode = parse_proxy_mode(*m)) pc.mode = *mode;
    else r.err(o["mode"], "mode", "expected iptables, ipvs or nftables");
  }
  if (auto cc = r.str(o, "clusterCIDR", "", false); cc && !cc->empty()) {
    size_t start = 0;
    while (start <= cc->size()) {
      auto comma = cc->find(',', start);
      std::string part = cc->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      std::string why;
      auto pf = Prefix::parse(part, &why);
      if (!pf) r.err(o["clusterCIDR"], "clusterCIDR", why);
      else pc.cluster_cidrs.push_back(*pf);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (auto v = r.boolean(o, "masqueradeAll", "")) pc.masquerade_all = *v;
  if (yaml::Ref ipt = o["iptables"]) {
    if (auto v = r.boolean(ipt, "masqueradeAll", "iptables")) pc.masquerade_all = *v;
    if (auto v = r.integer(ipt, "masqueradeBit", "iptables", 0, 31, false)) pc.masquerade_bit = int(*v);
    if (auto v = r.boolean(ipt, "localhostNodePorts", "iptables")) pc.localhost_nodeports = *v;
  }
  if (auto m = r.str(o, "detectLocalMode", "", false); m && !m->empty()) {
    if (*m != "ClusterCIDR" && *m != "NodeCIDR" && *m != "BridgeInterface" && *m != "InterfaceNamePrefix")
      r.err(o["detectLocalMode"], "detectLocalMode", "expected ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix");
    pc.detect_local_mode = *m;
  }
  if (yaml::Ref dl = o["detectLocal"]) {
    pc.bridge_interface = r.str(dl, "bridgeInterface", "detectLocal", false).value_or("");
    pc.interface_name_prefix = r.str(dl, "interfaceNamePrefix", "detectLocal", false).value_or("");
  }
  r.each(o, "nodePortAddresses", "", [&](const yaml::Ref& n, const std::string& p) {
    if (!n.IsScalar()) return r.err(n, p, "expected a CIDR or \"primary\"");
    std::string why;
    if (n.Scalar() != "primary" && !Prefix::parse(n.Scalar(), &why)) return r.err(n, p, why);
    pc.node_port_addresses.push_back(n.Scalar());
  });
  if (yaml::Ref ipvs = o["ipvs"]) {
    if (auto s = r.str(ipvs, "scheduler", "ipvs", false); s && !s->empty()) {
      // kube-proxy's validateIPVSSchedulerMethod: a scheduler the kernel has.
      if (!ipvs::known_scheduler(*s))
        r.err(ipvs["scheduler"], "ipvs.scheduler",
              fmt::format("unknown scheduler '{}' (rr, wrr, lc, wlc, sed, nq, sh, dh, mh)", *s));
      pc.ipvs_scheduler = *s;
    }
    if (auto v = r.boolean(ipvs, "strictARP", "ipvs")) pc.strict_arp = *v;
  }
  d.throw_if_errors();
  if (pc.detect_local_mode == "BridgeInterface" && pc.bridge_interface.empty())
    throw LoadError({{path, 0, 0, "detectLocalMode BridgeInterface needs detectLocal.bridgeInterface"}});
  if (pc.detect_local_mode == "InterfaceNamePrefix" && pc.interface_name_prefix.empty())
    throw LoadError({{path, 0, 0, "detectLocalMode InterfaceNamePrefix needs detectLocal.interfaceNamePrefix"}});
  return pc;
}

}  // namespace

}  // namespace svcpath::k8s
