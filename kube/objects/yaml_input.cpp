#include "kube/objects/yaml_input.hpp"

#include <optional>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include "core/diag.hpp"

namespace svcpath {

namespace {

struct Refused {
  YAML::Mark mark;
  std::string message;
};

// A first pass over the parser's events, before any node is built. It measures what a reader
// walking the documents would see, with every alias expanded (each anchor's expanded size is known
// when its node closes, so this is linear in the text), and it stops yaml-cpp 0.7's LoadAll from
// spinning on a stray flow indicator at document level (jbeder/yaml-cpp#1319: the parser reports an
// empty document at the same token forever, allocating as it goes).
class Guard final : public YAML::EventHandler {
 public:
  explicit Guard(uint64_t budget) : budget_(budget) {}

  void OnDocumentStart(const YAML::Mark& m) override { doc_mark_ = m; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override {
    if (open_.empty()) {
      // A whole document that is empty: a second one at the very same place is the spin.
      if (last_empty_doc_ && same(*last_empty_doc_, m))
        throw Refused{m, "unexpected character here (a stray ',', ']' or '}' outside a flow collection?)"};
      last_empty_doc_ = m;
    }
    leaf(a);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t a) override {
    auto it = size_.find(a);
    add(it == size_.end() ? 1 : it->second);
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t a, const std::string&) override { leaf(a); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override {
    open(m, a);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override { open(m, a); }
  void OnMapEnd() override { close(); }

 private:
  struct Open {
    YAML::anchor_t anchor;
    uint64_t size;
  };
  static bool same(const YAML::Mark& a, const YAML::Mark& b) { return a.pos == b.pos && a.line == b.line; }
  void leaf(YAML::anchor_t a) {
    if (a != YAML::NullAnchor) size_[a] = 1;
    add(1);
  }
  void open(const YAML::Mark& m, YAML::anchor_t a) {
    // Stop well before yaml-cpp's own recursion guard, whose mark points past the input.
    if (open_.size() >= kMaxYamlDepth) throw Refused{m, fmt::format("YAML nested more than {} levels deep", kMaxYamlDepth)};
    open_.push_back({a, 1});
  }
  void close() {
    Open o = open_.back();
    open_.pop_back();
    if (o.anchor != YAML::NullAnchor) size_[o.anchor] = o.size;
    if (open_.empty()) doc_total(o.size);
    else open_.back().size = sat(open_.back().size + o.size);
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
  uint64_t total_ = 0;
  YAML::Mark doc_mark_;
  std::optional<YAML::Mark> last_empty_doc_;
  std::vector<Open> open_;
  std::unordered_map<YAML::anchor_t, uint64_t> size_;
};

// YAML streams are Unicode text: a NUL or a byte sequence that is not UTF-8 means a binary or
// mangled file, reported where it is rather than passed on into names and labels.
std::optional<Refused> first_bad_byte(std::string_view t) {
  YAML::Mark m;
  m.line = 0;
  m.column = 0;
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

}  // namespace

std::vector<YAML::Node> load_yaml_documents(const std::string& path) {
  std::string text = read_input_file(path);
  auto fail = [&](const YAML::Mark& m, std::string msg) -> LoadError {
    return LoadError({{path, m.line + 1, m.column + 1, std::move(msg)}});
  };
  if (auto bad = first_bad_byte(text)) throw fail(bad->mark, bad->message);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    Guard guard(kYamlNodesPerByte * text.size() + 1024);
    while (parser.HandleNextDocument(guard)) {
    }
    return YAML::LoadAll(text);
  } catch (const Refused& r) {
    throw fail(r.mark, r.message);
  } catch (const YAML::DeepRecursion& e) {
    throw fail(e.mark, fmt::format("YAML nested too deep ({} levels)", e.depth()));
  } catch (const YAML::ParserException& e) {
    throw fail(e.mark, e.msg);
  }
}

}  // namespace svcpath
