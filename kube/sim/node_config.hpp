#pragma once
// Building a Node from a small YAML file and from the command line's shorthand flags.
#include <string>
#include <string_view>

#include "netfilter/node.hpp"

namespace svcpath::nf {

/// Loads interfaces, routes, sysctls, neighbors and sockets from YAML (see docs/node-config.md).
/// Throws LoadError with file:line for every problem.
void load_node_config(const std::string& path, Node& node);

/// "--local-ip 10.0.0.10[/24][@eth0]": adds the address (to eth0 unless @IFACE). Returns "" or an error.
std::string apply_local_ip(Node& node, std::string_view spec);
/// "--route CIDR=IFACE[@GATEWAY]" or "default=IFACE". Returns "" or an error.
std::string apply_route(Node& node, std::string_view spec);

}  // namespace svcpath::nf
