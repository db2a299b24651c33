#pragma once
// ipvsadm's text forms: `ipvsadm-save` (restore commands) and `ipvsadm -L` listings, numeric (-n) or
// with service names, read into a ServiceTable and printed back numeric.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipvs/ipvs.hpp"

namespace svcpath::ipvs {

/// The services database ipvsadm's getservbyname consults for port names in `ipvsadm -L` and
/// `ipvsadm-save` without -n: a built-in copy of netbase's /etc/services (scripts/gen-ipvs-services)
/// by default, so a name means one port on every machine svcpath runs on, or the node's own file
/// (`--services`; RHEL's carries the whole IANA registry, netbase only the common names).
class ServicesDb {
 public:
  static const ServicesDb& netbase();
  /// /etc/services text: `name port/proto [aliases...] [# comment]`; throws LoadError at
  /// file:line:column for a malformed entry.
  static ServicesDb parse(std::string_view text, const std::string& file);
  static ServicesDb load_file(const std::string& path);

  /// The port of `name` for a service of protocol `pr` (TCP, UDP, SCTP; 0, a firewall-mark
  /// service, reads as TCP as ipvsadm -f sets it): the first entry wins, as the file scan does.
  std::optional<uint16_t> port(std::string_view name, uint8_t pr) const;
  /// What error messages call the database: "netbase's /etc/services" or the file's name.
  const std::string& source() const { return source_; }

 private:
  struct Entry {
    std::string name;
    uint16_t port;
    uint8_t proto;
  };
  std::vector<Entry> entries_;
  std::string source_;
};

/// ServicesDb::netbase().port(name, pr).
std::optional<uint16_t> service_port(std::string_view name, uint8_t pr);

/// Parses either format (detected from the first significant line), port names from `services`.
/// Throws LoadError with file:line:column for every problem.
void load_ipvsadm(std::string_view text, const std::string& file, ServiceTable& t,
                  const ServicesDb& services = ServicesDb::netbase());
ServiceTable load_ipvsadm_file(const std::string& path, const ServicesDb& services = ServicesDb::netbase());

/// `ipvsadm-save -n`: services in creation order, each followed by its real servers in the
/// kernel's list order.
std::string save_ipvsadm(const ServiceTable& t);
/// `ipvsadm -Ln` (stats=true adds the --stats columns instead of the connection counters).
std::string list_ipvsadm(const ServiceTable& t, unsigned conn_tab_size = 4096);

}  // namespace svcpath::ipvs
