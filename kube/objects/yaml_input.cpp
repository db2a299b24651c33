#include "kube/objects/yaml_input.hpp"

#include <cstring>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <simdjson.h>
#include <yaml.h>

#include "core/diag.hpp"

namespace svcpath {

namespace {

using Anchor = YAML::anchor_t;  // 0 = none, as yaml-cpp's NullAnchor

struct Refused {
  YAML::Mark mark;
  std::string message;
};

YAML::Mark mark_at(int line, int column) {
  YAML::Mark m;
  m.line = line;
  m.column = column;
  return m;
}

// A parser's events, whichever parser it is: yaml-cpp's and libyaml's both feed the guard, and
// through it the tree builder.
class Events {
 public:
  virtual ~Events() = default;
  virtual void doc_start(const YAML::Mark& m) = 0;
  virtual void doc_end() = 0;
  virtual void null(const YAML::Mark& m, Anchor a) = 0;
  virtual void scalar(const YAML::Mark& m, std::string_view text, bool bang, Anchor a) = 0;
  virtual void alias(const YAML::Mark& m, Anchor a) = 0;
  virtual void open(const YAML::Mark& m, bool map, Anchor a) = 0;
  virtual void close() = 0;
};

// Checks the events before anything is built from them. It measures what a reader walking the
// documents would see, with every alias expanded (each anchor's expanded size is known when its
// node closes, so this is linear in the text), and it stops yaml-cpp 0.7's LoadAll from spinning on
// a stray flow indicator at document level (jbeder/yaml-cpp#1319: the parser reports an empty
// document at the same token forever, allocating as it goes).
class Guard final : public Events {
 public:
  Guard(uint64_t budget, Events* next) : budget_(budget), next_(next) {}

  void doc_start(const YAML::Mark& m) override {
    doc_mark_ = m;
    if (next_) next_->doc_start(m);
  }
  void doc_end() override {
    if (next_) next_->doc_end();
  }
  void null(const YAML::Mark& m, Anchor a) override {
    if (open_.empty()) {
      // A whole document that is empty: a second one at the very same place is the spin.
      if (last_empty_doc_ && same(*last_empty_doc_, m))
        throw Refused{m, "unexpected character here (a stray ',', ']' or '}' outside a flow collection?)"};
      last_empty_doc_ = m;
    }
    leaf(a);
    if (next_) next_->null(m, a);
  }
  void alias(const YAML::Mark& m, Anchor a) override {
    auto it = size_.find(a);
    add(it == size_.end() ? 1 : it->second);
    if (next_) next_->alias(m, a);
  }
  void scalar(const YAML::Mark& m, std::string_view text, bool bang, Anchor a) override {
    leaf(a);
    if (next_) next_->scalar(m, text, bang, a);
  }
  void open(const YAML::Mark& m, bool map, Anchor a) override {
    // Stop well before yaml-cpp's own recursion guard, whose mark points past the input.
    if (open_.size() >= kMaxYamlDepth) throw Refused{m, fmt::format("YAML nested more than {} levels deep", kMaxYamlDepth)};
    open_.push_back({a, 1});
    if (next_) next_->open(m, map, a);
  }
  void close() override {
    Open o = open_.back();
    open_.pop_back();
    if (o.anchor != 0) size_[o.anchor] = o.size;
    if (open_.empty()) doc_total(o.size);
    else open_.back().size = sat(open_.back().size + o.size);
    if (next_) next_->close();
  }

 private:
  struct Open {
    Anchor anchor;
    uint64_t size;
  };
  static bool same(const YAML::Mark& a, const YAML::Mark& b) { return a.pos == b.pos && a.line == b.line; }
  void leaf(Anchor a) {
    if (a != 0) size_[a] = 1;
    add(1);
  }
  void add(uint64_t n) {
    if (open_.empty()) doc_total(n);
    else {
      open_.back().size = sat(open_.back().size + n);
      if (open_.back().size > budget_) over();
    }
  }
  void doc_total(uint64_t n) {
    total_ = sat(total_ + n);
    if (total_ > budget_) over();
  }
  [[noreturn]] void over() const {
    throw Refused{doc_mark_, fmt::format("anchors and aliases expand this input past {} nodes ({} per byte); "
                                         "refusing it (an alias bomb?)",
                                         budget_, kYamlNodesPerByte)};
  }
  uint64_t sat(uint64_t v) const { return v > budget_ ? budget_ + 1 : v; }

  uint64_t budget_;
  Events* next_;
  uint64_t total_ = 0;
  YAML::Mark doc_mark_;
  std::optional<YAML::Mark> last_empty_doc_;
  std::vector<Open> open_;
  std::unordered_map<Anchor, uint64_t> size_;
};

// yaml-cpp's events as Events.
class FromYamlCpp final : public YAML::EventHandler {
 public:
  explicit FromYamlCpp(Events& e) : e_(e) {}
  void OnDocumentStart(const YAML::Mark& m) override { e_.doc_start(m); }
  void OnDocumentEnd() override { e_.doc_end(); }
  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override { e_.null(m, a); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t a) override { e_.alias(m, a); }
  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t a, const std::string& v) override {
    e_.scalar(m, v, tag == "!", a);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override {
    e_.open(m, false, a);
  }
  void OnSequenceEnd() override { e_.close(); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override {
    e_.open(m, true, a);
  }
  void OnMapEnd() override { e_.close(); }

 private:
  Events& e_;
};

// yaml-cpp's IsNullString: what a plain, untagged scalar must say to be null.
bool null_text(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

// libyaml's events as Events; false when libyaml refuses the text (or an alias names no anchor,
// which libyaml leaves to its composer).
bool drive_libyaml(const std::string& text, Events& e) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) throw std::bad_alloc();
  struct Done {
    yaml_parser_t* p;
    ~Done() { yaml_parser_delete(p); }
  } done{&p};
  yaml_parser_set_input_string(&p, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  std::unordered_map<std::string, Anchor> names;  // anchors are per document
  Anchor next = 1;
  auto define = [&](const yaml_char_t* name) -> Anchor {
    if (!name) return 0;
    names[reinterpret_cast<const char*>(name)] = next;
    return next++;
  };
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) return false;
    struct Free {
      yaml_event_t* ev;
      ~Free() { yaml_event_delete(ev); }
    } free_ev{&ev};
    YAML::Mark m = mark_at(int(ev.start_mark.line), int(ev.start_mark.column));
    switch (ev.type) {
      case YAML_STREAM_END_EVENT: return true;
      case YAML_DOCUMENT_START_EVENT:
        names.clear();
        e.doc_start(m);
        break;
      case YAML_DOCUMENT_END_EVENT: e.doc_end(); break;
      case YAML_ALIAS_EVENT: {
        auto it = names.find(reinterpret_cast<const char*>(ev.data.alias.anchor));
        if (it == names.end()) return false;
        e.alias(m, it->second);
        break;
      }
      case YAML_SCALAR_EVENT: {
        auto& s = ev.data.scalar;
        std::string_view v(reinterpret_cast<const char*>(s.value), s.length);
        bool plain = s.style == YAML_PLAIN_SCALAR_STYLE;
        auto tag = reinterpret_cast<const char*>(s.tag);
        Anchor a = define(s.anchor);
        if (plain && !tag && null_text(v)) e.null(m, a);
        else e.scalar(m, v, tag ? std::string_view(tag) == "!" : !plain, a);
        break;
      }
      case YAML_SEQUENCE_START_EVENT: e.open(m, false, define(ev.data.sequence_start.anchor)); break;
      case YAML_MAPPING_START_EVENT: e.open(m, true, define(ev.data.mapping_start.anchor)); break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: e.close(); break;
      default: break;
    }
  }
}

// Whether the text is JSON as kubectl prints it (a mapping or list, nothing before it).
bool looks_like_json(std::string_view t) {
  size_t i = t.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && (t[i] == '{' || t[i] == '[');
}

// JSON through simdjson's On-Demand parser, in document order, as the events yaml-cpp gives for the
// same text (strings are quoted scalars, numbers and booleans plain ones, null is null), each at
// its token's line and column. False for anything that is not one strict JSON value: libyaml, then
// yaml-cpp, read it as YAML.
class JsonWalk {
 public:
  JsonWalk(const std::string& text, Events& e) : text_(text), e_(e) {}

  bool run() {
    simdjson::padded_string copy;
    simdjson::padded_string_view view(text_.data(), text_.size(), text_.capacity());
    if (text_.capacity() < text_.size() + simdjson::SIMDJSON_PADDING) {
      copy = simdjson::padded_string(text_);
      view = copy;
    }
    base_ = view.data();
    try {
      simdjson::ondemand::parser parser;
      simdjson::ondemand::document doc = parser.iterate(view);
      auto root = doc.get_value();
      if (root.error()) return false;
      e_.doc_start(mark(root.raw_json_token().value().data()));
      walk(root.value());
      if (!doc.current_location().error()) return false;  // more after the value: not one JSON document
      e_.doc_end();
      return true;
    } catch (const simdjson::simdjson_error&) {
      return false;
    }
  }

 private:
  void walk(simdjson::ondemand::value v) {
    std::string_view tok = v.raw_json_token();
    YAML::Mark m = mark(tok.data());
    switch (v.type()) {
      case simdjson::ondemand::json_type::object:
        e_.open(m, true, 0);
        for (auto field : v.get_object()) {
          const char* key_at = field.key().value().raw() - 1;  // the opening quote
          e_.scalar(mark(key_at), field.unescaped_key().value(), true, 0);
          walk(field.value());
        }
        e_.close();
        break;
      case simdjson::ondemand::json_type::array:
        e_.open(m, false, 0);
        for (auto el : v.get_array()) walk(el.value());
        e_.close();
        break;
      case simdjson::ondemand::json_type::string: e_.scalar(m, v.get_string().value(), true, 0); break;
      default: {  // number, true, false, null: their text, as a plain YAML scalar
        tok = tok.substr(0, tok.find_last_not_of(" \t\r\n") + 1);
        if (tok == "null") e_.null(m, 0);
        else e_.scalar(m, tok, false, 0);
      }
    }
  }
  // Tokens come in document order, so lines are counted once, forwards.
  YAML::Mark mark(const char* p) {
    auto at = size_t(p - base_);
    if (at < pos_) pos_ = line_start_ = 0, line_ = 0;
    for (const char* nl; (nl = static_cast<const char*>(std::memchr(base_ + pos_, '\n', at - pos_)));) {
      ++line_;
      pos_ = line_start_ = size_t(nl - base_) + 1;
    }
    pos_ = at;
    return mark_at(line_, int(at - line_start_));
  }

  const std::string& text_;
  const char* base_ = nullptr;  // the text simdjson reads (a padded copy when text_ has no room)
  Events& e_;
  size_t pos_ = 0, line_start_ = 0;
  int line_ = 0;
};

// YAML streams are Unicode text: a NUL or a byte sequence that is not UTF-8 means a binary or
// mangled file, reported where it is rather than passed on into names and labels.
std::optional<Refused> first_bad_byte(std::string_view t) {
  YAML::Mark m = mark_at(0, 0);
  for (size_t i = 0; i < t.size();) {
    auto c = static_cast<unsigned char>(t[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = n > 0 && i + n <= t.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(t[i + k]) >> 6) == 0x2;
    if (ok && n == 2) ok = c >= 0xc2;  // overlong
    if (ok && n == 3) {
      uint32_t cp = ((c & 0xfu) << 12) | ((uint32_t(t[i + 1]) & 0x3fu) << 6) | (uint32_t(t[i + 2]) & 0x3fu);
      ok = cp >= 0x800 && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok && n == 4) {
      uint32_t cp = ((c & 0x7u) << 18) | ((uint32_t(t[i + 1]) & 0x3fu) << 12) | ((uint32_t(t[i + 2]) & 0x3fu) << 6) |
                    (uint32_t(t[i + 3]) & 0x3fu);
      ok = cp >= 0x10000 && cp <= 0x10ffff;
    }
    if (!ok) return Refused{m, fmt::format("byte 0x{:02x} is not UTF-8 text (YAML and JSON input must be UTF-8)", c)};
    if (c == 0) return Refused{m, "NUL byte in input"};
    if (c == '\n') {
      ++m.line;
      m.column = 0;
    } else {
      ++m.column;
    }
    i += n;
  }
  return std::nullopt;
}

LoadError refusal(const std::string& path, const YAML::Mark& m, std::string msg) {
  return LoadError({{path, m.line + 1, m.column + 1, std::move(msg)}});
}

// Runs parse (which drives events through the guard) with the checks every YAML door shares: UTF-8
// first, then the guard's and yaml-cpp's refusals as LoadErrors at their place.
template <class Parse>
auto guarded(const std::string& path, const std::string& text, Parse&& parse) {
  // simdjson's validator finds any problem at gigabytes a second; the byte walk then says where.
  if (!simdjson::validate_utf8(text) || std::memchr(text.data(), 0, text.size()))
    if (auto bad = first_bad_byte(text)) throw refusal(path, bad->mark, bad->message);
  try {
    return parse(kYamlNodesPerByte * text.size() + 1024);
  } catch (const Refused& r) {
    throw refusal(path, r.mark, r.message);
  } catch (const YAML::DeepRecursion& e) {
    throw refusal(path, e.mark, fmt::format("YAML nested too deep ({} levels)", e.depth()));
  } catch (const YAML::ParserException& e) {
    throw refusal(path, e.mark, e.msg);
  }
}

}  // namespace

std::vector<YAML::Node> load_yaml_documents(const std::string& path) {
  std::string text = read_input_file(path);
  return guarded(path, text, [&](uint64_t budget) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    Guard guard(budget, nullptr);
    FromYamlCpp events(guard);
    while (parser.HandleNextDocument(events)) {
    }
    return YAML::LoadAll(text);
  });
}

namespace yaml {

void Doc::clear() {
  items_.clear();
  kids_.clear();
  text_.clear();
}

void Ref::valid() const {
  if (!doc_) throw YAML::InvalidNode(missing_);
}

bool Ref::IsNull() const { return (valid(), doc_->at(idx_).kind == Doc::Kind::Null); }
bool Ref::IsScalar() const { return (valid(), doc_->at(idx_).kind == Doc::Kind::Scalar); }
bool Ref::IsSequence() const { return (valid(), doc_->at(idx_).kind == Doc::Kind::Seq); }
bool Ref::IsMap() const { return (valid(), doc_->at(idx_).kind == Doc::Kind::Map); }

std::string Ref::Scalar() const {
  valid();
  auto& it = doc_->at(idx_);
  return it.kind == Doc::Kind::Scalar ? std::string(doc_->text(it)) : std::string();
}

std::string Ref::Tag() const {
  valid();
  auto& it = doc_->at(idx_);
  return it.kind == Doc::Kind::Null ? "" : it.bang ? "!" : "?";
}

YAML::Mark Ref::Mark() const {
  valid();
  auto& it = doc_->at(idx_);
  return mark_at(it.line, it.column);
}

size_t Ref::size() const {
  valid();
  auto& it = doc_->at(idx_);
  return it.kind == Doc::Kind::Map ? it.size / 2 : it.kind == Doc::Kind::Seq ? it.size : 0;
}

Ref Ref::operator[](std::string_view key) const {
  valid();
  auto& it = doc_->at(idx_);
  if (it.kind == Doc::Kind::Scalar) throw YAML::BadSubscript(Mark(), std::string(key));
  if (it.kind == Doc::Kind::Map)
    for (uint32_t k = 0; k + 1 < it.size; k += 2) {
      auto& key_item = doc_->at(doc_->kid(it.off + k));
      if (key_item.kind == Doc::Kind::Scalar && doc_->text(key_item) == key) return Ref(doc_, doc_->kid(it.off + k + 1));
    }
  Ref none;
  none.missing_ = std::string(key);
  return none;
}

Ref Ref::operator[](size_t i) const {
  valid();
  auto& it = doc_->at(idx_);
  if (it.kind == Doc::Kind::Scalar) throw YAML::BadSubscript(Mark(), i);
  if (it.kind == Doc::Kind::Seq && i < it.size) return Ref(doc_, doc_->kid(it.off + uint32_t(i)));
  if (it.kind == Doc::Kind::Map) return (*this)[std::string_view(std::to_string(i))];
  Ref none;
  none.missing_ = std::to_string(i);
  return none;
}

Ref::Iter Ref::begin() const { return (valid(), Iter(this, 0)); }
Ref::Iter Ref::end() const { return Iter(this, uint32_t(size())); }

Ref::Entry Ref::Iter::operator*() const {
  auto& it = r_->doc_->at(r_->idx_);
  Entry e;
  if (it.kind == Doc::Kind::Map) {
    e.first = Ref(r_->doc_, r_->doc_->kid(it.off + 2 * pos_));
    e.second = Ref(r_->doc_, r_->doc_->kid(it.off + 2 * pos_ + 1));
  } else {
    static_cast<Ref&>(e) = Ref(r_->doc_, r_->doc_->kid(it.off + pos_));
  }
  return e;
}

Ref::Iter& Ref::Iter::operator++() {
  ++pos_;
  return *this;
}

// Builds one document at a time from the guard's events and hands it to the sink; the elements of
// the root mapping's first `items` sequence go to the sink as each closes, and their nodes are
// reused for the next one unless the document has anchors (an alias may point back into them).
class Builder final : public Events {
 public:
  explicit Builder(Sink& sink) : sink_(sink) {}

  void doc_start(const YAML::Mark&) override {
    doc_.clear();
    anchors_.clear();
    open_.clear();
    pending_.clear();
    keep_ = root_anchored_ = items_key_seen_ = expect_items_ = streamed_ = false;
  }
  void doc_end() override {
    sink_.document(doc_, streamed_);
    doc_.clear();
  }
  void null(const YAML::Mark& m, Anchor a) override { link(add(m, Doc::Kind::Null, false, a)); }
  void scalar(const YAML::Mark& m, std::string_view text, bool bang, Anchor a) override {
    uint32_t i = add(m, Doc::Kind::Scalar, bang, a);
    doc_.items_[i].off = uint32_t(doc_.text_.size());
    doc_.items_[i].size = uint32_t(text.size());
    doc_.text_.append(text);
    link(i);
  }
  void alias(const YAML::Mark&, Anchor a) override {
    starting();
    auto it = anchors_.find(a);
    link(it != anchors_.end() ? it->second : add(YAML::Mark(), Doc::Kind::Null, false, 0));
  }
  void open(const YAML::Mark& m, bool map, Anchor a) override {
    bool items = expect_items_ && !map && a == 0 && sink_.stream_items();
    expect_items_ = false;
    uint32_t i = add(m, map ? Doc::Kind::Map : Doc::Kind::Seq, false, a);
    open_.push_back({i, uint32_t(pending_.size()), items});
    streamed_ = streamed_ || items;
  }
  void close() override {
    Open o = open_.back();
    open_.pop_back();
    auto& it = doc_.items_[o.idx];
    it.off = uint32_t(doc_.kids_.size());
    it.size = uint32_t(pending_.size() - o.kids_from);
    doc_.kids_.insert(doc_.kids_.end(), pending_.begin() + o.kids_from, pending_.end());
    pending_.resize(o.kids_from);
    link(o.idx);
  }

 private:
  struct Open {
    uint32_t idx, kids_from;
    bool items;  // the streamed `items` sequence: its elements go to the sink
  };
  struct Sizes {
    size_t items, kids, text;
  };

  // Called as a node starts: in the streamed sequence, the point to rewind to once the item is done.
  void starting() {
    if (!open_.empty() && open_.back().items) start_ = {doc_.items_.size(), doc_.kids_.size(), doc_.text_.size()};
  }
  uint32_t add(const YAML::Mark& m, Doc::Kind k, bool bang, Anchor a) {
    starting();
    auto i = uint32_t(doc_.items_.size());
    doc_.items_.push_back({m.line, m.column, k, bang, 0, 0});
    if (a != 0) {
      anchors_[a] = i;
      keep_ = true;
      root_anchored_ = root_anchored_ || open_.empty();
    }
    return i;
  }
  // A finished node joins its parent (or, in the streamed sequence, goes to the sink).
  void link(uint32_t i) {
    if (open_.empty()) return;
    Open& p = open_.back();
    if (p.items) {
      sink_.item(Ref(&doc_, i));
      if (!keep_) {
        doc_.items_.resize(start_.items);
        doc_.kids_.resize(start_.kids);
        doc_.text_.resize(start_.text);
      }
      return;
    }
    pending_.push_back(i);
    if (open_.size() > 1 || doc_.items_[p.idx].kind != Doc::Kind::Map) return;
    // The root mapping's first key that reads "items" (the one yaml-cpp's lookup finds): its value,
    // when it is a sequence, is streamed.
    bool is_key = (pending_.size() - p.kids_from) % 2 == 1;
    auto& k = doc_.items_[i];
    bool items_key = is_key && k.kind == Doc::Kind::Scalar && doc_.text(k) == "items";
    expect_items_ = items_key && !items_key_seen_ && !root_anchored_;
    items_key_seen_ = items_key_seen_ || items_key;
  }

  Sink& sink_;
  Doc doc_;
  std::unordered_map<Anchor, uint32_t> anchors_;
  std::vector<Open> open_;
  std::vector<uint32_t> pending_;  // kids of the open containers, innermost last
  Sizes start_{};
  bool keep_ = false, root_anchored_ = false, items_key_seen_ = false, expect_items_ = false, streamed_ = false;
};

std::string read_text(const std::string& path) {
  std::string text = read_input_file(path);
  // Room for simdjson to read past the end, so it need not copy the text.
  if (looks_like_json(text)) text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  return text;
}

std::vector<Parser> parsers_for(const std::string& text) {
  if (looks_like_json(text)) return {Parser::Json, Parser::Libyaml, Parser::YamlCpp};
  return {Parser::Libyaml, Parser::YamlCpp};
}

bool stream_documents(const std::string& path, const std::string& text, Parser parser, Sink& sink) {
  return guarded(path, text, [&](uint64_t budget) {
    Builder builder(sink);
    Guard guard(budget, &builder);
    try {
      if (parser == Parser::Json) return JsonWalk(text, guard).run();
      if (parser == Parser::Libyaml) return drive_libyaml(text, guard);
    } catch (const Refused&) {
      // yaml-cpp may find a syntax error first (it scans ahead): its answer is the one to give,
      // and the guard stops it at the same bounded place.
      return false;
    }
    std::istringstream in(text);
    YAML::Parser p(in);
    FromYamlCpp events(guard);
    while (p.HandleNextDocument(events)) {
    }
    return true;
  });
}

}  // namespace yaml

}  // namespace svcpath
