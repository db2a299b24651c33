// The nft parser: one recursive descent for `nft -f` input (add/insert/flush/delete/destroy
// commands and `table { }` blocks) and `nft list ruleset` output, building tables, chains, sets
// and elements and each rule's statements and expressions, values typed by the set or selector
// they meet. load/load_into run tokenizer, parser and the load-time checks (validate.cpp).
#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "netfilter/nftables/json.hpp"
#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

namespace {

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
    if (w == "add" || w == "create") return add_command(first);
    if (w == "insert") {
      if (take_word("rule") != "rule") fail_at(first, "only 'insert rule' is supported");
      Table& t = table_ref(false);
      Chain& c = chain_ref(t, false);
      c.rules.insert(c.rules.begin(), rule(t));
      return;
    }
    if (w == "flush") return flush_command(first);
    if (w == "delete" || w == "destroy") return delete_command(first, w == "destroy");
    if (w == "list") fail_at(first, "'list' is a query, not ruleset input: give the output of `nft list ruleset` instead");
    fail_at(first, fmt::format("unknown command '{}' (add, insert, flush, delete, table)", w));
  }

  void add_command(const Tok& first) {
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
  }

  void flush_command(const Tok& first) {
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
  }

  // destroy: delete, but what is not there is no error.
  void delete_command(const Tok& first, bool destroy) {
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
    int opened = cur().line;
    expect(Tk::LBrace, "'{'");
    while (next_item("the table")) {
      if (word("table"))
        fail(fmt::format("'table' inside table {}: the '}}' closing it (opened at line {}) is missing", t.name, opened));
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
                          "priority '{}' is valid on the {} hooks only (nft: invalid priority expression value in this context)",
                          nm, nm == "dstnat" ? "prerouting and output" : "input and postrouting"));
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
    int opened = cur().line;
    expect(Tk::LBrace, "'{'");
    while (next_item("chain " + c.name)) {
      // A chain or table inside a chain: the chain's '}' is missing, which is the error to report.
      if (word("table") || word("chain"))
        fail(fmt::format("'{}' inside chain {}: the '}}' closing the chain (opened at line {}) is missing", cur().text, c.name,
                         opened));
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
      if (is_bitset(types[i])) {
        // "new,established" in a comparison is a flag list: OR the bits.
        while (at(Tk::Comma) && t_[i_ + 1].k == Tk::Word && ct_list_ok_) {
          ++i_;
          Key l2{}, h2{};
          const Tok& t2 = cur();
          std::string e2 = parse_component(types[i], take_word("a ct flag"), l2.b.data(), h2.b.data());
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
      if (n == "version") return two(Sel::IpVersion);
      fail(fmt::format("'ip {}' is not modelled (saddr, daddr, protocol, version)", n));
    }
    if (w == "ip6") {
      if (n == "saddr") return two(Sel::Ip6Saddr);
      if (n == "daddr") return two(Sel::Ip6Daddr);
      if (n == "nexthdr") return two(Sel::Ip6Nexthdr);
      if (n == "version") return two(Sel::Ip6Version);
      fail(fmt::format("'ip6 {}' is not modelled (saddr, daddr, nexthdr, version)", n));
    }
    if (w == "icmp" || w == "icmpv6") {
      if (n != "type") {
        if (n == "code" || n == "id" || n == "sequence" || n == "mtu" || n == "gateway" || n == "checksum")
          fail(fmt::format("'{} {}' is not modelled (type)", w, n));
        return std::nullopt;  // the value of "meta l4proto icmp"
      }
      return two(w == "icmp" ? Sel::IcmpType : Sel::Icmp6Type);
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
      if (n == "status") return two(Sel::CtStatus);
      fail(fmt::format("'ct {}' is not modelled (state, status, mark)", n));
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
    if (s.key.size() != 1 || s.key[0] == Type::Ifname || is_bitset(s.key[0])) return;
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
    uint8_t l4 = 0;         // the transport protocol the rule has pinned (nft refuses a second one)
    bool terminal = false;  // a verdict (not continue), reject or NAT statement ends what runs
    while (!rule_end()) {
      const Tok& tk = cur();
      // nft's rule_evaluate refuses any statement after a terminal one (a comment is no statement).
      if (terminal && !(at(Tk::Word) && tk.text == "comment")) fail_at(tk, "statement after terminal statement has no effect");
      if (auto sel = selector()) {
        r.stmts.push_back(expr_stmt(t, *sel, tk, l4));
        continue;
      }
      std::string_view w = take_word("a statement");
      if (w == "counter") {
        r.stmts.push_back(counter_stmt());
      } else if (w == "accept" || w == "drop" || w == "return" || w == "continue" || w == "jump" || w == "goto") {
        --i_;
        r.stmts.push_back(VerdictStmt{verdict_words()});
        terminal = std::get<VerdictStmt>(r.stmts.back()).v.code != VerdictCode::Continue;
      } else if (w == "queue") {
        fail_at(tk, "'queue' is not modelled");
      } else if (w == "reject") {
        r.stmts.push_back(reject_stmt(t));
        terminal = true;
      } else if (w == "dnat" || w == "snat" || w == "masquerade" || w == "redirect") {
        r.stmts.push_back(nat_stmt(t, w, tk));
        terminal = true;
      } else if (w == "log") {
        r.stmts.push_back(log_stmt(tk));
      } else if (w == "notrack") {
        r.stmts.push_back(NotrackStmt{});
      } else if (w == "update" || w == "add") {
        r.stmts.push_back(set_update_stmt(w == "add"));
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

  // A transport protocol the rule depends on (tcp dport, meta l4proto udp): a second, different
  // one is an error.
  void pin(uint8_t& l4, uint8_t p, const Tok& at) {
    if (!p) return;
    if (l4 && l4 != p) fail_at(at, fmt::format("conflicting protocols specified: {} vs. {}", proto_text(l4), proto_text(p)));
    l4 = p;
  }

  // A statement that starts with an expression (tk its first token): meta mark set, a verdict map
  // or a comparison.
  Stmt expr_stmt(Table& t, const Selector& sel, const Tok& tk, uint8_t& l4) {
    auto lhs = concat(sel);
    for (auto& x : lhs) {
      if (x.sel == Sel::Sport || x.sel == Sel::Dport) pin(l4, x.proto, tk);
      if (x.sel == Sel::IcmpType) pin(l4, proto::ICMP, tk);
      if (x.sel == Sel::Icmp6Type) pin(l4, proto::ICMPV6, tk);
    }
    std::vector<Type> types;
    for (auto& s : lhs) types.push_back(s.type());
    if (word("set")) {
      if (lhs.size() != 1 || lhs[0].sel != Sel::Mark) fail_at(tk, "only 'meta mark set' is modelled");
      ++i_;
      return mark_set();
    }
    if (word("vmap")) {
      ++i_;
      return vmap_stmt(t, lhs, types);
    }
    return match_stmt(t, lhs, types, tk, l4);
  }

  // KEY vmap @map | KEY vmap { k : verdict, ... }
  VmapStmt vmap_stmt(Table& t, const std::vector<Selector>& lhs, const std::vector<Type>& types) {
    VmapStmt v;
    v.key = lhs;
    if (at(Tk::LBrace)) v.set = anon_set(t, types, true);
    else {
      std::string_view ref = take_word("@map or { ... }");
      if (ref.size() < 2 || ref[0] != '@') fail_at(t_[i_ - 1], "expected @map or { ... } after vmap");
      v.set_name = std::string(ref.substr(1));
    }
    return v;
  }

  // LHS [& | ^ NUMBER] [OP] VALUE, { set }, or @set.
  MatchStmt match_stmt(Table& t, const std::vector<Selector>& lhs, const std::vector<Type>& types, const Tok& tk, uint8_t& l4) {
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
      if ((m.op == MatchStmt::Op::Lt || m.op == MatchStmt::Op::Gt || m.op == MatchStmt::Op::Le || m.op == MatchStmt::Op::Ge) &&
          !(m.lo == m.hi))
        fail_at(tk, "an ordering comparison takes a single value");
      if (lhs.size() == 1 && lhs[0].sel == Sel::L4Proto && m.op == MatchStmt::Op::Eq && m.lo == m.hi) pin(l4, m.lo.b[0], tk);
      bool flags = types.size() == 1 && is_bitset(types[0]);
      if (flags && !explicit_op) m.op = MatchStmt::Op::FlagsAny;
      else if (flags && m.op == MatchStmt::Op::Ne) m.op = MatchStmt::Op::FlagsNone;
    }
    return m;
  }

  // counter [packets N bytes M] (nft's grammar takes the two in either order)
  CounterStmt counter_stmt() {
    CounterStmt c;
    if (word("packets") || word("bytes")) {
      bool packets_first = cur().text == "packets";
      ++i_;
      (packets_first ? c.packets : c.bytes) = parse_uint(take_word("a count"), UINT64_MAX).value_or(0);
      std::string_view second = packets_first ? "bytes" : "packets";
      if (take_word(second) != second) fail_at(t_[i_ - 1], fmt::format("expected '{}'", second));
      (packets_first ? c.bytes : c.packets) = parse_uint(take_word("a count"), UINT64_MAX).value_or(0);
    }
    return c;
  }

  // reject [with icmp|icmpv6|icmpx [type] CODE | with tcp reset]; without 'with', port
  // unreachable in the ICMP of the table's family.
  RejectStmt reject_stmt(const Table& t) {
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
    return rj;
  }

  // log [prefix "..."] [level ...] [flags ...] [group ...]: only the prefix is kept.
  // log [prefix S] [group N] [snaplen N] [queue-threshold N] [level L] [flags F]...: nft's log_arg
  // grammar and stmt_evaluate_log's checks, refused at the 'log' word as nft does.
  LogStmt log_stmt(const Tok& log_tok) {
    static constexpr std::string_view kLevels[] = {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"};
    LogStmt l;
    auto num = [&](uint64_t max) {
      const Tok& vt = cur();
      auto v = parse_uint(take_word("a number"), max);
      if (!v) fail_at(vt, "expected a number");
      return int64_t(*v);
    };
    for (;;) {
      if (word("prefix")) {
        ++i_;
        l.prefix = take_string("a log prefix");
      } else if (word("group")) {
        ++i_;
        l.group = num(0xffff);
      } else if (word("snaplen")) {
        ++i_;
        l.snaplen = num(0xffffffff);
      } else if (word("queue-threshold")) {
        ++i_;
        l.qthreshold = num(0xffff);
      } else if (word("level")) {
        ++i_;
        const Tok& vt = cur();
        auto lv = take_word("a log level");
        auto it = std::find(std::begin(kLevels), std::end(kLevels), lv);
        if (it == std::end(kLevels)) fail_at(vt, "invalid log level");
        l.level = int8_t(it - std::begin(kLevels));
      } else if (word("flags")) {
        ++i_;
        const Tok& vt = cur();
        auto f = take_word("log flags");
        if (f == "tcp") {
          do {
            auto o = take_word("sequence or options");
            if (o == "sequence") l.logflags |= 0x01;      // NF_LOG_TCPSEQ
            else if (o == "options") l.logflags |= 0x02;  // NF_LOG_TCPOPT
            else fail_at(t_[i_ - 1], "expected sequence or options");
          } while (at(Tk::Comma) && (++i_, true));
        } else if (f == "ip") {
          if (take_word("options") != "options") fail_at(t_[i_ - 1], "expected options");
          l.logflags |= 0x04;  // NF_LOG_IPOPT
        } else if (f == "skuid") {
          l.logflags |= 0x08;  // NF_LOG_UID
        } else if (f == "ether") {
          l.logflags |= 0x20;  // NF_LOG_MACDECODE
        } else if (f == "all") {
          l.logflags |= kLogAll;
        } else {
          fail_at(vt, fmt::format("unknown log flag '{}'", f));
        }
      } else {
        break;
      }
    }
    if (l.group >= 0 || l.snaplen >= 0 || l.qthreshold >= 0) {
      if (l.level >= 0) fail_at(log_tok, "level and group are mutually exclusive");
      if (l.logflags) fail_at(log_tok, "flags and group are mutually exclusive");
    }
    if (l.level == 8 && (!l.prefix.empty() || l.group >= 0 || l.snaplen >= 0 || l.qthreshold >= 0 || l.logflags))
      fail_at(log_tok, "log level audit doesn't support any further options");
    return l;
  }

  // add @set { KEY [timeout T] } (no refresh) / update @set { ... }: the packet path adds to a set.
  SetUpdateStmt set_update_stmt(bool add) {
    SetUpdateStmt u;
    u.add = add;
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
    return u;
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
    // nft 0.9 printed `snat 10.0.0.1-10.0.0.5` and `dnat 10.0.0.1:80` without `to`.
    bool bare = need_addr && at(Tk::Word) && !word("to") && !word("random") && !word("fully-random") && !word("persistent") &&
                !word("comment") && !word("counter");
    if (word("to") || bare) {
      if (!bare) ++i_;
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

}  // namespace

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

Ruleset load_file(const std::string& path) {
  std::string text = read_input_file(path);
  return looks_like_json(text) ? load_json(text, path) : load(text, path);  // `nft -j list ruleset` (json.cpp)
}

}  // namespace svcpath::nf::nft
