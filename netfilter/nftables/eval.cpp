// The nftables walker: nft_do_chain's loop over rules and expressions, with the jump stack, set and
// verdict-map lookups, numgen, and the NAT/reject/mark statements. No allocation unless tracing.
#include <bit>

#include <fmt/format.h>

#include "core/bytes.hpp"
#include "core/ipv6_ext.hpp"
#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

namespace {

// Loads one selector into its slot. False: the expression breaks (wrong family, no ports...).
bool load(const Selector& s, const Packet& p, Env& env, uint8_t* out) {
  std::memset(out, 0, type_width(s.type()));
  switch (s.sel) {
    case Sel::IpSaddr:
    case Sel::IpDaddr:
      if (!p.t.src.is_v4()) return false;
      std::memcpy(out, (s.sel == Sel::IpSaddr ? p.t.src : p.t.dst).b.data(), 4);
      return true;
    case Sel::Ip6Saddr:
    case Sel::Ip6Daddr:
      if (p.t.src.is_v4()) return false;
      std::memcpy(out, (s.sel == Sel::Ip6Saddr ? p.t.src : p.t.dst).b.data(), 16);
      return true;
    case Sel::IpProtocol:
      if (!p.t.src.is_v4()) return false;
      out[0] = p.t.proto;
      return true;
    case Sel::Ip6Nexthdr:  // the fixed header's field: the first extension header when there are any
      if (p.t.src.is_v4()) return false;
      out[0] = ext6::first_header(p);
      return true;
    case Sel::L4Proto: out[0] = p.t.proto; return true;
    case Sel::NfProto: out[0] = p.t.src.is_v4() ? 2 : 10; return true;
    case Sel::Sport:
    case Sel::Dport:
      if (s.proto ? p.t.proto != s.proto : !proto::has_ports(p.t.proto)) return false;
      if (p.fragment) return false;
      put_be(out, s.sel == Sel::Sport ? p.t.sport : p.t.dport, 2);
      return true;
    case Sel::Mark: put_be(out, p.mark, 4); return true;
    case Sel::CtMark: {
      const CtEntry* e = p.ct ? env.ct.get(p.ct) : nullptr;
      if (!e) return false;
      put_be(out, e->mark, 4);
      return true;
    }
    case Sel::Iifname:
    case Sel::Oifname: {
      int16_t i = s.sel == Sel::Iifname ? p.iif : p.oif;
      if (i < 0) return false;
      auto n = env.node.ifname(i);
      std::memcpy(out, n.data(), std::min<size_t>(n.size(), 15));
      return true;
    }
    case Sel::CtState: put_be(out, ct_state_bit(p.ctinfo), 4); return true;
    case Sel::FibSaddrType:
    case Sel::FibDaddrType: {
      const Addr& a = s.sel == Sel::FibSaddrType ? p.t.src : p.t.dst;
      int16_t dev = s.fib_dev ? p.iif : kNoIf;
      // addr_type answers xt_addrtype's bit (1 << RTN_*); fib's register holds the RTN_* number.
      put_be(out, uint32_t(std::countr_zero(env.node.addr_type(a, dev))), 4);
      return true;
    }
    case Sel::Numgen: put_be(out, env.choose.uniform(s.mod) + s.offset, 4); return true;
    case Sel::CtStatus: {
      const CtEntry* e = p.ct ? env.ct.get(p.ct) : nullptr;
      if (!e) return false;
      put_be(out, e->status, 4);
      return true;
    }
    case Sel::IpVersion:
    case Sel::Ip6Version:
      if (p.t.src.is_v4() != (s.sel == Sel::IpVersion)) return false;
      put_be(out, p.t.src.is_v4() ? 4 : 6, 4);
      return true;
    case Sel::IcmpType:
    case Sel::Icmp6Type:
      if (p.t.proto != (s.sel == Sel::IcmpType ? proto::ICMP : proto::ICMPV6) || p.fragment) return false;
      out[0] = p.icmp_type();
      return true;
  }
  return false;
}

bool load_key(const std::vector<Selector>& v, const Packet& p, Env& env, Key& k) {
  size_t off = 0;
  for (auto& s : v) {
    if (!load(s, p, env, k.b.data() + off)) return false;
    off += type_width(s.type());
  }
  k.len = uint8_t(off);
  return true;
}

bool dyn_has(const Table& t, int32_t set, const Key& k, const Packet& p, Env& env) {
  auto it = env.state.dyn.find({&t, set});
  if (it == env.state.dyn.end()) return false;
  auto e = it->second.find(k);
  return e != it->second.end() && e->second > p.ts_ns;
}

bool set_has(const Table& t, int32_t set, const Key& k, const Packet& p, Env& env) {
  ++env.ctr.set_lookups;
  const Set& s = t.sets[size_t(set)];
  if (s.find(k) >= 0) return true;
  return (s.dynamic || s.timeout_flag) && dyn_has(t, set, k, p, env);
}

bool match(const Table& t, const MatchStmt& m, const Packet& p, Env& env) {
  ++env.ctr.matches_evaluated;
  Key k;
  if (!load_key(m.lhs, p, env, k)) return false;
  using Op = MatchStmt::Op;
  if (m.bitwise) {
    uint32_t v = (uint32_t(k.b[0]) << 24) | (uint32_t(k.b[1]) << 16) | (uint32_t(k.b[2]) << 8) | k.b[3];
    v = (v & m.and_mask) ^ m.xor_val;
    put_be(k.b.data(), v, 4);
  }
  switch (m.op) {
    case Op::Eq: return within(m.lo, m.hi, k, m.types.data(), m.types.size());
    case Op::Ne: return !within(m.lo, m.hi, k, m.types.data(), m.types.size());
    case Op::Lt: return k.cmp(m.lo) < 0;
    case Op::Gt: return k.cmp(m.lo) > 0;
    case Op::Le: return k.cmp(m.lo) <= 0;
    case Op::Ge: return k.cmp(m.lo) >= 0;
    case Op::InSet: return set_has(t, m.set, k, p, env);
    case Op::NotInSet: return !set_has(t, m.set, k, p, env);
    case Op::FlagsAny:
    case Op::FlagsNone: {
      bool any = false;
      for (size_t i = 0; i < 4; ++i) any |= (k.b[i] & m.lo.b[i]) != 0;
      return m.op == Op::FlagsAny ? any : !any;
    }
  }
  return false;
}

void event(Env& env, Hook h, TraceKind kind, const Table& t, const Chain& c, uint32_t num, std::string target,
           std::string detail) {
  TraceEvent e;
  e.hook = h;
  e.kind = kind;
  e.table = t.label;
  e.chain = c.name;
  e.rulenum = num;
  e.target = std::move(target);
  e.detail = std::move(detail);
  env.trace.event(std::move(e));
}

std::string verdict_label(const VerdictSpec& v) {
  std::string s = verdict_text(v);
  return s.empty() ? "continue" : s;
}

enum class Res : uint8_t { NoMatch, Continue, Verdict };

struct RuleOut {
  Res res = Res::NoMatch;
  const VerdictSpec* v = nullptr;  // for Verdict (Jump/Goto hold the chain index); points into the ruleset
  Verdict final;                   // for Accept/Drop from NAT/reject
  bool is_final = false;           // final says what happens (NAT accept, reject, nat failure)
  std::string label;               // trace label
};

RuleOut eval_rule(const Table& t, const Rule& r, Hook h, Packet& p, Env& env) {
  RuleOut o;
  bool tracing = env.trace.enabled();
  for (auto& st : r.stmts) {
    if (auto* m = std::get_if<MatchStmt>(&st)) {
      if (!match(t, *m, p, env)) return o;
      continue;
    }
    if (auto* vm = std::get_if<VmapStmt>(&st)) {
      Key k;
      if (!load_key(vm->key, p, env, k)) return o;
      ++env.ctr.set_lookups;
      const Set& s = t.sets[size_t(vm->set)];
      int32_t e = s.find(k);
      if (e < 0) return o;  // no element: the rule does not match
      o.res = Res::Verdict;
      o.v = &s.elems[size_t(e)].verdict;
      if (tracing) o.label = verdict_label(*o.v);
      return o;
    }
    if (auto* v = std::get_if<VerdictStmt>(&st)) {
      o.res = Res::Verdict;
      o.v = &v->v;
      if (tracing) o.label = verdict_label(*o.v);
      return o;
    }
    if (std::holds_alternative<CounterStmt>(st)) {
      env.state.pkts[r.id]++;
      env.state.bytes[r.id] += p.len;
      continue;
    }
    if (auto* ms = std::get_if<MarkSetStmt>(&st)) {
      p.mark = (p.mark & ms->and_mask) ^ ms->xor_val;
      continue;
    }
    if (auto* ns = std::get_if<NatStmt>(&st)) {
      o.res = Res::Verdict;
      o.is_final = true;
      o.final = Verdict::accept();
      using K = NatTarget::Kind;
      const NatTarget& tg = ns->t;
      if (tracing)
        o.label = tg.kind == K::Dnat         ? "dnat"
                  : tg.kind == K::Snat       ? "snat"
                  : tg.kind == K::Masquerade ? "masquerade"
                                             : "redirect";
      // nft_nat_inet_eval: an inet table's "ip to" never applies to IPv6 packets.
      if (tg.kind != K::Masquerade && tg.kind != K::Redirect && tg.addr_set && tg.min.fam != p.t.src.fam) return RuleOut{};
      o.final = nat_target(tg, h, p, env.node, env.ct, env.choose);
      return o;
    }
    if (auto* rj = std::get_if<RejectStmt>(&st)) {
      o.res = Res::Verdict;
      o.is_final = true;
      o.final = Verdict::drop(DropReason::RuleReject);
      env.hit.reject_with = rj->with;
      if (tracing) o.label = "reject";
      return o;
    }
    if (auto* lg = std::get_if<LogStmt>(&st)) {
      (void)lg;
      continue;
    }
    if (std::holds_alternative<NotrackStmt>(st)) {
      p.notrack = true;
      continue;
    }
    if (auto* up = std::get_if<SetUpdateStmt>(&st)) {
      Key k;
      if (!load_key(up->key, p, env, k)) return o;
      const Set& s = t.sets[size_t(up->set)];
      uint64_t exp = s.timeout_ns ? p.ts_ns + s.timeout_ns : UINT64_MAX;
      auto& m = env.state.dyn[{&t, up->set}];
      auto it = m.find(k);
      if (it == m.end() || it->second <= p.ts_ns) m[k] = exp;
      else if (!up->add) it->second = exp;
      continue;
    }
  }
  o.res = Res::Continue;
  if (tracing) o.label = "continue";
  return o;
}

}  // namespace

Verdict run_chain(const Table& t, const Chain& base, Hook h, Packet& p, Env& env) noexcept {
  struct Frame {
    const Chain* c;
    size_t next;
  };
  Frame stack[kJumpStackSize];
  size_t sp = 0;
  const Chain* c = &base;
  size_t i = 0;
  bool tracing = env.trace.enabled();
  for (;;) {
    if (i >= c->rules.size()) {
      if (sp == 0) {
        // Off the end with nothing to return to (the base chain, or a chain it went to with goto):
        // the base chain's policy decides.
        if (tracing)
          event(env, h, TraceKind::Policy, t, base, uint32_t(base.rules.size() + 1), base.policy_drop ? "drop" : "accept",
                fmt::format("policy {}", base.policy_drop ? "drop" : "accept"));
        if (base.policy_drop) {
          env.hit = {&t, &base, uint32_t(base.rules.size() + 1), true, {}};
          return Verdict::drop(DropReason::ChainPolicy);
        }
        return Verdict::accept();
      }
      if (tracing)
        event(env, h, TraceKind::Return, t, *c, uint32_t(c->rules.size() + 1), "return", "end of chain: back to the caller");
      --sp;
      c = stack[sp].c;
      i = stack[sp].next;
      continue;
    }
    const Rule& r = c->rules[i++];
    ++env.ctr.rules_evaluated;
    RuleOut o = eval_rule(t, r, h, p, env);
    if (o.res == Res::NoMatch) continue;
    if (tracing) event(env, h, TraceKind::Rule, t, *c, uint32_t(i), o.label, rule_text(t, r));
    if (o.res == Res::Continue) continue;
    if (o.is_final) {
      if (o.final.kind != VerdictKind::Accept) env.hit = {&t, c, uint32_t(i), false, env.hit.reject_with};
      return o.final;
    }
    switch (o.v->code) {
      case VerdictCode::Accept: return Verdict::accept();
      case VerdictCode::Drop: env.hit = {&t, c, uint32_t(i), false, {}}; return Verdict::drop(DropReason::RuleDrop);
      case VerdictCode::Continue:
      case VerdictCode::None:
      case VerdictCode::Queue: break;
      case VerdictCode::Return:
        if (sp == 0) {
          // return with nothing to return to: the base chain's policy decides
          if (base.policy_drop) {
            env.hit = {&t, &base, uint32_t(base.rules.size() + 1), true, {}};
            return Verdict::drop(DropReason::ChainPolicy);
          }
          return Verdict::accept();
        }
        --sp;
        c = stack[sp].c;
        i = stack[sp].next;
        break;
      case VerdictCode::Jump:
        if (sp == kJumpStackSize) return Verdict::drop(DropReason::RuleDrop);  // the kernel refuses such rulesets on load
        stack[sp++] = {c, i};
        [[fallthrough]];
      case VerdictCode::Goto:
        ++env.ctr.chain_jumps;
        c = &t.chains[size_t(o.v->chain)];
        i = 0;
        break;
    }
  }
}

}  // namespace svcpath::nf::nft
