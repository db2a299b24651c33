#pragma once
// iptables-save / iptables-restore text <-> Ruleset.
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

/// Parses restore-format text (what iptables-save prints, or kube-proxy writes) into rs. Collects
/// every error with file:line:column and throws LoadError if there was any; rs is then unchanged.
void load_restore(std::string_view text, const std::string& file, Ruleset& rs, const RestoreOptions& opt = {});

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
