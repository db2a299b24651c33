#pragma once
// Internal to netfilter/nftables: what the value codecs (values.cpp), the tokenizer (lexer.cpp),
// the parser and loader (parser.cpp), the load-time checks (validate.cpp) and the printer
// (print.cpp) share.
// Not part of the nftables API (that is nft.hpp).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/diag.hpp"
#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

// ---- values (values.cpp) -----------------------------------------------------------------------

/// Bytes a value occupies at the start of its slot: a port is 2 bytes, a protocol 1, a mark 4.
size_t value_bytes(Type t);
/// "tcp", "udp", ... or the number.
std::string proto_text(uint8_t p);
/// One value of type t read from its slot at p, as nft prints it.
std::string one_value(Type t, const uint8_t* p);
/// A (possibly concatenated) key range as nft prints it: values, prefixes, lo-hi, "eth*".
std::string key_text(const std::vector<Type>& types, const Key& lo, const Key& hi);
/// Parses one component value (or range/prefix/wildcard) into lo/hi at p. Returns an error text.
std::string parse_component(Type t, std::string_view w, uint8_t* lo, uint8_t* hi);
std::optional<Hook> parse_hook(std::string_view s);
std::string_view hook_word(Hook h);
/// The inverses of family_name and type_name (the types a set may be declared with).
std::optional<TableFamily> family_word(std::string_view w);
std::optional<Type> type_word(std::string_view w);

// ---- tokens (lexer.cpp) ------------------------------------------------------------------------

enum class Tk : uint8_t { Word, Str, LBrace, RBrace, Semi, Comma, NL, End };
struct Tok {
  Tk k = Tk::End;
  std::string_view text;
  int line = 0;
  int col = 0;
};

/// Words, strings, braces and separators with their line:column; comments and escaped newlines
/// dropped; errors (control bytes, unterminated strings) collected in d.
std::vector<Tok> tokenize(std::string_view s, Diagnostics& d);

// ---- load-time checks (validate.cpp) -----------------------------------------------------------

/// Resolves chain and set references, checks key types, numbers rules, detects jump loops, the
/// jump-depth limit and NAT/reject placement; errors collected in d.
void finalize(Ruleset& rs, Diagnostics& d);

}  // namespace svcpath::nf::nft
