#include "core/diag.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

namespace svcpath {

std::string Diagnostic::str() const {
  if (line == 0) return fmt::format("{}: error: {}", file, message);
  if (column == 0) return fmt::format("{}:{}: error: {}", file, line, message);
  return fmt::format("{}:{}:{}: error: {}", file, line, column, message);
}

static std::string join(const std::vector<Diagnostic>& d) {
  std::string s;
  for (auto& x : d) {
    if (!s.empty()) s += '\n';
    s += x.str();
  }
  return s;
}

LoadError::LoadError(std::vector<Diagnostic> d) : std::runtime_error(join(d)), diags_(std::move(d)) {}
LoadError::LoadError(std::string file, std::string message) : LoadError({{std::move(file), 0, 0, std::move(message)}}) {}
LoadError::LoadError(std::vector<Diagnostic> d, const std::string& what) : std::runtime_error(what), diags_(std::move(d)) {}

void Diagnostics::error(int line, int column, std::string msg) {
  if (diags_.size() < max_) diags_.push_back({file_, line, column, std::move(msg)});
}

void Diagnostics::throw_if_errors() const {
  if (!diags_.empty()) throw LoadError(diags_);
}

namespace {
std::mutex members_mu;
std::map<std::string, std::string>& members() {
  static std::map<std::string, std::string> m;
  return m;
}
}  // namespace

void add_input_member(const std::string& name, std::string text) {
  std::lock_guard lock(members_mu);
  members()[name] = std::move(text);
}

std::string read_input_file(const std::string& path) {
  {
    std::lock_guard lock(members_mu);
    if (auto it = members().find(path); it != members().end()) return it->second;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw LoadError({{path, 0, 0, "is a directory, not a file"}});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw LoadError({{path, 0, 0, "cannot open file"}});
  // Read in chunks so a pipe works and an endless one (/dev/zero) stops at the cap, not at OOM.
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    if (text.size() + size_t(in.gcount()) > kMaxInputFileBytes)
      throw LoadError({{path, 0, 0, fmt::format("larger than {} MiB, the limit for a text input", kMaxInputFileBytes >> 20)}});
    text.append(buf, size_t(in.gcount()));
  }
  return text;
}

}  // namespace svcpath
