#include "kube/sim/node_config.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/diag.hpp"
#include "kube/objects/yaml_input.hpp"

namespace svcpath::nf {

namespace {

// A table a node config names: unspec (0) is no table to route in.
std::optional<uint32_t> route_table(const std::string& s) {
  auto t = parse_route_table(s);
  if (t == rt_table::Unspec) return std::nullopt;
  return t;
}

std::optional<IfAddr> parse_ifaddr(std::string_view s, std::string& why) {
  auto slash = s.find('/');
  auto a = Addr::parse(s.substr(0, slash), &why);
  if (!a) return std::nullopt;
  unsigned len = a->bits();
  if (slash != std::string_view::npos) {
    auto v = parse_uint(s.substr(slash + 1), a->bits());
    if (!v) {
      why = fmt::format("'{}': bad prefix length", s);
      return std::nullopt;
    }
    len = unsigned(*v);
  }
  return IfAddr{*a, uint8_t(len)};
}

std::optional<Prefix> parse_dst(std::string_view s, std::string& why) {
  if (s == "default") return Prefix{Addr::any(Family::V4), 0};
  if (s == "default6") return Prefix{Addr::any(Family::V6), 0};
  return Prefix::parse(s, &why);
}

}  // namespace

std::string apply_local_ip(Node& node, std::string_view spec) {
  auto at = spec.find('@');
  std::string ifname = at == std::string_view::npos ? "eth0" : std::string(spec.substr(at + 1));
  std::string why;
  auto a = parse_ifaddr(spec.substr(0, at), why);
  if (!a) return fmt::format("--local-ip {}: {}", spec, why);
  if (ifname.empty()) return fmt::format("--local-ip {}: empty interface name after '@'", spec);
  // A bare address is a host address on the interface (no connected route).
  node.add_address(node.ensure(ifname), *a);
  return "";
}

std::string apply_route(Node& node, std::string_view spec) {
  auto eq = spec.find('=');
  if (eq == std::string_view::npos) return fmt::format("--route {}: expected CIDR=IFACE (or default=IFACE)", spec);
  std::string why;
  auto dst = parse_dst(spec.substr(0, eq), why);
  if (!dst) return fmt::format("--route {}: {}", spec, why);
  auto rest = spec.substr(eq + 1);
  auto at = rest.find('@');
  std::string ifname(rest.substr(0, at));
  if (ifname.empty()) return fmt::format("--route {}: missing interface", spec);
  Route r;
  r.dst = *dst;
  r.oif = node.ensure(ifname);
  if (at != std::string_view::npos) {
    auto gw = Addr::parse(rest.substr(at + 1), &why);
    if (!gw) return fmt::format("--route {}: {}", spec, why);
    r.via = *gw;
  }
  node.add_route(r);
  return "";
}

namespace {
void load_node_config_doc(const std::string& path, Node& node);
}

void load_node_config(const std::string& path, Node& node) {
  try {
    load_node_config_doc(path, node);
  } catch (const YAML::Exception& e) {
    // A field of the wrong shape the reader did not check first: an error at its place, not a crash.
    throw LoadError({{path, e.mark.line + 1, e.mark.column + 1, fmt::format("unexpected YAML shape: {}", e.msg)}});
  }
}

namespace {

void load_node_config_doc(const std::string& path, Node& node) {
  Diagnostics d(path);
  auto docs = load_yaml_documents(path);
  YAML::Node root = docs.empty() ? YAML::Node() : docs.front();
  auto err = [&](const YAML::Node& n, std::string msg) { d.error(n.Mark().line + 1, n.Mark().column + 1, std::move(msg)); };
  if (!root.IsMap()) {
    if (!root.IsNull()) err(root, "expected a mapping with interfaces, routes, rules, sysctls, neighbors, sockets");
    d.throw_if_errors();
    return;
  }
  auto str = [&](const YAML::Node& n, std::string_view what) -> std::optional<std::string> {
    if (!n || !n.IsScalar()) {
      err(n ? n : root, fmt::format("{}: expected a string", what));
      return std::nullopt;
    }
    return n.Scalar();
  };
  for (auto kv : root) {
    std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (key == "interfaces") {
      if (!v.IsSequence()) {
        err(v, "interfaces: expected a list");
        continue;
      }
      // Create every interface first so that 'master' may name one declared later.
      for (size_t i = 0; i < v.size(); ++i)
        if (auto n = str(v[i]["name"], fmt::format("interfaces[{}].name", i))) node.ensure(*n);
      for (size_t i = 0; i < v.size(); ++i) {
        const YAML::Node& it = v[i];
        auto name = it["name"] && it["name"].IsScalar() ? it["name"].Scalar() : std::string();
        if (name.empty()) continue;
        int16_t idx = node.find(name);
        for (auto f : it) {
          std::string k = f.first.Scalar();
          if (k == "name") continue;
          if (k == "addresses") {
            if (!f.second.IsSequence()) {
              err(f.second, fmt::format("interfaces[{}].addresses: expected a list", i));
              continue;
            }
            for (size_t j = 0; j < f.second.size(); ++j) {
              std::string why;
              auto s = str(f.second[j], fmt::format("interfaces[{}].addresses[{}]", i, j));
              if (!s) continue;
              auto a = parse_ifaddr(*s, why);
              if (!a) err(f.second[j], fmt::format("interfaces[{}].addresses[{}]: {}", i, j, why));
              else node.add_address(idx, *a);
            }
          } else if (k == "kind") {
            if (auto s = str(f.second, "kind")) {
              node.iface(idx).kind = *s;
              node.iface(idx).bridge = *s == "bridge";
            }
          } else if (k == "master") {
            if (auto s = str(f.second, "master")) {
              int16_t m = node.find(*s);
              if (m < 0) err(f.second, fmt::format("interfaces[{}].master: no interface '{}'", i, *s));
              else {
                node.iface(idx).master = m;
                node.iface(m).bridge = true;
              }
            }
          } else if (k == "multicast_groups") {
            // ip maddr: groups joined on this interface (224.0.0.1 and ff02::1 need not be listed).
            if (!f.second.IsSequence()) {
              err(f.second, fmt::format("interfaces[{}].multicast_groups: expected a list", i));
              continue;
            }
            for (size_t j = 0; j < f.second.size(); ++j) {
              auto s = str(f.second[j], fmt::format("interfaces[{}].multicast_groups[{}]", i, j));
              if (!s) continue;
              auto a = Addr::parse(*s);
              if (!a || !a->is_multicast())
                err(f.second[j], fmt::format("interfaces[{}].multicast_groups[{}]: '{}' is not a multicast address", i, j, *s));
              else node.iface(idx).mcast_groups.push_back(*a);
            }
          } else {
            err(f.first,
                fmt::format("interfaces[{}]: unknown field '{}' (name, addresses, kind, master, multicast_groups)", i, k));
          }
        }
      }
    } else if (key == "routes") {
      if (!v.IsSequence()) {
        err(v, "routes: expected a list");
        continue;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const YAML::Node& it = v[i];
        Route r;
        bool ok = true;
        std::string why;
        auto dst = str(it["dst"], fmt::format("routes[{}].dst", i));
        if (!dst) continue;
        auto p = parse_dst(*dst, why);
        if (!p) {
          err(it["dst"], fmt::format("routes[{}].dst: {}", i, why));
          continue;
        }
        r.dst = *p;
        for (auto f : it) {
          std::string k = f.first.Scalar();
          if (k == "dst") continue;
          auto s = str(f.second, fmt::format("routes[{}].{}", i, k));
          if (!s) {
            ok = false;
            continue;
          }
          if (k == "dev") {
            r.oif = node.find(*s);
            if (r.oif < 0) err(f.second, fmt::format("routes[{}].dev: no interface '{}'", i, *s)), ok = false;
          } else if (k == "via" || k == "src") {
            auto a = Addr::parse(*s, &why);
            if (!a) err(f.second, fmt::format("routes[{}].{}: {}", i, k, why)), ok = false;
            else (k == "via" ? r.via : r.src) = *a;
          } else if (k == "type") {
            if (*s == "unicast") r.type = RouteType::Unicast;
            else if (*s == "blackhole") r.type = RouteType::Blackhole;
            else if (*s == "unreachable") r.type = RouteType::Unreachable;
            else if (*s == "prohibit") r.type = RouteType::Prohibit;
            else
              err(f.second, fmt::format("routes[{}].type: '{}' (unicast, blackhole, unreachable, prohibit)", i, *s)), ok = false;
          } else if (k == "metric") {
            auto m = parse_uint(*s, 0xffffffff);
            if (!m) err(f.second, fmt::format("routes[{}].metric: expected a number", i)), ok = false;
            else r.metric = uint32_t(*m);
          } else if (k == "table") {
            auto t = route_table(*s);
            if (!t) err(f.second, fmt::format("routes[{}].table: '{}' (main, local, default or a number)", i, *s)), ok = false;
            else r.table = *t;
          } else {
            err(f.first, fmt::format("routes[{}]: unknown field '{}' (dst, dev, via, src, type, metric, table)", i, k));
            ok = false;
          }
        }
        if (r.type == RouteType::Unicast && r.oif < 0 && ok) {
          err(it, fmt::format("routes[{}]: a unicast route needs dev", i));
          ok = false;
        }
        if (ok) node.add_route(r);
      }
    } else if (key == "rules") {
      // ip rule: {priority, from, to, iif, fwmark: MARK[/MASK], not, table | action}.
      if (!v.IsSequence()) {
        err(v, "rules: expected a list");
        continue;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const YAML::Node& it = v[i];
        RouteRule r;
        bool ok = true, fam_set = false;
        std::string why;
        auto family = [&](const Prefix& p, const YAML::Node& at) {
          Family f = p.addr.is_v4() ? Family::V4 : Family::V6;
          if (fam_set && f != r.family) err(at, fmt::format("rules[{}]: from and to are of different families", i)), ok = false;
          r.family = f, fam_set = true;
        };
        for (auto f : it) {
          std::string k = f.first.Scalar();
          auto s = str(f.second, fmt::format("rules[{}].{}", i, k));
          if (!s) {
            ok = false;
            continue;
          }
          if (k == "priority") {
            auto n = parse_uint(*s, 0xffffffff);
            if (!n) err(f.second, fmt::format("rules[{}].priority: expected a number", i)), ok = false;
            else r.priority = uint32_t(*n);
          } else if (k == "from" || k == "to") {
            auto p = parse_dst(*s, why);
            if (!p) {
              err(f.second, fmt::format("rules[{}].{}: {}", i, k, why)), ok = false;
              continue;
            }
            family(*p, f.second);
            (k == "from" ? r.src : r.dst) = *p;
            (k == "from" ? r.src_set : r.dst_set) = true;
          } else if (k == "iif" || k == "oif") {
            (k == "iif" ? r.iif : r.oif) = *s;
          } else if (k == "fwmark") {
            auto vm = parse_value_mask(*s);
            if (!vm || !vm->mask) err(f.second, fmt::format("rules[{}].fwmark: expected MARK or MARK/MASK", i)), ok = false;
            else r.fwmark = vm->value, r.fwmask = vm->mask;
          } else if (k == "not") {
            r.invert = *s == "true" || *s == "1";
          } else if (k == "table") {
            auto t = route_table(*s);
            if (!t) err(f.second, fmt::format("rules[{}].table: '{}' (main, local, default or a number)", i, *s)), ok = false;
            else r.table = *t;
          } else if (k == "action") {
            if (*s == "blackhole") r.action = RouteRule::Action::Blackhole;
            else if (*s == "unreachable") r.action = RouteRule::Action::Unreachable;
            else if (*s == "prohibit") r.action = RouteRule::Action::Prohibit;
            else err(f.second, fmt::format("rules[{}].action: '{}' (blackhole, unreachable, prohibit)", i, *s)), ok = false;
          } else if (k == "family") {
            if (*s == "inet" || *s == "ipv4") r.family = Family::V4, fam_set = true;
            else if (*s == "inet6" || *s == "ipv6") r.family = Family::V6, fam_set = true;
            else err(f.second, fmt::format("rules[{}].family: '{}' (inet, inet6)", i, *s)), ok = false;
          } else {
            err(f.first, fmt::format("rules[{}]: unknown field '{}' (priority, from, to, iif, oif, fwmark, not, table, "
                                     "action, family)", i, k));
            ok = false;
          }
        }
        if (!it["priority"]) err(it, fmt::format("rules[{}]: needs a priority (as ip rule show prints it)", i)), ok = false;
        if (ok) node.rules.push_back(r);
      }
      std::stable_sort(node.rules.begin(), node.rules.end(), [](auto& a, auto& b) { return a.priority < b.priority; });
    } else if (key == "sysctls") {
      if (!v.IsMap()) {
        err(v, "sysctls: expected a mapping of key: value");
        continue;
      }
      for (auto f : v) {
        if (!f.second.IsScalar()) {
          err(f.second, fmt::format("sysctls.{}: expected a value", f.first.Scalar()));
          continue;
        }
        std::string e = node.sys.set(f.first.Scalar(), f.second.Scalar());
        if (!e.empty()) err(f.first, e);
      }
    } else if (key == "neighbors") {
      if (!v.IsSequence()) {
        err(v, "neighbors: expected a list");
        continue;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        auto a = str(v[i]["addr"], fmt::format("neighbors[{}].addr", i));
        auto port = str(v[i]["port"], fmt::format("neighbors[{}].port", i));
        if (!a || !port) continue;
        std::string why;
        auto ad = Addr::parse(*a, &why);
        int16_t pi = node.find(*port);
        if (!ad) err(v[i]["addr"], fmt::format("neighbors[{}].addr: {}", i, why));
        else if (pi < 0) err(v[i]["port"], fmt::format("neighbors[{}].port: no interface '{}'", i, *port));
        else node.neighbors[*ad] = pi;
      }
    } else if (key == "sockets") {
      if (!v.IsSequence()) {
        err(v, "sockets: expected a list");
        continue;
      }
      for (size_t i = 0; i < v.size(); ++i) {
        Socket s;
        std::string why;
        auto pr = str(v[i]["proto"], fmt::format("sockets[{}].proto", i));
        auto ad = str(v[i]["addr"], fmt::format("sockets[{}].addr", i));
        auto po = str(v[i]["port"], fmt::format("sockets[{}].port", i));
        if (!pr || !ad || !po) continue;
        auto p = proto::parse(*pr);
        auto a = Addr::parse(*ad, &why);
        auto port = parse_uint(*po, 65535);
        if (!p || !a || !port) {
          err(v[i], fmt::format("sockets[{}]: expected proto tcp|udp, an address and a port", i));
          continue;
        }
        s.proto = *p;
        s.addr = *a;
        s.port = uint16_t(*port);
        if (v[i]["transparent"]) s.transparent = v[i]["transparent"].as<std::string>() == "true";
        node.sockets.push_back(s);
      }
    } else {
      err(kv.first, fmt::format("unknown section '{}' (interfaces, routes, rules, sysctls, neighbors, sockets)", key));
    }
  }
  d.throw_if_errors();
}

}  // namespace

}  // namespace svcpath::nf
