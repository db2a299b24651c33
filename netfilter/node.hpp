#pragma once
// The node: interfaces with addresses, a route table, the sysctls that change a packet's fate, and
// the routing decisions (input and output) and address-type classification the kernel makes.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/addr.hpp"
#include "core/hash.hpp"
#include "core/packet.hpp"

namespace svcpath::nf {

/// What a route lookup says an address is, as bits 1 << RTN_* (what xt_addrtype and nftables'
/// `fib ... type` compare against).
namespace addrtype {
inline constexpr uint16_t UNSPEC = 1 << 0, UNICAST = 1 << 1, LOCAL = 1 << 2, BROADCAST = 1 << 3, ANYCAST = 1 << 4,
                          MULTICAST = 1 << 5, BLACKHOLE = 1 << 6, UNREACHABLE = 1 << 7, PROHIBIT = 1 << 8, THROW = 1 << 9,
                          NAT = 1 << 10, XRESOLVE = 1 << 11;
}

struct IfAddr {
  Addr addr;
  uint8_t len = 32;
};

struct Interface {
  std::string name;
  int16_t index = 0;
  std::vector<IfAddr> addrs;
  bool loopback = false;
  bool bridge = false;             // a bridge device (cni0, docker0)
  int16_t master = kNoIf;          // the bridge this port belongs to
  std::string kind;                // free text: "dummy", "veth", ...
  uint32_t group = 0;              // device group (ip link ... group N), what -m devgroup compares
  std::vector<Addr> mcast_groups;  // multicast groups joined on this interface (ip maddr)
};

enum class RouteType : uint8_t { Unicast, Local, Broadcast, Blackhole, Unreachable, Prohibit };

/// The routing tables iproute2 names (rt_tables' reserved ids); any other id is a policy table.
namespace rt_table {
inline constexpr uint32_t Unspec = 0, Default = 253, Main = 254, Local = 255;
}
/// A table as `ip route`/`ip rule` print it: main, local, default, unspec or a number.
std::optional<uint32_t> parse_route_table(std::string_view s);

struct Route {
  Prefix dst;
  int16_t oif = kNoIf;
  std::optional<Addr> via;
  std::optional<Addr> src;
  RouteType type = RouteType::Unicast;
  uint32_t metric = 0;
  uint32_t table = rt_table::Main;
};

/// A policy-routing rule (ip rule): the first matching rule by priority picks the table.
struct RouteRule {
  enum class Action : uint8_t { Table, Blackhole, Unreachable, Prohibit };
  uint32_t priority = 0;
  Family family = Family::V4;
  Prefix src, dst;
  bool src_set = false, dst_set = false;
  uint32_t fwmark = 0, fwmask = 0;  // fwmask 0 = no fwmark selector
  std::string iif, oif;             // empty = any
  bool invert = false;              // ip rule not ...
  Action action = Action::Table;
  uint32_t table = rt_table::Main;
};

struct RouteResult {
  RouteType type = RouteType::Unreachable;
  int16_t oif = kNoIf;
  Addr nexthop;             // gateway, or the destination when on-link
  std::optional<Addr> src;  // preferred source
};

struct Socket {
  uint8_t proto = proto::TCP;
  Addr addr;  // any address = wildcard
  uint16_t port = 0;
  bool transparent = false;
};

/// Sysctls the model reads; everything starts at the kernel's default.
struct Sysctls {
  bool ip_forward = false;                     // net.ipv4.ip_forward
  bool ip6_forward = false;                    // net.ipv6.conf.all.forwarding
  int rp_filter_all = 0;                       // net.ipv4.conf.all.rp_filter
  std::map<std::string, int> rp_filter;        // per interface
  bool route_localnet_all = false;             // net.ipv4.conf.all.route_localnet
  std::map<std::string, bool> route_localnet;  // per interface
  bool bridge_nf_call_iptables = true;         // net.bridge.bridge-nf-call-iptables (br_netfilter default)
  bool bridge_nf_call_ip6tables = true;
  bool tcp_loose = true;                     // net.netfilter.nf_conntrack_tcp_loose
  bool tcp_be_liberal = false;               // net.netfilter.nf_conntrack_tcp_be_liberal
  bool vs_conntrack = false;                 // net.ipv4.vs.conntrack
  uint64_t ct_count = 0;                     // net.netfilter.nf_conntrack_count (a node's; > 0: conntrack engaged)
  std::map<std::string, std::string> other;  // accepted, recorded, not modelled

  /// Sets "net.ipv4.ip_forward" (or the net/ipv4/ip_forward form). Returns an error text or "".
  std::string set(std::string_view key, std::string_view value);
  int rp_filter_for(const std::string& ifname) const;
  bool route_localnet_for(const std::string& ifname) const;
  /// net.ipv4.conf.{all,IF}.accept_local (recorded in `other`): a local address as a source from the wire.
  bool accept_local_for(const std::string& ifname) const;
};

class Node {
 public:
  Node();  // lo (127.0.0.1/8, ::1/128) exists from the start

  int16_t add_interface(const std::string& name);
  int16_t find(std::string_view name) const;
  int16_t ensure(const std::string& name) {
    int16_t i = find(name);
    return i >= 0 ? i : add_interface(name);
  }
  const Interface& iface(int16_t i) const { return ifs_[size_t(i)]; }
  Interface& iface(int16_t i) { return ifs_[size_t(i)]; }
  const std::vector<Interface>& interfaces() const { return ifs_; }
  std::string_view ifname(int16_t i) const {
    return i >= 0 && size_t(i) < ifs_.size() ? std::string_view(ifs_[size_t(i)].name) : std::string_view();
  }

  /// The only way addresses are added: it keeps the local-address index in step.
  void add_address(int16_t ifindex, IfAddr a);
  void add_route(Route r) { routes_.push_back(r); }
  /// When no route was configured, non-local destinations leave through eth0.
  void add_default_route_if_none();
  std::vector<Route>& routes() { return routes_; }
  const std::vector<Route>& routes() const { return routes_; }

  Sysctls sys;
  /// Policy-routing rules; empty means the kernel's defaults (local 0, main 32766, default 32767).
  std::vector<RouteRule> rules;
  std::vector<Socket> sockets;
  /// Whether a program listens on the NFQUEUE queues. Unknown: a packet queued gets the Unsimulated
  /// outcome (the listener's verdict cannot be known); false (--nfqueue none): the kernel's own
  /// answer, a drop, or ACCEPT for this table with --queue-bypass.
  enum class QueueListener : uint8_t { Unknown, None } nfqueue = QueueListener::Unknown;
  std::map<Addr, int16_t> neighbors;  // address -> bridge port it sits behind

  bool is_local(const Addr& a) const;
  /// An address configured on some interface (not the rest of 127/8): inet_lookup_ifaddr_rcu.
  bool has_address(const Addr& a) const { return local_.contains(a); }
  /// What a policy-routing rule can select on besides the destination (fib_rule_match).
  struct RouteKey {
    Addr src;                   // unspecified: a local socket that has not picked one
    std::string_view iif = {};  // "lo" for locally generated packets, as the kernel's flowi has it
    uint32_t mark = 0;
  };
  /// Route lookup (fib_lookup): the rules in priority order (the kernel's local, main and default
  /// when none are configured), each table's longest prefix, lowest metric. Without a key, rules
  /// with a source, interface or fwmark selector do not match.
  RouteResult lookup(const Addr& dst, const RouteKey* key = nullptr) const;
  /// The kernel's inet_select_addr: the address a packet leaving oif towards nexthop gets.
  std::optional<Addr> select_source(int16_t oif, const Addr& nexthop) const;
  /// RTN_* type as xt_addrtype sees it; limit_dev restricts LOCAL to that device's addresses.
  uint16_t addr_type(const Addr& a, int16_t limit_dev = kNoIf) const;
  /// Whether the interface has joined the multicast group: its configured groups plus the ones the
  /// kernel joins by itself (224.0.0.1 in ip_mc_up; ff02::1, ff01::1 and each address's
  /// solicited-node group in ipv6_add_dev / addrconf_join_solict; ff02::2 when forwarding).
  bool joined(int16_t ifindex, const Addr& group) const;
  /// Link-layer packet type for a destination as received.
  PktType pkt_type_for(const Addr& dst) const;

 private:
  struct AddrHash {
    size_t operator()(const Addr& a) const noexcept { return Fnv1a().mix(a.b.data(), a.b.size()).mix(uint64_t(a.fam), 1).h; }
  };
  struct Connected {
    int16_t ifindex;
    IfAddr a;
  };
  // Indexes over ifs_[*].addrs: kube-ipvs0 carries every ClusterIP, so linear scans per packet
  // would cost O(services). local_ maps each address to the first interface holding it.
  boost::unordered_flat_map<Addr, int16_t, AddrHash> local_;
  std::vector<Connected> loopback_nets_;  // lo's prefixes: all of 127/8 is local
  std::vector<Connected> connected_;      // non-host prefixes on other interfaces, in interface order

  std::vector<Interface> ifs_;
  std::vector<Route> routes_;
};

}  // namespace svcpath::nf
