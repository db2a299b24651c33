// nft -f input and nft list ruleset output: one tokenizer, one recursive-descent parser for both
// (commands and table blocks), typed values checked against the set or selector they meet, and the
// printer that writes the ruleset back the way `nft list ruleset` does.
#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/bytes.hpp"
#include "core/diag.hpp"
#include "core/hash.hpp"
#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

std::string_view family_name(TableFamily f) {
  switch (f) {
    case TableFamily::Ip: return "ip";
    case TableFamily::Ip6: return "ip6";
    case TableFamily::Inet: return "inet";
  }
  return "ip";
}

std::string_view type_name(Type t) {
  switch (t) {
    case Type::Ipv4: return "ipv4_addr";
    case Type::Ipv6: return "ipv6_addr";
    case Type::Proto: return "inet_proto";
    case Type::Service: return "inet_service";
    case Type::Mark: return "mark";
    case Type::Ifname: return "ifname";
    case Type::Integer: return "integer";
    case Type::CtState: return "ct_state";
    case Type::AddrType: return "fib_addrtype";
    case Type::NfProto: return "nf_proto";
    case Type::Verdict: return "verdict";
  }
  return "integer";
}

size_t type_width(Type t) {
  switch (t) {
    case Type::Ipv6:
    case Type::Ifname: return 16;
    default: return 4;
  }
}

size_t KeyHash::operator()(const Key& k) const noexcept { return Fnv1a().mix(k.b.data(), k.len).h; }

Type Selector::type() const {
  switch (sel) {
    case Sel::IpSaddr:
    case Sel::IpDaddr: return Type::Ipv4;
    case Sel::Ip6Saddr:
    case Sel::Ip6Daddr: return Type::Ipv6;
    case Sel::IpProtocol:
    case Sel::Ip6Nexthdr:
    case Sel::L4Proto: return Type::Proto;
    case Sel::Sport:
    case Sel::Dport: return Type::Service;
    case Sel::NfProto: return Type::NfProto;
    case Sel::Mark:
    case Sel::CtMark: return Type::Mark;
    case Sel::Iifname:
    case Sel::Oifname: return Type::Ifname;
    case Sel::CtState: return Type::CtState;
    case Sel::FibSaddrType:
    case Sel::FibDaddrType: return Type::AddrType;
    case Sel::Numgen: return Type::Integer;
  }
  return Type::Integer;
}

size_t Set::key_len() const {
  size_t n = 0;
  for (Type t : key) n += type_width(t);
  return n;
}

bool within(const Key& lo, const Key& hi, const Key& k, const Type* types, size_t n) {
  // Each part of a concatenation is its own interval (the pipapo set's semantics), not one
  // lexicographic range over the whole key.
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t w = type_width(types[i]);
    if (std::memcmp(lo.b.data() + off, k.b.data() + off, w) > 0 || std::memcmp(k.b.data() + off, hi.b.data() + off, w) > 0)
      return false;
    off += w;
  }
  return true;
}

int32_t Set::find(const Key& k) const {
  auto it = exact.find(k);
  if (it != exact.end()) return int32_t(it->second);
  for (uint32_t i : ranges)
    if (within(elems[i].lo, elems[i].hi, k, key.data(), key.size())) return int32_t(i);
  return -1;
}

void Set::index() {
  exact.clear();
  ranges.clear();
  for (uint32_t i = 0; i < elems.size(); ++i) {
    if (elems[i].lo == elems[i].hi) exact.emplace(elems[i].lo, i);
    else ranges.push_back(i);
  }
}

int32_t Table::chain_index(std::string_view n) const {
  auto it = chain_by_name.find(std::string(n));
  return it == chain_by_name.end() ? -1 : it->second;
}
int32_t Table::set_index(std::string_view n) const {
  for (size_t i = 0; i < sets.size(); ++i)
    if (!sets[i].anonymous && sets[i].name == n) return int32_t(i);
  return -1;
}

Table* Ruleset::find(TableFamily f, std::string_view name) {
  for (auto& t : tables)
    if (t->family == f && t->name == name) return t.get();
  return nullptr;
}

namespace {

// ---- values ------------------------------------------------------------------------------------

constexpr struct {
  std::string_view name;
  uint8_t bit;
} kCtStates[] = {{"invalid", 1}, {"established", 2}, {"related", 4}, {"new", 8}, {"untracked", 64}};

constexpr std::string_view kAddrTypes[] = {"unspec",    "unicast",   "local",       "broadcast", "anycast",
                                           "multicast", "blackhole", "unreachable", "prohibit"};

// Values occupy the first bytes of their slot: a port is 2 bytes, a protocol 1, a mark 4.
size_t value_bytes(Type t) {
  switch (t) {
    case Type::Ipv4: return 4;
    case Type::Ipv6: return 16;
    case Type::Proto:
    case Type::NfProto: return 1;
    case Type::Service: return 2;
    case Type::Ifname: return 16;
    default: return 4;
  }
}

std::string proto_text(uint8_t p) {
  switch (p) {
    case proto::TCP: return "tcp";
    case proto::UDP: return "udp";
    case proto::SCTP: return "sctp";
    case proto::ICMP: return "icmp";
    case proto::ICMPV6: return "ipv6-icmp";
    case proto::UDPLITE: return "udplite";
    case proto::GRE: return "gre";
    case proto::ESP: return "esp";
    case proto::AH: return "ah";
    case proto::DCCP: return "dccp";
  }
  return std::to_string(p);
}

std::string one_value(Type t, const uint8_t* p) {
  switch (t) {
    case Type::Ipv4: return Addr::v4(uint32_t(get_be(p, 4))).str();
    case Type::Ipv6: {
      std::array<uint8_t, 16> b;
      std::memcpy(b.data(), p, 16);
      return Addr::v6(b).str();
    }
    case Type::Proto: return proto_text(p[0]);
    case Type::NfProto: return p[0] == 2 ? "ipv4" : p[0] == 10 ? "ipv6" : std::to_string(p[0]);
    case Type::Service: return std::to_string(get_be(p, 2));
    case Type::Mark: return fmt::format("0x{:08x}", get_be(p, 4));
    case Type::Ifname: {
      std::string s(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), 16));
      return "\"" + s + "\"";
    }
    case Type::CtState: {
      uint32_t v = uint32_t(get_be(p, 4));
      std::string s;
      for (auto& c : kCtStates)
        if (v & c.bit) s += (s.empty() ? "" : ",") + std::string(c.name);
      return s.empty() ? "0x0" : s;
    }
    case Type::AddrType: {
      uint32_t v = uint32_t(get_be(p, 4));
      return v < std::size(kAddrTypes) ? std::string(kAddrTypes[v]) : std::to_string(v);
    }
    default: return std::to_string(get_be(p, 4));
  }
}

// A component range: a prefix when it is one, else lo-hi.
std::string range_text(Type t, const uint8_t* lo, const uint8_t* hi) {
  size_t n = value_bytes(t);
  if (std::memcmp(lo, hi, n) == 0) return one_value(t, lo);
  if (t == Type::Ipv4 || t == Type::Ipv6) {
    // Prefix: lo and hi agree on the first len bits, lo has zeros and hi ones after that.
    unsigned bits = unsigned(n * 8), len = 0;
    while (len < bits && ((lo[len / 8] >> (7 - len % 8)) & 1) == ((hi[len / 8] >> (7 - len % 8)) & 1)) ++len;
    bool prefix = true;
    for (unsigned i = len; i < bits && prefix; ++i)
      prefix = ((lo[i / 8] >> (7 - i % 8)) & 1) == 0 && ((hi[i / 8] >> (7 - i % 8)) & 1) == 1;
    if (prefix) return one_value(t, lo) + "/" + std::to_string(len);
  }
  if (t == Type::Ifname) {
    // A wildcard "eth*": lo pads with zeros, hi with 0xff.
    std::string s(reinterpret_cast<const char*>(lo), strnlen(reinterpret_cast<const char*>(lo), 16));
    return "\"" + s + "*\"";
  }
  return one_value(t, lo) + "-" + one_value(t, hi);
}

std::string key_text(const std::vector<Type>& types, const Key& lo, const Key& hi) {
  std::string s;
  size_t off = 0;
  for (Type t : types) {
    if (!s.empty()) s += " . ";
    s += range_text(t, lo.b.data() + off, hi.b.data() + off);
    off += type_width(t);
  }
  return s;
}

std::optional<uint8_t> parse_proto(std::string_view s) {
  if (s == "ipv6-icmp" || s == "icmpv6") return proto::ICMPV6;
  if (auto p = proto::parse(s)) return p;
  return std::nullopt;
}

// Parses one component value (or range/prefix/wildcard) into lo/hi at p. Returns an error text.
std::string parse_component(Type t, std::string_view w, uint8_t* lo, uint8_t* hi) {
  size_t n = value_bytes(t);
  auto single = [&](std::string_view v, uint8_t* out) -> std::string {
    switch (t) {
      case Type::Ipv4:
      case Type::Ipv6: {
        std::string why;
        auto a = Addr::parse(v, &why);
        if (!a || (a->is_v4() != (t == Type::Ipv4)))
          return fmt::format("'{}' is not an {} address", v, t == Type::Ipv4 ? "IPv4" : "IPv6");
        std::memcpy(out, a->b.data(), n);
        return {};
      }
      case Type::Proto: {
        auto p = parse_proto(v);
        if (!p) return fmt::format("unknown protocol '{}'", v);
        out[0] = *p;
        return {};
      }
      case Type::NfProto: {
        if (v == "ipv4") out[0] = 2;
        else if (v == "ipv6") out[0] = 10;
        else return fmt::format("unknown nfproto '{}' (ipv4, ipv6)", v);
        return {};
      }
      case Type::Service: {
        static const std::pair<std::string_view, uint16_t> names[] = {{"http", 80},   {"https", 443}, {"ssh", 22},
                                                                      {"domain", 53}, {"ntp", 123},   {"bgp", 179}};
        for (auto& [nm, port] : names)
          if (v == nm) {
            put_be(out, port, 2);
            return {};
          }
        auto x = parse_uint(v, 65535);
        if (!x) return fmt::format("'{}' is not a port", v);
        put_be(out, *x, 2);
        return {};
      }
      case Type::Mark:
      case Type::Integer: {
        auto x = parse_uint(v, 0xffffffff, true);
        if (!x) return fmt::format("'{}' is not a 32-bit number", v);
        put_be(out, *x, 4);
        return {};
      }
      case Type::CtState: {
        for (auto& c : kCtStates)
          if (v == c.name) {
            put_be(out, c.bit, 4);
            return {};
          }
        return fmt::format("unknown ct state '{}' (new, established, related, invalid, untracked)", v);
      }
      case Type::AddrType: {
        for (size_t i = 0; i < std::size(kAddrTypes); ++i)
          if (v == kAddrTypes[i]) {
            put_be(out, i, 4);
            return {};
          }
        return fmt::format("unknown address type '{}'", v);
      }
      case Type::Ifname: {
        if (v.size() > 15) return fmt::format("interface name '{}' is longer than 15 characters", v);
        std::memset(out, 0, 16);
        std::memcpy(out, v.data(), v.size());
        return {};
      }
      case Type::Verdict: return "a verdict cannot be a key";
    }
    return "bad value";
  };
  if (t == Type::Ifname) {
    std::string_view v = w;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (!v.empty() && v.back() == '*') {
      v.remove_suffix(1);
      if (auto e = single(v, lo); !e.empty()) return e;
      std::memcpy(hi, lo, 16);
      std::memset(hi + v.size(), 0xff, 16 - v.size());
      return {};
    }
    if (auto e = single(v, lo); !e.empty()) return e;
    std::memcpy(hi, lo, 16);
    return {};
  }
  if ((t == Type::Ipv4 || t == Type::Ipv6) && w.find('/') != std::string_view::npos) {
    std::string why;
    auto pf = Prefix::parse(w, &why);
    if (!pf || pf->addr.is_v4() != (t == Type::Ipv4))
      return fmt::format("'{}' is not an {} prefix", w, t == Type::Ipv4 ? "IPv4" : "IPv6");
    std::memcpy(lo, pf->addr.b.data(), n);
    std::memcpy(hi, pf->addr.b.data(), n);
    for (unsigned i = pf->len; i < n * 8; ++i) hi[i / 8] |= uint8_t(0x80 >> (i % 8));
    return {};
  }
  // A range a-b (addresses, ports, numbers); a '-' inside a single token.
  if (t != Type::Ifname && t != Type::CtState && t != Type::AddrType) {
    auto dash = w.find('-', 1);
    if (dash != std::string_view::npos && t != Type::Proto) {
      if (!single(w.substr(0, dash), lo).empty() || !single(w.substr(dash + 1), hi).empty()) {
        if (auto e = single(w, lo); !e.empty()) return e;  // say it of the whole word
        std::memcpy(hi, lo, n);
        return {};
      }
      if (std::memcmp(lo, hi, n) > 0) return fmt::format("range '{}' is backwards", w);
      return {};
    }
  }
  if (auto e = single(w, lo); !e.empty()) return e;
  std::memcpy(hi, lo, n);
  return {};
}

std::optional<Hook> parse_hook(std::string_view s) {
  if (s == "prerouting") return Hook::PreRouting;
  if (s == "input") return Hook::LocalIn;
  if (s == "forward") return Hook::Forward;
  if (s == "output") return Hook::LocalOut;
  if (s == "postrouting") return Hook::PostRouting;
  return std::nullopt;
}
std::string_view hook_word(Hook h) {
  constexpr std::string_view n[] = {"prerouting", "input", "forward", "output", "postrouting"};
  return n[int(h)];
}

// ---- tokens ------------------------------------------------------------------------------------

enum class Tk : uint8_t { Word, Str, LBrace, RBrace, Semi, Comma, NL, End };
struct Tok {
  Tk k = Tk::End;
  std::string_view text;
  int line = 0;
  int col = 0;
};

std::vector<Tok> tokenize(std::string_view s, Diagnostics& d) {
  std::vector<Tok> v;
  int line = 1;
  size_t bol = 0;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    int col = int(i - bol) + 1;
    if (c == '\n') {
      v.push_back({Tk::NL, s.substr(i, 1), line, col});
      ++line;
      bol = ++i;
      continue;
    }
    if (c == '\\' && i + 1 < s.size() && s[i + 1] == '\n') {
      i += 2;
      ++line;
      bol = i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (uint8_t(c) < 0x20 || c == 0x7f) {
      // strchr below would take a NUL for its terminator; nft refuses control bytes anyway.
      d.error(line, col, fmt::format("control character 0x{:02x} in the input", uint8_t(c)));
      if (d.full()) break;
      ++i;
      continue;
    }
    if (c == '{' || c == '}' || c == ';' || c == ',') {
      Tk k = c == '{' ? Tk::LBrace : c == '}' ? Tk::RBrace : c == ';' ? Tk::Semi : Tk::Comma;
      v.push_back({k, s.substr(i, 1), line, col});
      ++i;
      continue;
    }
    if (c == '"') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != '"' && s[j] != '\n') ++j;
      if (j >= s.size() || s[j] != '"') {
        d.error(line, col, "unterminated string");
        i = j;
        continue;
      }
      v.push_back({Tk::Str, s.substr(i + 1, j - i - 1), line, col});
      i = j + 1;
      continue;
    }
    size_t j = i;
    while (j < s.size() && uint8_t(s[j]) >= 0x20 && s[j] != 0x7f && !std::strchr(" {};,\"#", s[j])) ++j;
    v.push_back({Tk::Word, s.substr(i, j - i), line, col});
    i = j;
  }
  v.push_back({Tk::End, {}, line, 1});
  return v;
}

// ---- parser ------------------------------------------------------------------------------------

struct ParseError {
  int line, col;
  std::string msg;
};

class Parser {
 public:
  Parser(Ruleset& rs, std::vector<Tok> toks, Diagnostics& d) : rs_(rs), t_(std::move(toks)), d_(d) {}

  void file() {
    while (!at(Tk::End)) {
      if (at(Tk::NL) || at(Tk::Semi)) {
        ++i_;
        continue;
      }
      size_t start = i_;
      try {
        command();
        end_of_statement();
      } catch (const ParseError& e) {
        d_.error(e.line, e.col, e.msg);
        if (d_.full()) return;
        // Resynchronise after the whole broken command: its braces balanced, past the error.
        size_t err = std::max(i_, start + 1);
        int depth = 0;
        for (i_ = start; !at(Tk::End); ++i_) {
          if (at(Tk::LBrace)) ++depth;
          else if (at(Tk::RBrace)) --depth;
          else if ((at(Tk::NL) || at(Tk::Semi)) && depth <= 0 && i_ >= err) break;
        }
      }
    }
  }

 private:
  // -- token helpers
  const Tok& cur() const { return t_[i_]; }
  bool at(Tk k) const { return t_[i_].k == k; }
  bool word(std::string_view w) const { return at(Tk::Word) && cur().text == w; }
  [[noreturn]] void fail(std::string msg) const { throw ParseError{cur().line, cur().col, std::move(msg)}; }
  [[noreturn]] void fail_at(const Tok& t, std::string msg) const { throw ParseError{t.line, t.col, std::move(msg)}; }
  std::string_view take_word(std::string_view what) {
    if (!at(Tk::Word)) fail(fmt::format("expected {}{}", what, at(Tk::End) ? " before the end of input" : ""));
    return t_[i_++].text;
  }
  std::string take_string(std::string_view what) {
    if (at(Tk::Str) || at(Tk::Word)) return std::string(t_[i_++].text);
    fail(fmt::format("expected {}", what));
  }
  void expect(Tk k, std::string_view what) {
    if (!at(k)) fail(fmt::format("expected {}", what));
    ++i_;
  }
  void skip_nl() {
    while (at(Tk::NL)) ++i_;
  }
  void end_of_statement() {
    if (at(Tk::NL) || at(Tk::Semi)) {
      ++i_;
      return;
    }
    if (at(Tk::End) || at(Tk::RBrace)) return;
    fail(fmt::format("unexpected '{}'", cur().text));
  }

  // -- objects
  std::optional<TableFamily> family_word(std::string_view w) {
    if (w == "ip") return TableFamily::Ip;
    if (w == "ip6") return TableFamily::Ip6;
    if (w == "inet") return TableFamily::Inet;
    return std::nullopt;
  }
  TableFamily family_opt() {
    if (at(Tk::Word)) {
      auto w = cur().text;
      if (auto f = family_word(w)) {
        ++i_;
        return *f;
      }
      if (w == "arp" || w == "bridge" || w == "netdev")
        fail(fmt::format("family '{}' is not modelled (svcpath simulates the ip, ip6 and inet families)", w));
    }
    return TableFamily::Ip;
  }
  Table& table_ref(bool create) {
    const Tok& at_tok = cur();
    TableFamily f = family_opt();
    std::string name(take_word("a table name"));
    Table* t = rs_.find(f, name);
    if (!t) {
      if (!create) fail_at(at_tok, fmt::format("no table {} {} (add it first)", family_name(f), name));
      auto nt = std::make_unique<Table>();
      nt->family = f;
      nt->name = name;
      nt->label = fmt::format("{} {}", family_name(f), name);
      nt->line = at_tok.line;
      t = nt.get();
      rs_.tables.push_back(std::move(nt));
    }
    return *t;
  }
  Chain& chain_ref(Table& t, bool create) {
    const Tok& tk = cur();
    std::string name(take_word("a chain name"));
    int32_t c = t.chain_index(name);
    if (c < 0) {
      if (!create) fail_at(tk, fmt::format("no chain '{}' in table {}", name, t.label));
      Chain ch;
      ch.name = name;
      ch.line = tk.line;
      ch.handle = ++handle_;
      t.chains.push_back(std::move(ch));
      c = int32_t(t.chains.size() - 1);
      t.chain_by_name.emplace(name, c);
    }
    return t.chains[size_t(c)];
  }
  Set& set_ref(Table& t, bool create, bool map) {
    const Tok& tk = cur();
    std::string name(take_word(map ? "a map name" : "a set name"));
    int32_t s = t.set_index(name);
    if (s < 0) {
      if (!create) fail_at(tk, fmt::format("no set '{}' in table {}", name, t.label));
      Set st;
      st.name = name;
      st.map = map;
      st.line = tk.line;
      t.sets.push_back(std::move(st));
      s = int32_t(t.sets.size() - 1);
    }
    return t.sets[size_t(s)];
  }

  void command() {
    const Tok& first = cur();
    std::string_view w = take_word("a command");
    if (w == "table") {  // block form
      Table& t = table_ref(true);
      if (at(Tk::LBrace)) table_block(t);
      return;
    }
    if (w == "add" || w == "create") {
      std::string_view what = take_word("table, chain, rule, set, map or element");
      if (what == "table") {
        Table& t = table_ref(true);
        if (at(Tk::LBrace)) table_block(t);
      } else if (what == "chain") {
        Table& t = table_ref(false);
        Chain& c = chain_ref(t, true);
        if (at(Tk::LBrace)) chain_block(t, c);
      } else if (what == "set" || what == "map") {
        Table& t = table_ref(false);
        Set& s = set_ref(t, true, what == "map");
        set_block(t, s);
      } else if (what == "rule") {
        Table& t = table_ref(false);
        Chain& c = chain_ref(t, false);
        c.rules.push_back(rule(t));
      } else if (what == "element") {
        Table& t = table_ref(false);
        Set& s = set_ref(t, false, false);
        elements(t, s);
      } else {
        fail_at(first, fmt::format("'add {}' is not supported (table, chain, rule, set, map, element)", what));
      }
      return;
    }
    if (w == "insert") {
      if (take_word("rule") != "rule") fail_at(first, "only 'insert rule' is supported");
      Table& t = table_ref(false);
      Chain& c = chain_ref(t, false);
      c.rules.insert(c.rules.begin(), rule(t));
      return;
    }
    if (w == "flush") {
      std::string_view what = take_word("ruleset, table, chain, set or map");
      if (what == "ruleset") {
        if (at(Tk::Word) && family_word(cur().text)) {
          auto f = *family_word(take_word("family"));
          std::erase_if(rs_.tables, [&](auto& t) { return t->family == f; });
        } else {
          rs_.tables.clear();
        }
      } else if (what == "table") {
        Table& t = table_ref(false);
        for (auto& c : t.chains) c.rules.clear();
        for (auto& s : t.sets)
          if (!s.anonymous) s.elems.clear(), s.exact.clear();
      } else if (what == "chain") {
        Table& t = table_ref(false);
        chain_ref(t, false).rules.clear();
      } else if (what == "set" || what == "map") {
        Table& t = table_ref(false);
        Set& s = set_ref(t, false, what == "map");
        s.elems.clear();
        s.exact.clear();
      } else {
        fail_at(first, fmt::format("'flush {}' is not supported", what));
      }
      return;
    }
    if (w == "delete" || w == "destroy") {
      bool destroy = w == "destroy";
      std::string_view what = take_word("table, chain, set, map or element");
      if (what == "table") {
        const Tok& tk = cur();
        TableFamily f = family_opt();
        std::string name(take_word("a table name"));
        auto it = std::find_if(rs_.tables.begin(), rs_.tables.end(), [&](auto& t) { return t->family == f && t->name == name; });
        if (it == rs_.tables.end()) {
          if (!destroy) fail_at(tk, fmt::format("no table {} {}", family_name(f), name));
        } else {
          rs_.tables.erase(it);
        }
      } else if (what == "chain") {
        Table& t = table_ref(false);
        const Tok& tk = cur();
        std::string name(take_word("a chain name"));
        int32_t c = t.chain_index(name);
        if (c < 0) {
          if (!destroy) fail_at(tk, fmt::format("no chain '{}' in table {}", name, t.label));
        } else {
          t.chains.erase(t.chains.begin() + c);
          t.chain_by_name.clear();
          for (size_t k = 0; k < t.chains.size(); ++k) t.chain_by_name.emplace(t.chains[k].name, int32_t(k));
        }
      } else if (what == "set" || what == "map") {
        Table& t = table_ref(false);
        const Tok& tk = cur();
        std::string name(take_word("a set name"));
        int32_t s = t.set_index(name);
        if (s < 0) {
          if (!destroy) fail_at(tk, fmt::format("no set '{}' in table {}", name, t.label));
        } else {
          t.sets[size_t(s)].name.clear();  // indexes stay valid; a nameless set is never printed
          t.sets[size_t(s)].anonymous = true;
          t.sets[size_t(s)].elems.clear();
          t.sets[size_t(s)].exact.clear();
        }
      } else if (what == "element") {
        Table& t = table_ref(false);
        Set& s = set_ref(t, false, false);
        Set del;
        del.key = s.key;
        del.map = false;
        elements(t, del, &s);
        for (auto& e : del.elems) std::erase_if(s.elems, [&](const Element& x) { return x.lo == e.lo && x.hi == e.hi; });
        s.index();
      } else {
        fail_at(first, fmt::format("'delete {}' is not supported", what));
      }
      return;
    }
    if (w == "list") fail_at(first, "'list' is a query, not ruleset input: give the output of `nft list ruleset` instead");
    fail_at(first, fmt::format("unknown command '{}' (add, insert, flush, delete, table)", w));
  }

  // Inside "{ ... }": skips separators; false, with the '}' taken, at the end of the block.
  bool next_item(std::string_view what) {
    while (at(Tk::NL) || at(Tk::Semi)) ++i_;
    if (at(Tk::RBrace)) {
      ++i_;
      return false;
    }
    if (at(Tk::End)) fail(fmt::format("missing '}}' at the end of {}", what));
    return true;
  }

  void table_block(Table& t) {
    expect(Tk::LBrace, "'{'");
    while (next_item("the table")) {
      std::string_view w = take_word("chain, set, map, comment or flags");
      if (w == "chain") {
        Chain& c = chain_ref(t, true);
        chain_block(t, c);
      } else if (w == "set" || w == "map") {
        Set& s = set_ref(t, true, w == "map");
        set_block(t, s);
      } else if (w == "comment") {
        t.comment = take_string("a comment");
      } else if (w == "flags") {
        std::string_view f = take_word("a table flag");
        if (f != "owner" && f != "persist") fail(fmt::format("table flag '{}' is not modelled", f));
      } else {
        --i_;
        fail(fmt::format("unexpected '{}' in a table (chain, set, map, comment)", w));
      }
      end_of_statement();
    }
  }

  int priority_value(Hook h) {
    // "dstnat", "dstnat - 10", "dstnat-10", "-110", "filter + 5"
    std::string text;
    const Tok& tk = cur();
    while (at(Tk::Word)) {
      if (!text.empty() && text.back() != '-' && text.back() != '+' && cur().text[0] != '-' && cur().text[0] != '+') break;
      text += cur().text;
      ++i_;
    }
    if (text.empty()) fail("expected a priority");
    std::string_view s = text;
    size_t k = 0;
    while (k < s.size() && (std::isalpha(uint8_t(s[k])))) ++k;
    int base = 0;
    if (k > 0) {
      auto np = named_priority(s.substr(0, k), h);
      if (!np) {
        std::string_view nm = s.substr(0, k);
        if (nm == "dstnat" || nm == "srcnat")
          fail_at(tk, fmt::format(
                          "priority '{}' is valid on the {} hook only (nft: invalid priority expression value in this context)",
                          nm, nm == "dstnat" ? "prerouting" : "postrouting"));
        fail_at(tk, fmt::format("unknown priority name '{}'", nm));
      }
      base = *np;
      s.remove_prefix(k);
    }
    if (s.empty()) return base;
    bool neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
    auto v = parse_uint(s, 1u << 30);
    if (!v) fail_at(tk, fmt::format("bad priority '{}'", text));
    return base + (neg ? -int(*v) : int(*v));
  }

  void chain_block(Table& t, Chain& c) {
    expect(Tk::LBrace, "'{'");
    while (next_item("chain " + c.name)) {
      if (word("type")) {
        ++i_;
        std::string_view ty = take_word("filter, nat or route");
        if (ty == "filter") c.type = ChainType::Filter;
        else if (ty == "nat") c.type = ChainType::Nat;
        else if (ty == "route") c.type = ChainType::Route;
        else fail_at(t_[i_ - 1], fmt::format("unknown chain type '{}' (filter, nat, route)", ty));
        if (take_word("hook") != "hook") fail_at(t_[i_ - 1], "expected 'hook'");
        const Tok& hk = cur();
        auto h = parse_hook(take_word("a hook"));
        if (!h) fail_at(hk, fmt::format("hook '{}' is not modelled (prerouting, input, forward, output, postrouting)", hk.text));
        if (c.type == ChainType::Nat && *h == Hook::Forward) fail_at(hk, "nat chains cannot hook forward");
        if (c.type == ChainType::Route && *h != Hook::LocalOut) fail_at(hk, "route chains hook output only");
        c.hook = *h;
        if (word("device")) fail("'device' belongs to netdev chains, which are not modelled");
        if (take_word("priority") != "priority") fail_at(t_[i_ - 1], "expected 'priority'");
        c.priority = priority_value(c.hook);
        c.base = true;
      } else if (word("policy")) {
        ++i_;
        std::string_view p = take_word("accept or drop");
        if (p == "accept") c.policy_drop = false;
        else if (p == "drop") c.policy_drop = true;
        else fail_at(t_[i_ - 1], fmt::format("policy '{}' (accept or drop)", p));
      } else if (word("comment") && (t_[i_ + 1].k == Tk::Str) &&
                 (t_[i_ + 2].k == Tk::NL || t_[i_ + 2].k == Tk::Semi || t_[i_ + 2].k == Tk::RBrace)) {
        ++i_;
        c.comment = take_string("a comment");
      } else {
        c.rules.push_back(rule(t));
        continue;
      }
      end_of_statement();
    }
  }

  uint64_t duration() {
    // 10800s, 3h, 1d2h3m4s, 500ms
    const Tok& tk = cur();
    std::string_view s = take_word("a duration");
    uint64_t total = 0;
    while (!s.empty()) {
      size_t k = 0;
      while (k < s.size() && std::isdigit(uint8_t(s[k]))) ++k;
      if (k == 0) fail_at(tk, fmt::format("bad duration '{}'", tk.text));
      uint64_t v = *parse_uint(s.substr(0, k), 1ull << 40);
      s.remove_prefix(k);
      uint64_t unit = 1000000000ull;
      if (s.starts_with("ms")) unit = 1000000ull, s.remove_prefix(2);
      else if (s.starts_with("d")) unit *= 86400, s.remove_prefix(1);
      else if (s.starts_with("h")) unit *= 3600, s.remove_prefix(1);
      else if (s.starts_with("m")) unit *= 60, s.remove_prefix(1);
      else if (s.starts_with("s")) s.remove_prefix(1);
      else if (!s.empty()) fail_at(tk, fmt::format("bad duration '{}'", tk.text));
      total += v * unit;
    }
    return total;
  }

  std::optional<Type> type_word(std::string_view w) {
    static const std::pair<std::string_view, Type> names[] = {
        {"ipv4_addr", Type::Ipv4},  {"ipv6_addr", Type::Ipv6}, {"inet_proto", Type::Proto}, {"inet_service", Type::Service},
        {"mark", Type::Mark},       {"ifname", Type::Ifname},  {"ct_state", Type::CtState}, {"fib_addrtype", Type::AddrType},
        {"nf_proto", Type::NfProto}};
    for (auto& [n, t] : names)
      if (w == n) return t;
    return std::nullopt;
  }

  void set_block(Table& t, Set& s) {
    expect(Tk::LBrace, "'{'");
    while (next_item("set " + s.name)) {
      std::string_view w = take_word("type, flags, timeout, comment or elements");
      if (w == "type") {
        std::vector<Type> key;
        bool verdict = false;
        for (;;) {
          const Tk0 tk{cur()};
          auto ty = type_word(take_word("a data type"));
          if (!ty) fail_at(tk.t, fmt::format("data type '{}' is not modelled", tk.t.text));
          key.push_back(*ty);
          if (word(".")) {
            ++i_;
            continue;
          }
          if (word(":")) {
            ++i_;
            if (take_word("verdict") != "verdict") fail_at(t_[i_ - 1], "only verdict maps are modelled (type ... : verdict)");
            verdict = true;
          }
          break;
        }
        if (verdict != s.map) fail(s.map ? "a map needs 'type KEY : verdict'" : "a set's type has no ': verdict'");
        if (!s.key.empty() && s.key != key && !s.elems.empty()) fail(fmt::format("set {} exists with another type", s.name));
        s.key = std::move(key);
        size_t len = s.key_len();
        if (len > sizeof(Key::b)) fail("the concatenated key is too long");
      } else if (w == "typeof") {
        fail("'typeof' sets are not modelled: declare them with 'type'");
      } else if (w == "flags") {
        for (;;) {
          std::string_view f = take_word("a set flag");
          if (f == "interval") s.interval = true;
          else if (f == "dynamic") s.dynamic = true;
          else if (f == "timeout") s.timeout_flag = true;
          else if (f == "constant") s.constant = true;
          else fail_at(t_[i_ - 1], fmt::format("set flag '{}' is not modelled", f));
          if (!at(Tk::Comma)) break;
          ++i_;
        }
      } else if (w == "timeout") {
        s.timeout_ns = duration();
      } else if (w == "gc-interval") {
        duration();
      } else if (w == "size") {
        const Tok& st = cur();
        auto v = parse_uint(take_word("a size"), 0xffffffff);
        if (!v) fail_at(st, "bad set size");
        s.size = uint32_t(*v);
      } else if (w == "policy") {
        take_word("performance or memory");
      } else if (w == "auto-merge") {
      } else if (w == "comment") {
        s.comment = take_string("a comment");
      } else if (w == "elements") {
        if (!word("=")) fail("expected '=' after elements");
        ++i_;
        if (s.key.empty()) fail("declare the set's type before its elements");
        elements(t, s);
      } else {
        --i_;
        fail(fmt::format("unexpected '{}' in set {}", w, s.name));
      }
      end_of_statement();
    }
    if (s.key.empty()) fail_at(t_[i_ - 1], fmt::format("set {} has no type", s.name));
    if (s.dynamic && !s.size) s.size = 65535;  // nft's default for sets the packet path adds to
  }
  struct Tk0 {
    Tok t;
  };

  // A key (possibly concatenated) in set or element context.
  void key_value(const std::vector<Type>& types, Key& lo, Key& hi, std::string* text) {
    size_t off = 0;
    lo = {};
    hi = {};
    for (size_t i = 0; i < types.size(); ++i) {
      if (i > 0) {
        if (!word(".")) fail(fmt::format("expected ' . ' and the next part of a {}-part key", types.size()));
        ++i_;
      }
      const Tok& tk = cur();
      std::string w;
      if (at(Tk::Str)) w = "\"" + std::string(tk.text) + "\"";
      else w = std::string(take_word(fmt::format("a {} value", type_name(types[i]))));
      if (at(Tk::Str)) ++i_;
      std::string_view wv = w;
      // "0:" glued to the map colon
      if (types.size() == i + 1 && wv.size() > 1 && wv.back() == ':' && types[i] != Type::Ipv6) {
        wv.remove_suffix(1);
        glued_colon_ = true;
      }
      std::string err = parse_component(types[i], wv, lo.b.data() + off, hi.b.data() + off);
      if (!err.empty()) fail_at(tk, err);
      if (types[i] == Type::CtState) {
        // "new,established" in a comparison is a flag list: OR the bits.
        while (at(Tk::Comma) && t_[i_ + 1].k == Tk::Word && ct_list_ok_) {
          ++i_;
          Key l2{}, h2{};
          const Tok& t2 = cur();
          std::string e2 = parse_component(Type::CtState, take_word("a ct state"), l2.b.data(), h2.b.data());
          if (!e2.empty()) fail_at(t2, e2);
          for (size_t k = 0; k < 4; ++k) lo.b[off + k] |= l2.b[k], hi.b[off + k] |= h2.b[k];
        }
      }
      off += type_width(types[i]);
    }
    lo.len = hi.len = uint8_t(off);
    if (text) *text = key_text(types, lo, hi);
  }

  VerdictSpec verdict_words() {
    VerdictSpec v;
    std::string_view w = take_word("a verdict");
    if (w == "accept") v.code = VerdictCode::Accept;
    else if (w == "drop") v.code = VerdictCode::Drop;
    else if (w == "return") v.code = VerdictCode::Return;
    else if (w == "continue") v.code = VerdictCode::Continue;
    else if (w == "jump" || w == "goto") {
      v.code = w == "jump" ? VerdictCode::Jump : VerdictCode::Goto;
      v.chain_name = std::string(take_word("a chain name"));
    } else fail_at(t_[i_ - 1], fmt::format("'{}' is not a verdict (accept, drop, return, jump, goto)", w));
    return v;
  }

  // { e1, e2 : verdict, ... } into s (keys typed by s.key). del: the set deleted from (checks).
  void elements(Table&, Set& s, const Set* del = nullptr) {
    (void)del;
    if (s.key.empty()) fail(fmt::format("set {} has no type (its declaration failed)", s.name));
    expect(Tk::LBrace, "'{'");
    for (;;) {
      skip_nl();
      if (at(Tk::RBrace)) {
        ++i_;
        break;
      }
      Element e;
      const Tok& tk = cur();
      glued_colon_ = false;
      key_value(s.key, e.lo, e.hi, &e.text);
      bool has_range = !(e.lo == e.hi);
      if (has_range && s.key.size() == 1 && !s.interval && !s.anonymous)
        fail_at(tk, fmt::format("'{}' is a range but set {} has no 'flags interval'", e.text, s.name));
      while (word("timeout") || word("expires") || word("comment")) {
        std::string_view w = take_word("");
        if (w == "comment") e.comment = take_string("a comment");
        else duration();
      }
      if (s.map) {
        if (!glued_colon_) {
          if (!word(":")) fail(fmt::format("expected ': verdict' after map key '{}'", e.text));
          ++i_;
        }
        e.verdict = verdict_words();
      } else if (word(":") || glued_colon_) {
        fail(fmt::format("set {} is not a map: '{}' takes no value", s.name, e.text));
      }
      bool dup = false;
      if (e.lo == e.hi) {
        auto [it, fresh] = s.exact.emplace(e.lo, uint32_t(s.elems.size()));
        dup = !fresh;
        if (!fresh) {
          // "add element" of a key that is there: nothing happens unless a map would change its verdict.
          const Element& old = s.elems[it->second];
          if (s.map && (old.verdict.code != e.verdict.code || old.verdict.chain_name != e.verdict.chain_name))
            fail_at(tk, fmt::format("map {} already maps '{}' to '{}' (delete the element first)", s.name, e.text,
                                    old.verdict.chain_name.empty() ? "a verdict" : old.verdict.chain_name));
        }
      }
      if (!dup) s.elems.push_back(std::move(e));
      skip_nl();
      if (at(Tk::Comma)) {
        ++i_;
        continue;
      }
      skip_nl();
      if (at(Tk::RBrace)) {
        ++i_;
        break;
      }
      fail("expected ',' or '}' in the element list");
    }
  }

  // -- rules
  bool rule_end() const { return at(Tk::NL) || at(Tk::Semi) || at(Tk::RBrace) || at(Tk::End); }

  std::optional<Selector> selector() {
    if (!at(Tk::Word)) return std::nullopt;
    std::string_view w = cur().text;
    std::string_view n = t_[i_ + 1].k == Tk::Word ? t_[i_ + 1].text : std::string_view();
    Selector s;
    auto two = [&](Sel x) {
      s.sel = x;
      i_ += 2;
      return s;
    };
    if (w == "ip") {
      if (n == "saddr") return two(Sel::IpSaddr);
      if (n == "daddr") return two(Sel::IpDaddr);
      if (n == "protocol") return two(Sel::IpProtocol);
      fail(fmt::format("'ip {}' is not modelled (saddr, daddr, protocol)", n));
    }
    if (w == "ip6") {
      if (n == "saddr") return two(Sel::Ip6Saddr);
      if (n == "daddr") return two(Sel::Ip6Daddr);
      if (n == "nexthdr") return two(Sel::Ip6Nexthdr);
      fail(fmt::format("'ip6 {}' is not modelled (saddr, daddr, nexthdr)", n));
    }
    if (w == "tcp" || w == "udp" || w == "sctp" || w == "th") {
      if (n != "sport" && n != "dport") {
        if (w == "th") fail(fmt::format("'th {}' is not modelled (sport, dport)", n));
        return std::nullopt;  // e.g. the value of "meta l4proto tcp"
      }
      s.proto = w == "tcp" ? proto::TCP : w == "udp" ? proto::UDP : w == "sctp" ? proto::SCTP : 0;
      return two(n == "sport" ? Sel::Sport : Sel::Dport);
    }
    if (w == "meta") {
      if (n == "l4proto") return two(Sel::L4Proto);
      if (n == "nfproto") return two(Sel::NfProto);
      if (n == "mark") return two(Sel::Mark);
      if (n == "iifname") return two(Sel::Iifname);
      if (n == "oifname") return two(Sel::Oifname);
      if (n == "protocol") fail("'meta protocol' is not modelled: use 'meta nfproto'");
      fail(fmt::format("'meta {}' is not modelled (l4proto, nfproto, mark, iifname, oifname)", n));
    }
    if (w == "mark") {
      s.sel = Sel::Mark;
      ++i_;
      return s;
    }
    if (w == "iifname" || w == "oifname") {
      s.sel = w == "iifname" ? Sel::Iifname : Sel::Oifname;
      ++i_;
      return s;
    }
    if (w == "ct") {
      if (n == "state") return two(Sel::CtState);
      if (n == "mark") return two(Sel::CtMark);
      fail(fmt::format("'ct {}' is not modelled (state, mark)", n));
    }
    if (w == "fib") {
      if (n != "saddr" && n != "daddr") fail("'fib' needs saddr or daddr");
      s.sel = n == "saddr" ? Sel::FibSaddrType : Sel::FibDaddrType;
      i_ += 2;
      if (word(".")) {
        ++i_;
        std::string_view d = take_word("iif or oif");
        if (d != "iif" && d != "oif") fail_at(t_[i_ - 1], "'fib ... .' takes iif or oif");
        s.fib_dev = true;
      }
      if (take_word("type") != "type") fail_at(t_[i_ - 1], "only 'fib ... type' is modelled");
      return s;
    }
    if (w == "numgen") {
      if (n != "random") fail("only 'numgen random' is modelled (inc keeps state the kernel does not show)");
      i_ += 2;
      if (take_word("mod") != "mod") fail_at(t_[i_ - 1], "expected 'mod N'");
      const Tok& tk = cur();
      auto m = parse_uint(take_word("a modulus"), 0xffffffff);
      if (!m || *m == 0) fail_at(tk, "numgen modulus must be a positive number");
      s.sel = Sel::Numgen;
      s.mod = uint32_t(*m);
      if (word("offset")) {
        ++i_;
        const Tok& ot = cur();
        auto o = parse_uint(take_word("an offset"), 0xffffffff);
        if (!o) fail_at(ot, "bad numgen offset");
        s.offset = uint32_t(*o);
      }
      return s;
    }
    return std::nullopt;
  }

  std::vector<Selector> concat(Selector first) {
    std::vector<Selector> v{first};
    while (word(".")) {
      ++i_;
      auto s = selector();
      if (!s) fail("expected an expression after ' . '");
      v.push_back(*s);
    }
    return v;
  }

  // nft keeps an anonymous set with ranges as sorted intervals, overlapping and adjacent ones
  // merged: { 203.0.113.0/24, 10.0.0.0/24, 203.0.113.50 } lists as { 10.0.0.0/24, 203.0.113.0/24 }
  // (a set of single values stays as written).
  static void merge_intervals(Set& s) {
    if (s.key.size() != 1 || s.key[0] == Type::Ifname || s.key[0] == Type::CtState) return;
    size_t n = value_bytes(s.key[0]);
    auto less = [n](const Key& a, const Key& b) { return std::memcmp(a.b.data(), b.b.data(), n) < 0; };
    std::sort(s.elems.begin(), s.elems.end(), [&](const Element& a, const Element& b) { return less(a.lo, b.lo); });
    std::vector<Element> out;
    for (auto& e : s.elems) {
      if (!out.empty()) {
        Key next = out.back().hi;  // hi + 1: adjacent intervals merge too
        bool carry = true;
        for (size_t i = n; i-- > 0 && carry;) carry = ++next.b[i] == 0;
        if (!carry && !less(next, e.lo)) {
          if (less(out.back().hi, e.hi)) out.back().hi = e.hi;
          continue;
        }
      }
      out.push_back(e);
    }
    for (auto& e : out) e.text = key_text(s.key, e.lo, e.hi);
    s.elems = std::move(out);
    s.exact.clear();
  }

  // An anonymous set or map in rule context: "{ a, b }" typed by types.
  int32_t anon_set(Table& t, const std::vector<Type>& types, bool map) {
    Set s;
    s.anonymous = true;
    s.map = map;
    s.key = types;
    s.interval = true;
    s.constant = true;
    s.line = cur().line;
    ct_list_ok_ = false;
    elements(t, s);
    ct_list_ok_ = true;
    written_ = s.elems.size();
    bool ranges = std::any_of(s.elems.begin(), s.elems.end(), [](const Element& e) { return !(e.lo == e.hi); });
    if (!map && ranges) merge_intervals(s);
    s.name = fmt::format("__{}{}", map ? "map" : "set", anon_++);
    t.sets.push_back(std::move(s));
    return int32_t(t.sets.size() - 1);
  }

  Rule rule(Table& t) {
    Rule r;
    r.line = cur().line;
    r.handle = ++handle_;
    uint8_t l4 = 0;  // the transport protocol the rule has pinned (nft refuses a second one)
    auto pin = [&](uint8_t p, const Tok& at) {
      if (!p) return;
      if (l4 && l4 != p) fail_at(at, fmt::format("conflicting protocols specified: {} vs. {}", proto_text(l4), proto_text(p)));
      l4 = p;
    };
    while (!rule_end()) {
      const Tok& tk = cur();
      if (auto sel = selector()) {
        if ((sel->sel == Sel::Sport || sel->sel == Sel::Dport)) pin(sel->proto, tk);
        auto lhs = concat(*sel);
        for (size_t k = 1; k < lhs.size(); ++k)
          if (lhs[k].sel == Sel::Sport || lhs[k].sel == Sel::Dport) pin(lhs[k].proto, tk);
        std::vector<Type> types;
        for (auto& s : lhs) types.push_back(s.type());
        if (word("set")) {
          if (lhs.size() != 1 || lhs[0].sel != Sel::Mark) fail_at(tk, "only 'meta mark set' is modelled");
          ++i_;
          r.stmts.push_back(mark_set());
          continue;
        }
        if (word("vmap")) {
          ++i_;
          VmapStmt v;
          v.key = lhs;
          if (at(Tk::LBrace)) v.set = anon_set(t, types, true);
          else {
            std::string_view ref = take_word("@map or { ... }");
            if (ref.size() < 2 || ref[0] != '@') fail_at(t_[i_ - 1], "expected @map or { ... } after vmap");
            v.set_name = std::string(ref.substr(1));
          }
          r.stmts.push_back(std::move(v));
          continue;
        }
        MatchStmt m;
        m.lhs = lhs;
        m.types = types;
        if (word("&") || word("and") || word("|") || word("or") || word("^") || word("xor")) {
          if (lhs.size() != 1 || type_width(types[0]) != 4) fail("bitwise operations need one 32-bit expression");
          std::string_view op = take_word("");
          const Tok& vt = cur();
          auto v = parse_uint(take_word("a number"), 0xffffffff, true);
          if (!v) fail_at(vt, "expected a number");
          m.bitwise = true;
          if (op == "&" || op == "and") m.and_mask = uint32_t(*v), m.xor_val = 0;
          else if (op == "|" || op == "or") m.and_mask = ~uint32_t(*v), m.xor_val = uint32_t(*v);
          else m.and_mask = 0xffffffff, m.xor_val = uint32_t(*v);
        }
        bool explicit_op = false;
        if (at(Tk::Word)) {
          std::string_view o = cur().text;
          using Op = MatchStmt::Op;
          std::optional<Op> op;
          if (o == "==" || o == "eq") op = Op::Eq;
          else if (o == "!=" || o == "ne") op = Op::Ne;
          else if (o == "<" || o == "lt") op = Op::Lt;
          else if (o == ">" || o == "gt") op = Op::Gt;
          else if (o == "<=" || o == "le") op = Op::Le;
          else if (o == ">=" || o == "ge") op = Op::Ge;
          if (op) {
            m.op = *op;
            explicit_op = true;
            ++i_;
          }
        }
        if (at(Tk::LBrace)) {
          if (m.op != MatchStmt::Op::Eq && m.op != MatchStmt::Op::Ne) fail("a set takes == or !=");
          int32_t si = anon_set(t, types, false);
          Set& s = t.sets[size_t(si)];
          if (written_ == 1) {
            // nft turns a one-element anonymous set into a comparison.
            m.lo = s.elems[0].lo;
            m.hi = s.elems[0].hi;
            m.rhs_text = s.elems[0].text;
            s.name.clear();  // dropped below
            t.sets.pop_back();
            --anon_;
          } else {
            m.op = m.op == MatchStmt::Op::Ne ? MatchStmt::Op::NotInSet : MatchStmt::Op::InSet;
            m.set = si;
          }
        } else if (at(Tk::Word) && cur().text.size() > 1 && cur().text[0] == '@') {
          if (m.op != MatchStmt::Op::Eq && m.op != MatchStmt::Op::Ne) fail("a set takes == or !=");
          m.op = m.op == MatchStmt::Op::Ne ? MatchStmt::Op::NotInSet : MatchStmt::Op::InSet;
          m.set_name = std::string(cur().text.substr(1));
          ++i_;
        } else {
          if (rule_end()) fail_at(tk, "expected a value to compare with");
          key_value(types, m.lo, m.hi, &m.rhs_text);
          if ((m.op == MatchStmt::Op::Lt || m.op == MatchStmt::Op::Gt || m.op == MatchStmt::Op::Le ||
               m.op == MatchStmt::Op::Ge) &&
              !(m.lo == m.hi))
            fail_at(tk, "an ordering comparison takes a single value");
          if (lhs.size() == 1 && lhs[0].sel == Sel::L4Proto && m.op == MatchStmt::Op::Eq && m.lo == m.hi) pin(m.lo.b[0], tk);
          if (types.size() == 1 && types[0] == Type::CtState && !explicit_op) m.op = MatchStmt::Op::FlagsAny;
          else if (types.size() == 1 && types[0] == Type::CtState && m.op == MatchStmt::Op::Ne) m.op = MatchStmt::Op::FlagsNone;
        }
        r.stmts.push_back(std::move(m));
        continue;
      }
      std::string_view w = take_word("a statement");
      if (w == "counter") {
        CounterStmt c;
        if (word("packets")) {
          ++i_;
          c.packets = parse_uint(take_word("a count"), UINT64_MAX).value_or(0);
          if (take_word("bytes") != "bytes") fail_at(t_[i_ - 1], "expected 'bytes'");
          c.bytes = parse_uint(take_word("a count"), UINT64_MAX).value_or(0);
        }
        r.stmts.push_back(c);
      } else if (w == "accept" || w == "drop" || w == "return" || w == "continue" || w == "jump" || w == "goto") {
        --i_;
        r.stmts.push_back(VerdictStmt{verdict_words()});
      } else if (w == "queue") {
        fail_at(tk, "'queue' is not modelled");
      } else if (w == "reject") {
        RejectStmt rj;
        rj.with = t.family == TableFamily::Ip6 ? "icmp6-port-unreachable" : "icmp-port-unreachable";
        if (word("with")) {
          ++i_;
          std::string_view kind = take_word("icmp, icmpv6, icmpx or tcp");
          if (kind == "tcp") {
            if (take_word("reset") != "reset") fail_at(t_[i_ - 1], "expected 'reset'");
            rj.with = "tcp-reset";
            rj.text = "with tcp reset";
          } else if (kind == "icmp" || kind == "icmpv6" || kind == "icmpx") {
            if (word("type")) ++i_;
            std::string code(take_word("an ICMP code"));
            rj.text = fmt::format("with {} {}", kind, code);
            rj.with = fmt::format("{}-{}", kind == "icmpv6" ? "icmp6" : "icmp", code);
          } else {
            fail_at(t_[i_ - 1], fmt::format("reject with '{}' (icmp, icmpv6, icmpx, tcp reset)", kind));
          }
        }
        r.stmts.push_back(std::move(rj));
      } else if (w == "dnat" || w == "snat" || w == "masquerade" || w == "redirect") {
        r.stmts.push_back(nat_stmt(t, w, tk));
      } else if (w == "log") {
        LogStmt l;
        while (word("prefix") || word("level") || word("flags") || word("group")) {
          std::string_view o = take_word("");
          std::string v = take_string("a value");
          if (o == "prefix") l.prefix = v;
        }
        r.stmts.push_back(l);
      } else if (w == "notrack") {
        r.stmts.push_back(NotrackStmt{});
      } else if (w == "update" || w == "add") {
        SetUpdateStmt u;
        u.add = w == "add";
        std::string_view ref = take_word("@set");
        if (ref.size() < 2 || ref[0] != '@') fail_at(t_[i_ - 1], "expected @set");
        u.set_name = std::string(ref.substr(1));
        expect(Tk::LBrace, "'{'");
        auto s = selector();
        if (!s) fail("expected the key expression");
        u.key = concat(*s);
        if (word("timeout")) {
          ++i_;
          duration();
        }
        expect(Tk::RBrace, "'}'");
        r.stmts.push_back(std::move(u));
      } else if (w == "comment") {
        r.comment = take_string("a comment");
      } else if (w == "limit" || w == "quota" || w == "meter" || w == "tproxy" || w == "fwd" || w == "dup") {
        fail_at(tk, fmt::format("statement '{}' is not modelled", w));
      } else {
        fail_at(tk, fmt::format("unknown expression or statement '{}'", w));
      }
    }
    if (r.stmts.empty()) fail("empty rule");
    return r;
  }

  MarkSetStmt mark_set() {
    // meta mark set 0x10 | mark set mark or 0x4000 | meta mark set meta mark | 0x00004000
    MarkSetStmt m;
    const Tok& tk = cur();
    bool self = false;
    if (word("meta") && t_[i_ + 1].k == Tk::Word && t_[i_ + 1].text == "mark") i_ += 2, self = true;
    else if (word("mark")) ++i_, self = true;
    if (!self) {
      auto v = parse_uint(take_word("a mark"), 0xffffffff, true);
      if (!v) fail_at(tk, "expected a mark value");
      m.and_mask = 0;
      m.xor_val = uint32_t(*v);
      m.text = fmt::format("0x{:08x}", *v);
      return m;
    }
    std::string_view op = take_word("|, &, ^ (or, and, xor)");
    const Tok& vt = cur();
    auto v = parse_uint(take_word("a number"), 0xffffffff, true);
    if (!v) fail_at(vt, "expected a number");
    uint32_t x = uint32_t(*v);
    if (op == "|" || op == "or") m.and_mask = ~x, m.xor_val = x, m.text = fmt::format("meta mark | 0x{:08x}", x);
    else if (op == "&" || op == "and") m.and_mask = x, m.xor_val = 0, m.text = fmt::format("meta mark & 0x{:08x}", x);
    else if (op == "^" || op == "xor") m.and_mask = 0xffffffff, m.xor_val = x, m.text = fmt::format("meta mark ^ 0x{:08x}", x);
    else fail_at(t_[i_ - 2], fmt::format("operator '{}' (|, &, ^)", op));
    return m;
  }

  NatStmt nat_stmt(Table& t, std::string_view w, const Tok& tk) {
    NatStmt n;
    using K = NatTarget::Kind;
    n.t.kind = w == "dnat" ? K::Dnat : w == "snat" ? K::Snat : w == "masquerade" ? K::Masquerade : K::Redirect;
    Family fam = t.family == TableFamily::Ip6 ? Family::V6 : Family::V4;
    bool need_addr = n.t.kind == K::Dnat || n.t.kind == K::Snat;
    if (word("ip") || word("ip6")) {
      fam = cur().text == "ip" ? Family::V4 : Family::V6;
      ++i_;
    } else if (need_addr && t.family == TableFamily::Inet) {
      fail(fmt::format("{} in an inet table needs 'ip to' or 'ip6 to'", w));
    }
    if (word("to")) {
      ++i_;
      const Tok& at_tok = cur();
      std::string_view a = take_word("an address");
      std::string_view addr = a, port;
      if (!a.empty() && a[0] == '[') {
        auto close = a.find(']');
        if (close == std::string_view::npos) fail_at(at_tok, "missing ']'");
        addr = a.substr(1, close - 1);
        if (close + 1 < a.size()) {
          if (a[close + 1] != ':') fail_at(at_tok, "expected ':port' after ']'");
          port = a.substr(close + 2);
        }
      } else if (a[0] == ':') {
        addr = {};
        port = a.substr(1);
      } else if (fam == Family::V4) {
        auto c = a.find(':');
        if (c != std::string_view::npos) {
          addr = a.substr(0, c);
          port = a.substr(c + 1);
        }
      }
      if (!addr.empty()) {
        auto dash = addr.find('-');
        auto lo = Addr::parse(addr.substr(0, dash));
        auto hi = dash == std::string_view::npos ? lo : Addr::parse(addr.substr(dash + 1));
        if (!lo || !hi || lo->fam != fam || hi->fam != fam)
          fail_at(at_tok, fmt::format("'{}' is not an {} address", addr, fam == Family::V4 ? "IPv4" : "IPv6"));
        n.t.addr_set = true;
        n.t.min = *lo;
        n.t.max = *hi;
      } else if (need_addr) {
        fail_at(at_tok, fmt::format("{} needs an address", w));
      }
      if (!port.empty()) {
        std::string why;
        auto pr = PortRange::parse(port, '-', &why);
        if (!pr) fail_at(at_tok, fmt::format("bad port '{}'", port));
        n.t.port_set = true;
        n.t.ports = *pr;
      }
    } else if (need_addr) {
      fail(fmt::format("{} needs 'to ADDRESS'", w));
    }
    for (;;) {
      if (word("random")) n.t.random = true;
      else if (word("fully-random")) n.t.random_fully = true;
      else if (word("persistent")) n.t.persistent = true;
      else break;
      ++i_;
      if (at(Tk::Comma)) ++i_;
    }
    (void)tk;
    return n;
  }

  Ruleset& rs_;
  std::vector<Tok> t_;
  Diagnostics& d_;
  size_t i_ = 0;
  uint32_t handle_ = 0;
  uint32_t anon_ = 0;
  bool glued_colon_ = false;
  size_t written_ = 0;  // elements the last anonymous set was written with
  bool ct_list_ok_ = true;

 public:
  uint32_t& handle_counter() { return handle_; }
};

// Resolves chain and set references, checks key types, numbers rules, detects jump loops.
void finalize(Ruleset& rs, Diagnostics& d) {
  uint32_t id = 0;
  for (auto& tp : rs.tables) {
    Table& t = *tp;
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
                    d.error(r.line, 0,
                            fmt::format("'{}' is a {}, used as a {}", name, s.map ? "map" : "set", map ? "map" : "set"));
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
        // Statements after a verdict never run; nft refuses them.
        for (size_t k = 0; k + 1 < r.stmts.size(); ++k)
          if (std::holds_alternative<VerdictStmt>(r.stmts[k]) || std::holds_alternative<VmapStmt>(r.stmts[k]))
            d.error(r.line, 0, "statement after a verdict");
      }
    }
    // Loops: nft refuses a ruleset in which a chain can reach itself.
    size_t n = t.chains.size();
    std::vector<std::vector<int32_t>> edges(n);
    for (size_t c = 0; c < n; ++c)
      for (auto& r : t.chains[c].rules)
        for (auto& st : r.stmts) {
          if (auto* v = std::get_if<VerdictStmt>(&st); v && v->v.chain >= 0) edges[c].push_back(v->v.chain);
          if (auto* m = std::get_if<VmapStmt>(&st); m && m->set >= 0)
            for (auto& e : t.sets[size_t(m->set)].elems)
              if (e.verdict.chain >= 0) edges[c].push_back(e.verdict.chain);
        }
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
    // NAT statements belong to nat chains; reject to input/forward/output (and prerouting since 5.9).
    // nft_chain_validate: a chain more than 15 jumps or gotos below its base chain is refused
    // (NFT_JUMP_STACK_SIZE). Longest path per chain, memoised (the graph has no loops by now).
    std::vector<int> below(n, -1);
    std::function<int(size_t)> height = [&](size_t c) {
      if (below[c] >= 0) return below[c];
      int h = 0;
      for (int32_t x : edges[c]) h = std::max(h, 1 + height(size_t(x)));
      return below[c] = h;
    };
    if (d.ok())
      for (size_t c = 0; c < n; ++c)
        if (t.chains[c].base && height(c) > 15)
          d.error(t.chains[c].line, 0,
                  fmt::format("chains below base chain '{}' nest {} deep; the kernel allows 15 (NFT_JUMP_STACK_SIZE)",
                              t.chains[c].name, height(c)));
    // Each chain once per base chain: walking every path instead is exponential in the jumps.
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
              d.error(
                  r.line, 0,
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
    if (d.ok())
      for (size_t c = 0; c < n; ++c)
        if (t.chains[c].base) {
          seen.assign(n, 0);
          check(c, t.chains[c]);
        }
  }
  rs.rule_count = id;
}

}  // namespace

std::optional<int> named_priority(std::string_view name, Hook h) {
  // nft accepts dstnat on prerouting and srcnat on postrouting only (ip, ip6 and inet families).
  if (name == "raw") return -300;
  if (name == "mangle") return -150;
  if (name == "dstnat" && h == Hook::PreRouting) return -100;
  if (name == "filter") return 0;
  if (name == "security") return 50;
  if (name == "srcnat" && h == Hook::PostRouting) return 100;
  return std::nullopt;
}

void load_into(Ruleset& rs, std::string_view text, const std::string& file) {
  Diagnostics d(file);
  auto toks = tokenize(text, d);
  d.throw_if_errors();
  uint32_t handles = 0;
  for (auto& t : rs.tables)
    for (auto& c : t->chains) {
      handles = std::max(handles, c.handle);
      for (auto& r : c.rules) handles = std::max(handles, r.handle);
    }
  Parser p(rs, std::move(toks), d);
  p.handle_counter() = handles;
  p.file();
  d.throw_if_errors();
  finalize(rs, d);
  d.throw_if_errors();
}

Ruleset load(std::string_view text, const std::string& file) {
  Ruleset rs;
  load_into(rs, text, file);
  return rs;
}

Ruleset load_file(const std::string& path) { return load(read_input_file(path), path); }

// ---- printing ----------------------------------------------------------------------------------

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
  for (auto& st : r.stmts) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, MatchStmt>) {
            std::string lhs = concat_text(x.lhs);
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
            add(x.prefix.empty() ? "log" : fmt::format("log prefix \"{}\"", x.prefix));
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
