#pragma once
// nftables: the subset kube-proxy's nftables mode and common policy engines write — tables of the
// ip, ip6 and inet families, base chains (type, hook, priority, policy), regular chains,
// jump/goto/return, named and anonymous sets and verdict maps (concatenated keys, intervals,
// dynamic timeouts), numgen, ct state, fib type, meta mark, counters, dnat/snat/masquerade, reject.
// Loaded from `nft -f` input or `nft list ruleset` output into validated data, printed back in
// `nft list ruleset` form, and evaluated by one walker (nft_do_chain's: jumps push, gotos don't,
// return pops, a base chain's end applies its policy).
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/addr.hpp"
#include "core/counters.hpp"
#include "core/hook.hpp"
#include "core/packet.hpp"
#include "core/rng.hpp"
#include "core/trace.hpp"
#include "core/verdict.hpp"
#include "netfilter/conntrack.hpp"
#include "netfilter/node.hpp"
#include "netfilter/nat.hpp"

namespace svcpath::nf::nft {

enum class TableFamily : uint8_t { Ip, Ip6, Inet };
std::string_view family_name(TableFamily f);

/// Data types of set keys and compared values (nft's datatypes).
enum class Type : uint8_t {
  Ipv4,
  Ipv6,
  Proto,
  Service,
  Mark,
  Ifname,
  Integer,
  CtState,
  AddrType,
  NfProto,
  Verdict,
  IcmpType,
  Icmp6Type,
  CtStatus,
};
/// ct state and ct status are bit sets: a bare value or a list tests any of its bits, and sets of
/// them are not intervals.
inline bool is_bitset(Type t) { return t == Type::CtState || t == Type::CtStatus; }
std::string_view type_name(Type t);
/// Bytes a value of the type occupies in a key (a register slot: rounded up to 4 as the kernel does).
size_t type_width(Type t);

/// A value as the kernel compares it: big-endian bytes, components concatenated in 4-byte slots.
struct Key {
  std::array<uint8_t, 48> b{};
  uint8_t len = 0;
  bool operator==(const Key& o) const { return len == o.len && std::memcmp(b.data(), o.b.data(), len) == 0; }
  int cmp(const Key& o) const { return std::memcmp(b.data(), o.b.data(), len < o.len ? len : o.len); }
};
struct KeyHash {
  size_t operator()(const Key& k) const noexcept;
};
/// lo <= k <= hi part by part, each part types[i] wide.
bool within(const Key& lo, const Key& hi, const Key& k, const Type* types, size_t n);

/// What an expression loads from the packet or its metadata.
enum class Sel : uint8_t {
  IpSaddr,
  IpDaddr,
  IpProtocol,
  Ip6Saddr,
  Ip6Daddr,
  Ip6Nexthdr,
  Sport,
  Dport,  // th/tcp/udp/sctp; proto != 0 adds the protocol dependency
  L4Proto,
  NfProto,
  Mark,
  Iifname,
  Oifname,
  CtState,
  CtMark,
  CtStatus,
  FibSaddrType,
  FibDaddrType,
  Numgen,      // numgen random mod N offset M
  IpVersion,   // ip version (4 on an IPv4 packet; the family is its dependency)
  Ip6Version,  // ip6 version
  IcmpType,    // icmp type (needs ICMP)
  Icmp6Type,   // icmpv6 type (needs ICMPv6)
};

struct Selector {
  Sel sel = Sel::IpDaddr;
  uint8_t proto = 0;             // Sport/Dport: tcp/udp/sctp dependency (0: th)
  bool fib_dev = false;          // fib ... . iif / . oif: addresses of that device only
  uint32_t mod = 0, offset = 0;  // numgen
  Type type() const;
};

enum class VerdictCode : uint8_t { None, Accept, Drop, Return, Jump, Goto, Continue, Queue };

struct VerdictSpec {
  VerdictCode code = VerdictCode::None;
  std::string chain_name;  // jump/goto target as written
  int32_t chain = -1;      // resolved index in the table
};

/// `lhs [& mask] [^ xor] op rhs`: rhs is a value/range (lo..hi), or a set (named or anonymous).
struct MatchStmt {
  std::vector<Selector> lhs;  // several: a concatenation
  std::vector<Type> types;    // the parts' types (filled on load)
  bool bitwise = false;
  uint32_t and_mask = 0xffffffff, xor_val = 0;
  enum class Op : uint8_t { Eq, Ne, Lt, Gt, Le, Ge, InSet, NotInSet, FlagsAny, FlagsNone } op = Op::Eq;
  Key lo, hi;            // Eq/Ne: lo <= v <= hi (a prefix or range); Lt..Ge: against lo
  std::string rhs_text;  // as printed
  int32_t set = -1;      // InSet/NotInSet
  std::string set_name;  // "@name" reference before resolution ("" for anonymous)
};

struct VmapStmt {
  std::vector<Selector> key;
  int32_t set = -1;
  std::string set_name;
};

struct VerdictStmt {
  VerdictSpec v;
};
struct CounterStmt {
  uint64_t packets = 0, bytes = 0;  // as loaded (printed back)
};
/// meta mark set: mark = (mark & and_mask) ^ xor_val.
struct MarkSetStmt {
  uint32_t and_mask = 0, xor_val = 0;
  std::string text;  // rhs as printed
};
struct NatStmt {
  NatTarget t;  // kind Dnat/Snat/Masquerade/Redirect, address/port range, flags
};
struct RejectStmt {
  std::string with;  // iptables' canonical names: icmp-port-unreachable, tcp-reset, ...
  std::string text;  // nft's words after "reject"
};
/// NF_LOG_MASK: every log flag ("flags all").
inline constexpr uint8_t kLogAll = 0x2f;

/// log: what nft prints back (the packet path only notes that a rule logged). Options absent are
/// -1; logflags are the kernel's NF_LOG_* bits.
struct LogStmt {
  std::string prefix;
  int64_t group = -1, snaplen = -1, qthreshold = -1;
  int8_t level = -1;  // syslog level, 8 = audit (NFT_LOGLEVEL_AUDIT)
  uint8_t logflags = 0;
};
struct NotrackStmt {};
struct SetUpdateStmt {
  bool add = false;  // add @s { } (no refresh) or update @s { }
  int32_t set = -1;
  std::string set_name;
  std::vector<Selector> key;
};

using Stmt = std::variant<MatchStmt, VmapStmt, VerdictStmt, CounterStmt, MarkSetStmt, NatStmt, RejectStmt, LogStmt, NotrackStmt,
                          SetUpdateStmt>;

struct Rule {
  std::vector<Stmt> stmts;
  std::string comment;
  uint32_t handle = 0;
  uint32_t id = 0;  // index into per-rule state (counters)
  int line = 0;
};

enum class ChainType : uint8_t { Filter, Nat, Route };

struct Chain {
  std::string name;
  bool base = false;
  ChainType type = ChainType::Filter;
  Hook hook = Hook::PreRouting;
  int priority = 0;
  std::string priority_text;  // as written: "dstnat", "dstnat - 10", "-110"
  bool policy_drop = false;
  std::string comment;
  std::vector<Rule> rules;
  uint32_t handle = 0;
  int line = 0;
};

struct Element {
  Key lo, hi;           // lo == hi for a single key
  std::string text;     // key as written (canonical)
  VerdictSpec verdict;  // maps
  std::string comment;
};

struct Set {
  std::string name;
  bool map = false;  // a verdict map
  bool anonymous = false;
  std::vector<Type> key;
  bool interval = false, dynamic = false, timeout_flag = false, constant = false;
  uint64_t timeout_ns = 0;
  uint32_t size = 0;
  std::string comment;
  std::vector<Element> elems;
  int line = 0;
  // Lookup: exact keys by hash, ranges by a linear walk (kube-proxy's sets are all exact).
  boost::unordered_flat_map<Key, uint32_t, KeyHash> exact;
  std::vector<uint32_t> ranges;
  size_t key_len() const;
  /// The element holding k, or -1.
  int32_t find(const Key& k) const;
  void index();
};

struct Table {
  TableFamily family = TableFamily::Ip;
  std::string name;
  std::string label;  // "ip kube-proxy": what traces name the table by
  std::string comment;
  std::vector<Chain> chains;
  boost::unordered_flat_map<std::string, int32_t> chain_by_name;  // kube-proxy writes 100k's of chains
  std::vector<Set> sets;                                          // named and anonymous
  int line = 0;
  int32_t chain_index(std::string_view n) const;
  int32_t set_index(std::string_view n) const;
  bool matches(Family f) const { return family == TableFamily::Inet || (family == TableFamily::Ip) == (f == Family::V4); }
};

/// NFT_JUMP_STACK_SIZE: the walker's jump stack; a chain may sit at most kJumpStackSize - 1
/// jumps or gotos below its base chain (nft_chain_validate refuses deeper ones at load).
inline constexpr size_t kJumpStackSize = 16;

struct Ruleset {
  std::vector<std::unique_ptr<Table>> tables;  // stable addresses: traces hold views into them
  uint32_t rule_count = 0;
  Table* find(TableFamily f, std::string_view name);
};

/// Parses `nft -f` input (add/insert/flush/delete commands and `table { }` blocks) or
/// `nft list ruleset` output. Throws LoadError naming file:line. load_file also reads `nft -j list ruleset`
/// (json.hpp) when the file starts with '{'.
Ruleset load(std::string_view text, const std::string& file);
Ruleset load_file(const std::string& path);
/// Appends text to an existing ruleset (a second `nft -f`).
void load_into(Ruleset& rs, std::string_view text, const std::string& file);

/// `nft list ruleset` form. With handles, `# handle N` as `nft -a` prints.
std::string print(const Ruleset& rs, bool handles = false);
std::string rule_text(const Table& t, const Rule& r);
/// "accept", "goto service-...", "" for no verdict.
std::string verdict_text(const VerdictSpec& v);

/// Per-datapath state the rules change: counters and dynamically added set elements.
struct State {
  std::vector<uint64_t> pkts, bytes;
  // (table, set) -> key -> expiry (ns; UINT64_MAX without timeout)
  std::map<std::pair<const Table*, int32_t>, boost::unordered_flat_map<Key, uint64_t, KeyHash>> dyn;
  void reset(const Ruleset& rs) {
    pkts.assign(rs.rule_count, 0);
    bytes.assign(rs.rule_count, 0);
    dyn.clear();
  }
};

/// What the walk reports back about the rule that ended it.
struct Hit {
  const Table* table = nullptr;
  const Chain* chain = nullptr;
  uint32_t num = 0;  // rule position in the chain (1-based); rules+1 for the policy
  bool policy = false;
  std::string_view reject_with;
};

struct Env {
  const Node& node;
  Conntrack& ct;
  Chooser& choose;
  TraceSink& trace;
  Counters& ctr;
  State& state;
  Hit hit;
};

/// Runs one base chain for a packet of its family at hook h.
Verdict run_chain(const Table& t, const Chain& base, Hook h, Packet& p, Env& env) noexcept;

/// Named priorities (nft's "filter", "dstnat", ...) for a family and hook; nullopt when unknown.
std::optional<int> named_priority(std::string_view name, Hook h);

}  // namespace svcpath::nf::nft
