#include "kube/sim/lanes.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "ipvs/ipvsadm.hpp"
#include "kube/proxy/ipvs.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "kube/proxy/iptables.hpp"
#include "kube/proxy/nftables.hpp"
#include "kube/proxy/node.hpp"
#include "kube/netpol/netpol.hpp"

namespace svcpath::sim {

namespace {

// The lane's tables on a fresh datapath; engine (IPVS) registers between iptables and nftables.
std::unique_ptr<nf::Datapath> datapath(const Lane& l, uint64_t seed, ipvs::Engine* engine, nf::Xtables** xt,
                                       nf::nft::Hooks** nft_hooks) {
  auto dp = std::make_unique<nf::Datapath>(l.node, seed);
  nf::Xtables& x = nf::attach_iptables(*dp, l.v4 ? &*l.v4 : nullptr, l.v6 ? &*l.v6 : nullptr, l.sets ? &*l.sets : nullptr);
  if (xt) *xt = &x;
  if (engine) engine->attach(*dp);
  if (l.nft) {
    nf::nft::Hooks& h = nf::nft::attach(*dp, *l.nft);
    if (nft_hooks) *nft_hooks = &h;
  }
  return dp;
}

void attach_datapaths(std::vector<std::unique_ptr<Lane>>& lanes, uint64_t seed) {
  for (auto& l : lanes) l->attach(seed);
}

}  // namespace

void Lane::attach(uint64_t seed) { dp = datapath(*this, seed, engine.get(), &xt, &nft_hooks); }

std::unique_ptr<nf::Datapath> Lane::stateless_twin(uint64_t seed) const {
  return datapath(*this, seed, nullptr, nullptr, nullptr);
}

nf::netpol::Placement policy_placement(const std::string& policy, const std::string& mode) {
  bool ipvs = policy == "ipvs" || (policy == "auto" && mode == "ipvs");
  return ipvs ? nf::netpol::Placement::IpvsAware : nf::netpol::Placement::Plain;
}

void add_policies(Lane& l, const ClusterInput& ci, nf::netpol::Placement where) {
  if (!l.sets) l.sets.emplace();
  if (l.v4) nf::netpol::apply(nf::netpol::compile(ci.cluster, ci.node, Family::V4, where), *l.v4, *l.sets);
  if (l.v6) nf::netpol::apply(nf::netpol::compile(ci.cluster, ci.node, Family::V6, where), *l.v6, *l.sets);
}

std::vector<std::unique_ptr<Lane>> cluster_lanes(const ClusterInput& ci, const std::vector<std::string>& modes,
                                                 const NodeOptions& node, uint64_t seed, const std::string& policy) {
  std::vector<std::unique_ptr<Lane>> lanes;
  for (auto& mode : modes) {
    auto l = std::make_unique<Lane>();
    l->name = mode;
    k8s::ProxyConfig cfg = ci.cfg;
    cfg.mode = *k8s::parse_proxy_mode(mode);
    nf::Node base = kube::kube_node(ci.cluster, ci.node, cfg);
    if (cfg.mode == k8s::ProxyMode::Nftables) {
      nf::nft::Ruleset rs;
      nf::nft::load_into(rs, kube::nftables::nft_input(ci.cluster, ci.node, cfg, Family::V4), "kube-proxy nftables (ip)");
      nf::nft::load_into(rs, kube::nftables::nft_input(ci.cluster, ci.node, cfg, Family::V6), "kube-proxy nftables (ip6)");
      l->nft = std::move(rs);
      // kube-proxy writes no iptables rules in this mode; a policy engine may still.
      l->v4.emplace();
      l->v6.emplace();
      l->v6->family = Family::V6;
    } else if (cfg.mode == k8s::ProxyMode::Ipvs) {
      auto m4 = kube::ipvs::build(ci.cluster, ci.node, ci.cfg, Family::V4);
      auto m6 = kube::ipvs::build(ci.cluster, ci.node, ci.cfg, Family::V6);
      kube::ipvs::add_to_node(base, m4);
      kube::ipvs::add_to_node(base, m6);
      for (auto& s : m6.engine->services.all()) m4.engine->services.add(std::make_unique<ipvs::Service>(*s));
      // One ipset namespace holds both families' sets (KUBE-... and KUBE-6-...).
      nf::IpSets all;
      nf::load_ipsets(m4.ipset_restore + m6.ipset_restore, "kube-proxy ipsets", all);
      l->sets = std::move(all);
      l->v4 = std::move(m4.rules);
      l->v6 = std::move(m6.rules);
      nf::resolve_sets(*l->v4, *l->sets, "ipvs rules");
      nf::resolve_sets(*l->v6, *l->sets, "ipvs rules");
      l->engine = std::move(m4.engine);
    } else {
      l->v4 = kube::iptables::node_ruleset(ci.cluster, ci.node, ci.cfg, Family::V4);
      l->v6 = kube::iptables::node_ruleset(ci.cluster, ci.node, ci.cfg, Family::V6);
    }
    if (policy != "off" && !ci.cluster.policies.empty()) add_policies(*l, ci, policy_placement(policy, mode));
    l->node = node.build(std::move(base));
    lanes.push_back(std::move(l));
  }
  attach_datapaths(lanes, seed);
  return lanes;
}

int16_t source_interface(const nf::Node& node, const Addr& src) {
  auto r = node.lookup(src);
  return r.type == nf::RouteType::Unicast && r.oif >= 0 ? r.oif : node.find("eth0");
}

CommonChoice::CommonChoice(std::vector<std::unique_ptr<Lane>>& lanes, const Packet& p, const std::vector<nf::Injection>& inj)
    : lanes_(lanes), p_(p), inj_(inj), choices_(lanes.size()), got_(lanes.size()) {
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Choices& c = choices_[i];
    auto outs = lanes_[i]->dp->enumerate(p_, inj_[i]);
    c.forks = outs.size() > 1;
    for (const nf::Outcome& o : outs) {
      auto b = Endpoint::backend_of(o);
      if (!b) c.always_dnat = false;
      else if (std::find(c.backends.begin(), c.backends.end(), *b) == c.backends.end()) c.backends.push_back(*b);
    }
  }
  if (std::none_of(choices_.begin(), choices_.end(), [](const Choices& c) { return c.backends.size() > 1; })) return;
  for (size_t i = 0; i < choices_.size(); ++i)
    if (choices_[i].backends.size() == 1 && choices_[i].always_dnat) {
      chooser_ = i;
      fixed_ = true;
      backend_ = choices_[i].backends[0];
      return;
    }
  for (size_t i = 0; i < choices_.size(); ++i)
    if (choices_[i].backends.size() > 1) {
      chooser_ = i;
      return;
    }
}

nf::Outcome CommonChoice::run(size_t i) {
  nf::Datapath& dp = *lanes_[i]->dp;
  const Choices& c = choices_[i];
  std::optional<nf::Outcome> o;
  // Only a lane with alternatives takes a branch; one without runs exactly as process would.
  if (backend_ && i != chooser_ && c.forks && std::find(c.backends.begin(), c.backends.end(), *backend_) != c.backends.end())
    o = dp.process_if(p_, inj_[i], [&](const nf::Outcome& x) { return Endpoint::backend_of(x) == backend_; });
  if (!o) {
    VectorSink sink;
    o = dp.process(p_, inj_[i], sink);
    o->trace = std::move(sink.events);
  }
  got_[i] = Endpoint::backend_of(*o);
  if (i == chooser_ && !fixed_) backend_ = got_[i];
  return std::move(*o);
}

std::string CommonChoice::summary() const {
  if (chooser_ == SIZE_MAX) return "";
  const std::string& who = lanes_[chooser_]->name;
  if (!backend_) return fmt::format("{} sampled no backend (no DNAT); each mode sampled on its own", who);
  std::string how = fixed_ ? fmt::format("{}'s choice, which does not fork", who) : fmt::format("sampled in {}", who);
  std::string same, other;
  for (size_t i = 0; i < lanes_.size(); ++i) {
    if (got_[i] == backend_) {
      same += (same.empty() ? "" : ", ") + lanes_[i]->name;
      continue;
    }
    other += fmt::format("{}{} ({})", other.empty() ? "" : ", ", lanes_[i]->name, got_[i] ? got_[i]->str() : "no DNAT");
  }
  if (other.empty()) return fmt::format("same backend {} in every mode ({})", backend_->str(), how);
  return fmt::format("backend {} ({}) in {}; not a choice of {}, sampled on its own", backend_->str(), how, same, other);
}

std::vector<std::unique_ptr<Lane>> build_lanes(const LaneSources& o) {
  check_services_flag(o.node.services, o.ipvs);
  if (o.cluster.given()) return cluster_lanes(load_cluster(o.cluster), o.cluster.modes(), o.node, o.seed, o.cluster.policy);
  std::vector<std::unique_ptr<Lane>> lanes;
  auto l = std::make_unique<Lane>();
  l->name = "rules";
  l->node = o.node.build();
  if (!o.ipsets.empty()) l->sets = nf::load_ipsets_file(o.ipsets);
  if (!o.rules.empty()) {
    auto rs = load_rules(o.rules, std::nullopt, false, o.node.iptables_backend, o.node.noflush);
    (rs.family == Family::V4 ? l->v4 : l->v6) = std::move(rs);
  }
  if (!o.rules6.empty()) l->v6 = load_rules(o.rules6, Family::V6, false, o.node.iptables_backend, o.node.noflush);
  if (!o.nft.empty()) l->nft = nf::nft::load_file(o.nft);
  nf::IpSets empty;
  if (l->v4) nf::resolve_sets(*l->v4, l->sets ? *l->sets : empty, o.rules);
  if (l->v6) nf::resolve_sets(*l->v6, l->sets ? *l->sets : empty, o.rules6.empty() ? o.rules : o.rules6);
  if (!o.ipvs.empty()) {
    l->engine = std::make_unique<ipvs::Engine>();
    l->engine->services = load_ipvs_dump(o.ipvs, o.node.services);
    // IPVS only sees packets delivered locally: a virtual address the node does not own already
    // goes on kube-ipvs0, as kube-proxy binds them (fwmark services have no address).
    for (const auto& vs : l->engine->services.all())
      if (!vs->fwmark && !l->node.is_local(vs->addr))
        l->node.add_address(l->node.ensure("kube-ipvs0"), {vs->addr, uint8_t(vs->addr.bits())});
  }
  lanes.push_back(std::move(l));
  attach_datapaths(lanes, o.seed);
  return lanes;
}

}  // namespace svcpath::sim
