#pragma once
// The datapaths a command runs packets through: one per kube-proxy mode of a cluster, or one built
// from the dumps given with --rules. trace and replay share them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kube/sim/inputs.hpp"
#include "ipvs/engine.hpp"
#include "netfilter/datapath.hpp"
#include "netfilter/iptables/hooks.hpp"
#include "netfilter/nftables/hooks.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "kube/netpol/netpol.hpp"

namespace svcpath::sim {

struct Lane {
  std::string name;
  nf::Node node;
  std::optional<nf::Ruleset> v4, v6;
  std::optional<nf::IpSets> sets;
  std::unique_ptr<ipvs::Engine> engine;
  std::optional<nf::nft::Ruleset> nft;
  std::unique_ptr<nf::Datapath> dp;
  nf::Xtables* xt = nullptr;            // the iptables tables on dp (rule counters, the linear walk)
  nf::nft::Hooks* nft_hooks = nullptr;  // the nftables ruleset on dp, when there is one
  std::vector<nf::Outcome> sent;        // the sampled outcome of each packet, for "reply"

  /// Builds dp over the lane's node and tables, registered in this order: the iptables tables,
  /// IPVS, the nftables ruleset.
  void attach(uint64_t seed);
  /// A datapath over the same node and tables with fresh state and no IPVS (replay probes it for
  /// the backends a destination can reach without disturbing the lane's conntrack).
  std::unique_ptr<nf::Datapath> stateless_twin(uint64_t seed) const;
};

struct LaneSources {
  const std::string& rules;
  const std::string& rules6;
  const std::string& ipsets;
  const std::string& ipvs;  // ipvsadm-save -n / ipvsadm -Ln for the rules lane
  const std::string& nft;   // nft list ruleset / nft -f input for the rules lane
  const ClusterOptions& cluster;
  const NodeOptions& node;
  uint64_t seed;
};

/// The interface a packet from src arrives on: the one src routes through (the reverse path),
/// else eth0 (kNoIf when there is none). trace and replay use it for packets that do not name
/// their interface; no allocation, replay calls it per packet.
int16_t source_interface(const nf::Node& node, const Addr& src);

/// A service or backend address as a sortable value; printed only when reporting.
struct Endpoint {
  Addr addr;
  uint16_t port = 0;
  uint8_t proto = 0;
  auto operator<=>(const Endpoint&) const = default;
  std::string str() const { return FiveTuple::endpoint(addr, port, proto); }
  /// Where an outcome's packet went after DNAT; nullopt when it was not DNATed.
  static std::optional<Endpoint> backend_of(const nf::Outcome& o) {
    if (!o.dnat) return std::nullopt;
    return Endpoint{o.after.t.dst, o.after.t.dport, o.after.t.proto};
  }
};

/// One packet's backend across the lanes of a side-by-side trace, so that the modes differ only
/// where the modes differ (common random numbers). A lane whose choice does not fork (IPVS's
/// schedulers are deterministic) fixes the backend; else the first lane that forks samples it as
/// process does. Every other lane that could pick that backend takes the branch of its random
/// choices (iptables statistic, nft numgen) that does, keeping that branch's conntrack and IPVS
/// state; a lane that could not pick it samples on its own, and summary() says so.
class CommonChoice {
 public:
  /// Enumerates the packet in every lane (their state is left untouched); inj per lane.
  CommonChoice(std::vector<std::unique_ptr<Lane>>& lanes, const Packet& p, const std::vector<nf::Injection>& inj);
  /// Lane i's run of the packet, its trace in the outcome; call for lanes in order.
  nf::Outcome run(size_t i);
  /// One line on what was done ("" when no lane had a choice to make).
  std::string summary() const;

 private:
  struct Choices {
    std::vector<Endpoint> backends;  // distinct DNAT destinations (addresses and ports) among the outcomes
    bool always_dnat = true;         // every outcome DNATs
    bool forks = false;              // more than one outcome
  };
  std::vector<std::unique_ptr<Lane>>& lanes_;
  Packet p_;
  std::vector<nf::Injection> inj_;
  std::vector<Choices> choices_;
  std::optional<Endpoint> backend_;           // the common backend, once known
  size_t chooser_ = SIZE_MAX;                 // the lane whose choice it is
  bool fixed_ = false;                        // that lane's choice does not fork
  std::vector<std::optional<Endpoint>> got_;  // each lane's backend as run
};

/// Throws LoadError naming the file:line of bad input.
std::vector<std::unique_ptr<Lane>> build_lanes(const LaneSources& o);
/// One lane per kube-proxy mode ("iptables", "ipvs", "nftables") for a cluster already loaded.
std::vector<std::unique_ptr<Lane>> cluster_lanes(const ClusterInput& ci, const std::vector<std::string>& modes,
                                                 const NodeOptions& node, uint64_t seed, const std::string& policy = "auto");
/// Compiles the cluster's NetworkPolicies for the lane's node and loads them into its filter
/// tables and ipsets, as a policy engine would (iptables-restore --noflush, ipset restore).
void add_policies(Lane& l, const ClusterInput& ci, nf::netpol::Placement where);
/// --policy-placement for one kube-proxy mode.
nf::netpol::Placement policy_placement(const std::string& policy, const std::string& mode);

}  // namespace svcpath::sim
