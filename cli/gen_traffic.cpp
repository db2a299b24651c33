// svcpath gen-traffic: the synthetic model written as an Ethernet capture.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/diag.hpp"
#include "pcap/decode.hpp"
#include "kube/sim/traffic.hpp"
#include "pcap/generate.hpp"
#include "pcap/io.hpp"

namespace svcpath::cli {

namespace {

void parse_clients(const std::string& spec, pcap::TrafficModel& m) {
  m.local_pods = m.remote_pods = m.external = m.host = 0;
  size_t at = 0;
  while (at <= spec.size()) {
    size_t comma = spec.find(',', at);
    std::string item = spec.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    auto eq = item.find('=');
    std::string k = item.substr(0, eq);
    double w = 1;
    if (eq != std::string::npos) {
      size_t used = 0;
      try {
        w = std::stod(item.substr(eq + 1), &used);
      } catch (const std::exception&) {  // no number at all, or out of range
        used = 0;
      }
      if (used == 0 || used != item.size() - eq - 1 || w < 0)
        throw LoadError({{"--clients", 0, 0, fmt::format("'{}': the weight must be a number >= 0", item)}});
    }
    if (k == "local-pods") m.local_pods = w;
    else if (k == "remote-pods") m.remote_pods = w;
    else if (k == "external") m.external = w;
    else if (k == "host") m.host = w;
    else
      throw LoadError(
          {{"--clients", 0, 0, fmt::format("unknown client kind '{}' (kinds: local-pods, remote-pods, external, host)", k)}});
  }
}

}  // namespace

int run_gen_traffic(const GenTrafficOptions& o, std::ostream& out) {
  if (!o.cluster.given()) throw LoadError({{"gen-traffic", 0, 0, "give --cluster FILE... --node NAME"}});
  if (o.cps <= 0) throw LoadError({{"--cps", 0, 0, "connections per second must be > 0"}});
  if (o.non_service < 0 || o.non_service > 1) throw LoadError({{"--non-service", 0, 0, "a share between 0 and 1"}});
  if (o.rst < 0 || o.rst > 1) throw LoadError({{"--rst", 0, 0, "a share between 0 and 1"}});
  ClusterInput ci = load_cluster(o.cluster);
  pcap::TrafficModel m;
  m.seed = o.seed;
  m.connections = o.connections;
  m.cps = o.cps;
  m.zipf = o.zipf;
  m.non_service = o.non_service;
  m.rst = o.rst;
  m.rtt_us = o.rtt_us;
  m.data_packets = o.data_packets;
  parse_clients(o.clients, m);
  std::unique_ptr<pcap::Generator> gen;
  try {
    gen = std::make_unique<pcap::Generator>(sim::cluster_traffic(ci.cluster, ci.node, m));
  } catch (const LoadError& e) {
    throw LoadError({{"gen-traffic", 0, 0, fmt::format("node {}: {}", ci.node.name, e.diagnostics().front().message)}});
  }
  pcap::Writer w(o.out, pcap::link::Ethernet);
  std::vector<uint8_t> frame;
  Packet p;
  while (gen->next(p)) {
    auto ip = pcap::build(p);
    frame.assign({0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00});
    if (!p.t.src.is_v4()) frame[12] = 0x86, frame[13] = 0xdd;
    frame.insert(frame.end(), ip.begin(), ip.end());
    w.write(p.ts_ns, frame);
  }
  w.close();
  const pcap::GenStats& st = gen->stats();
  if (o.format == "json") {
    nlohmann::json j;
    j["file"] = o.out;
    j["connections"] = st.connections;
    j["packets"] = st.packets;
    j["non_service"] = st.non_service;
    j["per_target"] = st.per_target;
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // rule comments are bytes
    return 0;
  }
  out << fmt::format("wrote {}: {} packets, {} connections ({} to non-Service addresses)\n", o.out, st.packets, st.connections,
                     st.non_service);
  out << "connections per Service address:\n";
  for (auto& [k, n] : st.per_target) out << fmt::format("  {:<40} {:>8}\n", k, n);
  return 0;
}

}  // namespace svcpath::cli
