#pragma once
// iptables-save / iptables-restore text <-> Ruleset.
#include <optional>
#include <string>
#include <string_view>

#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf {

struct RestoreOptions {
  /// iptables-restore --noflush: tables named in the input are edited, not replaced; a chain
  /// declaration (":NAME - [0:0]") still flushes that chain.
  bool noflush = false;
  /// iptables-restore --counters: keep "[p:b]" counters from the input (otherwise they read as 0).
  bool counters = false;
  /// The back end whose view of the tables to build (see XtBackend).
  XtBackend backend = XtBackend::Legacy;
  /// Upper bounds that keep hostile input bounded.
  size_t max_line = 64 * 1024;
  size_t max_rules = 10'000'000;
};

/// Parses restore-format text (what iptables-save prints, or kube-proxy writes) or `iptables -S`
/// output (one or several tables, each table inferred from its chains and targets) into rs; CRLF
/// line ends read as LF. Collects
/// every error with file:line:column and throws LoadError if there was any; rs is then unchanged.
void load_restore(std::string_view text, const std::string& file, Ruleset& rs, const RestoreOptions& opt = {});

/// The family a dump is for when the user did not say: ip6tables-save's header; for `iptables -S`
/// output (no header) an IPv6 address after -s/-d or ICMPv6; IPv4 otherwise.
Family guess_family(std::string_view text);

/// What the kernel's iptables-restore reads for the same rules, when that differs from text: CR
/// line ends dropped (iptables-restore refuses them), and `iptables -S` output wrapped in "*table" /
/// "COMMIT" per table as load_restore infers them ("-P" lines become chain lines). nullopt: text
/// is restore input already. For running a user's dump in a kernel (svcpath verify).
std::optional<std::string> kernel_restore_input(std::string_view text);

/// Reads a file and loads it; the family must be given (iptables vs ip6tables dump).
Ruleset load_restore_file(const std::string& path, Family fam, const RestoreOptions& opt = {});

/// Prints a ruleset in iptables-save's canonical form (tables in load order, built-in chains first,
/// then user chains sorted by name). counters adds "[p:b]" prefixes as iptables-save -c does.
std::string save(const Ruleset& rs, bool counters = false);

/// "-A CHAIN ..." for one rule, canonical.
std::string rule_text(const Chain& c, const Rule& r, Family fam);

/// Quotes a string as xtables_save_string does.
std::string save_string(std::string_view s);

}  // namespace svcpath::nf
