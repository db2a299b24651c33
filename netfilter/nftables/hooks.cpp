#include "netfilter/nftables/hooks.hpp"

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

}  // namespace

Hooks& attach(Datapath& dp, const Ruleset& rs) {
  Hooks& hooks = dp.own_state(std::make_unique<Hooks>(rs));
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
