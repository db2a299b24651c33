// Load-time checks (nft's evaluate step and the kernel's nf_tables_api.c): jump/goto targets and
// set references resolved, key types compared, no loops, at most 15
// chains below a base chain (NFT_JUMP_STACK_SIZE), NAT only below nat chains of the right hook,
// reject never below postrouting.
#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

namespace {

using Edges = std::vector<std::vector<int32_t>>;

// Resolves t's jump/goto targets and set references, checks key types, numbers rules from id.
void resolve(Table& t, uint32_t& id, Diagnostics& d) {
  auto resolve_v = [&](VerdictSpec& v, int line, const std::string& where) {
    if (v.code != VerdictCode::Jump && v.code != VerdictCode::Goto) return;
    v.chain = t.chain_index(v.chain_name);
    if (v.chain < 0) d.error(line, 0, fmt::format("{}: no chain '{}' in table {}", where, v.chain_name, t.label));
    else if (t.chains[size_t(v.chain)].base)
      d.error(line, 0, fmt::format("{}: cannot jump to base chain '{}'", where, v.chain_name));
  };
  auto key_types = [](const std::vector<Selector>& k) {
    std::vector<Type> v;
    for (auto& s : k) v.push_back(s.type());
    return v;
  };
  for (auto& s : t.sets) {
    for (auto& e : s.elems) resolve_v(e.verdict, s.line, fmt::format("map {}", s.name));
    s.index();
  }
  for (auto& c : t.chains) {
    for (auto& r : c.rules) {
      r.id = id++;
      std::string where = fmt::format("chain {}", c.name);
      for (auto& st : r.stmts) {
        std::visit(
            [&](auto& x) {
              using T = std::decay_t<decltype(x)>;
              auto find_set = [&](int32_t& idx, const std::string& name, const std::vector<Type>& want, bool map) {
                if (idx < 0) {
                  idx = t.set_index(name);
                  if (idx < 0) {
                    d.error(r.line, 0, fmt::format("no {} '{}' in table {}", map ? "map" : "set", name, t.label));
                    return;
                  }
                }
                const Set& s = t.sets[size_t(idx)];
                if (s.map != map)
                  d.error(r.line, 0, fmt::format("'{}' is a {}, used as a {}", name, s.map ? "map" : "set", map ? "map" : "set"));
                else if (s.key != want) {
                  std::string a, b;
                  for (Type ty : s.key) a += (a.empty() ? "" : " . ") + std::string(type_name(ty));
                  for (Type ty : want) b += (b.empty() ? "" : " . ") + std::string(type_name(ty));
                  d.error(r.line, 0, fmt::format("'{}' holds {}, the expression gives {}", s.anonymous ? "{ }" : name, a, b));
                }
              };
              if constexpr (std::is_same_v<T, VerdictStmt>) resolve_v(x.v, r.line, where);
              else if constexpr (std::is_same_v<T, VmapStmt>) find_set(x.set, x.set_name, key_types(x.key), true);
              else if constexpr (std::is_same_v<T, SetUpdateStmt>) {
                find_set(x.set, x.set_name, key_types(x.key), false);
                if (x.set >= 0 && !t.sets[size_t(x.set)].dynamic && !t.sets[size_t(x.set)].timeout_flag)
                  d.error(r.line, 0,
                          fmt::format("set '{}' needs 'flags dynamic' to be updated from the packet path", x.set_name));
              } else if constexpr (std::is_same_v<T, MatchStmt>) {
                if (x.op == MatchStmt::Op::InSet || x.op == MatchStmt::Op::NotInSet)
                  find_set(x.set, x.set_name, key_types(x.lhs), false);
              } else if constexpr (std::is_same_v<T, NatStmt>) {
                bool ok = true;  // checked per base chain below
                (void)ok;
              }
            },
            st);
      }
    }
  }
}

// The chains each chain jumps or goes to: its verdicts and its verdict maps' elements.
Edges jump_edges(const Table& t) {
  size_t n = t.chains.size();
  Edges edges(n);
  for (size_t c = 0; c < n; ++c)
    for (auto& r : t.chains[c].rules)
      for (auto& st : r.stmts) {
        if (auto* v = std::get_if<VerdictStmt>(&st); v && v->v.chain >= 0) edges[c].push_back(v->v.chain);
        if (auto* m = std::get_if<VmapStmt>(&st); m && m->set >= 0)
          for (auto& e : t.sets[size_t(m->set)].elems)
            if (e.verdict.chain >= 0) edges[c].push_back(e.verdict.chain);
      }
  return edges;
}

// Loops: nft refuses a ruleset in which a chain can reach itself.
void check_loops(const Table& t, const Edges& edges, Diagnostics& d) {
  size_t n = t.chains.size();
  std::vector<uint8_t> color(n, 0);
  std::function<bool(size_t)> dfs = [&](size_t c) {
    color[c] = 1;
    for (int32_t x : edges[c]) {
      if (color[size_t(x)] == 1) {
        d.error(t.chains[c].line, 0,
                fmt::format("chain '{}' can reach itself through '{}' (a loop)", t.chains[c].name, t.chains[size_t(x)].name));
        return true;
      }
      if (color[size_t(x)] == 0 && dfs(size_t(x))) return true;
    }
    color[c] = 2;
    return false;
  };
  for (size_t c = 0; c < n && d.ok(); ++c)
    if (color[c] == 0) dfs(c);
}

// nft_chain_validate: a chain more than 15 jumps or gotos below its base chain is refused
// (NFT_JUMP_STACK_SIZE). Longest path per chain, memoised (the graph has no loops by now).
void check_depth(const Table& t, const Edges& edges, Diagnostics& d) {
  size_t n = t.chains.size();
  std::vector<int> below(n, -1);
  std::function<int(size_t)> height = [&](size_t c) {
    if (below[c] >= 0) return below[c];
    int h = 0;
    for (int32_t x : edges[c]) h = std::max(h, 1 + height(size_t(x)));
    return below[c] = h;
  };
  for (size_t c = 0; c < n; ++c)
    if (t.chains[c].base && height(c) > int(kJumpStackSize - 1))
      d.error(t.chains[c].line, 0,
              fmt::format("chains below base chain '{}' nest {} deep; the kernel allows {} (NFT_JUMP_STACK_SIZE)",
                          t.chains[c].name, height(c), kJumpStackSize - 1));
}

// NAT statements belong to nat chains; reject to input/forward/output (and prerouting since 5.9).
// Each chain once per base chain: walking every path instead is exponential in the jumps.
void check_placement(const Table& t, const Edges& edges, Diagnostics& d) {
  size_t n = t.chains.size();
  std::vector<uint8_t> seen;
  std::function<void(size_t, const Chain&)> check = [&](size_t c, const Chain& base) {
    if (seen[c]) return;
    seen[c] = 1;
    for (auto& r : t.chains[c].rules)
      for (auto& st : r.stmts) {
        if (std::holds_alternative<RejectStmt>(st) && base.hook == Hook::PostRouting)
          d.error(r.line, 0,
                  fmt::format("reject in chain '{}', reached from the postrouting hook (base chain '{}'): the kernel "
                              "allows reject in prerouting, input, forward and output only",
                              t.chains[c].name, base.name));
        if (auto* nt = std::get_if<NatStmt>(&st)) {
          if (base.type != ChainType::Nat)
            d.error(r.line, 0,
                    fmt::format("NAT in chain '{}', reached from base chain '{}' of type filter: nat statements need a nat chain",
                                t.chains[c].name, base.name));
          bool dst = nt->t.kind == NatTarget::Kind::Dnat || nt->t.kind == NatTarget::Kind::Redirect;
          bool pre = base.hook == Hook::PreRouting || base.hook == Hook::LocalOut;
          if (base.type == ChainType::Nat && dst != pre)
            d.error(r.line, 0,
                    fmt::format("{} in chain '{}' reached from the {} hook", dst ? "dnat/redirect" : "snat/masquerade",
                                t.chains[c].name, hook_word(base.hook)));
        }
      }
    for (int32_t x : edges[c]) check(size_t(x), base);
  };
  for (size_t c = 0; c < n; ++c)
    if (t.chains[c].base) {
      seen.assign(n, 0);
      check(c, t.chains[c]);
    }
}

}  // namespace

void finalize(Ruleset& rs, Diagnostics& d) {
  uint32_t id = 0;
  for (auto& tp : rs.tables) {
    Table& t = *tp;
    resolve(t, id, d);
    Edges edges = jump_edges(t);
    check_loops(t, edges, d);
    if (d.ok()) check_depth(t, edges, d);
    if (d.ok()) check_placement(t, edges, d);
  }
  rs.rule_count = id;
}

}  // namespace svcpath::nf::nft
