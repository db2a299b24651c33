#pragma once
// ipvsadm's text forms: `ipvsadm-save -n` (restore commands) and `ipvsadm -Ln` listings (with the
// --stats / --rate columns when present), read into a ServiceTable and printed back.
#include <string>
#include <string_view>

#include "ipvs/ipvs.hpp"

namespace svcpath::ipvs {

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
