#pragma once
// An nftables ruleset on a datapath, registered as nf_tables registers base chains: filter and
// route chains as hook functions at their priority, nat chains inside the nat core
// (nf_nat_register_fn) next to the iptables nat table. Holds the state its rules keep (counters,
// dynamically added set elements).
#include "netfilter/datapath.hpp"
#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

class Hooks final : public Stateful {
 public:
  explicit Hooks(const Ruleset& rs) : rs_(rs) { st_.reset(rs); }
  const Ruleset& ruleset() const { return rs_; }
  const State& state() const { return st_; }
  /// Runs one base chain; a verdict other than ACCEPT names its rule in ctx.hit.
  Verdict run(const Table& t, const Chain& c, Hook h, Packet& p, HookContext& ctx) noexcept;
  std::shared_ptr<void> snapshot() const override { return std::make_shared<State>(st_); }
  void restore(const std::shared_ptr<void>& s) override { st_ = *static_cast<const State*>(s.get()); }

 private:
  const Ruleset& rs_;
  State st_;
};

/// Registers every base chain of rs on dp (rs must outlive dp). Returns the hooks, owned by dp.
Hooks& attach(Datapath& dp, const Ruleset& rs);

}  // namespace svcpath::nf::nft
