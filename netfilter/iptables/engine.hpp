#pragma once
// The one engine that evaluates iptables tables: ipt_do_table's walk (rules in order, jumps push,
// gotos don't, RETURN pops, the policy when the stack is empty), every match and target, and trace
// events numbered as the kernel's TRACE target numbers them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/counters.hpp"
#include "core/packet.hpp"
#include "core/rng.hpp"
#include "core/trace.hpp"
#include "core/verdict.hpp"
#include "netfilter/conntrack.hpp"
#include "netfilter/ipset/ipset.hpp"
#include "netfilter/node.hpp"
#include "netfilter/iptables/rules.hpp"

namespace svcpath::nf {

/// Mutable state the rules of one ruleset refer to, owned by a datapath.
struct RuleState {
  struct Recent {
    std::vector<uint64_t> stamps;  // ring of at most 20 (ip_pkt_list_tot)
    uint8_t next = 0;
    uint8_t ttl = 0;
    uint64_t lru = 0;  // last update order
    uint64_t newest() const;
  };
  struct AddrHash {
    size_t operator()(const Addr& a) const noexcept;
  };
  using RecentTable = boost::unordered_flat_map<Addr, Recent, AddrHash>;

  std::vector<uint64_t> slot;       // nth counters / limit credit (ns)
  std::vector<uint64_t> slot_time;  // limit: last refill time; 0 = not initialised
  std::vector<uint64_t> rule_pkts, rule_bytes;
  std::map<std::string, RecentTable, std::less<>> recent;
  std::map<std::string, uint64_t, std::less<>> nfacct;
  uint64_t recent_clock = 0;

  void reset(const Ruleset& rs);
};

/// Everything a table evaluation may read or change besides the packet.
struct EvalEnv {
  const Node& node;
  const IpSets* sets;
  SetChanges& set_changes;  // -j SET's additions and deletions
  Conntrack& ct;
  Chooser& choose;
  TraceSink& trace;
  Counters& ctr;
  RuleState& state;
  Family fam;
  bool linear = false;  // walk every rule instead of using the destination index (same results)
  // Set by run_table when a rule ends the walk with a verdict other than ACCEPT-by-policy.
  const Rule* hit_rule = nullptr;
  const Chain* hit_chain = nullptr;
  uint32_t hit_num = 0;
};

/// Resolves -m set names against the loaded sets (iptables-restore fails when a set is missing).
/// Throws LoadError naming the rule's line.
void resolve_sets(Ruleset& rs, const IpSets& sets, const std::string& file);

/// Evaluates one table's built-in chain for a hook. NAT targets set up bindings on the packet's
/// conntrack entry; the caller (the nat stage) applies them.
Verdict run_table(const Table& t, Hook h, Packet& p, EvalEnv& env) noexcept;

}  // namespace svcpath::nf
