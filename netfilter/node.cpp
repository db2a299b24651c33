#include "netfilter/node.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace svcpath::nf {

namespace {
std::optional<int> int_value(std::string_view v) {
  auto n = parse_uint(v, 1000000);
  if (!n) return std::nullopt;
  return int(*n);
}
}  // namespace

std::string Sysctls::set(std::string_view key_in, std::string_view value) {
  std::string key(key_in);
  for (auto& c : key)
    if (c == '/') c = '.';
  auto v = int_value(value);
  auto need_int = [&]() -> std::string { return v ? "" : fmt::format("sysctl {} needs a number, not '{}'", key, value); };
  auto conf = [&](std::string_view prefix, std::string_view leaf, std::string& iface) {
    if (!key.starts_with(prefix) || !key.ends_with(leaf) || key.size() <= prefix.size() + leaf.size()) return false;
    iface = key.substr(prefix.size(), key.size() - prefix.size() - leaf.size());
    return true;
  };
  std::string ifn;
  if (key == "net.ipv4.ip_forward" || key == "net.ipv4.conf.all.forwarding") {
    if (auto e = need_int(); !e.empty()) return e;
    ip_forward = *v != 0;
  } else if (key == "net.ipv6.conf.all.forwarding") {
    if (auto e = need_int(); !e.empty()) return e;
    ip6_forward = *v != 0;
  } else if (conf("net.ipv4.conf.", ".rp_filter", ifn)) {
    if (auto e = need_int(); !e.empty()) return e;
    if (*v > 2) return fmt::format("rp_filter must be 0, 1 or 2, not {}", *v);
    if (ifn == "all") rp_filter_all = *v;
    else if (ifn != "default") rp_filter[ifn] = *v;
  } else if (conf("net.ipv4.conf.", ".route_localnet", ifn)) {
    if (auto e = need_int(); !e.empty()) return e;
    if (ifn == "all") route_localnet_all = *v != 0;
    else if (ifn != "default") route_localnet[ifn] = *v != 0;
  } else if (key == "net.bridge.bridge-nf-call-iptables") {
    if (auto e = need_int(); !e.empty()) return e;
    bridge_nf_call_iptables = *v != 0;
  } else if (key == "net.bridge.bridge-nf-call-ip6tables") {
    if (auto e = need_int(); !e.empty()) return e;
    bridge_nf_call_ip6tables = *v != 0;
  } else if (key == "net.netfilter.nf_conntrack_tcp_loose") {
    if (auto e = need_int(); !e.empty()) return e;
    tcp_loose = *v != 0;
  } else if (key == "net.netfilter.nf_conntrack_tcp_be_liberal") {
    if (auto e = need_int(); !e.empty()) return e;
    tcp_be_liberal = *v != 0;
  } else if (key == "net.netfilter.nf_conntrack_count") {
    // A busy node counts millions: more than the other keys' bound.
    auto n = parse_uint(value, UINT32_MAX);
    if (!n) return fmt::format("sysctl {} needs a number, not '{}'", key, value);
    ct_count = *n;
  } else if (key == "net.ipv4.vs.conntrack") {
    if (auto e = need_int(); !e.empty()) return e;
    vs_conntrack = *v != 0;
  } else if (key.starts_with("net.ipv4.vs.") || key.starts_with("net.ipv4.conf.") || key.starts_with("net.ipv6.conf.") ||
             key.starts_with("net.netfilter.") || key.starts_with("net.ipv4.") || key.starts_with("net.bridge.")) {
    other[key] = std::string(value);  // known families of keys that do not change a packet's path here
  } else {
    return fmt::format("unknown sysctl '{}'", key);
  }
  return "";
}

int Sysctls::rp_filter_for(const std::string& ifname) const {
  auto it = rp_filter.find(ifname);
  int dev = it == rp_filter.end() ? 0 : it->second;
  return std::max(rp_filter_all, dev);  // the kernel uses the larger of conf.all and conf.<dev>
}

bool Sysctls::route_localnet_for(const std::string& ifname) const {
  auto it = route_localnet.find(ifname);
  return route_localnet_all || (it != route_localnet.end() && it->second);
}

bool Sysctls::accept_local_for(const std::string& ifname) const {
  auto on = [&](const std::string& k) {
    auto it = other.find(k);
    return it != other.end() && it->second != "0";
  };
  return on("net.ipv4.conf.all.accept_local") || on("net.ipv4.conf." + ifname + ".accept_local");
}

Node::Node() {
  int16_t lo = add_interface("lo");
  ifs_[size_t(lo)].loopback = true;
  add_address(lo, {*Addr::parse("127.0.0.1"), 8});
  add_address(lo, {*Addr::parse("::1"), 128});
}

int16_t Node::add_interface(const std::string& name) {
  Interface i;
  i.name = name;
  i.index = int16_t(ifs_.size());
  ifs_.push_back(std::move(i));
  return int16_t(ifs_.size() - 1);
}

int16_t Node::find(std::string_view name) const {
  for (auto& i : ifs_)
    if (i.name == name) return i.index;
  return kNoIf;
}

void Node::add_address(int16_t ifindex, IfAddr a) {
  Interface& i = ifs_[size_t(ifindex)];
  i.addrs.push_back(a);
  local_.try_emplace(a.addr, i.index);
  if (i.loopback) loopback_nets_.push_back({i.index, a});
  else if (a.len != a.addr.bits()) {
    // Keep interface order (lookup and addr_type take the first match), whatever the call order.
    auto at = std::upper_bound(connected_.begin(), connected_.end(), i.index,
                               [](int16_t idx, const Connected& c) { return idx < c.ifindex; });
    connected_.insert(at, {i.index, a});
  }
}

void Node::add_default_route_if_none() {
  for (auto& r : routes_)
    if (r.type == RouteType::Unicast) return;
  Route r4, r6;
  r4.dst = Prefix{Addr::any(Family::V4), 0};
  r4.oif = ensure("eth0");
  r6.dst = Prefix{Addr::any(Family::V6), 0};
  r6.oif = r4.oif;
  routes_.push_back(r4);
  routes_.push_back(r6);
}

bool Node::is_local(const Addr& a) const {
  if (local_.contains(a)) return true;
  for (auto& [idx, x] : loopback_nets_)
    if (a.is_v4() && x.addr.is_v4() && a.masked(x.len) == x.addr.masked(x.len)) return true;
  return false;
}

std::optional<uint32_t> parse_route_table(std::string_view s) {
  if (s == "local") return rt_table::Local;
  if (s == "main") return rt_table::Main;
  if (s == "default") return rt_table::Default;
  if (s == "unspec") return rt_table::Unspec;
  if (auto v = parse_uint(s, 0xffffffffu)) return uint32_t(*v);
  return std::nullopt;
}

RouteResult Node::lookup(const Addr& dst, const RouteKey* key) const {
  // One table: longest prefix, then lowest metric. Connected routes live in main.
  auto in_table = [&](uint32_t table, RouteResult& res) {
    if (table == rt_table::Local) {
      if (is_local(dst)) {
        res = RouteResult{RouteType::Local, find("lo"), dst, std::nullopt};
        return true;
      }
      if (dst.is_limited_broadcast()) {
        res = RouteResult{RouteType::Broadcast, kNoIf, dst, std::nullopt};
        return true;
      }
    }
    int best_len = -1;
    uint32_t best_metric = 0;
    // Whether a route wins is decided before its result is built: most routes do not contain dst.
    auto better = [&](const Prefix& p, uint32_t metric) {
      return (int(p.len) > best_len || (int(p.len) == best_len && metric < best_metric)) && p.contains(dst);
    };
    auto take = [&](const Prefix& p, const RouteResult& r, uint32_t metric) {
      best_len = p.len;
      best_metric = metric;
      res = r;
    };
    if (table == rt_table::Main)
      for (auto& [idx, a] : connected_) {
        if (a.addr.fam != dst.fam) continue;
        Prefix net{a.addr.masked(a.len), a.len};
        if (!better(net, 0)) continue;
        RouteResult r{RouteType::Unicast, idx, dst, a.addr};
        // Subnet broadcast address (not for /31).
        if (dst.is_v4() && a.len < 31) {
          uint32_t host = ~(0xffffffffu << (32 - a.len));
          if ((dst.host4() & host) == host) r.type = RouteType::Broadcast;
        }
        take(net, r, 0);
      }
    for (auto& rt : routes_)
      if (rt.table == table && better(rt.dst, rt.metric))
        take(rt.dst, RouteResult{rt.type, rt.oif, rt.via ? *rt.via : dst, rt.src}, rt.metric);
    return best_len >= 0;
  };
  auto selects = [&](const RouteRule& r) {
    bool m = true;
    if (r.src_set) m = m && key && !key->src.is_unspecified() && r.src.contains(key->src);
    if (r.dst_set) m = m && r.dst.contains(dst);
    if (r.fwmask) m = m && key && ((key->mark ^ r.fwmark) & r.fwmask) == 0;
    if (!r.iif.empty()) m = m && key && key->iif == r.iif;
    if (!r.oif.empty()) m = false;  // a socket bound to a device is not modelled
    return m != r.invert;
  };
  RouteResult res;
  bool any_rule = false;
  for (auto& r : rules) {
    if (r.family != (dst.is_v4() ? Family::V4 : Family::V6)) continue;
    any_rule = true;
    if (!selects(r)) continue;
    switch (r.action) {
      case RouteRule::Action::Blackhole: return RouteResult{RouteType::Blackhole, kNoIf, dst, std::nullopt};
      case RouteRule::Action::Unreachable: return RouteResult{RouteType::Unreachable, kNoIf, dst, std::nullopt};
      case RouteRule::Action::Prohibit: return RouteResult{RouteType::Prohibit, kNoIf, dst, std::nullopt};
      case RouteRule::Action::Table:
        if (in_table(r.table, res)) return res;
        break;
    }
  }
  if (!any_rule)
    for (uint32_t t : {rt_table::Local, rt_table::Main, rt_table::Default})
      if (in_table(t, res)) return res;
  return RouteResult{};
}

std::optional<Addr> Node::select_source(int16_t oif, const Addr& nexthop) const {
  if (oif < 0) return std::nullopt;
  // IPv6 source selection's rule 1: the destination itself when it is one of ours.
  if (!nexthop.is_v4() && is_local(nexthop) && !nexthop.is_loopback()) return nexthop;
  const Interface& i = ifs_[size_t(oif)];
  const IfAddr* first = nullptr;
  for (auto& a : i.addrs) {
    if (a.addr.fam != nexthop.fam) continue;
    // Host-scope addresses (127/8, ::1) are never chosen for a universe-scope source, so a
    // packet masqueraded out of lo gets an address of another interface (inet_select_addr).
    if (a.addr.is_loopback()) continue;
    if (!first) first = &a;
    if (nexthop.masked(a.len) == a.addr.masked(a.len)) return a.addr;
  }
  if (first) return first->addr;
  // inet_select_addr falls back to any address of the host in the right family.
  for (auto& other : ifs_)
    if (!other.loopback)
      for (auto& a : other.addrs)
        if (a.addr.fam == nexthop.fam) return a.addr;
  return std::nullopt;
}

uint16_t Node::addr_type(const Addr& a, int16_t limit_dev) const {
  if (a.is_v4()) {
    uint32_t h = a.host4();
    if ((h >> 24) == 0 || h == 0xffffffffu) return addrtype::BROADCAST;  // zeronet / lbcast
    if (a.is_multicast()) return addrtype::MULTICAST;
  } else {
    if (a.is_unspecified()) return addrtype::UNSPEC;
    if (a.is_multicast()) return addrtype::MULTICAST;
  }
  // The local table: local addresses (127/8 whole) and subnet broadcasts; the first interface
  // (in index order) with either decides.
  int16_t local_if = kNoIf, bcast_if = kNoIf;
  if (auto it = local_.find(a); it != local_.end()) local_if = it->second;
  for (auto& [idx, x] : loopback_nets_)
    if (a.is_v4() && x.addr.is_v4() && a.masked(x.len) == x.addr.masked(x.len) && (local_if < 0 || idx < local_if)) {
      local_if = idx;
      break;
    }
  if (a.is_v4())
    for (auto& [idx, x] : connected_) {
      if (!x.addr.is_v4() || x.len >= 31) continue;
      uint32_t host = ~(0xffffffffu << (32 - x.len));
      if ((a.host4() & ~host) == (x.addr.host4() & ~host) && (a.host4() & host) == host) {
        bcast_if = idx;
        break;
      }
    }
  if (local_if >= 0 && (bcast_if < 0 || local_if <= bcast_if)) {
    if (limit_dev >= 0 && limit_dev != local_if) return addrtype::UNICAST;
    return addrtype::LOCAL;
  }
  if (bcast_if >= 0) return addrtype::BROADCAST;
  if (!a.is_v4()) {
    // IPv6 addrtype consults the route: unreachable/blackhole/prohibit routes show as such.
    auto r = lookup(a);
    if (r.type == RouteType::Unreachable) return addrtype::UNREACHABLE;
    if (r.type == RouteType::Blackhole) return addrtype::BLACKHOLE;
    if (r.type == RouteType::Prohibit) return addrtype::PROHIBIT;
  }
  return addrtype::UNICAST;
}

bool Node::joined(int16_t ifindex, const Addr& g) const {
  if (ifindex < 0 || !g.is_multicast()) return false;
  const Interface& i = iface(ifindex);
  for (auto& m : i.mcast_groups)
    if (m == g) return true;
  if (g.is_v4()) return g.host4() == 0xe0000001u;  // 224.0.0.1, all-hosts
  // ff0S::1 (all-nodes) for S = 1, 2; ff0S::2 (all-routers) for S = 1, 2 when forwarding (ipv6_add_dev).
  bool zero_mid = std::all_of(g.b.begin() + 2, g.b.begin() + 15, [](uint8_t x) { return x == 0; });
  uint8_t scope = g.b[1] & 0x0f;
  if (g.b[1] >> 4 == 0 && zero_mid && g.b[15] == 1 && (scope == 1 || scope == 2)) return true;
  if (g.b[1] >> 4 == 0 && zero_mid && g.b[15] == 2 && (scope == 1 || scope == 2) && sys.ip6_forward) return true;
  // ff02::1:ffXX:XXXX for each of the interface's IPv6 addresses.
  static constexpr uint8_t solicited[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  if (!std::equal(std::begin(solicited), std::end(solicited), g.b.begin())) return false;
  for (auto& a : i.addrs)
    if (!a.addr.is_v4() && std::equal(a.addr.b.begin() + 13, a.addr.b.end(), g.b.begin() + 13)) return true;
  return false;
}

PktType Node::pkt_type_for(const Addr& dst) const {
  if (dst.is_multicast()) return PktType::Multicast;
  if (addr_type(dst) == addrtype::BROADCAST) return PktType::Broadcast;
  return PktType::Host;
}

}  // namespace svcpath::nf
