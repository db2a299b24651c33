#include "core/diag.hpp"

#include <fstream>
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

void Diagnostics::error(int line, int column, std::string msg) {
  if (diags_.size() < max_) diags_.push_back({file_, line, column, std::move(msg)});
}

void Diagnostics::throw_if_errors() const {
  if (!diags_.empty()) throw LoadError(diags_);
}

std::string read_input_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw LoadError({{path, 0, 0, "cannot open file"}});
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace svcpath
