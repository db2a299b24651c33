// iptables-restore input -> Ruleset: the loader. Mirrors what iptables-restore and the kernel
// accept: table blocks, chain declarations and commands line by line (the rule spec itself is
// parse_rule.cpp's), jumps resolved and loops rejected at COMMIT as mark_source_chains does, and
// targets checked against the hooks their chain is reachable from, as translate_table does.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "netfilter/iptables/iptables.hpp"
#include "netfilter/iptables/parse.hpp"
#include "netfilter/words.hpp"

namespace svcpath::nf {
namespace {

using restore::parse_rule_spec;
using restore::ParseCtx;
using restore::valid_chain_name;

// The engine's jump stack is fixed-size (no allocation per packet); deeper nesting is refused at load.

bool looks_like_target(std::string_view name) {
  // iptables treats an all-caps unknown name as a target extension that failed to load.
  if (name.empty()) return false;
  for (char c : name)
    if (!(std::isupper(uint8_t(c)) || c == '_' || std::isdigit(uint8_t(c)))) return false;
  return true;
}

// Lines without their '\n'; a '\r' before it goes too (CRLF files: iptables-restore refuses
// them, but the rules are the same and the paste came from a terminal or an editor that added it).
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

// One table of `iptables -S` output: its first and last line and the table it is taken to be.
struct SBlock {
  int first = 0, last = 0;
  TableId table = TableId::Filter;
};

// What one block's lines say about its table: the built-in chains its "-P" lines name (iptables -S
// names every built-in chain of the table), the built-in chains its rules use, and its targets.
struct SScan {
  int first = 0, last = 0;
  uint8_t policies = 0, chains = 0;
  int last_hook = -1;
  bool body = false;            // a "-N" or rule line was seen: a later "-P" starts a table
  int only[kNumTables] = {};    // targets valid in that table alone (DNAT: nat)
  int likely[kNumTables] = {};  // targets usually found there (MARK: mangle)
  int never[kNumTables] = {};   // targets the table refuses (DROP: nat)
};

// The table a target is valid in, for targets the kernel registers for one table only (their
// xt_target .table): checked at COMMIT, and what tells which table `iptables -S` lines are from.
std::optional<TableId> target_only_table(std::string_view target) {
  using enum TableId;
  static constexpr std::pair<std::string_view, TableId> kOnly[] = {
      {"DNAT", Nat}, {"SNAT", Nat},    {"MASQUERADE", Nat}, {"REDIRECT", Nat},  {"NETMAP", Nat},
      {"CT", Raw},   {"NOTRACK", Raw}, {"TRACE", Raw},      {"TPROXY", Mangle}, {"CHECKSUM", Mangle}};
  for (auto& [n, t] : kOnly)
    if (target == n) return t;
  return std::nullopt;
}

void target_hint(SScan& s, std::string_view tg) {
  using enum TableId;
  static constexpr std::pair<std::string_view, TableId> kLikely[] = {
      {"MARK", Mangle}, {"CONNMARK", Mangle}, {"TOS", Mangle},      {"DSCP", Mangle}, {"TTL", Mangle},
      {"HL", Mangle},   {"TCPMSS", Mangle},   {"CLASSIFY", Mangle}, {"ECN", Mangle},  {"REJECT", Filter}};
  if (auto t = target_only_table(tg)) ++s.only[int(*t)];
  for (auto& [n, t] : kLikely)
    if (tg == n) ++s.likely[int(t)];
  if (tg == "DROP") ++s.never[int(Nat)];
}

// The table a block is from. Its built-in chains rule out tables without them (mangle has all
// five, so one always remains); then a target valid in one table alone decides, then "-P" lines
// naming exactly a table's chains, then targets usually found in a table; a table an earlier block
// already was counts against (filter then security, which -S cannot tell apart otherwise); ties go
// to filter, nat, mangle, raw, security in that order.
TableId infer_table(const SScan& s, const bool (&used)[kNumTables]) {
  using enum TableId;
  int only_total = 0;
  for (int n : s.only) only_total += n;
  TableId best = Mangle;
  long best_score = 0;
  bool have = false;
  for (TableId t : {Filter, Nat, Mangle, Raw, Security}) {
    uint8_t hooks = table_hooks(t);
    if ((s.policies | s.chains) & ~hooks) continue;
    int k = int(t);
    long score =
        100L * (2 * s.only[k] - only_total - s.never[k]) + (s.policies == hooks ? 10 : 0) + s.likely[k] - (used[k] ? 1000 : 0);
    if (!have || score > best_score) best = t, best_score = score, have = true;
  }
  return best;
}

// iptables -S prints no "*table" and no COMMIT: "-P" for each built-in chain in hook order, "-N" for
// each user chain, then the rules ("-A"). Input is read so when it has such lines and none of
// restore's own ("*table", ":chain", "[p:b]", COMMIT); otherwise it is restore input, where a bare
// "-A" keeps its "outside a table" error. A "-P" after "-N"/"-A" lines, or one naming a hook not
// after the previous "-P"'s, starts the next table (`iptables -t T -S` of several tables
// concatenated). Returns no blocks for restore input.
std::vector<SBlock> s_blocks(const std::vector<std::string_view>& lines) {
  std::vector<SScan> scans;
  bool s_lines = false;
  std::vector<Word> toks;
  for (size_t i = 0; i < lines.size(); ++i) {
    toks.clear();
    // A line the tokenizer refuses still belongs to the block it is in: the loader reports it there.
    bool bad = split_words(lines[i], toks).has_value();
    if (!bad && (toks.empty() || toks[0].s.empty() || toks[0].s[0] == '#')) continue;
    static const std::string kNone;
    const std::string& cmd = toks.empty() ? kNone : toks[0].s;
    if (!cmd.empty() && (cmd[0] == '*' || cmd[0] == ':' || cmd[0] == '[' || cmd == "COMMIT")) return {};
    bool policy = cmd == "-P" || cmd == "--policy";
    if (policy || cmd == "-N" || cmd == "--new-chain" || cmd == "-A" || cmd == "--append") s_lines = true;
    int hook = -1;  // the built-in chain the line names, if any
    if (toks.size() > 1)
      if (auto h = parse_builtin_chain(toks[1].s)) hook = int(*h);
    if (scans.empty() || (policy && (scans.back().body || (hook >= 0 && hook <= scans.back().last_hook)))) {
      scans.emplace_back();
      scans.back().first = int(i) + 1;
    }
    SScan& s = scans.back();
    s.last = int(i) + 1;
    if (policy) {
      if (hook >= 0) s.policies |= hook_bit(Hook(hook)), s.last_hook = hook;
      continue;
    }
    s.body = true;
    if (hook >= 0) s.chains |= hook_bit(Hook(hook));
    for (size_t k = 2; k + 1 < toks.size(); ++k)
      if (toks[k].s == "-j" || toks[k].s == "--jump") target_hint(s, toks[k + 1].s);
  }
  if (!s_lines) return {};
  std::vector<SBlock> out;
  bool used[kNumTables] = {};
  for (const SScan& s : scans) {
    out.push_back({s.first, s.last, infer_table(s, used)});
    used[int(out.back().table)] = true;
  }
  return out;
}

struct WorkTable {
  Table t;
  int opened_at = 0;
  std::map<std::string, int, std::less<>> declared;  // chain -> line declared in this block
};

class Loader {
 public:
  Loader(const std::string& file, Ruleset& rs, const RestoreOptions& opt) : d_(file), rs_(rs), opt_(opt), fam_(rs.family) {}

  void run(std::string_view text) {
    std::vector<std::string_view> lines = split_lines(text);
    if (auto blocks = s_blocks(lines); !blocks.empty()) {
      // iptables -S output: each block is a table opened before its first line and committed after
      // its last, so every line keeps its own number.
      for (const auto& b : blocks) {
        open_table(b.first, b.table);
        for (int ln = b.first; ln <= b.last && !d_.full(); ++ln) line_(ln, lines[size_t(ln - 1)]);
        commit(b.last);
      }
    } else {
      for (size_t i = 0; i < lines.size() && !d_.full(); ++i) line_(int(i) + 1, lines[i]);
      end_outside();
      if (cur_) d_.error(cur_->opened_at, 0, fmt::format("table '{}' opened here has no COMMIT", table_name(cur_->t.id)));
    }
    d_.throw_if_errors();
    // Install atomically: only when the whole input was good.
    for (auto& wt : done_) {
      if (Table* old = rs_.table(wt.id)) *old = std::move(wt);
      else rs_.tables.push_back(std::move(wt));
    }
    finalize(rs_);
  }

  static void finalize(Ruleset& rs) {
    uint32_t id = 0, slot = 0;
    for (auto& t : rs.tables)
      for (auto& c : t.chains) {
        index_chain(c);
        for (auto& r : c.rules) {
          r.id = id++;
          for (auto& m : r.matches) {
            if (auto* s = std::get_if<StatisticMatch>(&m)) s->slot = slot++;
            else if (auto* l = std::get_if<LimitMatch>(&m)) l->slot = slot++;
            else if (auto* q = std::get_if<QuotaMatch>(&m)) q->slot = slot++;
          }
        }
      }
    rs.rule_count = id;
    rs.stat_slots = slot;
  }

 private:
  void line_(int ln, std::string_view line) {
    if (line.size() > opt_.max_line) {
      d_.error(ln, 0, fmt::format("line is {} bytes long; the limit is {}", line.size(), opt_.max_line));
      return;
    }
    std::vector<Word> toks;
    if (auto e = split_words(line, toks)) {
      d_.error(ln, e->col, e->what);
      return;
    }
    if (toks.empty() || toks[0].s[0] == '#') return;
    const std::string& first = toks[0].s;
    if (first[0] == '*') {
      end_outside();
      if (cur_) {
        d_.error(ln, 1,
                 fmt::format("'{}' starts a table before table '{}' (line {}) was COMMITted", first, table_name(cur_->t.id),
                             cur_->opened_at));
        // The unfinished table is lost either way; this one's lines are read as its own, so they
        // raise no errors that only follow from the missing COMMIT.
        cur_.reset();
      }
      auto id = parse_table(std::string_view(first).substr(1));
      if (!id) {
        d_.error(ln, 2, fmt::format("unknown table '{}' (raw, mangle, nat, filter, security)", first.substr(1)));
        return;
      }
      if (toks.size() > 1) d_.error(ln, toks[1].col, "unexpected text after the table name");
      open_table(ln, *id);
      return;
    }
    if (!cur_) {
      // The first line of a run outside any table says so; the rest of the run follows from it.
      if (outside_.count++ == 0) {
        outside_.first = ln;
        outside_.what = fmt::format("'{}' outside a table: the input must start with *table", first);
      }
      outside_.last = ln;
      return;
    }
    if (first == "COMMIT") {
      if (toks.size() > 1) d_.error(ln, toks[1].col, "unexpected text after COMMIT");
      commit(ln);
      return;
    }
    if (first[0] == ':') {
      declare(ln, toks);
      return;
    }
    size_t start = 0;
    uint64_t pk = 0, by = 0;
    bool counters = false;
    if (first[0] == '[') {
      // "[packets:bytes] -A ..." as iptables-save -c prints.
      auto c = parse_counters(first);
      if (!c) {
        d_.error(ln, 1, fmt::format("bad counters '{}' (expected [packets:bytes])", first));
        return;
      }
      pk = c->first;
      by = c->second;
      counters = true;
      start = 1;
    }
    command(ln, toks, start, counters, pk, by);
  }

  // Reports a run of lines outside any table as one error at its first line.
  void end_outside() {
    if (!outside_.count) return;
    std::string more = outside_.count > 1 ? fmt::format(" ({} further lines outside a table, up to line {}, not reported)",
                                                        outside_.count - 1, outside_.last)
                                          : "";
    d_.error(outside_.first, 1, outside_.what + more);
    outside_ = {};
  }

  void open_table(int ln, TableId id) {
    cur_.emplace();
    cur_->opened_at = ln;
    const Table* existing = nullptr;
    for (auto& dt : done_)
      if (dt.id == id) existing = &dt;
    if (!existing) existing = rs_.table(id);
    if (opt_.noflush && existing) cur_->t = *existing;
    else cur_->t = Table{};
    cur_->t.id = id;
    cur_->t.line = ln;
    reindex();
  }

  static std::optional<std::pair<uint64_t, uint64_t>> parse_counters(std::string_view s) {
    if (s.size() < 5 || s.front() != '[' || s.back() != ']') return std::nullopt;
    s = s.substr(1, s.size() - 2);
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto a = parse_uint(s.substr(0, colon), UINT64_MAX), b = parse_uint(s.substr(colon + 1), UINT64_MAX);
    if (!a || !b) return std::nullopt;
    return std::make_pair(*a, *b);
  }

  // Chain lookup by name goes through an index: dumps have 100k+ chains (kube-proxy at scale).
  int find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? -1 : it->second;
  }
  Chain* chain(std::string_view name) {
    int k = find(name);
    return k < 0 ? nullptr : &cur_->t.chains[size_t(k)];
  }
  void reindex() {
    index_.clear();
    for (size_t i = 0; i < cur_->t.chains.size(); ++i) index_.emplace(cur_->t.chains[i].name, int(i));
  }

  // Built-in chains spring into existence when referenced, as they do in the kernel table.
  Chain* chain_or_builtin(std::string_view name) {
    if (Chain* c = chain(name)) return c;
    auto h = parse_builtin_chain(name);
    if (!h || !(table_hooks(cur_->t.id) & hook_bit(*h))) return nullptr;
    return add_builtin(*h, Policy::Accept, 0);
  }

  Chain* add_builtin(Hook h, Policy pol, int ln) {
    Chain c;
    c.name = std::string(hook_name(h));
    c.builtin = true;
    c.hook = h;
    c.policy = pol;
    c.line = ln;
    // Keep built-in chains first, in hook order, as the kernel blob and iptables-save do.
    auto& chains = cur_->t.chains;
    size_t at = 0;
    while (at < chains.size() && chains[at].builtin && int(chains[at].hook) < int(h)) ++at;
    chains.insert(chains.begin() + long(at), std::move(c));
    reindex();
    return &chains[at];
  }

  void declare(int ln, const std::vector<Word>& toks) {
    std::string name = toks[0].s.substr(1);
    if (toks.size() < 2) {
      d_.error(ln, 1, fmt::format("chain declaration ':{}' needs a policy ('-' for user chains)", name));
      return;
    }
    const std::string& pol = toks[1].s;
    std::string why;
    if (auto it = cur_->declared.find(name); it != cur_->declared.end()) {
      d_.error(ln, 2, fmt::format("chain '{}' is declared twice; previously declared at line {}", name, it->second));
      d_.error(it->second, 2, fmt::format("note: chain '{}' previously declared here", name));
      return;
    }
    cur_->declared.emplace(name, ln);
    uint64_t pk = 0, by = 0;
    if (toks.size() > 2) {
      auto c = parse_counters(toks[2].s);
      if (!c) {
        d_.error(ln, toks[2].col, fmt::format("bad counters '{}' (expected [packets:bytes])", toks[2].s));
        return;
      }
      pk = c->first;
      by = c->second;
    }
    if (toks.size() > 3) d_.error(ln, toks[3].col, "unexpected text after the chain counters");
    auto h = parse_builtin_chain(name);
    if (h && (table_hooks(cur_->t.id) & hook_bit(*h))) {
      // '-' keeps the chain's policy (ACCEPT for a new one); iptables-legacy-restore then leaves its
      // counters alone too, iptables-nft-restore sets them.
      bool keep = pol == "-";
      Policy p = pol == "ACCEPT" ? Policy::Accept : pol == "DROP" ? Policy::Drop : Policy::None;
      if (p == Policy::None && !keep) {
        d_.error(ln, toks[1].col, fmt::format("built-in chain {} needs policy ACCEPT, DROP or '-', not '{}'", name, pol));
        return;
      }
      Chain* c = chain(name);
      if (!c) c = add_builtin(*h, keep ? Policy::Accept : p, ln);
      if (!keep) c->policy = p;
      c->line = ln;
      if (!keep || opt_.backend == XtBackend::Nft) {
        c->pkts = opt_.counters ? pk : 0;
        c->bytes = opt_.counters ? by : 0;
      }
      return;
    }
    if (pol != "-") {
      d_.error(ln, toks[1].col, fmt::format("user chain '{}' cannot have a policy ('{}'); write '-'", name, pol));
      return;
    }
    if (!valid_chain_name(name, why)) {
      d_.error(ln, 2, why);
      return;
    }
    if (Chain* c = chain(name)) {
      c->rules.clear();  // declaring an existing chain flushes it (--noflush)
      c->line = ln;
      return;
    }
    Chain c;
    c.name = name;
    c.line = ln;
    index_.emplace(name, int(cur_->t.chains.size()));
    cur_->t.chains.push_back(std::move(c));
  }

  // One command line: its words, the command's word, and the "[packets:bytes]" before it, if any.
  struct CommandLine {
    int ln;
    const std::vector<Word>& toks;
    size_t k;
    std::string cmd;
    bool counters;
    uint64_t pk, by;
    bool has(size_t n) const { return k + n < toks.size(); }
    const Word& arg(size_t n) const { return toks[k + n]; }  // 0 is the command itself
  };

  void command(int ln, const std::vector<Word>& toks, size_t k, bool counters, uint64_t pk, uint64_t by) {
    if (k >= toks.size()) {
      d_.error(ln, 1, "counters with no command after them");
      return;
    }
    using Run = void (Loader::*)(const CommandLine&);
    static constexpr struct {
      std::string_view name, long_name;
      Run run;
    } kCommands[] = {
        {"-A", "--append", &Loader::add_rule},           {"-I", "--insert", &Loader::add_rule},
        {"-R", "--replace", &Loader::add_rule},          {"-D", "--delete", &Loader::delete_rule},
        {"-N", "--new-chain", &Loader::new_chain},       {"-F", "--flush", &Loader::flush},
        {"-X", "--delete-chain", &Loader::delete_chain}, {"-P", "--policy", &Loader::set_policy},
        {"-E", "--rename-chain", &Loader::rename_chain}, {"-Z", "--zero", nullptr},
    };
    CommandLine cl{ln, toks, k, toks[k].s, counters, pk, by};
    for (const auto& c : kCommands)
      if (cl.cmd == c.name || cl.cmd == c.long_name) {
        if (c.run) (this->*c.run)(cl);
        return;
      }
    d_.error(ln, toks[k].col,
             fmt::format("unknown command '{}' (expected -A, -I, -D, -R, -N, -X, -F, -P, -E, :CHAIN or COMMIT)", cl.cmd));
  }

  // The chain named by the command's n-th argument.
  Chain* need_chain(const CommandLine& cl, size_t n) {
    if (!cl.has(n)) {
      d_.error(cl.ln, cl.arg(0).col, fmt::format("{} needs a chain name", cl.cmd));
      return nullptr;
    }
    Chain* c = chain_or_builtin(cl.arg(n).s);
    if (!c)
      d_.error(cl.ln, cl.arg(n).col, fmt::format("chain '{}' does not exist in table '{}'", cl.arg(n).s, table_name(cur_->t.id)));
    return c;
  }

  bool parse_rule(const CommandLine& cl, size_t from, Rule& r) {
    ParseCtx p{d_, fam_, cl.ln, cl.toks};
    p.i = from;
    r.line = cl.ln;
    if (!parse_rule_spec(p, r)) return false;
    if (cl.counters) r.pkts = cl.pk, r.bytes = cl.by;
    if (!opt_.counters) r.pkts = r.bytes = 0;
    return true;
  }

  // -A, -I, -R: the rule goes at the end, before rule N (default 1), or in place of rule N.
  void add_rule(const CommandLine& cl) {
    Chain* c = need_chain(cl, 1);
    if (!c) return;
    size_t from = cl.k + 2;
    long pos = -1;
    bool replace = cl.cmd == "-R" || cl.cmd == "--replace";
    if (replace && from >= cl.toks.size()) {
      d_.error(cl.ln, cl.arg(1).col, "-R needs a rule number");
      return;
    }
    if (cl.cmd != "-A" && cl.cmd != "--append" && from < cl.toks.size()) {
      if (auto n = parse_uint(cl.toks[from].s, 1u << 30)) {
        pos = long(*n);
        ++from;
      } else if (replace) {
        d_.error(cl.ln, cl.toks[from].col, "-R needs a rule number");
        return;
      }
    }
    std::string cname = c->name;  // c may move while parsing adds chains
    Rule r;
    if (!parse_rule(cl, from, r)) return;
    if (++rules_ > opt_.max_rules) {
      d_.error(cl.ln, 1, fmt::format("more than {} rules", opt_.max_rules));
      return;
    }
    c = chain(cname);
    if (cl.cmd == "-A" || cl.cmd == "--append") c->rules.push_back(std::move(r));
    else if (cl.cmd == "-I" || cl.cmd == "--insert") {
      size_t at = pos < 0 ? 0 : size_t(pos - 1);
      if (pos == 0 || at > c->rules.size()) {
        d_.error(cl.ln, cl.arg(2).col, fmt::format("index of insertion too big (chain has {} rules)", c->rules.size()));
        return;
      }
      c->rules.insert(c->rules.begin() + long(at), std::move(r));
    } else {
      if (pos < 1 || size_t(pos) > c->rules.size()) {
        d_.error(cl.ln, cl.arg(2).col, fmt::format("index of replacement too big (chain has {} rules)", c->rules.size()));
        return;
      }
      c->rules[size_t(pos - 1)] = std::move(r);
    }
  }

  // -D: by number, or the first rule that prints the same as the one given.
  void delete_rule(const CommandLine& cl) {
    Chain* c = need_chain(cl, 1);
    if (!c) return;
    if (cl.has(2)) {
      if (auto n = parse_uint(cl.arg(2).s, 1u << 30); n && !cl.has(3)) {
        if (*n < 1 || *n > c->rules.size()) {
          d_.error(cl.ln, cl.arg(2).col, fmt::format("index of deletion too big (chain has {} rules)", c->rules.size()));
          return;
        }
        c->rules.erase(c->rules.begin() + long(*n - 1));
        return;
      }
    }
    std::string cname = c->name;
    Rule r;
    if (!parse_rule(cl, cl.k + 2, r)) return;
    c = chain(cname);
    std::string want = rule_text(*c, r, fam_);
    for (auto it = c->rules.begin(); it != c->rules.end(); ++it)
      if (rule_text(*c, *it, fam_) == want) {
        c->rules.erase(it);
        return;
      }
    d_.error(cl.ln, cl.arg(0).col, "bad rule (does a matching rule exist in that chain?)");
  }

  // -N: a new, empty user chain.
  void new_chain(const CommandLine& cl) {
    if (!cl.has(1)) {
      d_.error(cl.ln, cl.arg(0).col, "-N needs a chain name");
      return;
    }
    std::string why;
    if (!valid_chain_name(cl.arg(1).s, why) || parse_builtin_chain(cl.arg(1).s)) {
      d_.error(cl.ln, cl.arg(1).col, why.empty() ? "cannot create a chain with a built-in name" : why);
      return;
    }
    if (chain(cl.arg(1).s)) {
      d_.error(cl.ln, cl.arg(1).col, fmt::format("chain '{}' already exists", cl.arg(1).s));
      return;
    }
    Chain c;
    c.name = cl.arg(1).s;
    c.line = cl.ln;
    index_.emplace(c.name, int(cur_->t.chains.size()));
    cur_->t.chains.push_back(std::move(c));
  }

  // -F: one chain, or every chain of the table.
  void flush(const CommandLine& cl) {
    if (!cl.has(1)) {
      for (auto& c : cur_->t.chains) c.rules.clear();
      return;
    }
    if (Chain* c = need_chain(cl, 1)) c->rules.clear();
  }

  // -X: one empty, unreferenced user chain, or every such chain.
  void delete_chain(const CommandLine& cl) {
    auto& chains = cur_->t.chains;
    auto referenced = [&](std::string_view n) {
      for (auto& c : chains)
        for (auto& r : c.rules)
          if (auto* j = std::get_if<JumpTarget>(&r.target); j && j->chain == n) return true;
      return false;
    };
    if (!cl.has(1)) {
      std::erase_if(chains, [&](const Chain& c) { return !c.builtin && c.rules.empty() && !referenced(c.name); });
      reindex();
      return;
    }
    int idx = find(cl.arg(1).s);
    if (idx < 0) {
      d_.error(cl.ln, cl.arg(1).col, fmt::format("chain '{}' does not exist", cl.arg(1).s));
      return;
    }
    const Chain& c = chains[size_t(idx)];
    if (c.builtin) d_.error(cl.ln, cl.arg(1).col, "cannot delete a built-in chain");
    else if (!c.rules.empty()) d_.error(cl.ln, cl.arg(1).col, fmt::format("chain '{}' is not empty", c.name));
    else if (referenced(c.name)) d_.error(cl.ln, cl.arg(1).col, fmt::format("chain '{}' is still referenced", c.name));
    else {
      chains.erase(chains.begin() + idx);
      reindex();
    }
  }

  // -P: a built-in chain's policy.
  void set_policy(const CommandLine& cl) {
    Chain* c = need_chain(cl, 1);
    if (!c) return;
    if (!c->builtin || !cl.has(2) || (cl.arg(2).s != "ACCEPT" && cl.arg(2).s != "DROP")) {
      d_.error(cl.ln, cl.arg(0).col, "-P needs a built-in chain and ACCEPT or DROP");
      return;
    }
    c->policy = cl.arg(2).s == "ACCEPT" ? Policy::Accept : Policy::Drop;
    if (!cl.has(3)) return;
    // `iptables -S -v` prints the chain's counters after the policy: "-P INPUT DROP -c 10 840".
    auto pk = cl.has(4) ? parse_uint(cl.arg(4).s, UINT64_MAX) : std::nullopt;
    auto by = cl.has(5) ? parse_uint(cl.arg(5).s, UINT64_MAX) : std::nullopt;
    if ((cl.arg(3).s != "-c" && cl.arg(3).s != "--set-counters") || !pk || !by) {
      d_.error(cl.ln, cl.arg(3).col, "unexpected text after the policy (only '-c PACKETS BYTES' may follow it)");
      return;
    }
    if (cl.has(6)) d_.error(cl.ln, cl.arg(6).col, "unexpected text after the policy's counters");
    c->pkts = opt_.counters ? *pk : 0;
    c->bytes = opt_.counters ? *by : 0;
  }

  // -E: renames a user chain and the jumps to it.
  void rename_chain(const CommandLine& cl) {
    if (!cl.has(2)) {
      d_.error(cl.ln, cl.arg(0).col, "-E needs the old and the new chain name");
      return;
    }
    Chain* c = chain(cl.arg(1).s);
    std::string why;
    if (!c || c->builtin) d_.error(cl.ln, cl.arg(1).col, fmt::format("no user chain '{}'", cl.arg(1).s));
    else if (!valid_chain_name(cl.arg(2).s, why)) d_.error(cl.ln, cl.arg(2).col, why);
    else {
      std::string old = c->name;
      c->name = cl.arg(2).s;
      int at = find(old);
      index_.erase(index_.find(old));
      index_.emplace(c->name, at);
      for (auto& ch : cur_->t.chains)
        for (auto& r : ch.rules)
          if (auto* j = std::get_if<JumpTarget>(&r.target); j && j->chain == old) j->chain = c->name;
    }
  }

  // Resolves jumps, walks the chains from each hook (rejecting loops as mark_source_chains does) and
  // checks each target against the hooks it can be reached from.
  void commit(int ln) {
    Table& t = cur_->t;
    bool ok = true;
    // iptables-restore (legacy and nft alike) creates every built-in chain of the table.
    for (int h = 0; h < kNumHooks; ++h)
      if ((table_hooks(t.id) & hook_bit(Hook(h))) && find(hook_name(Hook(h))) < 0)
        add_builtin(Hook(h), Policy::Accept, ln)->implicit = true;
    for (auto& c : t.chains) {
      c.reach = 0;
      for (auto& r : c.rules)
        if (auto* j = std::get_if<JumpTarget>(&r.target)) {
          j->index = find(j->chain);
          if (j->index < 0) {
            if (looks_like_target(j->chain) && !j->go)
              d_.error(
                  r.line, 0,
                  fmt::format("unsupported target '{}' (and no chain of that name in table '{}')", j->chain, table_name(t.id)));
            else
              d_.error(r.line, 0,
                       fmt::format("jump to chain '{}', which does not exist in table '{}'", j->chain, table_name(t.id)));
            ok = false;
          } else if (t.chains[size_t(j->index)].builtin) {
            d_.error(r.line, 0, fmt::format("cannot jump to built-in chain '{}'", j->chain));
            ok = false;
          }
        }
    }
    for (int h = 0; h < kNumHooks; ++h) t.builtin[h] = -1;
    for (size_t i = 0; i < t.chains.size(); ++i)
      if (t.chains[i].builtin && !(t.chains[i].implicit && opt_.backend == XtBackend::Nft))
        t.builtin[int(t.chains[i].hook)] = int(i);
    if (ok) {
      uint32_t depth = 0;
      for (int h = 0; h < kNumHooks && ok; ++h)
        if (t.builtin[h] >= 0) ok = walk(t, t.builtin[h], hook_bit(Hook(h)), 0, depth);
      rs_.max_depth = std::max(rs_.max_depth, depth);
      if (ok && depth > kMaxJumpDepth) {
        d_.error(t.line, 0,
                 fmt::format("table '{}' nests user-chain jumps {} deep; svcpath supports at most {}", table_name(t.id), depth,
                             kMaxJumpDepth));
        ok = false;
      }
    }
    if (ok) check_targets(t);
    seen_depth_.clear();
    done_.push_back(std::move(t));
    cur_.reset();
    (void)ln;
  }

  // from_line: the rule that jumped here, which is where a loop closes.
  bool walk(Table& t, int ci, uint8_t hbit, uint32_t depth, uint32_t& maxd, int from_line = 0) {
    Chain& c = t.chains[size_t(ci)];
    if (std::find(stack_.begin(), stack_.end(), ci) != stack_.end()) {
      std::string path;
      bool on = false;
      for (int s : stack_) {
        if (s == ci) on = true;
        if (on) path += t.chains[size_t(s)].name + " -> ";
      }
      path += c.name;
      d_.error(from_line ? from_line : c.line, 0, fmt::format("jump loop: {} (the kernel rejects this table with ELOOP)", path));
      return false;
    }
    if (seen_depth_.size() < t.chains.size()) seen_depth_.resize(t.chains.size(), 0);
    if ((c.reach & hbit) && depth <= seen_depth_[size_t(ci)]) return true;
    c.reach |= hbit;
    seen_depth_[size_t(ci)] = std::max(seen_depth_[size_t(ci)], depth);
    maxd = std::max(maxd, depth);
    stack_.push_back(ci);
    for (auto& r : c.rules)
      if (auto* j = std::get_if<JumpTarget>(&r.target)) {
        if (!walk(t, j->index, hbit, j->go ? depth : depth + 1, maxd, r.line)) {
          stack_.pop_back();
          return false;
        }
      }
    stack_.pop_back();
    return true;
  }

  void check_targets(const Table& t) {
    using enum Hook;
    for (auto& c : t.chains) {
      uint8_t reach = c.reach;
      for (auto& r : c.rules) {
        auto bad_hook = [&](std::string_view what, uint8_t allowed) {
          uint8_t badh = reach & uint8_t(~allowed);
          if (!badh) return;
          for (int h = 0; h < kNumHooks; ++h)
            if (badh & (1 << h)) {
              d_.error(r.line, 0,
                       fmt::format("{} is not valid in chain {} because it is reached from {}; the kernel allows it "
                                   "only from {}",
                                   what, c.name, hook_name(Hook(h)), hooks_str(allowed)));
              return;
            }
        };
        auto bad_table = [&](std::string_view what, TableId want) {
          if (t.id != want) d_.error(r.line, 0, fmt::format("{} is only valid in the {} table", what, table_name(want)));
        };
        if (auto* st = std::get_if<StandardTarget>(&r.target); st && st->v == StdVerdict::Drop && t.id == TableId::Nat)
          d_.error(r.line, 0, "The \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.");
        if (!std::holds_alternative<JumpTarget>(r.target)) {
          std::string n = target_name(r.target);
          if (auto only = target_only_table(n); only && t.id != *only)
            d_.error(r.line, 0, fmt::format("{} is only valid in the {} table", n, table_name(*only)));
        }
        std::visit(
            [&](auto& tg) {
              using T = std::decay_t<decltype(tg)>;
              if constexpr (std::is_same_v<T, NatTarget>) {
                std::string n = target_name(r.target);
                bool dst = tg.kind == NatTarget::Kind::Dnat || tg.kind == NatTarget::Kind::Redirect;
                if (tg.kind == NatTarget::Kind::Netmap) {
                } else if (dst) bad_hook(n, hook_bit(PreRouting) | hook_bit(LocalOut));
                else if (tg.kind == NatTarget::Kind::Snat) bad_hook(n, hook_bit(PostRouting) | hook_bit(LocalIn));
                else bad_hook(n, hook_bit(PostRouting));
              } else if constexpr (std::is_same_v<T, RejectTarget>) {
                bad_hook("REJECT", hook_bit(LocalIn) | hook_bit(Forward) | hook_bit(LocalOut));
              } else if constexpr (std::is_same_v<T, TproxyTarget>) {
                bad_hook("TPROXY", hook_bit(PreRouting));
              } else if constexpr (std::is_same_v<T, SetTarget>) {
                if (tg.map.set()) bad_table("SET --map-set", TableId::Mangle);
                if (tg.map_prio || tg.map_queue)
                  bad_hook("SET --map-prio/--map-queue", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
              } else if constexpr (std::is_same_v<T, TcpmssTarget>) {
                if (tg.clamp)
                  bad_hook("TCPMSS --clamp-mss-to-pmtu", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
              }
            },
            r.target);
        for (auto& m : r.matches) {
          if (auto* a = std::get_if<AddrtypeMatch>(&m)) {
            if (a->limit_in) bad_hook("addrtype --limit-iface-in", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
            if (a->limit_out)
              bad_hook("addrtype --limit-iface-out", hook_bit(PostRouting) | hook_bit(LocalOut) | hook_bit(Forward));
          } else if (std::holds_alternative<RpfilterMatch>(m)) {
            if (t.id != TableId::Raw && t.id != TableId::Mangle)
              d_.error(r.line, 0, "rpfilter is only valid in the raw and mangle tables");
            bad_hook("rpfilter", hook_bit(PreRouting));
          } else if (std::holds_alternative<MacMatch>(m)) {
            bad_hook("mac", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
          } else if (std::holds_alternative<OwnerMatch>(m)) {
            bad_hook("owner", hook_bit(LocalOut) | hook_bit(PostRouting));
          } else if (auto* dg = std::get_if<DevgroupMatch>(&m)) {
            if (dg->flags & DevgroupMatch::Src)
              bad_hook("devgroup --src-group", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
            if (dg->flags & DevgroupMatch::Dst)
              bad_hook("devgroup --dst-group", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
          } else if (std::holds_alternative<SocketMatch>(m)) {
            bad_hook("socket", hook_bit(PreRouting) | hook_bit(LocalIn));
          } else if (auto* pm = std::get_if<PolicyMatch>(&m)) {
            if (pm->dir_out) bad_hook("policy --dir out", hook_bit(Forward) | hook_bit(LocalOut) | hook_bit(PostRouting));
            else bad_hook("policy --dir in", hook_bit(PreRouting) | hook_bit(LocalIn) | hook_bit(Forward));
          }
        }
      }
    }
  }

  static std::string hooks_str(uint8_t m) {
    std::string s;
    for (int h = 0; h < kNumHooks; ++h)
      if (m & (1 << h)) {
        if (!s.empty()) s += ", ";
        s += hook_name(Hook(h));
      }
    return s;
  }

  Diagnostics d_;
  Ruleset& rs_;
  RestoreOptions opt_;
  Family fam_;
  std::optional<WorkTable> cur_;
  struct {
    int first = 0;
    std::string what;
    int count = 0, last = 0;
  } outside_;  // the current run of lines outside any table
  std::vector<Table> done_;
  std::vector<int> stack_;
  std::vector<uint32_t> seen_depth_;
  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int, StrHash, std::equal_to<>> index_;
  size_t rules_ = 0;
};

}  // namespace

Family guess_family(std::string_view text) {
  if (text.find("ip6tables-save") != std::string_view::npos) return Family::V6;
  // Restore input without the header is IPv4 (an IPv6 address in it is an error); `iptables -S`
  // prints no header for either family: an IPv6 source or destination, ICMPv6, or a match only
  // ip6tables has (the extension-header ones) says so.
  if (s_blocks(split_lines(text)).empty()) return Family::V4;
  std::vector<Word> toks;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    toks.clear();
    if (split_words(line, toks)) continue;
    for (size_t k = 0; k < toks.size(); ++k) {
      std::string_view w = toks[k].s;
      if (w == "ipv6-icmp" || w == "icmpv6" || w == "icmp6" || w.starts_with("icmp6-")) return Family::V6;
      if (w == "-m" && k + 1 < toks.size()) {
        std::string_view m = toks[k + 1].s;
        if (m == "frag" || m == "ipv6header" || m == "hbh" || m == "dst" || m == "rt" || m == "hl") return Family::V6;
      }
      bool addr_opt = w == "-s" || w == "-d" || w == "--source" || w == "--destination" || w == "--src" || w == "--dst";
      if (addr_opt && k + 1 < toks.size() && toks[k + 1].s.find(':') != std::string::npos) return Family::V6;
    }
  }
  return Family::V4;
}

std::optional<std::string> kernel_restore_input(std::string_view text) {
  std::vector<std::string_view> lines = split_lines(text);
  std::vector<SBlock> blocks = s_blocks(lines);
  if (blocks.empty() && text.find('\r') == std::string_view::npos) return std::nullopt;
  std::string out;
  if (blocks.empty()) {
    for (auto l : lines) out.append(l).push_back('\n');
    if (!text.empty() && text.back() == '\n') out.pop_back();
    return out;
  }
  std::vector<Word> toks;
  for (const SBlock& b : blocks) {
    out += fmt::format("*{}\n", table_name(b.table));
    for (int ln = b.first; ln <= b.last; ++ln) {
      std::string_view l = lines[size_t(ln - 1)];
      toks.clear();
      // "-P CHAIN POLICY [-c P B]" becomes the chain line iptables-restore reads counters from.
      if (!split_words(l, toks) && toks.size() >= 3 && (toks[0].s == "-P" || toks[0].s == "--policy")) {
        bool c = toks.size() == 6 && (toks[3].s == "-c" || toks[3].s == "--set-counters");
        out += fmt::format(":{} {} [{}:{}]\n", toks[1].s, toks[2].s, c ? toks[4].s : "0", c ? toks[5].s : "0");
      } else {
        out.append(l).push_back('\n');
      }
    }
    out += "COMMIT\n";
  }
  return out;
}

void load_restore(std::string_view text, const std::string& file, Ruleset& rs, const RestoreOptions& opt) {
  rs.backend = opt.backend;
  Loader(file, rs, opt).run(text);
}

XtBackend detect_backend(std::string_view dump) {
  // Only the header comments before the first table say it.
  std::string_view head = dump.substr(0, std::min(dump.find("\n*"), dump.size()));
  return head.find("(nf_tables)") != std::string_view::npos || head.find("iptables-nft-save") != std::string_view::npos
             ? XtBackend::Nft
             : XtBackend::Legacy;
}

Ruleset load_restore_file(const std::string& path, Family fam, const RestoreOptions& opt) {
  Ruleset rs;
  rs.family = fam;
  load_restore(read_input_file(path), path, rs, opt);
  return rs;
}

}  // namespace svcpath::nf
