// Shell-like quoted words shared by the iptables-restore and ipset restore readers.
#include "netfilter/words.hpp"

namespace svcpath::nf {

std::optional<WordError> split_words(std::string_view line, std::vector<Word>& out, WordRules rules) {
  std::string cur;
  int start = 0;
  bool in_word = false, in_quote = false, escaped = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\0' && (rules.nul_inside_word_is_error || !in_word)) return WordError{"NUL byte in input", int(i) + 1};
    if (in_quote) {
      if (escaped) {
        cur += c;
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_quote = false;
        out.push_back({cur, start});
        cur.clear();
        in_word = false;
      } else {
        cur += c;
      }
      continue;
    }
    if (c == '"' && (rules.quote_inside_word || !in_word)) {
      if (!in_word) start = int(i) + 1;
      in_word = true;
      in_quote = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (in_word) out.push_back({cur, start});
      cur.clear();
      in_word = false;
      continue;
    }
    if (!in_word) start = int(i) + 1;
    in_word = true;
    cur += c;
  }
  if (in_quote) return WordError{"unterminated quote", start};
  if (in_word) out.push_back({cur, start});
  return std::nullopt;
}

}  // namespace svcpath::nf
