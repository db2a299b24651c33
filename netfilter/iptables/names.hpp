#pragma once
// Name <-> value tables shared by the iptables parser and writer, spelled as the iptables
// extensions spell them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/addr.hpp"
#include "core/packet.hpp"

namespace svcpath::nf::names {

std::optional<uint8_t> tcp_flags(std::string_view list);  // "SYN,ACK", "ALL", "NONE"
std::string tcp_flags_str(uint8_t f);                     // "FIN,SYN,RST,ACK", "NONE"

// DCCP packet types by number (RFC 4340 5.1), as libxt_dccp names them; INVALID is 10.
std::optional<uint8_t> dccp_type(std::string_view s);
std::string_view dccp_type_name(unsigned t);

struct IcmpType {
  bool any = false;
  uint8_t type = 0, code_lo = 0, code_hi = 0xff;
};
std::optional<IcmpType> icmp_type(std::string_view s);  // "echo-request", "3/4", "8", "any"
std::optional<IcmpType> icmp6_type(std::string_view s);

std::optional<uint16_t> ctstates(std::string_view list);
std::string ctstates_str(uint16_t mask);
std::optional<uint32_t> ctstatus(std::string_view list);
std::string ctstatus_str(uint32_t mask);

std::optional<uint16_t> addrtypes(std::string_view list);
std::string addrtypes_str(uint16_t mask);

/// "5/sec" -> average interval in XT_LIMIT_SCALE units (10000 per second).
std::optional<uint32_t> limit_rate(std::string_view s);
std::string limit_rate_str(uint32_t avg);

std::optional<PktType> pkttype(std::string_view s);
std::string_view pkttype_str(PktType t);

/// Canonical --reject-with name for the family, accepting the documented aliases.
std::optional<std::string> reject_with(std::string_view s, Family fam);

std::optional<uint8_t> log_level(std::string_view s);

}  // namespace svcpath::nf::names
