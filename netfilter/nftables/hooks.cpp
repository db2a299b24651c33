#include "netfilter/nftables/hooks.hpp"

#include <algorithm>

namespace svcpath::nf::nft {

Verdict Hooks::run(const Table& t, const Chain& c, Hook h, Packet& p, HookContext& ctx) noexcept {
  Env env{ctx.node, ctx.ct, ctx.chooser, ctx.sink, ctx.ctr, st_, {}};
  Verdict v = run_chain(t, c, h, p, env);
  if (v.kind != VerdictKind::Accept) {
    ctx.hit = {};
    if (env.hit.chain)
      ctx.hit = {env.hit.table->label, env.hit.chain->name, env.hit.policy ? "policy" : "rule", env.hit.num, env.hit.reject_with};
  }
  return v;
}

namespace {

// A base chain of type filter or route.
class ChainStage final : public Stage {
 public:
  ChainStage(Hooks& hooks, const Table& t, const Chain& c) : hooks_(hooks), t_(t), c_(c) {}
  std::string name() const override { return t_.label + " " + c_.name; }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override {
    return t_.matches(p.t.src.fam) ? hooks_.run(t_, c_, h, p, ctx) : Verdict::accept();
  }

 private:
  Hooks& hooks_;
  const Table& t_;
  const Chain& c_;
};

// A base chain of type nat, a lookup of the nat core.
class NatChain final : public NatLookup {
 public:
  NatChain(Hooks& hooks, const Table& t, const Chain& c) : hooks_(hooks), t_(t), c_(c) {}
  bool applies(Family f) const noexcept override { return t_.matches(f); }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override { return hooks_.run(t_, c_, h, p, ctx); }

 private:
  Hooks& hooks_;
  const Table& t_;
  const Chain& c_;
};

bool reads_ct(const std::vector<Selector>& sel) {
  return std::any_of(sel.begin(), sel.end(),
                     [](const Selector& s) { return s.sel == Sel::CtState || s.sel == Sel::CtMark || s.sel == Sel::CtStatus; });
}

// nft_ct's and nft_nat's (masq, redir) init call nf_ct_netns_get for the table's family, whether
// or not a base chain reaches the rule; a nat chain alone does not, nor does notrack.
bool needs_conntrack(const Rule& r) {
  for (auto& st : r.stmts) {
    bool ct = std::visit(
        [](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, MatchStmt>) return reads_ct(x.lhs);
          else if constexpr (std::is_same_v<T, VmapStmt> || std::is_same_v<T, SetUpdateStmt>) return reads_ct(x.key);
          else return std::is_same_v<T, NatStmt>;
        },
        st);
    if (ct) return true;
  }
  return false;
}

}  // namespace

Hooks& attach(Datapath& dp, const Ruleset& rs) {
  Hooks& hooks = dp.own_state(std::make_unique<Hooks>(rs));
  for (auto& t : rs.tables)
    for (auto& c : t->chains)
      if (std::any_of(c.rules.begin(), c.rules.end(), needs_conntrack))
        for (Family f : {Family::V4, Family::V6})
          if (t->matches(f)) dp.conntrack().engage(f);
  for (auto& t : rs.tables)
    for (auto& c : t->chains) {
      if (!c.base) continue;
      if (c.type == ChainType::Nat) {
        dp.nat_core().add(c.hook, c.priority, &dp.nat_core().own(std::make_unique<NatChain>(hooks, *t, c)));
      } else {
        dp.add_stage(c.hook, c.priority, &dp.own(std::make_unique<ChainStage>(hooks, *t, c)));
      }
    }
  return hooks;
}

}  // namespace svcpath::nf::nft
