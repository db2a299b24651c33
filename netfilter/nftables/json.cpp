// `nft -j list ruleset` as input: libnftables-json(5)'s objects (table, chain, set, map, element,
// rule and its expressions) read into the Ruleset the text parser builds, values through the same
// codecs (values.cpp) and the same load-time checks (validate.cpp). nft's own JSON reader
// (src/parser_json.c) is the reference for what each object holds.
//
// JSON has no line structure (`nft -j` prints one line), so every error names the offending value
// by its path from the root as well as by its line:column, which is found only when an error
// is reported: the text is walked along the path again instead of keeping a position per value.
#include "netfilter/nftables/json.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

namespace {

using nlohmann::json;

// One step from a value to a member: an object key or an array index.
struct Step {
  std::string key;  // empty: an index
  size_t index = 0;
};

struct JsonError {
  std::vector<Step> path;
  std::string msg;
};

// ---- positions: the text walked along a path (only when an error is reported) --------------------

struct Scan {
  std::string_view s;
  size_t i = 0;
  bool end() const { return i >= s.size(); }
  char c() const { return end() ? '\0' : s[i]; }
  void ws() {
    while (!end() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  // At '"': the raw text between the quotes (escapes left as written).
  std::string_view string() {
    size_t start = ++i;
    while (!end() && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    std::string_view r = s.substr(start, std::min(i, s.size()) - start);
    if (!end()) ++i;
    return r;
  }
  void value() {
    ws();
    if (c() == '"') {
      string();
      return;
    }
    if (c() != '{' && c() != '[') {
      while (!end() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
        ++i;
      return;
    }
    int depth = 0;  // iterative: nesting depth is the input's to choose
    do {
      if (c() == '"') {
        string();
        continue;
      }
      if (c() == '{' || c() == '[') ++depth;
      else if (c() == '}' || c() == ']') --depth;
      ++i;
    } while (!end() && depth > 0);
  }
};

// Byte offset of the value at path (as far as the path can be followed).
size_t locate(std::string_view text, const std::vector<Step>& path) {
  Scan sc{text};
  sc.ws();
  for (const Step& st : path) {
    size_t here = sc.i;
    if (!st.key.empty()) {
      if (sc.c() != '{') return here;
      ++sc.i;
      bool found = false;
      for (;;) {
        sc.ws();
        if (sc.c() != '"') return here;
        std::string_view k = sc.string();
        sc.ws();
        if (sc.c() != ':') return here;
        ++sc.i;
        sc.ws();
        if (k == st.key) {
          found = true;
          break;
        }
        sc.value();
        sc.ws();
        if (sc.c() != ',') return here;
        ++sc.i;
      }
      if (!found) return here;
    } else {
      if (sc.c() != '[') return here;
      ++sc.i;
      for (size_t k = 0; k < st.index; ++k) {
        sc.value();
        sc.ws();
        if (sc.c() != ',') return here;
        ++sc.i;
      }
      sc.ws();
    }
  }
  return sc.i;
}

struct LineCol {
  int line = 1, col = 1;
};
LineCol line_col(std::string_view text, size_t off) {
  off = std::min(off, text.size());
  LineCol lc;
  size_t bol = 0;
  for (size_t k = 0; k < off; ++k)
    if (text[k] == '\n') ++lc.line, bol = k + 1;
  lc.col = int(off - bol) + 1;
  return lc;
}

std::string path_text(const std::vector<Step>& path) {
  std::string s;
  for (const Step& st : path) {
    if (st.key.empty()) s += fmt::format("[{}]", st.index);
    else s += (s.empty() ? "" : ".") + st.key;
  }
  return s;
}

// nft's JSON names a transport header's fields as its text does.
uint8_t l4_of(std::string_view p) { return p == "tcp" ? proto::TCP : p == "udp" ? proto::UDP : p == "sctp" ? proto::SCTP : 0; }

class Reader {
 public:
  Reader(Ruleset& rs, std::string_view text, Diagnostics& d) : rs_(rs), text_(text), d_(d) {}
  uint32_t& handle_counter() { return handle_; }

  void file(const json& root) {
    if (!root.is_object() || !root.contains("nftables"))
      return report({{}, "expected {\"nftables\": [...]}, the form `nft -j list ruleset` prints"});
    const json& arr = root["nftables"];
    auto g = enter("nftables");
    if (!arr.is_array()) return report({path_, "expected an array of objects"});
    // Where each top-level object starts: its line is what the load-time checks report.
    std::vector<size_t> starts;
    {
      Scan sc{text_, locate(text_, path_)};
      if (sc.c() == '[') {
        ++sc.i;
        for (size_t k = 0; k < arr.size(); ++k) {
          sc.ws();
          starts.push_back(sc.i);
          sc.value();
          sc.ws();
          if (sc.c() == ',') ++sc.i;
        }
      }
    }
    size_t off = 0;
    int line = 1;
    for (size_t k = 0; k < arr.size(); ++k) {
      if (k < starts.size()) {
        for (; off < starts[k] && off < text_.size(); ++off)
          if (text_[off] == '\n') ++line;
        line_ = line;
      }
      auto gi = enter(k);
      try {
        top(arr[k]);
      } catch (const JsonError& e) {
        report(e);
        if (d_.full()) return;
      }
    }
  }

  void report(const JsonError& e) {
    LineCol lc = line_col(text_, locate(text_, e.path));
    std::string where = path_text(e.path);
    d_.error(lc.line, lc.col, where.empty() ? e.msg : fmt::format("{}: {}", where, e.msg));
  }

 private:
  // -- the path to the value being read
  struct Guard {
    Reader* r;
    Guard(Reader* x, Step st) : r(x) { r->path_.push_back(std::move(st)); }
    Guard(const Guard&) = delete;
    ~Guard() { r->path_.pop_back(); }
  };
  static Step at(std::string_view k) { return {std::string(k), 0}; }
  static Step at(size_t i) { return {{}, i}; }
  [[nodiscard]] Guard enter(std::string_view k) { return Guard(this, at(k)); }
  [[nodiscard]] Guard enter(size_t i) { return Guard(this, at(i)); }
  [[noreturn]] void fail(std::string msg) const { throw JsonError{path_, std::move(msg)}; }
  [[noreturn]] void fail_at(std::string_view k, std::string msg) const {
    auto p = path_;
    p.push_back(at(k));
    throw JsonError{std::move(p), std::move(msg)};
  }

  // -- members
  static std::string_view kind_of(const json& v) {
    switch (v.type()) {
      case json::value_t::null: return "null";
      case json::value_t::boolean: return "a boolean";
      case json::value_t::string: return "a string";
      case json::value_t::array: return "an array";
      case json::value_t::object: return "an object";
      case json::value_t::number_float: return "a fraction";
      default: return "a number";
    }
  }
  // An object's keys must be among known: anything else is something this reader would drop.
  void only(const json& o, std::initializer_list<std::string_view> known, std::string_view what) {
    if (!o.is_object()) fail(fmt::format("expected {} object, got {}", what, kind_of(o)));
    for (auto it = o.begin(); it != o.end(); ++it)
      if (std::find(known.begin(), known.end(), it.key()) == known.end())
        fail_at(it.key(), fmt::format("'{}' in {} is not modelled", it.key(), what));
  }
  // {"name": value}: the one key of a statement or expression object.
  std::pair<std::string, const json*> single(const json& o, std::string_view what) {
    if (!o.is_object() || o.size() != 1) fail(fmt::format("expected {} (an object with one key), got {}", what, kind_of(o)));
    return {o.begin().key(), &o.begin().value()};
  }
  const json& need(const json& o, std::string_view k) {
    if (!o.contains(k)) fail(fmt::format("missing \"{}\"", k));
    return o[std::string(k)];
  }
  std::string str(const json& o, std::string_view k) {
    const json& v = need(o, k);
    if (!v.is_string()) fail_at(k, fmt::format("expected a string, got {}", kind_of(v)));
    return v.get<std::string>();
  }
  std::string opt_str(const json& o, std::string_view k) { return o.contains(k) ? str(o, k) : std::string(); }
  uint64_t num(const json& o, std::string_view k, uint64_t max) {
    const json& v = need(o, k);
    if (!v.is_number_unsigned() || v.get<uint64_t>() > max) fail_at(k, fmt::format("expected a number from 0 to {}", max));
    return v.get<uint64_t>();
  }

  // -- objects
  void top(const json& o) {
    auto [k, v] = single(o, "a ruleset object");
    auto g = enter(k);
    if (k == "metainfo") return;
    if (k == "add" || k == "create" || k == "insert") {
      auto [what, body] = single(*v, "an object to add");
      auto g2 = enter(what);
      if (k == "insert" && what != "rule") fail("only 'insert rule' is supported");
      return object(what, *body, k == "insert");
    }
    if (k == "flush") {
      auto [what, body] = single(*v, "what to flush");
      if (what != "ruleset") fail_at(what, fmt::format("'flush {}' is not supported (flush ruleset)", what));
      rs_.tables.clear();
      return;
    }
    if (k == "delete" || k == "destroy" || k == "replace" || k == "list" || k == "reset" || k == "rename")
      fail(
          fmt::format("command '{}' is not supported (add, create, insert, flush ruleset, or the objects `nft -j list "
                      "ruleset` prints)",
                      k));
    object(k, *v, false);
  }

  void object(std::string_view k, const json& v, bool insert) {
    if (k == "table") return table(v);
    if (k == "chain") return chain(v);
    if (k == "rule") return rule(v, insert);
    if (k == "set" || k == "map") return set(v, k == "map");
    if (k == "element") return element_obj(v);
    fail(fmt::format("'{}' objects are not modelled (table, chain, rule, set, map, element)", k));
  }

  TableFamily family(const json& o) {
    std::string w = str(o, "family");
    if (auto f = family_word(w)) return *f;
    if (w == "arp" || w == "bridge" || w == "netdev")
      fail_at("family", fmt::format("family '{}' is not modelled (svcpath simulates the ip, ip6 and inet families)", w));
    fail_at("family", fmt::format("unknown family '{}'", w));
  }
  Table& table_of(const json& o) {
    TableFamily f = family(o);
    std::string name = str(o, "table");
    Table* t = rs_.find(f, name);
    if (!t) fail_at("table", fmt::format("no table {} {} (add it first)", family_name(f), name));
    return *t;
  }

  void table(const json& o) {
    only(o, {"family", "name", "handle", "comment", "flags"}, "a table");
    TableFamily f = family(o);
    std::string name = str(o, "name");
    Table* t = rs_.find(f, name);
    if (!t) {
      auto nt = std::make_unique<Table>();
      nt->family = f;
      nt->name = name;
      nt->label = fmt::format("{} {}", family_name(f), name);
      nt->line = line_;
      t = nt.get();
      rs_.tables.push_back(std::move(nt));
    }
    if (o.contains("comment")) t->comment = str(o, "comment");
    if (o.contains("flags")) {
      auto g = enter("flags");
      for_each_word(o["flags"], [&](const std::string& fl) {
        if (fl != "owner" && fl != "persist") fail(fmt::format("table flag '{}' is not modelled", fl));
      });
    }
  }

  // A string or an array of strings (nft prints one flag bare, several as an array).
  template <class F>
  void for_each_word(const json& v, F&& f) {
    if (v.is_string()) return f(v.get<std::string>());
    if (!v.is_array()) fail(fmt::format("expected a string or an array of strings, got {}", kind_of(v)));
    for (size_t i = 0; i < v.size(); ++i) {
      auto g = enter(i);
      if (!v[i].is_string()) fail(fmt::format("expected a string, got {}", kind_of(v[i])));
      f(v[i].get<std::string>());
    }
  }

  void chain(const json& o) {
    only(o, {"family", "table", "name", "handle", "type", "hook", "prio", "policy", "comment", "dev"}, "a chain");
    Table& t = table_of(o);
    std::string name = str(o, "name");
    int32_t ci = t.chain_index(name);
    if (ci < 0) {
      Chain ch;
      ch.name = name;
      ch.line = line_;
      ch.handle = o.contains("handle") ? uint32_t(num(o, "handle", 0xffffffff)) : ++handle_;
      t.chains.push_back(std::move(ch));
      ci = int32_t(t.chains.size() - 1);
      t.chain_by_name.emplace(name, ci);
    }
    Chain& c = t.chains[size_t(ci)];
    if (o.contains("comment")) c.comment = str(o, "comment");
    if (o.contains("dev")) fail_at("dev", "'dev' belongs to netdev chains, which are not modelled");
    if (o.contains("type") || o.contains("hook") || o.contains("prio")) {
      std::string ty = str(o, "type");
      if (ty == "filter") c.type = ChainType::Filter;
      else if (ty == "nat") c.type = ChainType::Nat;
      else if (ty == "route") c.type = ChainType::Route;
      else fail_at("type", fmt::format("unknown chain type '{}' (filter, nat, route)", ty));
      std::string hk = str(o, "hook");
      auto h = parse_hook(hk);
      if (!h) fail_at("hook", fmt::format("hook '{}' is not modelled (prerouting, input, forward, output, postrouting)", hk));
      if (c.type == ChainType::Nat && *h == Hook::Forward) fail_at("hook", "nat chains cannot hook forward");
      if (c.type == ChainType::Route && *h != Hook::LocalOut) fail_at("hook", "route chains hook output only");
      c.hook = *h;
      const json& p = need(o, "prio");
      if (p.is_number_integer() && p.get<int64_t>() >= -(1 << 30) && p.get<int64_t>() <= (1 << 30)) {
        c.priority = int(p.get<int64_t>());
      } else if (p.is_string()) {
        auto np = named_priority(p.get<std::string>(), *h);
        if (!np) fail_at("prio", fmt::format("unknown priority name '{}' for the {} hook", p.get<std::string>(), hk));
        c.priority = *np;
      } else {
        fail_at("prio", "expected a priority (a number or a name)");
      }
      c.priority_text = std::to_string(c.priority);
      c.base = true;
    }
    if (o.contains("policy")) {
      std::string p = str(o, "policy");
      if (p == "accept") c.policy_drop = false;
      else if (p == "drop") c.policy_drop = true;
      else fail_at("policy", fmt::format("policy '{}' (accept or drop)", p));
    }
  }

  void set(const json& o, bool map) {
    only(o,
         {"family", "table", "name", "handle", "type", "map", "flags", "timeout", "gc-interval", "size", "policy", "comment",
          "elem", "auto-merge"},
         map ? "a map" : "a set");
    Table& t = table_of(o);
    std::string name = str(o, "name");
    int32_t si = t.set_index(name);
    if (si < 0) {
      Set s;
      s.name = name;
      s.map = map;
      s.line = line_;
      t.sets.push_back(std::move(s));
      si = int32_t(t.sets.size() - 1);
    }
    Set& s = t.sets[size_t(si)];
    {
      std::vector<Type> key;
      auto g = enter("type");
      for_each_word(need(o, "type"), [&](const std::string& w) {
        auto ty = type_word(w);
        if (!ty) fail(fmt::format("data type '{}' is not modelled", w));
        key.push_back(*ty);
      });
      if (key.empty()) fail("a set needs a type");
      if (!s.key.empty() && s.key != key && !s.elems.empty()) fail(fmt::format("set {} exists with another type", s.name));
      s.key = std::move(key);
      if (s.key_len() > sizeof(Key::b)) fail("the concatenated key is too long");
    }
    if (map) {
      std::string d = str(o, "map");
      if (d != "verdict") fail_at("map", "only verdict maps are modelled (\"map\": \"verdict\")");
    } else if (o.contains("map")) {
      fail_at("map", "a set has no \"map\" (use a map object)");
    }
    if (s.map != map) fail(fmt::format("'{}' exists as a {}", name, s.map ? "map" : "set"));
    if (o.contains("flags")) {
      auto g = enter("flags");
      for_each_word(o["flags"], [&](const std::string& f) {
        if (f == "interval") s.interval = true;
        else if (f == "dynamic") s.dynamic = true;
        else if (f == "timeout") s.timeout_flag = true;
        else if (f == "constant") s.constant = true;
        else fail(fmt::format("set flag '{}' is not modelled", f));
      });
    }
    if (o.contains("timeout")) s.timeout_ns = seconds(o, "timeout");
    if (o.contains("gc-interval")) seconds(o, "gc-interval");
    if (o.contains("size")) s.size = uint32_t(num(o, "size", 0xffffffff));
    if (o.contains("comment")) s.comment = str(o, "comment");
    if (o.contains("elem")) elements(s, o["elem"], "elem");
    if (s.dynamic && !s.size) s.size = 65535;  // nft's default for sets the packet path adds to
  }

  // libnftables-json gives times in seconds.
  uint64_t seconds(const json& o, std::string_view k) { return num(o, k, 1ull << 40) * 1000000000ull; }

  void element_obj(const json& o) {
    only(o, {"family", "table", "name", "elem"}, "an element");
    Table& t = table_of(o);
    std::string name = str(o, "name");
    int32_t si = t.set_index(name);
    if (si < 0) fail_at("name", fmt::format("no set '{}' in table {}", name, t.label));
    elements(t.sets[size_t(si)], need(o, "elem"), "elem");
  }

  void elements(Set& s, const json& arr, std::string_view k) {
    auto g = enter(k);
    if (!arr.is_array()) fail(fmt::format("expected an array of elements, got {}", kind_of(arr)));
    for (size_t i = 0; i < arr.size(); ++i) {
      auto gi = enter(i);
      add_element(s, element(s, arr[i]));
    }
  }

  // A set element: KEY or {"elem": {"val": KEY, "timeout", "expires", "comment"}}; in a map the
  // pair [KEY, VERDICT].
  Element element(const Set& s, const json& item) {
    Element e;
    const json* kv = &item;
    std::optional<Guard> g0;
    if (s.map) {
      if (!item.is_array() || item.size() != 2) fail(fmt::format("expected a map element [key, verdict], got {}", kind_of(item)));
      {
        auto g = enter(size_t(1));
        e.verdict = verdict(item[1]);
      }
      kv = &item[0];
      g0.emplace(this, at(size_t(0)));
    }
    std::optional<Guard> g1, g2;
    if (kv->is_object() && kv->contains("elem")) {
      g1.emplace(this, at("elem"));
      const json& el = (*kv)["elem"];
      only(el, {"val", "timeout", "expires", "comment", "counter"}, "an element");
      if (el.contains("counter")) fail_at("counter", "element counters are not modelled");
      if (el.contains("timeout")) seconds(el, "timeout");
      if (el.contains("expires")) seconds(el, "expires");
      e.comment = opt_str(el, "comment");
      kv = &need(el, "val");
      g2.emplace(this, at("val"));
    }
    key_value(s.key, *kv, e.lo, e.hi);
    e.text = key_text(s.key, e.lo, e.hi);
    if (!(e.lo == e.hi) && s.key.size() == 1 && !s.interval && !s.anonymous)
      fail(fmt::format("'{}' is a range but set {} has no \"interval\" flag", e.text, s.name));
    return e;
  }

  // As `add element` does: a key already there is nothing, unless a map would change its verdict.
  void add_element(Set& s, Element e) {
    if (e.lo == e.hi) {
      auto [it, fresh] = s.exact.emplace(e.lo, uint32_t(s.elems.size()));
      if (!fresh) {
        const Element& old = s.elems[it->second];
        if (s.map && (old.verdict.code != e.verdict.code || old.verdict.chain_name != e.verdict.chain_name))
          fail(fmt::format("map {} already maps '{}' to '{}' (delete the element first)", s.name, e.text,
                           old.verdict.chain_name.empty() ? "a verdict" : old.verdict.chain_name));
        return;
      }
    }
    s.elems.push_back(std::move(e));
  }

  // -- values
  // One scalar as the text reader's word: a string as is, a number in decimal.
  std::string word(const json& v, Type t) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    fail(fmt::format("expected a {} value, got {}", type_name(t), kind_of(v)));
  }
  void component(Type t, const json& v, uint8_t* lo, uint8_t* hi) {
    size_t n = value_bytes(t);
    if (v.is_object() && v.size() == 1 && v.contains("prefix")) {
      auto g = enter("prefix");
      const json& p = v["prefix"];
      only(p, {"addr", "len"}, "a prefix");
      if (t != Type::Ipv4 && t != Type::Ipv6) fail(fmt::format("a prefix needs an address, the key part is {}", type_name(t)));
      std::string w = fmt::format("{}/{}", str(p, "addr"), num(p, "len", 128));
      if (auto e = parse_component(t, w, lo, hi); !e.empty()) fail(e);
      return;
    }
    if (v.is_object() && v.size() == 1 && v.contains("range")) {
      auto g = enter("range");
      const json& r = v["range"];
      if (!r.is_array() || r.size() != 2) fail(fmt::format("expected [low, high], got {}", kind_of(r)));
      uint8_t scratch[16];
      std::string a, b;
      {
        auto g0 = enter(size_t(0));
        a = word(r[0], t);
        if (auto e = parse_component(t, a, lo, scratch); !e.empty()) fail(e);
      }
      {
        auto g1 = enter(size_t(1));
        b = word(r[1], t);
        if (auto e = parse_component(t, b, scratch, hi); !e.empty()) fail(e);
      }
      if (std::memcmp(lo, hi, n) > 0) fail(fmt::format("range '{}-{}' is backwards", a, b));
      return;
    }
    if (auto e = parse_component(t, word(v, t), lo, hi); !e.empty()) fail(e);
  }
  // A key, concatenated ({"concat": [...]}) when the set's type is.
  void key_value(const std::vector<Type>& types, const json& v, Key& lo, Key& hi) {
    lo = {};
    hi = {};
    size_t off = 0;
    bool cat = v.is_object() && v.size() == 1 && v.contains("concat");
    if (types.size() == 1) {
      if (cat) fail("expected one value, not a concatenation");
      component(types[0], v, lo.b.data(), hi.b.data());
      off = type_width(types[0]);
    } else {
      if (!cat) fail(fmt::format("expected a {}-part key {{\"concat\": [...]}}", types.size()));
      auto g = enter("concat");
      const json& parts = v["concat"];
      if (!parts.is_array() || parts.size() != types.size())
        fail(fmt::format("expected {} values for a {}-part key", types.size(), types.size()));
      for (size_t i = 0; i < types.size(); ++i) {
        auto gi = enter(i);
        component(types[i], parts[i], lo.b.data() + off, hi.b.data() + off);
        off += type_width(types[i]);
      }
    }
    lo.len = hi.len = uint8_t(off);
  }

  VerdictSpec verdict(const json& o) {
    auto [k, v] = single(o, "a verdict");
    auto g = enter(k);
    VerdictSpec r;
    if (k == "accept") r.code = VerdictCode::Accept;
    else if (k == "drop") r.code = VerdictCode::Drop;
    else if (k == "return") r.code = VerdictCode::Return;
    else if (k == "continue") r.code = VerdictCode::Continue;
    else if (k == "jump" || k == "goto") {
      r.code = k == "jump" ? VerdictCode::Jump : VerdictCode::Goto;
      only(*v, {"target"}, "a jump");
      r.chain_name = str(*v, "target");
      return r;
    } else fail(fmt::format("'{}' is not a verdict (accept, drop, return, continue, jump, goto)", k));
    if (!v->is_null()) fail(fmt::format("'{}' takes null", k));
    return r;
  }

  // -- expressions
  Selector selector(const json& o) {
    auto [k, v] = single(o, "an expression");
    auto g = enter(k);
    Selector s;
    if (k == "payload") {
      only(*v, {"protocol", "field"}, "a payload expression");
      if (!v->contains("protocol")) fail("raw payload expressions (base, offset, len) are not modelled");
      std::string p = str(*v, "protocol"), f = str(*v, "field");
      if (p == "ip") {
        if (f == "saddr") s.sel = Sel::IpSaddr;
        else if (f == "daddr") s.sel = Sel::IpDaddr;
        else if (f == "protocol") s.sel = Sel::IpProtocol;
        else if (f == "version") s.sel = Sel::IpVersion;
        else fail_at("field", fmt::format("'ip {}' is not modelled (saddr, daddr, protocol, version)", f));
      } else if (p == "ip6") {
        if (f == "saddr") s.sel = Sel::Ip6Saddr;
        else if (f == "daddr") s.sel = Sel::Ip6Daddr;
        else if (f == "nexthdr") s.sel = Sel::Ip6Nexthdr;
        else if (f == "version") s.sel = Sel::Ip6Version;
        else fail_at("field", fmt::format("'ip6 {}' is not modelled (saddr, daddr, nexthdr, version)", f));
      } else if (p == "icmp" || p == "icmpv6") {
        if (f != "type") fail_at("field", fmt::format("'{} {}' is not modelled (type)", p, f));
        s.sel = p == "icmp" ? Sel::IcmpType : Sel::Icmp6Type;
      } else if (p == "tcp" || p == "udp" || p == "sctp" || p == "th") {
        if (f != "sport" && f != "dport") fail_at("field", fmt::format("'{} {}' is not modelled (sport, dport)", p, f));
        s.sel = f == "sport" ? Sel::Sport : Sel::Dport;
        s.proto = l4_of(p);
      } else {
        fail_at("protocol", fmt::format("'{} {}' is not modelled", p, f));
      }
    } else if (k == "meta") {
      only(*v, {"key"}, "a meta expression");
      std::string m = str(*v, "key");
      if (m == "l4proto") s.sel = Sel::L4Proto;
      else if (m == "nfproto") s.sel = Sel::NfProto;
      else if (m == "mark") s.sel = Sel::Mark;
      else if (m == "iifname") s.sel = Sel::Iifname;
      else if (m == "oifname") s.sel = Sel::Oifname;
      else if (m == "protocol") fail_at("key", "'meta protocol' is not modelled: use 'meta nfproto'");
      else fail_at("key", fmt::format("'meta {}' is not modelled (l4proto, nfproto, mark, iifname, oifname)", m));
    } else if (k == "ct") {
      only(*v, {"key", "dir", "family"}, "a ct expression");
      std::string m = str(*v, "key");
      if (v->contains("dir") || v->contains("family")) fail(fmt::format("'ct {}' with a direction is not modelled", m));
      if (m == "state") s.sel = Sel::CtState;
      else if (m == "mark") s.sel = Sel::CtMark;
      else if (m == "status") s.sel = Sel::CtStatus;
      else fail_at("key", fmt::format("'ct {}' is not modelled (state, status, mark)", m));
    } else if (k == "fib") {
      only(*v, {"result", "flags"}, "a fib expression");
      if (str(*v, "result") != "type") fail_at("result", "only 'fib ... type' is modelled");
      bool saddr = false, daddr = false;
      auto gf = enter("flags");
      for_each_word(need(*v, "flags"), [&](const std::string& f) {
        if (f == "saddr") saddr = true;
        else if (f == "daddr") daddr = true;
        else if (f == "iif" || f == "oif") s.fib_dev = true;
        else fail(fmt::format("fib flag '{}' is not modelled (saddr, daddr, iif, oif)", f));
      });
      if (saddr == daddr) fail("'fib' needs saddr or daddr");
      s.sel = saddr ? Sel::FibSaddrType : Sel::FibDaddrType;
    } else if (k == "numgen") {
      only(*v, {"mode", "mod", "offset"}, "a numgen expression");
      if (str(*v, "mode") != "random")
        fail_at("mode", "only 'numgen random' is modelled (inc keeps state the kernel does not show)");
      s.sel = Sel::Numgen;
      s.mod = uint32_t(num(*v, "mod", 0xffffffff));
      if (s.mod == 0) fail_at("mod", "numgen modulus must be a positive number");
      if (v->contains("offset")) s.offset = uint32_t(num(*v, "offset", 0xffffffff));
    } else {
      fail(fmt::format("expression '{}' is not modelled", k));
    }
    return s;
  }

  std::vector<Selector> selectors(const json& o) {
    if (o.is_object() && o.size() == 1 && o.contains("concat")) {
      auto g = enter("concat");
      const json& parts = o["concat"];
      if (!parts.is_array() || parts.size() < 2) fail("expected an array of at least two expressions");
      std::vector<Selector> v;
      for (size_t i = 0; i < parts.size(); ++i) {
        auto gi = enter(i);
        if (parts[i].is_object() && parts[i].contains("concat")) fail("a concatenation inside a concatenation");
        v.push_back(selector(parts[i]));
      }
      return v;
    }
    return {selector(o)};
  }

  static std::vector<Type> types_of(const std::vector<Selector>& v) {
    std::vector<Type> t;
    for (auto& s : v) t.push_back(s.type());
    return t;
  }

  // A transport protocol the rule depends on: a second, different one is an error (as nft says).
  void pin(uint8_t& l4, uint8_t p) {
    if (!p) return;
    if (l4 && l4 != p) fail(fmt::format("conflicting protocols specified: {} vs. {}", proto_text(l4), proto_text(p)));
    l4 = p;
  }

  // {"set": [...]} in a rule: an anonymous set (or map) typed by the expression it meets.
  int32_t anon_set(Table& t, const std::vector<Type>& types, const json& o, bool map) {
    Set s;
    s.anonymous = true;
    s.map = map;
    s.key = types;
    s.interval = true;
    s.constant = true;
    s.line = line_;
    s.name = "anon";  // for messages until it is named below
    elements(s, o["set"], "set");
    if (s.elems.empty()) fail_at("set", "an empty anonymous set");
    s.name = fmt::format("__json{}{}", map ? "map" : "set", t.sets.size());
    t.sets.push_back(std::move(s));
    return int32_t(t.sets.size() - 1);
  }
  static bool is_anon(const json& v) { return v.is_object() && v.size() == 1 && v.contains("set"); }

  MatchStmt match(Table& t, const json& o, uint8_t& l4) {
    only(o, {"op", "left", "right"}, "a match");
    using Op = MatchStmt::Op;
    MatchStmt m;
    std::string op = str(o, "op");
    bool implicit = op == "in";
    if (op == "==" || op == "in") m.op = Op::Eq;
    else if (op == "!=") m.op = Op::Ne;
    else if (op == "<") m.op = Op::Lt;
    else if (op == ">") m.op = Op::Gt;
    else if (op == "<=") m.op = Op::Le;
    else if (op == ">=") m.op = Op::Ge;
    else fail_at("op", fmt::format("operator '{}' is not modelled (==, !=, <, >, <=, >=, in)", op));
    {
      auto g = enter("left");
      const json& left = need(o, "left");
      const json* expr = &left;
      std::optional<Guard> gb, g0;
      if (left.is_object() && left.size() == 1 && (left.contains("&") || left.contains("|") || left.contains("^"))) {
        std::string bop = left.begin().key();
        gb.emplace(this, at(bop));
        const json& pair = left.begin().value();
        if (!pair.is_array() || pair.size() != 2) fail("expected [expression, number]");
        {
          auto g1 = enter(size_t(1));
          if (!pair[1].is_number_unsigned() || pair[1].get<uint64_t>() > 0xffffffff) fail("expected a 32-bit number");
        }
        uint32_t x = uint32_t(pair[1].get<uint64_t>());
        m.bitwise = true;
        if (bop == "&") m.and_mask = x, m.xor_val = 0;
        else if (bop == "|") m.and_mask = ~x, m.xor_val = x;
        else m.and_mask = 0xffffffff, m.xor_val = x;
        expr = &pair[0];
        g0.emplace(this, at(size_t(0)));
      }
      m.lhs = selectors(*expr);
      m.types = types_of(m.lhs);
      if (m.bitwise && (m.lhs.size() != 1 || type_width(m.types[0]) != 4)) fail("bitwise operations need one 32-bit expression");
      for (auto& s : m.lhs) {
        if (s.sel == Sel::Sport || s.sel == Sel::Dport) pin(l4, s.proto);
        if (s.sel == Sel::IcmpType) pin(l4, proto::ICMP);
        if (s.sel == Sel::Icmp6Type) pin(l4, proto::ICMPV6);
      }
    }
    auto g = enter("right");
    const json& right = need(o, "right");
    bool flags = m.types.size() == 1 && is_bitset(m.types[0]);
    if (right.is_string() && right.get<std::string>().size() > 1 && right.get<std::string>()[0] == '@') {
      if (m.op != Op::Eq && m.op != Op::Ne) fail("a set takes == or !=");
      m.op = m.op == Op::Ne ? Op::NotInSet : Op::InSet;
      m.set_name = right.get<std::string>().substr(1);
      return m;
    }
    if (is_anon(right)) {
      if (m.op != Op::Eq && m.op != Op::Ne) fail("a set takes == or !=");
      m.op = m.op == Op::Ne ? Op::NotInSet : Op::InSet;
      m.set = anon_set(t, m.types, right, false);
      return m;
    }
    if (right.is_array()) {
      // "ct state established,related": a flag list, its bits ORed.
      if (!flags) fail("a list of values compares flags (ct state, ct status); use {\"set\": [...]} for a set");
      if (right.empty()) fail("an empty flag list");
      Key acc{};
      for (size_t i = 0; i < right.size(); ++i) {
        auto gi = enter(i);
        Key lo, hi;
        key_value(m.types, right[i], lo, hi);
        for (size_t b = 0; b < 4; ++b) acc.b[b] |= lo.b[b];
        acc.len = lo.len;
      }
      m.lo = m.hi = acc;
    } else {
      key_value(m.types, right, m.lo, m.hi);
    }
    m.rhs_text = key_text(m.types, m.lo, m.hi);
    if ((m.op == Op::Lt || m.op == Op::Gt || m.op == Op::Le || m.op == Op::Ge) && !(m.lo == m.hi))
      fail("an ordering comparison takes a single value");
    if (m.lhs.size() == 1 && m.lhs[0].sel == Sel::L4Proto && m.op == Op::Eq && m.lo == m.hi) pin(l4, m.lo.b[0]);
    if (flags && implicit) m.op = Op::FlagsAny;
    else if (flags && m.op == Op::Ne) m.op = Op::FlagsNone;
    return m;
  }

  VmapStmt vmap(Table& t, const json& o) {
    only(o, {"key", "data"}, "a vmap");
    VmapStmt v;
    {
      auto g = enter("key");
      v.key = selectors(need(o, "key"));
    }
    auto g = enter("data");
    const json& d = need(o, "data");
    if (d.is_string() && d.get<std::string>().size() > 1 && d.get<std::string>()[0] == '@')
      v.set_name = d.get<std::string>().substr(1);
    else if (is_anon(d)) v.set = anon_set(t, types_of(v.key), d, true);
    else fail("expected \"@map\" or {\"set\": [[key, verdict], ...]}");
    return v;
  }

  static bool is_meta_mark(const json& v) {
    return v.is_object() && v.size() == 1 && v.contains("meta") && v["meta"].is_object() && v["meta"].size() == 1 &&
           v["meta"].contains("key") && v["meta"]["key"] == "mark";
  }

  // meta mark set VALUE | meta mark set meta mark OP NUMBER
  MarkSetStmt mangle(const json& o) {
    only(o, {"key", "value"}, "a mangle statement");
    if (!is_meta_mark(need(o, "key"))) fail_at("key", "only 'meta mark set' is modelled");
    auto g = enter("value");
    const json& v = need(o, "value");
    MarkSetStmt m;
    auto number = [&](const json& x) -> uint32_t {
      std::optional<uint64_t> n;
      if (x.is_number_unsigned()) n = x.get<uint64_t>();
      else if (x.is_string()) n = parse_uint(x.get<std::string>(), 0xffffffff, true);
      if (!n || *n > 0xffffffff) fail("expected a 32-bit mark");
      return uint32_t(*n);
    };
    if (v.is_object() && v.size() == 1 && (v.contains("|") || v.contains("&") || v.contains("^"))) {
      std::string op = v.begin().key();
      auto gk = enter(op);
      const json& pair = v.begin().value();
      if (!pair.is_array() || pair.size() != 2 || !is_meta_mark(pair[0]))
        fail("expected [{\"meta\": {\"key\": \"mark\"}}, number]");
      auto g1 = enter(size_t(1));
      uint32_t x = number(pair[1]);
      if (op == "|") m.and_mask = ~x, m.xor_val = x;
      else if (op == "&") m.and_mask = x, m.xor_val = 0;
      else m.and_mask = 0xffffffff, m.xor_val = x;
      m.text = fmt::format("meta mark {} 0x{:08x}", op, x);
      return m;
    }
    uint32_t x = number(v);
    m.and_mask = 0;
    m.xor_val = x;
    m.text = fmt::format("0x{:08x}", x);
    return m;
  }

  NatStmt nat(const Table& t, std::string_view w, const json& v) {
    NatStmt n;
    using K = NatTarget::Kind;
    n.t.kind = w == "dnat" ? K::Dnat : w == "snat" ? K::Snat : w == "masquerade" ? K::Masquerade : K::Redirect;
    bool need_addr = n.t.kind == K::Dnat || n.t.kind == K::Snat;
    if (v.is_null()) {
      if (need_addr) fail(fmt::format("{} needs an address", w));
      return n;
    }
    only(v, {"family", "addr", "port", "flags"}, "a nat statement");
    Family fam = t.family == TableFamily::Ip6 ? Family::V6 : Family::V4;
    if (v.contains("family")) {
      std::string f = str(v, "family");
      if (f != "ip" && f != "ip6") fail_at("family", fmt::format("nat family '{}' (ip or ip6)", f));
      fam = f == "ip" ? Family::V4 : Family::V6;
    } else if (need_addr && t.family == TableFamily::Inet) {
      fail(fmt::format("{} in an inet table needs \"family\": \"ip\" or \"ip6\"", w));
    }
    if (v.contains("addr")) {
      if (!need_addr) fail_at("addr", fmt::format("{} takes no address", w));
      auto g = enter("addr");
      const json& a = v["addr"];
      std::string lo, hi;
      if (a.is_string()) {
        lo = hi = a.get<std::string>();
      } else if (a.is_object() && a.size() == 1 && a.contains("range") && a["range"].is_array() && a["range"].size() == 2 &&
                 a["range"][0].is_string() && a["range"][1].is_string()) {
        lo = a["range"][0].get<std::string>();
        hi = a["range"][1].get<std::string>();
      } else {
        fail("only an address or {\"range\": [a, b]} is modelled as a NAT address");
      }
      auto x = Addr::parse(lo), y = Addr::parse(hi);
      if (!x || !y || x->fam != fam || y->fam != fam)
        fail(fmt::format("'{}' is not an {} address", lo == hi ? lo : lo + "-" + hi, fam == Family::V4 ? "IPv4" : "IPv6"));
      n.t.addr_set = true;
      n.t.min = *x;
      n.t.max = *y;
    } else if (need_addr) {
      fail(fmt::format("{} needs an address", w));
    }
    if (v.contains("port")) {
      auto g = enter("port");
      const json& p = v["port"];
      auto port = [&](const json& x) -> uint16_t {
        if (!x.is_number_unsigned() || x.get<uint64_t>() > 65535) fail("expected a port");
        return uint16_t(x.get<uint64_t>());
      };
      if (p.is_object() && p.size() == 1 && p.contains("range") && p["range"].is_array() && p["range"].size() == 2) {
        auto gr = enter("range");
        n.t.ports.lo = port(p["range"][0]);
        n.t.ports.hi = port(p["range"][1]);
        if (n.t.ports.lo > n.t.ports.hi) fail("the port range is backwards");
      } else {
        n.t.ports.lo = n.t.ports.hi = port(p);
      }
      n.t.port_set = true;
    }
    if (v.contains("flags")) {
      auto g = enter("flags");
      for_each_word(v["flags"], [&](const std::string& f) {
        if (f == "random") n.t.random = true;
        else if (f == "fully-random") n.t.random_fully = true;
        else if (f == "persistent") n.t.persistent = true;
        else fail(fmt::format("nat flag '{}' is not modelled (random, fully-random, persistent)", f));
      });
    }
    return n;
  }

  // reject [with icmp|icmpv6|icmpx CODE | with tcp reset]; the family's port-unreachable is nft's
  // default and prints as a bare "reject".
  RejectStmt reject(const Table& t, const json& v) {
    RejectStmt rj;
    rj.with = t.family == TableFamily::Ip6 ? "icmp6-port-unreachable" : "icmp-port-unreachable";
    if (v.is_null()) return rj;
    only(v, {"type", "expr"}, "a reject statement");
    std::string kind = v.contains("type") ? str(v, "type") : std::string();
    if (kind == "tcp reset") {
      rj.with = "tcp-reset";
      rj.text = "with tcp reset";
      return rj;
    }
    if (kind != "icmp" && kind != "icmpv6" && kind != "icmpx")
      fail_at("type", fmt::format("reject type '{}' (icmp, icmpv6, icmpx, tcp reset)", kind));
    std::string code = "port-unreachable";
    if (v.contains("expr")) {
      const json& e = v["expr"];
      if (e.is_string()) code = e.get<std::string>();
      else if (e.is_number_unsigned() && e.get<uint64_t>() < 256) code = std::to_string(e.get<uint64_t>());
      else fail_at("expr", "expected an ICMP code");
    }
    std::string_view dflt = t.family == TableFamily::Ip6 ? "icmpv6" : t.family == TableFamily::Ip ? "icmp" : "icmpx";
    if (kind == dflt && code == "port-unreachable") return rj;
    rj.text = fmt::format("with {} {}", kind, code);
    rj.with = fmt::format("{}-{}", kind == "icmpv6" ? "icmp6" : "icmp", code);
    return rj;
  }

  SetUpdateStmt set_update(const json& o) {
    only(o, {"op", "elem", "set"}, "a set statement");
    SetUpdateStmt u;
    std::string op = str(o, "op");
    if (op != "add" && op != "update") fail_at("op", fmt::format("set operation '{}' is not modelled (add, update)", op));
    u.add = op == "add";
    std::string ref = str(o, "set");
    if (ref.size() < 2 || ref[0] != '@') fail_at("set", "expected \"@set\"");
    u.set_name = ref.substr(1);
    auto g = enter("elem");
    const json* e = &need(o, "elem");
    std::optional<Guard> g2, g3;
    if (e->is_object() && e->contains("elem")) {
      g2.emplace(this, at("elem"));
      const json& el = (*e)["elem"];
      only(el, {"val", "timeout", "expires", "comment"}, "an element");
      if (el.contains("timeout")) seconds(el, "timeout");
      e = &need(el, "val");
      g3.emplace(this, at("val"));
    }
    u.key = selectors(*e);
    return u;
  }

  void stmt(Table& t, Rule& r, const json& o, uint8_t& l4) {
    auto [k, vp] = single(o, "a statement");
    const json& v = *vp;
    if (k == "accept" || k == "drop" || k == "return" || k == "continue" || k == "jump" || k == "goto") {
      r.stmts.push_back(VerdictStmt{verdict(o)});
      return;
    }
    auto g = enter(k);
    if (k == "match") {
      r.stmts.push_back(match(t, v, l4));
    } else if (k == "counter") {
      CounterStmt c;
      if (v.is_string()) fail("named counters are not modelled");
      if (!v.is_null()) {
        only(v, {"packets", "bytes"}, "a counter");
        if (v.contains("packets")) c.packets = num(v, "packets", UINT64_MAX);
        if (v.contains("bytes")) c.bytes = num(v, "bytes", UINT64_MAX);
      }
      r.stmts.push_back(c);
    } else if (k == "vmap") {
      r.stmts.push_back(vmap(t, v));
    } else if (k == "mangle") {
      r.stmts.push_back(mangle(v));
    } else if (k == "dnat" || k == "snat" || k == "masquerade" || k == "redirect") {
      r.stmts.push_back(nat(t, k, v));
    } else if (k == "reject") {
      r.stmts.push_back(reject(t, v));
    } else if (k == "log") {
      LogStmt l;
      if (!v.is_null()) {
        only(v, {"prefix", "level", "flags", "group", "snaplen", "queue-threshold"}, "a log statement");
        l.prefix = opt_str(v, "prefix");
      }
      r.stmts.push_back(l);
    } else if (k == "notrack") {
      r.stmts.push_back(NotrackStmt{});
    } else if (k == "set") {
      r.stmts.push_back(set_update(v));
    } else if (k == "queue") {
      fail("'queue' is not modelled");
    } else {
      fail(fmt::format("statement '{}' is not modelled", k));
    }
  }

  void rule(const json& o, bool insert) {
    only(o, {"family", "table", "chain", "handle", "expr", "comment", "index", "position"}, "a rule");
    if (o.contains("index") || o.contains("position"))
      fail("rule placement by \"index\" or \"position\" is not supported (rules are appended, or inserted first)");
    Table& t = table_of(o);
    std::string cn = str(o, "chain");
    int32_t ci = t.chain_index(cn);
    if (ci < 0) fail_at("chain", fmt::format("no chain '{}' in table {}", cn, t.label));
    Rule r;
    r.line = line_;
    r.handle = o.contains("handle") ? uint32_t(num(o, "handle", 0xffffffff)) : ++handle_;
    r.comment = opt_str(o, "comment");
    const json& ex = need(o, "expr");
    auto g = enter("expr");
    if (!ex.is_array()) fail(fmt::format("expected an array of statements, got {}", kind_of(ex)));
    if (ex.empty()) fail("empty rule");
    uint8_t l4 = 0;
    for (size_t i = 0; i < ex.size(); ++i) {
      auto gi = enter(i);
      stmt(t, r, ex[i], l4);
    }
    auto& rules = t.chains[size_t(ci)].rules;
    if (insert) rules.insert(rules.begin(), std::move(r));
    else rules.push_back(std::move(r));
  }

  Ruleset& rs_;
  std::string_view text_;
  Diagnostics& d_;
  std::vector<Step> path_;
  uint32_t handle_ = 0;
  int line_ = 0;  // where the current top-level object starts
};

// "syntax error while parsing value - invalid literal; last read: 'x'" without nlohmann's prefix
// and without the echo of the input.
std::string parse_error_text(const json::parse_error& e) {
  std::string_view w = e.what();
  if (auto c = w.find("column "); c != std::string_view::npos) {
    if (auto colon = w.find(": ", c); colon != std::string_view::npos) w.remove_prefix(colon + 2);
  }
  std::string out(w.substr(0, w.find("; last read")));
  if (auto x = w.find("'; expected "); x != std::string_view::npos) out += std::string(w.substr(x + 1));
  return "invalid JSON: " + out;
}

}  // namespace

bool looks_like_json(std::string_view text) {
  size_t k = text.find_first_not_of(" \t\r\n");
  return k != std::string_view::npos && text[k] == '{';
}

void load_json_into(Ruleset& rs, std::string_view text, const std::string& file) {
  Diagnostics d(file);
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    size_t off = e.byte > 0 ? e.byte - 1 : 0;
    LineCol lc = line_col(text, off);
    d.error(lc.line, lc.col, parse_error_text(e));
    d.throw_if_errors();
  }
  uint32_t handles = 0;
  for (auto& t : rs.tables)
    for (auto& c : t->chains) {
      handles = std::max(handles, c.handle);
      for (auto& r : c.rules) handles = std::max(handles, r.handle);
    }
  Reader r(rs, text, d);
  r.handle_counter() = handles;
  r.file(root);
  d.throw_if_errors();
  finalize(rs, d);
  d.throw_if_errors();
}

Ruleset load_json(std::string_view text, const std::string& file) {
  Ruleset rs;
  load_json_into(rs, text, file);
  return rs;
}

}  // namespace svcpath::nf::nft
