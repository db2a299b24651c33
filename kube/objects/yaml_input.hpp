#pragma once
// The one door YAML input comes through: parse errors, nesting depth and alias expansion become
// LoadErrors with file:line:col, so a hostile manifest costs bounded time and memory.
//
// Cluster manifests are streamed (issue 19): simdjson's On-Demand parser for JSON, libyaml's event
// parser (the reference C parser, ~7x yaml-cpp's scanner) for YAML, feed a compact tree of one
// document at a time, and the items of a `kind: List` are handed over one by one as each closes, so
// a 50k-Service `kubectl -o json` list is never held as a tree. Input they refuse is read again
// through yaml-cpp, whose messages and positions are the ones users and tests know; every parser
// feeds the same guard and tree.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace svcpath {

/// Nodes a document may expand to through anchors and aliases, per byte of its file. Plain YAML
/// has fewer nodes than bytes, so only alias amplification ("billion laughs") reaches it.
inline constexpr size_t kYamlNodesPerByte = 4;

/// Nesting of mappings and lists; Kubernetes objects stay under 20.
inline constexpr size_t kMaxYamlDepth = 100;

/// Every document in the file; throws LoadError for unreadable, malformed, too deeply nested or
/// alias-amplified input.
std::vector<YAML::Node> load_yaml_documents(const std::string& path);

namespace yaml {

class Doc;

/// A node of a Doc with the part of yaml-cpp's YAML::Node interface the loaders use, and its
/// behaviour: a missing key gives an invalid node that throws YAML::InvalidNode when read, a key
/// looked up in a scalar throws YAML::BadSubscript, a duplicate key finds its first occurrence.
class Ref {
 public:
  Ref() = default;
  Ref(const Doc* d, uint32_t i) : doc_(d), idx_(i) {}

  explicit operator bool() const { return doc_ != nullptr; }
  bool operator!() const { return doc_ == nullptr; }
  bool IsNull() const;
  bool IsScalar() const;
  bool IsSequence() const;
  bool IsMap() const;
  /// The text of a scalar; empty for other nodes.
  std::string Scalar() const;
  /// "!" for a quoted scalar without a tag (or the tag "!"), so "80" is not the number 80.
  std::string Tag() const;
  YAML::Mark Mark() const;
  size_t size() const;
  Ref operator[](std::string_view key) const;
  Ref operator[](size_t i) const;

  /// A map's entries (first, second) or a sequence's elements (the entry itself).
  struct Entry;
  class Iter;
  Iter begin() const;
  Iter end() const;

 private:
  friend class Doc;
  void valid() const;
  const Doc* doc_ = nullptr;
  uint32_t idx_ = 0;
  std::string missing_;  // the key that was not there, for yaml-cpp's message
};

/// One document's nodes, flat: each container's children are a contiguous run of `kids`.
class Doc {
 public:
  enum class Kind : uint8_t { Null, Scalar, Seq, Map };
  struct Item {
    int32_t line, column;
    Kind kind;
    bool bang;      // Tag() == "!"
    uint32_t off;   // text offset (Scalar) or first kid (Seq, Map: key, value, key, value...)
    uint32_t size;  // text length or number of kids
  };

  Ref root() const { return Ref(this, 0); }
  const Item& at(uint32_t i) const { return items_[i]; }
  std::string_view text(const Item& it) const { return std::string_view(text_).substr(it.off, it.size); }
  uint32_t kid(uint32_t i) const { return kids_[i]; }
  bool empty() const { return items_.empty(); }
  void clear();

 private:
  friend class Builder;
  std::vector<Item> items_;
  std::vector<uint32_t> kids_;
  std::string text_;
};

struct Ref::Entry : Ref {
  Ref first, second;
};

class Ref::Iter {
 public:
  Iter(const Ref* r, uint32_t pos) : r_(r), pos_(pos) {}
  Entry operator*() const;
  Iter& operator++();
  bool operator!=(const Iter& o) const { return pos_ != o.pos_; }

 private:
  const Ref* r_;
  uint32_t pos_;
};

/// What a streamed file is handed: each top-level List item as soon as it closes (only while
/// stream_items() says so), then each document.
class Sink {
 public:
  virtual ~Sink() = default;
  /// Whether the items of a document's first `items:` sequence go to item() instead of the tree.
  virtual bool stream_items() const { return true; }
  /// One element of the root mapping's first `items` sequence; valid during the call only.
  virtual void item(Ref item) = 0;
  /// A whole document; items_streamed when its `items` went to item() (they are absent from it).
  /// The Doc may be moved from.
  virtual void document(Doc& doc, bool items_streamed) = 0;
};

/// A manifest's text (read_input_file), with the room at its end simdjson reads into.
std::string read_text(const std::string& path);

/// The parsers to try on a text, fastest first: simdjson for JSON, libyaml for YAML, and yaml-cpp
/// last, for input the others refuse, with the messages and positions users know.
enum class Parser { Json, Libyaml, YamlCpp };
std::vector<Parser> parsers_for(const std::string& text);

/// Streams the file's documents into sink. Returns false when the parser refuses the text (the
/// caller then starts over with the next parser; yaml-cpp never refuses: it throws); throws
/// LoadError for non-UTF-8, too deep or alias-amplified input and for yaml-cpp's parse errors.
bool stream_documents(const std::string& path, const std::string& text, Parser parser, Sink& sink);

}  // namespace yaml

}  // namespace svcpath
