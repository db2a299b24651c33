// The nft tokenizer: words, quoted strings, braces, ';' ',' and newlines (a statement ends at a
// newline), each with its line:column; '#' comments and backslash-newline continuations dropped.
// One tokenizer for `nft -f` input and `nft list ruleset` output alike.
#include <cstring>

#include <fmt/format.h>

#include "netfilter/nftables/syntax.hpp"

namespace svcpath::nf::nft {

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

}  // namespace svcpath::nf::nft
