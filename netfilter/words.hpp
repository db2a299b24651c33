#pragma once
// Shell-like quoted words: how iptables-restore (xshared.c add_param_to_argv) and ipset restore
// split a line before reading it. One tokenizer for both, with the two places where they differ
// named in WordRules.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcpath::nf {

/// One word of a line: its text with the quotes removed and escapes applied, and the 1-based column
/// of its first character (the opening quote, if it starts with one).
struct Word {
  std::string s;
  int col = 0;
};

/// The dialects' differences. Both are kept because they are observable in error messages.
struct WordRules {
  /// iptables: a '"' inside a word opens a quoted part too (`ab"c d"` is the word "abc d").
  /// ipset: only a '"' that starts a word opens a quote; inside a word it is an ordinary character.
  bool quote_inside_word = true;
  /// iptables: a NUL byte anywhere is an error. ipset: only a NUL between words is; inside a word
  /// (quoted or not) it is kept, and whatever reads the word rejects it.
  bool nul_inside_word_is_error = true;
};
inline constexpr WordRules kIptablesWords{};
inline constexpr WordRules kIpsetWords{.quote_inside_word = false, .nul_inside_word_is_error = false};

struct WordError {
  const char* what;  // "NUL byte in input" or "unterminated quote"
  int col;           // the NUL byte's column; the unterminated word's column
};

/// Splits one line into words:
/// - space, tab, CR and LF separate words;
/// - '"' opens a quoted part, in which white space is ordinary and a backslash takes the next
///   character literally; the closing '"' ends the word, so `""` is an empty word and `"a"b` is the
///   two words "a" and "b";
/// - outside quotes, backslashes and single quotes are ordinary characters.
/// On error, out holds the words before it.
std::optional<WordError> split_words(std::string_view line, std::vector<Word>& out, WordRules rules = kIptablesWords);

}  // namespace svcpath::nf
