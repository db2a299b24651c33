// iptables-restore's rule spec: the ipt_ip part (-s, -d, -p, -i, -o, -f), -m and -j/-g, and the
// dispatch of every other option to the module that owns it, as iptables' do_command4 and
// command_default do. The word cursor the module parsers share lives here too.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "netfilter/iptables/parse.hpp"

namespace svcpath::nf::restore {

// ------------------------------------------------------------------------------ the word cursor
// Next token as the argument of the option at i.
const std::string* ParseCtx::arg() {
  if (i + 1 >= t.size()) {
    err(fmt::format("option '{}' requires an argument", t[i].s));
    return nullptr;
  }
  return &t[++i].s;
}

std::optional<Prefix> ParseCtx::prefix(const std::string& s) {
  std::string why;
  auto p = Prefix::parse(s, &why);
  if (!p) {
    err(why);
    return std::nullopt;
  }
  if (p->addr.fam != fam) {
    err(fmt::format("'{}' is an IPv{} address in an IPv{} ruleset", s, int(p->addr.fam), int(fam)));
    return std::nullopt;
  }
  return p;
}

std::optional<Addr> ParseCtx::addr(const std::string& s) {
  std::string why;
  auto a = Addr::parse(s, &why);
  if (!a) {
    err(why);
    return std::nullopt;
  }
  if (a->fam != fam) {
    err(fmt::format("'{}' is an IPv{} address in an IPv{} ruleset", s, int(a->fam), int(fam)));
    return std::nullopt;
  }
  return a;
}

std::optional<PortRange> ParseCtx::ports(const std::string& s, char sep) {
  std::string why;
  auto r = PortRange::parse(s, sep, &why);
  if (!r) err(why);
  return r;
}

std::optional<uint64_t> ParseCtx::num(const std::string& s, uint64_t max, const char* what, bool hex) {
  auto v = parse_uint(s, max, hex);
  if (!v) err(fmt::format("{} '{}' is not a number in 0..{}", what, s, max));
  return v;
}

// "value[/mask]" as the mark modules accept it.
bool ParseCtx::value_mask(const std::string& s, uint32_t& v, uint32_t& m, uint32_t default_mask) {
  auto vm = parse_value_mask(s, default_mask);
  if (!vm) {
    err(fmt::format("'{}' is not a value[/mask] of 32-bit numbers", s));
    return false;
  }
  v = vm->value;
  m = vm->mask;
  return true;
}

bool iface(const std::string& s, IfaceMatch& m, bool inv, ParseCtx& p) {
  if (s.empty() || s.size() > 15 || s.find_first_of(" /") != std::string::npos) {
    p.err(fmt::format("interface name '{}' is not valid (1..15 characters, no '/' or space)", s));
    return false;
  }
  m.set = true;
  m.inv = inv;
  m.wildcard = s.back() == '+';
  m.name = m.wildcard ? s.substr(0, s.size() - 1) : s;
  return true;
}

bool valid_chain_name(std::string_view n, std::string& why) {
  if (n.empty()) return why = "empty chain name", false;
  if (n.size() > 28) return why = fmt::format("chain name '{}' is longer than 28 characters", n), false;
  if (n[0] == '-' || n[0] == '!') return why = fmt::format("chain name '{}' may not start with '-' or '!'", n), false;
  if (new_target(n)) return why = fmt::format("'{}' is a target name, not a chain", n), false;
  for (char c : n)
    if (std::isspace(uint8_t(c))) return why = fmt::format("chain name '{}' contains white space", n), false;
  return true;
}

// ------------------------------------------------------------------------------ rule parsing
namespace {

// The ipt_ip part, checked by the kernel before any match (ip_packet_match). Unknown when o is not
// one of its options; inv is consumed otherwise.
Res ipt_ip_option(ParseCtx& p, Rule& r, const std::string& o, bool inv) {
  if (o == "-s" || o == "--source" || o == "--src" || o == "-d" || o == "--destination" || o == "--dst") {
    bool src = o[1] == 's' || o == "--source" || o == "--src";
    auto a = p.arg();
    if (!a) return Fail;
    if (*a == "!") {
      p.err("using intrapositioned negation (`--option ! this`) is not supported; write `! --option this`");
      return Fail;
    }
    auto pf = p.prefix(*a);
    if (!pf) return Fail;
    (src ? r.src : r.dst) = *pf;
    (src ? r.src_set : r.dst_set) = true;
    (src ? r.src_inv : r.dst_inv) = inv;
    return Ok;
  }
  if (o == "-p" || o == "--protocol") {
    auto a = p.arg();
    if (!a) return Fail;
    std::string lower = *a;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    auto pr = proto::parse(lower);
    if (!pr) {
      p.err(fmt::format("unknown protocol '{}'", *a));
      return Fail;
    }
    if (p.fam == Family::V6 && *pr == proto::ICMP) {
      p.err("protocol 'icmp' in an IPv6 ruleset; use ipv6-icmp");
      return Fail;
    }
    r.proto = *pr;
    r.proto_set = *pr != 0 || inv;
    r.proto_inv = inv;
    return Ok;
  }
  if (o == "-i" || o == "--in-interface" || o == "-o" || o == "--out-interface") {
    bool in = o == "-i" || o == "--in-interface";
    auto a = p.arg();
    if (!a || !iface(*a, in ? r.iif : r.oif, inv, p)) return Fail;
    return Ok;
  }
  if (o == "-f" || o == "--fragment") {
    if (p.fam == Family::V6) {
      p.err("-f is not available in ip6tables; use -m frag");
      return Fail;
    }
    r.frag_set = true;
    r.frag_inv = inv;
    return Ok;
  }
  return Unknown;
}

// The argument of -j/-g (the option at p.i): a target, or a chain resolved at COMMIT.
bool jump(ParseCtx& p, Rule& r, const std::string& o) {
  auto a = p.arg();
  if (!a) return false;
  bool go = o == "-g" || o == "--goto";
  auto tg = go ? std::nullopt : new_target(*a);
  if (tg) {
    r.target = std::move(*tg);
  } else {
    std::string why;
    if (go && new_target(*a)) {
      p.err(fmt::format("-g needs a user chain, not the target '{}'", *a));
      return false;
    }
    if (!valid_chain_name(*a, why)) {
      p.err(why);
      return false;
    }
    r.target = JumpTarget{*a, -1, go};
  }
  return true;
}

// A module option goes to the target, then to the matches newest first, then to the match the
// protocol loads on demand, as iptables' command_default looks for its owner.
Res module_option(ParseCtx& p, Rule& r, const std::string& o, bool inv, bool have_target, bool& implicit_loaded) {
  Res res = Unknown;
  if (have_target) res = target_option(r.target, o, inv, p);
  for (size_t k = r.matches.size(); res == Unknown && k-- > 0;) res = match_option(r.matches[k], o, inv, p);
  if (res == Unknown && !implicit_loaded && r.proto_set && !r.proto_inv) {
    // iptables loads the protocol's match on demand ("-p tcp --dport 80").
    if (auto m = implicit_match(r.proto, p.fam)) {
      implicit_loaded = true;
      res = match_option(*m, o, inv, p);
      if (res != Unknown) r.matches.push_back(std::move(*m));
    }
  }
  return res;
}

}  // namespace

bool parse_rule_spec(ParseCtx& p, Rule& r) {
  p.rule = &r;
  bool inv = false;
  size_t inv_at = 0;
  bool have_target = false;
  bool implicit_loaded = false;
  const auto& t = p.t;
  auto take_inv = [&]() {
    bool v = inv;
    inv = false;
    return v;
  };
  for (; p.i < t.size(); ++p.i) {
    const std::string& o = t[p.i].s;
    if (o == "!") {
      if (inv) {
        p.err("multiple `!' flags not allowed");
        return false;
      }
      inv = true;
      inv_at = p.i;
      continue;
    }
    if (Res res = ipt_ip_option(p, r, o, inv); res != Unknown) {
      if (res == Fail) return false;
      inv = false;
      continue;
    }
    if (o == "-m" || o == "--match") {
      if (inv) {
        p.err(inv_at, "`!' cannot be used before -m");
        return false;
      }
      auto a = p.arg();
      if (!a) return false;
      auto m = new_match(*a, p.fam);
      if (!m) {
        p.err(fmt::format("unsupported match '{}'", *a));
        return false;
      }
      r.matches.push_back(std::move(*m));
      continue;
    }
    if (o == "-j" || o == "--jump" || o == "-g" || o == "--goto") {
      if (inv) {
        p.err(inv_at, "`!' cannot be used before -j");
        return false;
      }
      if (have_target) {
        p.err("multiple -j/-g options");
        return false;
      }
      if (!jump(p, r, o)) return false;
      have_target = true;
      continue;
    }
    if (o == "-c" || o == "--set-counters") {
      auto a = p.arg();
      if (!a) return false;
      auto b = p.arg();
      if (!b) return false;
      auto pk = parse_uint(*a, UINT64_MAX), by = parse_uint(*b, UINT64_MAX);
      if (!pk || !by) {
        p.err("-c needs two numbers: packets bytes");
        return false;
      }
      r.pkts = *pk;
      r.bytes = *by;
      continue;
    }
    if (o.size() > 2 && o[0] == '-' && o[1] == '-') {
      bool iv = take_inv();
      size_t at = p.i;
      Res res = module_option(p, r, o, iv, have_target, implicit_loaded);
      if (res == Fail) return false;
      if (res == Unknown) {
        p.err(at, fmt::format("unknown option '{}'", o));
        return false;
      }
      continue;
    }
    p.err(fmt::format("unexpected argument '{}'", o));
    return false;
  }
  if (inv) {
    p.err(inv_at, "`!' at the end of the rule negates nothing");
    return false;
  }
  for (auto& m : r.matches) final_check(m, p, p.t.size() - 1);
  if (p.bad) return false;
  return check_match_protocols(r, p) && check_target(r, p);
}

}  // namespace svcpath::nf::restore
