#pragma once
// Diagnostics carry file:line:column and are collected, not thrown one at a time: a loader reports
// every error it finds in one pass, then throws LoadError holding all of them.
#include <stdexcept>
#include <string>
#include <vector>

namespace svcpath {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 = whole file
  int column = 0;  // 1-based; 0 = whole line
  std::string message;
  std::string str() const;  // "file:line:col: error: message"
};

/// The one root of every input error — a dump, manifest, capture, flag or file that cannot be used:
/// callers catch LoadError and print each diagnostic; nothing else is thrown for bad input.
class LoadError : public std::runtime_error {
 public:
  explicit LoadError(std::vector<Diagnostic> d);
  /// One error about a whole input ("file: error: message").
  LoadError(std::string file, std::string message);
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }

 protected:
  /// For errors whose what() keeps an established wording of its own.
  LoadError(std::vector<Diagnostic> d, const std::string& what);

 private:
  std::vector<Diagnostic> diags_;
};

/// Largest text input (rule dump, set dump, manifest) read whole; a 700k-rule dump is ~150 MiB.
inline constexpr size_t kMaxInputFileBytes = size_t(2) << 30;

/// The whole of an input file as bytes, or a LoadError naming it.
std::string read_input_file(const std::string& path);
/// Makes read_input_file return text for name instead of opening a file: the members of a node
/// snapshot archive, named ARCHIVE:MEMBER so every loader's diagnostics point into the archive.
void add_input_member(const std::string& name, std::string text);

/// Collector used while parsing one input.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file, size_t max_errors = 50) : file_(std::move(file)), max_(max_errors) {}
  void error(int line, int column, std::string msg);
  bool ok() const { return diags_.empty(); }
  bool full() const { return diags_.size() >= max_; }
  const std::string& file() const { return file_; }
  /// Throws LoadError when any error was recorded.
  void throw_if_errors() const;

 private:
  std::string file_;
  size_t max_;
  std::vector<Diagnostic> diags_;
};

}  // namespace svcpath
