#pragma once
// The iptables tables on a datapath, registered as the kernel's iptable_raw, iptable_mangle,
// iptable_filter and iptable_security modules register theirs: one hook function per table and
// hook at the table's priority; iptable_nat's table is a lookup of the nat core. Both families'
// tables, and the per-rule state their rules keep (counters, recent lists, limit credit).
#include "netfilter/datapath.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "netfilter/iptables/engine.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf {

class Xtables final : public Stateful {
 public:
  Xtables(const Ruleset* v4, const Ruleset* v6, const IpSets* sets);
  const Ruleset* ruleset(Family f) const { return f == Family::V4 ? v4_ : v6_; }
  const IpSets* sets() const { return sets_; }
  /// Per-rule packet counters (indexed by Rule::id), as iptables -L -v would show them.
  const RuleState& rule_state(Family f) const { return f == Family::V4 ? rs4_ : rs6_; }
  RuleState& rule_state(Family f) { return f == Family::V4 ? rs4_ : rs6_; }
  /// What -j SET added to or deleted from the sets (both families' rules share the sets).
  const SetChanges& set_changes() const { return set_changes_; }
  SetChanges& set_changes() { return set_changes_; }
  /// Walk every rule instead of using the destination index: benchmarks compare the two; results
  /// are identical (a property test checks it).
  bool linear_walk = false;
  std::shared_ptr<void> snapshot() const override;
  void restore(const std::shared_ptr<void>& s) override;

 private:
  const Ruleset* v4_;
  const Ruleset* v6_;
  const IpSets* sets_;
  RuleState rs4_, rs6_;
  SetChanges set_changes_;
};

/// Registers the tables of v4 and v6 (either may be null) on dp; the rulesets and sets must
/// outlive it. Returns the tables' state, owned by dp.
Xtables& attach_iptables(Datapath& dp, const Ruleset* v4, const Ruleset* v6, const IpSets* sets);

}  // namespace svcpath::nf
