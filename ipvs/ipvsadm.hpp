#pragma once
// ipvsadm's text forms: `ipvsadm-save` (restore commands) and `ipvsadm -L` listings, numeric (-n) or
// with service names, read into a ServiceTable and printed back numeric.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ipvs/ipvs.hpp"

namespace svcpath::ipvs {

/// The port ipvsadm's getservbyname gives `name` for a service of protocol `pr` (TCP, UDP, SCTP;
/// 0, a firewall-mark service, reads as TCP as ipvsadm -f sets it), from a built-in copy of
/// netbase's /etc/services (scripts/gen-ipvs-services), never the running machine's.
std::optional<uint16_t> service_port(std::string_view name, uint8_t pr);

/// Parses either format (detected from the first significant line). Throws LoadError with
/// file:line:column for every problem.
void load_ipvsadm(std::string_view text, const std::string& file, ServiceTable& t);
ServiceTable load_ipvsadm_file(const std::string& path);

/// `ipvsadm-save -n`: services in creation order, each followed by its real servers in the
/// kernel's list order.
std::string save_ipvsadm(const ServiceTable& t);
/// `ipvsadm -Ln` (stats=true adds the --stats columns instead of the connection counters).
std::string list_ipvsadm(const ServiceTable& t, unsigned conn_tab_size = 4096);

}  // namespace svcpath::ipvs
