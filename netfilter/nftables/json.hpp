#pragma once
// `nft -j list ruleset` (libnftables-json(5)) as input: read into the same validated Ruleset the
// text reader builds, so evaluation and printing are shared. Part of the nftables API beside nft.hpp.
#include <string>
#include <string_view>

#include "netfilter/nftables/nft.hpp"

namespace svcpath::nf::nft {

/// True when text is nft's JSON rather than its text syntax: its first non-space byte is '{'
/// (a text ruleset starts with a word or a comment).
bool looks_like_json(std::string_view text);

/// Reads `nft -j list ruleset` output (and `nft -j -f` input: bare objects, add/create/insert
/// commands, flush ruleset). Errors name the offending value both ways JSON allows:
/// `file:line:col: error: nftables[3].rule.expr[2].match.left: ...`. Throws LoadError.
Ruleset load_json(std::string_view text, const std::string& file);
/// Appends to an existing ruleset (a second `nft -j -f`).
void load_json_into(Ruleset& rs, std::string_view text, const std::string& file);

}  // namespace svcpath::nf::nft
