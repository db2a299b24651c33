#include "pcap/generate.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "core/tuple.hpp"

namespace svcpath::pcap {

std::string Target::key() const { return FiveTuple::endpoint(ip, port, proto); }

namespace {

// Popularity: rank r (0-based) gets weight 1/(r+1)^s. Computed by hand, not with std::
// distributions, whose output differs between standard libraries: --seed must mean the same bytes.
std::vector<double> zipf_cdf(size_t n, double s) {
  std::vector<double> cdf(n);
  double acc = 0;
  for (size_t r = 0; r < n; ++r) cdf[r] = acc += 1.0 / std::pow(double(r + 1), s);
  for (double& x : cdf) x /= acc;
  return cdf;
}

size_t pick(const std::vector<double>& cdf, double u) {
  return size_t(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin()) % cdf.size();
}

}  // namespace

Generator::Generator(std::vector<Target> targets, Clients clients, const TrafficModel& m)
    : m_(m), clients_(std::move(clients)), rng_(m.seed) {
  for (auto& t : targets) (t.external ? external_ : internal_).push_back(std::move(t));
  if (internal_.empty() && external_.empty()) throw LoadError("traffic", "the cluster has no Service ports to send traffic to");
  cdf_internal_ = zipf_cdf(internal_.size(), m.zipf);
  cdf_external_ = zipf_cdf(external_.size(), m.zipf);
  if (clients_.local_pods.empty()) m_.local_pods = 0;
  if (clients_.remote_pods.empty()) m_.remote_pods = 0;
  if (clients_.host.empty()) m_.host = 0;
  if (external_.empty()) m_.external = m_.remote_pods = 0;
  if (internal_.empty()) m_.local_pods = m_.host = 0;
  if (m_.local_pods + m_.remote_pods + m_.external + m_.host <= 0)
    throw LoadError("traffic", "no client kind can reach a Service on this node (check the client weights)");
  next_arrival_ = m.start_ns;
}

Addr Generator::client_addr(int kind, Family f) {
  auto in_prefix = [&](const std::vector<Prefix>& cidrs) -> std::optional<Addr> {
    std::vector<const Prefix*> fam;
    for (auto& p : cidrs)
      if (p.addr.fam == f) fam.push_back(&p);
    if (fam.empty()) return std::nullopt;
    Addr a = fam[rng_.below(uint32_t(fam.size()))]->addr;
    // A host in the low part of the range, away from .0 and the gateway .1.
    uint32_t host = 2 + rng_.below(250);
    a.b[a.is_v4() ? 3 : 15] = uint8_t(host);
    return a;
  };
  if (kind == 0)
    if (auto a = in_prefix(clients_.local_pods)) return *a;
  if (kind == 1)
    if (auto a = in_prefix(clients_.remote_pods)) return *a;
  if (kind == 3)
    for (const Addr& a : clients_.host)
      if (a.fam == f) return a;
  // External clients (and any kind without an address of the family) come from documentation ranges.
  if (f == Family::V4) return Addr::v4(0xcb007100u | (1 + rng_.below(254)));  // 203.0.113.0/24
  std::array<uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8};
  b[15] = uint8_t(1 + rng_.below(254));
  return Addr::v6(b);
}

void Generator::open(uint64_t at) {
  double w[4] = {m_.local_pods, m_.remote_pods, m_.external, m_.host};
  double u = uniform01() * (w[0] + w[1] + w[2] + w[3]);
  int kind = 0;
  while (kind < 3 && u >= w[kind]) u -= w[kind++];
  // Pods on other nodes reach ClusterIPs through their own node's kube-proxy; what reaches this
  // node from them is NodePort / LoadBalancer traffic, as from external clients.
  const bool ext = kind == 1 || kind == 2;
  const Target& t = ext ? external_[pick(cdf_external_, uniform01())] : internal_[pick(cdf_internal_, uniform01())];
  Conn c;
  c.next_ns = at;
  c.seq = opened_;
  c.t.proto = t.proto;
  c.t.dst = t.ip;
  c.t.dport = t.port;
  if (uniform01() < m_.non_service) {
    // Same client, same port, but an address no Service owns (the Internet, or another pod).
    if (t.ip.is_v4()) {
      c.t.dst = Addr::v4(0xc6336400u | (1 + rng_.below(254)));  // 198.51.100.0/24
    } else {
      std::array<uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x64};  // 2001:db8:0:64::/64
      b[15] = uint8_t(1 + rng_.below(254));
      c.t.dst = Addr::v6(b);
    }
    ++stats_.non_service;
  } else {
    ++stats_.per_target[t.key()];
  }
  c.t.src = client_addr(kind, t.ip.fam);
  c.t.sport = uint16_t(32768 + rng_.below(60999 - 32768 + 1));
  c.total = t.proto == proto::TCP ? 3 + m_.data_packets : std::max<uint32_t>(1, m_.data_packets);
  c.rst = t.proto == proto::TCP && m_.rst > 0 && uniform01() < m_.rst;
  ++opened_;
  ++stats_.connections;
  heap_.push_back(c);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

bool Generator::next(Packet& p) {
  // Open every connection that arrives before the earliest in-flight packet.
  while (opened_ < m_.connections && (heap_.empty() || next_arrival_ <= heap_.front().next_ns)) {
    open(next_arrival_);
    double gap_s = -std::log(1.0 - uniform01()) / m_.cps;
    next_arrival_ += uint64_t(gap_s * 1e9) + 1;
  }
  if (heap_.empty()) return false;
  std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
  Conn& c = heap_.back();
  p = Packet{};
  p.t = c.t;
  p.ts_ns = c.next_ns;
  p.ttl = 64;
  if (c.t.proto == proto::TCP) {
    p.len = 60;
    if (c.sent == 0) p.tcp_flags = tcpflag::SYN;
    else if (c.sent == c.total - 1) p.tcp_flags = c.rst ? tcpflag::RST | tcpflag::ACK : tcpflag::FIN | tcpflag::ACK;
    else if (c.sent == 1) p.tcp_flags = tcpflag::ACK;
    else p.tcp_flags = tcpflag::PSH | tcpflag::ACK, p.len = 40 + 200;
  } else {
    p.len = uint16_t((c.t.src.is_v4() ? 28 : 48) + 64);
  }
  if (!c.t.src.is_v4() && p.len < 60) p.len = 60;
  ++stats_.packets;
  if (++c.sent == c.total) {
    heap_.pop_back();
  } else {
    c.next_ns += uint64_t(m_.rtt_us * 1000);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
  return true;
}

}  // namespace svcpath::pcap
