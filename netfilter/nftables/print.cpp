// The `nft list ruleset` printer: tables, named sets and maps, chains with their base-chain line,
// and each rule's statements spelled as nft lists them (`nft -a` adds `# handle N`). What it
// prints loads back to the same ruleset (tests/kernel/roundtrip.sh compares it with nft's own).
#include <cstdint>
#include <cstdlib>

#include <fmt/format.h>

#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

namespace {

std::string selector_text(const Selector& s) {
  switch (s.sel) {
    case Sel::IpSaddr: return "ip saddr";
    case Sel::IpDaddr: return "ip daddr";
    case Sel::IpProtocol: return "ip protocol";
    case Sel::Ip6Saddr: return "ip6 saddr";
    case Sel::Ip6Daddr: return "ip6 daddr";
    case Sel::Ip6Nexthdr: return "ip6 nexthdr";
    case Sel::Sport:
    case Sel::Dport: {
      std::string_view p = s.proto == proto::TCP ? "tcp" : s.proto == proto::UDP ? "udp" : s.proto == proto::SCTP ? "sctp" : "th";
      return fmt::format("{} {}", p, s.sel == Sel::Sport ? "sport" : "dport");
    }
    case Sel::L4Proto: return "meta l4proto";
    case Sel::NfProto: return "meta nfproto";
    case Sel::Mark: return "meta mark";
    case Sel::Iifname: return "iifname";
    case Sel::Oifname: return "oifname";
    case Sel::CtState: return "ct state";
    case Sel::CtMark: return "ct mark";
    case Sel::CtStatus: return "ct status";
    case Sel::IpVersion: return "ip version";
    case Sel::Ip6Version: return "ip6 version";
    case Sel::IcmpType: return "icmp type";
    case Sel::Icmp6Type: return "icmpv6 type";
    case Sel::FibSaddrType: return s.fib_dev ? "fib saddr . iif type" : "fib saddr type";
    case Sel::FibDaddrType: return s.fib_dev ? "fib daddr . iif type" : "fib daddr type";
    case Sel::Numgen:
      return s.offset ? fmt::format("numgen random mod {} offset {}", s.mod, s.offset)
                      : fmt::format("numgen random mod {}", s.mod);
  }
  return "?";
}

std::string concat_text(const std::vector<Selector>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " . ") + selector_text(x);
  return s;
}

}  // namespace

std::string verdict_text(const VerdictSpec& v) {
  switch (v.code) {
    case VerdictCode::Accept: return "accept";
    case VerdictCode::Drop: return "drop";
    case VerdictCode::Return: return "return";
    case VerdictCode::Continue: return "continue";
    case VerdictCode::Jump: return "jump " + v.chain_name;
    case VerdictCode::Goto: return "goto " + v.chain_name;
    case VerdictCode::Queue: return "queue";
    case VerdictCode::None: return "";
  }
  return "";
}

namespace {

std::string elements_text(const Set& s, std::string_view indent) {
  std::string out = "{ ";
  for (size_t i = 0; i < s.elems.size(); ++i) {
    const Element& e = s.elems[i];
    if (i) out += s.anonymous ? std::string(", ") : fmt::format(",\n{}", indent);
    out += e.text;
    if (!e.comment.empty()) out += fmt::format(" comment \"{}\"", e.comment);
    if (s.map) out += " : " + verdict_text(e.verdict);
  }
  return out + " }";
}

// nft's time format: 1d2h3m4s, 500ms.
// nft's log_stmt_print: options in a fixed order, level warn (the default) left out.
std::string log_text(const LogStmt& l) {
  static constexpr std::string_view kLevels[] = {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"};
  std::string s = "log";
  if (!l.prefix.empty()) s += fmt::format(" prefix \"{}\"", l.prefix);
  if (l.group >= 0) s += fmt::format(" group {}", l.group);
  if (l.snaplen >= 0) s += fmt::format(" snaplen {}", l.snaplen);
  if (l.qthreshold >= 0) s += fmt::format(" queue-threshold {}", l.qthreshold);
  if (l.level >= 0 && l.level != 4) s += fmt::format(" level {}", kLevels[l.level]);
  if ((l.logflags & kLogAll) == kLogAll) return s + " flags all";
  if (l.logflags & 0x03) {
    s += " flags tcp";
    if (l.logflags & 0x01) s += " sequence";
    if (l.logflags & 0x02) s += (l.logflags & 0x01) ? ",options" : " options";
  }
  if (l.logflags & 0x04) s += " flags ip options";
  if (l.logflags & 0x08) s += " flags skuid";
  if (l.logflags & 0x20) s += " flags ether";
  return s;
}

std::string duration_text(uint64_t ns) {
  uint64_t ms = ns / 1000000ull;
  std::string s;
  for (auto [unit, name] :
       {std::pair<uint64_t, const char*>{86400000ull, "d"}, {3600000ull, "h"}, {60000ull, "m"}, {1000ull, "s"}, {1ull, "ms"}})
    if (ms >= unit) {
      s += std::to_string(ms / unit) + name;
      ms %= unit;
    }
  return s.empty() ? "0s" : s;
}

// nft's prio2str. The names follow nft 1.0.6's hook rules (dstnat on prerouting, srcnat on
// postrouting only), not current nft's wider ones: `priority -100` on output loads in every nft
// version, `priority dstnat` there only in nft >= 1.0.7, and the printout must load everywhere.
std::string prio_text(Hook h, int prio) {
  struct Std {
    std::string_view name;
    int v;
    bool all_hooks;
    Hook only;
  };
  static const Std names[] = {{"raw", -300, true, Hook::PreRouting},     {"mangle", -150, true, Hook::PreRouting},
                              {"dstnat", -100, false, Hook::PreRouting}, {"filter", 0, true, Hook::PreRouting},
                              {"security", 50, true, Hook::PreRouting},  {"srcnat", 100, false, Hook::PostRouting}};
  for (auto& n : names)
    if ((n.all_hooks || n.only == h) && std::abs(prio - n.v) <= 10) {
      int off = prio - n.v;
      if (off == 0) return std::string(n.name);
      return fmt::format("{} {} {}", n.name, off < 0 ? '-' : '+', std::abs(off));
    }
  return std::to_string(prio);
}

}  // namespace

std::string rule_text(const Table& t, const Rule& r) {
  std::string s;
  auto add = [&](const std::string& x) {
    if (x.empty()) return;
    if (!s.empty()) s += ' ';
    s += x;
  };
  // nft lists a protocol match that a later port match depends on as that port match's implicit
  // dependency, and drops it (netlink_delinearize's payload_dependency_kill): `meta l4proto udp
  // iifname "x" udp dport 53` prints `iifname "x" udp dport 53`, `meta l4proto tcp th dport 80`
  // prints `tcp dport 80`. Matches in between keep the dependency pending; other statements end it.
  std::vector<uint8_t> dep_of(r.stmts.size(), 0);  // a port match: the protocol it now names
  std::vector<bool> killed(r.stmts.size(), false);
  for (size_t i = 0, pending = SIZE_MAX; i < r.stmts.size(); ++i) {
    auto* m = std::get_if<MatchStmt>(&r.stmts[i]);
    if (!m) {
      pending = SIZE_MAX;
      continue;
    }
    if (m->lhs.size() != 1) continue;
    Sel sel = m->lhs[0].sel;
    bool dep = (sel == Sel::L4Proto || (sel == Sel::IpProtocol && t.family == TableFamily::Ip)) && m->op == MatchStmt::Op::Eq &&
               !m->bitwise && m->lo == m->hi;
    if (dep) {
      pending = i;
    } else if ((sel == Sel::Sport || sel == Sel::Dport) && pending != SIZE_MAX) {
      auto& d = std::get<MatchStmt>(r.stmts[pending]);
      uint8_t pr = d.lo.b[0];
      if ((m->lhs[0].proto == 0 || m->lhs[0].proto == pr) && (pr == proto::TCP || pr == proto::UDP || pr == proto::SCTP)) {
        killed[pending] = true;
        dep_of[i] = pr;
      }
      pending = SIZE_MAX;
    }
  }
  for (size_t si = 0; si < r.stmts.size(); ++si) {
    const Stmt& st = r.stmts[si];
    if (killed[si]) continue;
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, MatchStmt>) {
            std::string lhs;
            if (dep_of[si]) {
              Selector named = x.lhs[0];
              named.proto = dep_of[si];
              lhs = selector_text(named);
            } else {
              lhs = concat_text(x.lhs);
            }
            if (x.bitwise) {
              if (x.xor_val == 0) lhs += fmt::format(" & 0x{:08x}", x.and_mask);
              else if (x.and_mask == ~x.xor_val) lhs += fmt::format(" | 0x{:08x}", x.xor_val);
              else lhs += fmt::format(" ^ 0x{:08x}", x.xor_val);
            }
            using Op = MatchStmt::Op;
            std::string rhs = x.rhs_text;
            if (x.bitwise && x.lhs[0].type() == Type::Mark && x.lo == x.hi) rhs = one_value(Type::Mark, x.lo.b.data());
            if (x.op == Op::InSet || x.op == Op::NotInSet) {
              const Set& set = t.sets[size_t(x.set)];
              rhs = set.anonymous ? elements_text(set, "") : "@" + set.name;
            }
            std::string_view op;
            switch (x.op) {
              case Op::Eq: op = x.bitwise ? "==" : ""; break;
              case Op::Ne:
              case Op::NotInSet:
              case Op::FlagsNone: op = "!="; break;
              case Op::Lt: op = "<"; break;
              case Op::Gt: op = ">"; break;
              case Op::Le: op = "<="; break;
              case Op::Ge: op = ">="; break;
              default: break;
            }
            add(lhs);
            add(std::string(op));
            add(rhs);
          } else if constexpr (std::is_same_v<T, VmapStmt>) {
            const Set& set = t.sets[size_t(x.set)];
            add(concat_text(x.key) + " vmap " + (set.anonymous ? elements_text(set, "") : "@" + set.name));
          } else if constexpr (std::is_same_v<T, VerdictStmt>) {
            add(verdict_text(x.v));
          } else if constexpr (std::is_same_v<T, CounterStmt>) {
            add(fmt::format("counter packets {} bytes {}", x.packets, x.bytes));
          } else if constexpr (std::is_same_v<T, MarkSetStmt>) {
            add("meta mark set " + x.text);
          } else if constexpr (std::is_same_v<T, NatStmt>) {
            using K = NatTarget::Kind;
            const NatTarget& n = x.t;
            std::string w = n.kind == K::Dnat         ? "dnat"
                            : n.kind == K::Snat       ? "snat"
                            : n.kind == K::Masquerade ? "masquerade"
                                                      : "redirect";
            if (n.addr_set || n.port_set) {
              bool v6 = n.addr_set && !n.min.is_v4();
              if (t.family == TableFamily::Inet && n.addr_set) w += v6 ? " ip6" : " ip";
              w += " to ";
              std::string a;
              if (n.addr_set) a = n.min == n.max ? n.min.str() : n.min.str() + "-" + n.max.str();
              if (v6 && n.port_set) a = "[" + a + "]";
              if (n.port_set) a += ":" + n.ports.str('-');
              w += a;
            }
            std::string flags;
            if (n.random) flags += "random";
            if (n.random_fully) flags += (flags.empty() ? "" : ",") + std::string("fully-random");
            if (n.persistent) flags += (flags.empty() ? "" : ",") + std::string("persistent");
            if (!flags.empty()) w += " " + flags;
            add(w);
          } else if constexpr (std::is_same_v<T, RejectStmt>) {
            add(x.text.empty() ? "reject" : "reject " + x.text);
          } else if constexpr (std::is_same_v<T, LogStmt>) {
            add(log_text(x));
          } else if constexpr (std::is_same_v<T, NotrackStmt>) {
            add("notrack");
          } else if constexpr (std::is_same_v<T, SetUpdateStmt>) {
            add(fmt::format("{} @{} {{ {} }}", x.add ? "add" : "update", t.sets[size_t(x.set)].name, concat_text(x.key)));
          }
        },
        st);
  }
  if (!r.comment.empty()) add(fmt::format("comment \"{}\"", r.comment));
  return s;
}

std::string print(const Ruleset& rs, bool handles) {
  std::string out;
  for (auto& tp : rs.tables) {
    const Table& t = *tp;
    out += fmt::format("table {} {} {{\n", family_name(t.family), t.name);
    if (!t.comment.empty()) out += fmt::format("\tcomment \"{}\"\n", t.comment);
    bool first = true;
    auto sep = [&]() {
      if (!first) out += "\n";
      first = false;
    };
    for (auto& s : t.sets) {
      if (s.anonymous) continue;
      sep();
      out += fmt::format("\t{} {} {{\n\t\ttype ", s.map ? "map" : "set", s.name);
      for (size_t i = 0; i < s.key.size(); ++i) out += (i ? " . " : "") + std::string(type_name(s.key[i]));
      if (s.map) out += " : verdict";
      out += "\n";
      if (s.size) out += fmt::format("\t\tsize {}\n", s.size);
      std::string flags;
      if (s.constant) flags += "constant";
      if (s.dynamic) flags += (flags.empty() ? "" : ",") + std::string("dynamic");
      if (s.interval) flags += (flags.empty() ? "" : ",") + std::string("interval");
      if (s.timeout_flag) flags += (flags.empty() ? "" : ",") + std::string("timeout");
      if (!flags.empty()) out += "\t\tflags " + flags + "\n";
      if (s.timeout_ns) out += fmt::format("\t\ttimeout {}\n", duration_text(s.timeout_ns));
      if (!s.comment.empty()) out += fmt::format("\t\tcomment \"{}\"\n", s.comment);
      if (!s.elems.empty()) out += "\t\telements = " + elements_text(s, "\t\t\t     ") + "\n";
      out += "\t}\n";
    }
    for (auto& c : t.chains) {
      sep();
      out += fmt::format("\tchain {} {{", c.name);
      if (handles) out += fmt::format(" # handle {}", c.handle);
      out += "\n";
      if (!c.comment.empty()) out += fmt::format("\t\tcomment \"{}\"\n", c.comment);
      if (c.base)
        out += fmt::format("\t\ttype {} hook {} priority {}; policy {};\n",
                           c.type == ChainType::Nat     ? "nat"
                           : c.type == ChainType::Route ? "route"
                                                        : "filter",
                           hook_word(c.hook), prio_text(c.hook, c.priority), c.policy_drop ? "drop" : "accept");
      for (auto& r : c.rules) {
        out += "\t\t" + rule_text(t, r);
        if (handles) out += fmt::format(" # handle {}", r.handle);
        out += "\n";
      }
      out += "\t}\n";
    }
    out += "}\n";
  }
  return out;
}

}  // namespace svcpath::nf::nft
