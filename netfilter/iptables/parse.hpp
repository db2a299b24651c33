#pragma once
// Internals of the iptables-restore reader shared by its pieces: the per-rule parse context (a
// cursor over the line's words that reports errors at their column), and the entry points of the
// rule-spec parser (parse_rule.cpp), the match modules (parse_matches.cpp) and the targets
// (parse_targets.cpp). The loader (restore.cpp) drives them, as iptables-restore drives
// do_command4 line by line. Not an API: include it only from those files.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/diag.hpp"
#include "netfilter/iptables/rules.hpp"
#include "netfilter/words.hpp"

namespace svcpath::nf::restore {

/// What an option parser says about an option: not mine, taken, or taken but wrong (reported).
enum Res { Unknown = 0, Ok = 1, Fail = -1 };

/// Per-line parse state shared by the module option parsers.
struct ParseCtx {
  Diagnostics& d;
  Family fam;
  int line;
  const std::vector<Word>& t;
  size_t i = 0;
  bool bad = false;
  const Rule* rule = nullptr;  // the rule being built (for -p checks)

  int col(size_t k) const { return k < t.size() ? t[k].col : (t.empty() ? 1 : t.back().col); }
  void err(size_t k, std::string msg) {
    d.error(line, col(k), std::move(msg));
    bad = true;
  }
  void err(std::string msg) { err(i, std::move(msg)); }
  // Next token as the argument of the option at i.
  const std::string* arg();
  // The optional argument following the option, if it does not look like another option.
  const std::string* opt_arg();
  std::optional<Prefix> prefix(const std::string& s);
  std::optional<Addr> addr(const std::string& s);
  std::optional<PortRange> ports(const std::string& s, char sep);
  std::optional<uint64_t> num(const std::string& s, uint64_t max, const char* what, bool hex = true);
  // "value[/mask]" as the mark modules accept it.
  bool value_mask(const std::string& s, uint32_t& v, uint32_t& m, uint32_t default_mask);
};

// ------------------------------------------------------------------------------ parse_rule.cpp
/// Parses the rule part of a command (tokens from p.i on) into r. Returns false on error.
bool parse_rule_spec(ParseCtx& p, Rule& r);
/// An interface name as -i/-o and --physdev-in/out take it ("eth0", "veth+").
bool iface(const std::string& s, IfaceMatch& m, bool inv, ParseCtx& p);
/// Whether n may name a user chain; why says what is wrong with it otherwise.
bool valid_chain_name(std::string_view n, std::string& why);

// ------------------------------------------------------------------------------ parse_matches.cpp
/// The match module loaded by -m name, or nullopt when there is none for the family.
std::optional<Match> new_match(std::string_view name, Family fam);
/// The match "-p proto" loads on demand for an option no loaded module knows ("-p tcp --dport 80").
std::optional<Match> implicit_match(uint8_t proto, Family fam);
/// Offers option o (with its arguments from p) to the match module.
Res match_option(Match& m, std::string_view o, bool inv, ParseCtx& p);
/// Checks after all options of a match were read (the modules' final_check); errors at word `at`.
void final_check(Match& m, ParseCtx& p, size_t at);
/// The protocol checks the kernel makes at load (xt_check_match): tcp needs -p tcp, and so on.
bool check_match_protocols(const Rule& r, ParseCtx& p);

// ------------------------------------------------------------------------------ parse_targets.cpp
/// The target named by -j name, or nullopt when name is not a target (then it is a chain).
std::optional<Target> new_target(std::string_view name);
/// Offers option o (with its arguments from p) to the target.
Res target_option(Target& t, std::string_view o, bool inv, ParseCtx& p);
/// Checks after the whole rule was read (the targets' checkentry); fills REJECT's default.
bool check_target(Rule& r, ParseCtx& p);

}  // namespace svcpath::nf::restore
