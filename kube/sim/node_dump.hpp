#pragma once
// What a node prints about itself, read into the node model and the conntrack table: iproute2's
// JSON (ip -j addr/link/route/rule), ip maddr's text, sysctl -a and conntrack-tools' conntrack -L.
// Each reader parses one command's output once, collects every problem with its position
// (file:line:col for text, file plus the JSON path for JSON) and throws one LoadError.
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/conntrack.hpp"
#include "netfilter/node.hpp"

namespace svcpath::sim {

/// Things a dump holds that the model does not represent, said once on stderr by the caller.
using Notes = std::vector<std::string>;

/// `ip -j [-d] link show` or `ip -j [-d] addr show`: interfaces (lo merged into the node's own),
/// kinds from linkinfo (veth, bridge, vxlan... kept as plain interfaces; a bridge is marked),
/// bridge masters, device groups ("default" is 0) and, from addr, the addresses.
void read_ip_links(std::string_view text, const std::string& origin, nf::Node& node);

/// `ip -j route show table all` (-4 or -6): every table with its type, metric, gateway, device and
/// preferred source. Types the model has no route kind for (multicast, throw, anycast, nat) are
/// skipped and noted.
void read_ip_routes(std::string_view text, const std::string& origin, nf::Node& node, Notes& notes);

/// `ip -j rule` (-4 or -6, said by fam): policy-routing rules into node.rules. Rules with selectors
/// or actions the model does not have (goto, nop, ipproto, ports, uidrange, tos, l3mdev...) are
/// skipped and noted: loading them without the selector would widen them.
void read_ip_rules(std::string_view text, const std::string& origin, Family fam, nf::Node& node, Notes& notes);

/// `ip maddr show` (text; `ip -j maddr` exists only in newer iproute2): multicast groups joined per
/// interface into Interface::mcast_groups. Link-layer entries are skipped.
void read_ip_maddr(std::string_view text, const std::string& origin, nf::Node& node);

/// `sysctl -a` ("key = value" lines): the keys the model reads set their fields, every other key is
/// recorded in Sysctls::other.
void read_sysctl_all(std::string_view text, const std::string& origin, nf::Sysctls& sys);

/// `conntrack -L [-f ipv6] [-o extended]`: one entry per line with both tuples, the TCP state,
/// [ASSURED]/[UNREPLIED], mark=, zone=, and the remaining timeout (seconds) in expires_ns.
std::vector<nf::CtEntry> read_conntrack_list(std::string_view text, const std::string& origin);

}  // namespace svcpath::sim
