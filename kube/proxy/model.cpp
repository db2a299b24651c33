// kube-proxy's model shared by its three modes: service ports, endpoint selection, the
// local-traffic detector, chain-name hashing and sysctls.
#include "kube/proxy/model.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace svcpath::kube {

std::string chain_hash(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  // RFC 4648 base32 of the first 10 bytes gives exactly the 16 characters kept.
  static constexpr char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint64_t buf = 0;
  int bits = 0;
  for (int i = 0; i < 10; ++i) {
    buf = (buf << 8) | d[i];
    bits += 8;
    while (bits >= 5) {
      out += kAlpha[(buf >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

std::string nft_chain_base(std::string_view name) {
  // chain_hash gives the first 16 base32 characters of the same digest; nftables mode keeps 8.
  std::string s = chain_hash(name).substr(0, 8) + "-" + std::string(name);
  constexpr size_t kMax = 256 - 16;  // knftables.NameLengthMax - chainNamePrefixLengthMax
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

std::string Endpoint::str() const {
  return ip.is_v4() ? fmt::format("{}:{}", ip.str(), port) : fmt::format("[{}]:{}", ip.str(), port);
}

namespace {

std::string proto_name(uint8_t p) { return p == proto::TCP ? "tcp" : p == proto::UDP ? "udp" : "sctp"; }

bool fam_of(const Addr& a, Family f) { return a.fam == f; }

}  // namespace

std::vector<ServicePort> service_ports(const k8s::Cluster& c, const k8s::Node& node, Family fam) {
  std::vector<ServicePort> out;
  // Slices by "namespace/service": one pass, so generation stays linear in the cluster's size.
  std::map<std::string, std::vector<const k8s::EndpointSlice*>, std::less<>> slices_of;
  for (auto& sl : c.slices) slices_of[sl.ns + "/" + sl.service_name].push_back(&sl);
  static const std::vector<const k8s::EndpointSlice*> kNone;
  for (auto& svc : c.services) {
    auto found = slices_of.find(svc.ns + "/" + svc.name);
    const auto& my_slices = found == slices_of.end() ? kNone : found->second;
    if (svc.type == "ExternalName" || svc.headless) continue;
    const Addr* cip = nullptr;
    for (auto& a : svc.cluster_ips)
      if (fam_of(a, fam)) cip = &a;
    if (!cip) continue;  // no ClusterIP of this family: nothing for this proxier
    for (auto& p : svc.ports) {
      ServicePort sp;
      sp.svc = &svc;
      sp.port = &p;
      sp.spn = fmt::format("{}/{}{}", svc.ns, svc.name, p.name.empty() ? "" : ":" + p.name);
      sp.proto = proto_name(p.proto);
      sp.cluster_ip = *cip;
      for (auto& a : svc.external_ips)
        if (fam_of(a, fam)) sp.external_ips.push_back(a);
      for (auto& in : svc.lb_ingress)
        if (fam_of(in.ip, fam) && in.ip_mode != "Proxy") sp.lb_ips.push_back(in.ip);
      for (auto& r : svc.lb_source_ranges) {
        auto pf = Prefix::parse(r);
        if (pf && pf->addr.fam == fam) sp.source_ranges.push_back(r);
      }
      // Endpoints: slices of this service and family, the port with this name and protocol, the
      // first address of each endpoint (kube-proxy ignores the rest).
      std::map<std::string, Endpoint> by_text;
      for (const k8s::EndpointSlice* slp : my_slices) {
        const k8s::EndpointSlice& sl = *slp;
        if (sl.address_type != (fam == Family::V4 ? "IPv4" : "IPv6")) continue;
        for (auto& ep_port : sl.ports) {
          if (ep_port.name != p.name || ep_port.proto != p.proto || !ep_port.port) continue;
          for (auto& e : sl.endpoints) {
            if (e.addresses.empty()) continue;
            Endpoint x;
            x.ip = e.addresses[0];
            x.port = *ep_port.port;
            x.ready = e.is_ready();
            x.serving = e.is_serving();
            x.terminating = e.is_terminating();
            x.local = !e.node_name.empty() && e.node_name == node.name;
            by_text.emplace(x.str(), x);
          }
        }
      }
      for (auto& [text, e] : by_text) sp.endpoints.push_back(e);  // std::map: sorted by text
      out.push_back(std::move(sp));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ServicePort& a, const ServicePort& b) { return a.spn != b.spn ? a.spn < b.spn : a.proto < b.proto; });
  return out;
}

namespace {

// The endpoint lists and has_any: CategorizeEndpoints itself.
Categorized select_endpoints(const ServicePort& sp) {
  const k8s::Service& s = *sp.svc;
  bool ext = s.externally_accessible();
  bool uses_cluster = !s.itp_local || (ext && !s.etp_local);
  bool uses_local = s.itp_local || (ext && s.etp_local);
  Categorized c;
  auto pick = [&](auto pred) {
    std::vector<Endpoint> v;
    for (auto& e : sp.endpoints)
      if (pred(e)) v.push_back(e);
    return v;
  };
  if (uses_cluster) {
    c.cluster = pick([](const Endpoint& e) { return e.ready; });
    if (c.cluster.empty()) c.cluster = pick([](const Endpoint& e) { return e.serving && e.terminating; });
    if (!c.cluster.empty()) c.has_any = true;
  }
  if (!uses_local) {
    c.all = c.cluster;
    return c;
  }
  bool local_ready = false, local_term = false;
  for (auto& e : sp.endpoints) {
    if (e.ready) {
      c.has_any = true;
      if (e.local) local_ready = true;
    } else if (e.serving && e.terminating) {
      c.has_any = true;
      if (e.local) local_term = true;
    }
  }
  if (local_ready) c.local = pick([](const Endpoint& e) { return e.local && e.ready; });
  else if (local_term) c.local = pick([](const Endpoint& e) { return e.local && e.serving && e.terminating; });
  if (!uses_cluster) {
    c.all = c.local;
    return c;
  }
  // Both in use: the union, still in endpoint order.
  std::set<std::string> seen;
  for (auto& e : sp.endpoints) {
    bool in = false;
    for (auto* v : {&c.cluster, &c.local})
      for (auto& x : *v)
        if (x.str() == e.str()) in = true;
    if (in && seen.insert(e.str()).second) c.all.push_back(e);
  }
  return c;
}

}  // namespace

Categorized categorize(const ServicePort& sp) {
  Categorized c = select_endpoints(sp);
  const k8s::Service& s = *sp.svc;
  // select_endpoints fills each list only when a traffic policy uses it.
  c.uses_cluster = !c.cluster.empty();
  c.uses_local = !c.local.empty();
  c.has_internal = c.has_any && !(s.itp_local && c.local.empty());
  c.has_external = c.has_any && !(s.etp_local && c.local.empty());
  c.uses_external = c.has_any && s.externally_accessible();
  return c;
}

LocalDetector local_detector(const k8s::ProxyConfig& cfg, const k8s::Node& node, Family fam) {
  LocalDetector d;
  auto cidr = [&](const std::vector<Prefix>& v) {
    for (auto& p : v)
      if (p.addr.fam == fam) {
        d.kind = LocalDetector::Kind::Cidr;
        d.cidr = p;
        return;
      }
  };
  if (cfg.detect_local_mode == "ClusterCIDR") cidr(cfg.cluster_cidrs);
  else if (cfg.detect_local_mode == "NodeCIDR") cidr(node.pod_cidrs);
  else if (cfg.detect_local_mode == "BridgeInterface") {
    d.kind = LocalDetector::Kind::Interface;
    d.iface = cfg.bridge_interface;
  } else if (cfg.detect_local_mode == "InterfaceNamePrefix") {
    d.kind = LocalDetector::Kind::InterfacePrefix;
    d.iface = cfg.interface_name_prefix;
  }
  return d;
}

std::string iptables_match(const LocalDetector& d, bool local) {
  std::string_view neg = local ? "" : "! ";
  switch (d.kind) {
    case LocalDetector::Kind::None: return {};
    case LocalDetector::Kind::Cidr: return fmt::format("{}-s {}", neg, d.cidr.str());
    case LocalDetector::Kind::Interface: return fmt::format("{}-i {}", neg, d.iface);
    case LocalDetector::Kind::InterfacePrefix: return fmt::format("{}-i {}+", neg, d.iface);
  }
  return {};
}

std::vector<std::pair<std::string, std::string>> sysctls(const k8s::ProxyConfig& cfg) {
  std::vector<std::pair<std::string, std::string>> v = {{"net.ipv4.ip_forward", "1"},
                                                        {"net.ipv6.conf.all.forwarding", "1"},
                                                        {"net.bridge.bridge-nf-call-iptables", "1"},
                                                        {"net.bridge.bridge-nf-call-ip6tables", "1"}};
  if (cfg.localhost_nodeports) v.push_back({"net.ipv4.conf.all.route_localnet", "1"});
  if (cfg.mode == k8s::ProxyMode::Ipvs) v.push_back({"net.ipv4.vs.conntrack", "1"});
  return v;
}

}  // namespace svcpath::kube
