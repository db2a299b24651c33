#include "netfilter/iptables/hooks.hpp"

namespace svcpath::nf {

Xtables::Xtables(const Ruleset* v4, const Ruleset* v6, const IpSets* sets) : v4_(v4), v6_(v6), sets_(sets) {
  if (v4_) rs4_.reset(*v4_);
  if (v6_) rs6_.reset(*v6_);
}

namespace {
struct Saved {
  RuleState rs4, rs6;
  SetChanges sets;
};
}  // namespace

std::shared_ptr<void> Xtables::snapshot() const { return std::make_shared<Saved>(Saved{rs4_, rs6_, set_changes_}); }

void Xtables::restore(const std::shared_ptr<void>& s) {
  auto& saved = *static_cast<const Saved*>(s.get());
  rs4_ = saved.rs4;
  rs6_ = saved.rs6;
  set_changes_ = saved.sets;
}

namespace {

// Runs one table's built-in chain for the hook; a verdict other than ACCEPT names its rule the way
// the trace (and the kernel's TRACE) labels it.
Verdict run(Xtables& x, const Table& t, Hook h, Packet& p, HookContext& ctx) noexcept {
  Family fam = p.t.src.fam;
  EvalEnv env{ctx.node, x.sets(), x.set_changes(), ctx.ct, ctx.chooser, ctx.sink, ctx.ctr, x.rule_state(fam), fam, x.linear_walk};
  Verdict v = run_table(t, h, p, env);
  if (v.kind == VerdictKind::Accept) return v;
  const Rule* r = env.hit_rule;
  auto* rj = r ? std::get_if<RejectTarget>(&r->target) : nullptr;
  ctx.hit.reject_with = rj ? std::string_view(rj->with) : std::string_view();
  if (!env.hit_chain) return v;
  std::string_view kind = "policy";
  if (r) {
    bool tail_like = r->unconditional() && std::holds_alternative<StandardTarget>(r->target);
    kind = !tail_like ? "rule" : env.hit_chain->builtin ? "policy" : "return";
  }
  ctx.hit.table = table_name(t.id);
  ctx.hit.chain = env.hit_chain->name;
  ctx.hit.kind = kind;
  ctx.hit.num = env.hit_num;
  return v;
}

// A table other than nat at its hooks.
class TableStage final : public Stage {
 public:
  TableStage(Xtables& x, TableId id) : x_(x), id_(id) {}
  std::string name() const override { return std::string(table_name(id_)); }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override {
    const Ruleset* rs = x_.ruleset(p.t.src.fam);
    const Table* t = rs ? rs->table(id_) : nullptr;
    return t ? nf::run(x_, *t, h, p, ctx) : Verdict::accept();
  }

 private:
  Xtables& x_;
  TableId id_;
};

// The nat table, consulted by the nat core for a connection's first packet.
class NatTable final : public NatLookup {
 public:
  explicit NatTable(Xtables& x) : x_(x) {}
  bool applies(Family f) const noexcept override { return table(f) != nullptr; }
  Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept override { return nf::run(x_, *table(p.t.src.fam), h, p, ctx); }

 private:
  const Table* table(Family f) const {
    const Ruleset* rs = x_.ruleset(f);
    return rs ? rs->table(TableId::Nat) : nullptr;
  }
  Xtables& x_;
};

}  // namespace

Xtables& attach_iptables(Datapath& dp, const Ruleset* v4, const Ruleset* v6, const IpSets* sets) {
  Xtables& x = dp.own_state(std::make_unique<Xtables>(v4, v6, sets));
  // Each family's rules attach conntrack (or only defragmentation) to that family alone, as
  // iptables and ip6tables rules do; the nat table's registration by itself attaches nothing.
  for (const Ruleset* rs : {v4, v6}) {
    if (!rs) continue;
    for (auto& t : rs->tables)
      for (auto& c : t.chains)
        for (auto& r : c.rules) {
          CtNeed need = ct_need(r);
          if (need == CtNeed::Conntrack) dp.conntrack().engage(rs->family);
          else if (need == CtNeed::Defrag) dp.conntrack().enable_defrag(rs->family);
        }
  }
  NatLookup& nat = dp.nat_core().own(std::make_unique<NatTable>(x));
  for (Hook h : {Hook::PreRouting, Hook::LocalOut, Hook::PostRouting, Hook::LocalIn})
    dp.nat_core().add(h, table_priority(TableId::Nat, h), &nat);
  bool nft = (v4 ? v4->backend : v6 ? v6->backend : XtBackend::Legacy) == XtBackend::Nft;
  for (TableId t : {TableId::Raw, TableId::Mangle, TableId::Filter, TableId::Security}) {
    Stage& s = dp.own(std::make_unique<TableStage>(x, t));
    for (int h = 0; h < kNumHooks; ++h)
      if (table_hooks(t) & hook_bit(Hook(h))) {
        // iptables-nft's security base chains sit at 150 (after nat INPUT), not at NF_IP_PRI_SECURITY.
        int prio = t == TableId::Security && nft ? prio::SECURITY_NFT : table_priority(t, Hook(h));
        dp.add_stage(Hook(h), prio, &s);
      }
  }
  return x;
}

}  // namespace svcpath::nf
