#pragma once
// Synthetic traffic for a node of a cluster: clients open connections to Services (and a share to
// non-Service addresses), popularity uniform or Zipf, arrivals Poisson. Only the client side of
// each connection is generated — the backend's answers depend on which backend a mode picks, so a
// generated capture is what a tap on the node's ingress would see before any reply.
// Streaming: connections in flight sit in a heap, so memory follows concurrency, not length.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/addr.hpp"
#include "core/packet.hpp"
#include "core/rng.hpp"

namespace svcpath::pcap {

struct TrafficModel {
  uint64_t seed = 1;
  uint64_t connections = 1000;
  double cps = 1000;          // new connections per second
  double zipf = 0;            // popularity exponent s; 0 = uniform
  uint32_t data_packets = 2;  // client data segments per TCP connection; requests per UDP flow
  double rtt_us = 200;        // spacing of one connection's packets
  double non_service = 0;     // share of connections to addresses that are no Service
  double rst = 0;             // share of TCP connections that end with RST instead of FIN
  // Client mix, as weights: pods on this node, pods on other nodes, external clients (to NodePorts,
  // LoadBalancer and external IPs), and the host itself.
  double local_pods = 1, remote_pods = 1, external = 1, host = 0;
  uint64_t start_ns = 1'700'000'000'000'000'000ull;
};

/// One place a client can send to: a Service port as the client addresses it.
struct Target {
  Addr ip;
  uint16_t port = 0;
  uint8_t proto = proto::TCP;
  bool external = false;    // reached from outside (NodePort, LB ingress, external IP)
  std::string service;      // "ns/name:port-name"
  std::string key() const;  // "172.30.0.10:53", as replay names it
};

/// Where clients come from: pods on this node, pods on other nodes, and the node itself (the
/// Kubernetes layer fills it from a cluster: kube/sim/traffic.hpp).
struct Clients {
  std::vector<Prefix> local_pods, remote_pods;
  std::vector<Addr> host;
};

struct GenStats {
  uint64_t connections = 0, packets = 0, non_service = 0;
  std::map<std::string, uint64_t> per_target;  // Target::key() -> connections
};

class Generator {
 public:
  /// Throws LoadError when there is nothing to send to.
  Generator(std::vector<Target> targets, Clients clients, const TrafficModel& m);
  /// The next packet in time order; false when every connection has finished.
  bool next(Packet& p);
  const GenStats& stats() const { return stats_; }

 private:
  struct Conn {
    uint64_t next_ns;
    uint64_t seq;  // arrival order: ties in time keep it, so output is deterministic
    FiveTuple t;
    uint32_t sent = 0, total = 0;
    bool rst = false;
    bool operator>(const Conn& o) const { return next_ns != o.next_ns ? next_ns > o.next_ns : seq > o.seq; }
  };
  void open(uint64_t at);
  Addr client_addr(int kind, Family f);
  double uniform01() { return double(rng_.next() >> 11) * 0x1.0p-53; }

  TrafficModel m_;
  Clients clients_;
  std::vector<Target> internal_, external_;
  std::vector<double> cdf_internal_, cdf_external_;
  Rng rng_;
  std::vector<Conn> heap_;
  uint64_t opened_ = 0, next_arrival_ = 0;
  GenStats stats_;
};

}  // namespace svcpath::pcap
