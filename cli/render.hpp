#pragma once
// Turning outcomes into what people read: kernel-TRACE-style text (coloured on a terminal) and
// stable JSON (docs/json.md).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/packet_spec.hpp"
#include "netfilter/datapath.hpp"

namespace svcpath::cli {

struct TextStyle {
  bool color = false;
  bool verbose = false;  // rule text under each rule line
};

std::string render_text(int index, const PacketSpec& spec, const Packet& pkt, const std::string& in,
                        const std::vector<nf::Outcome>& outcomes, bool enumerated, const TextStyle& st);

nlohmann::json outcome_json(const nf::Outcome& o);
nlohmann::json packet_json(const PacketSpec& spec, const Packet& pkt, const std::string& in);

/// "ip:port" / "[v6]:port" / "ip" for portless protocols.
std::string endpoint(const Addr& a, uint16_t port, uint8_t proto);

}  // namespace svcpath::cli
