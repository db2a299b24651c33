#pragma once
// One hook function and what it may touch: the kernel's nf_hookfn(priv, skb, state) with the
// per-netns state it reaches through nf_hook_state (conntrack, counters, the trace sink, the
// random source). iptables tables, nftables base chains, conntrack and IPVS are all Stages
// registered at (hook, priority); none of them sees the Datapath that runs them.
#include <climits>
#include <memory>
#include <string>
#include <string_view>

#include "core/counters.hpp"
#include "core/hook.hpp"
#include "core/packet.hpp"
#include "core/rng.hpp"
#include "core/trace.hpp"
#include "core/verdict.hpp"

namespace svcpath::nf {

class Node;
class Conntrack;

/// The kernel's hook priorities (nf_ip_hook_priorities) and where IPVS and the nat core sit.
namespace prio {
inline constexpr int CONNTRACK_DEFRAG = -400, RAW = -300, CONNTRACK = -200, MANGLE = -150, NAT_DST = -100, FILTER = 0,
                     SECURITY = 50, SECURITY_NFT = 150, NAT_SRC = 100, CONNTRACK_CONFIRM = INT_MAX;
}

/// Where the last terminal rule verdict came from, in the kernel TRACE's words: what an outcome's
/// "where" says and which ICMP error a REJECT sends. Views into the loaded ruleset.
struct RuleHit {
  std::string_view table;  // "filter", "ip kube-proxy"
  std::string_view chain;  // empty: no rule gave the verdict
  std::string_view kind;   // "rule", "policy", "return"
  uint32_t num = 0;
  std::string_view reject_with;  // the REJECT's --reject-with / nft reject type, when one rejected
  std::string where() const;     // "filter:INPUT:rule:3", "ip kube-proxy:filter-input:rule:2", or ""
};

/// What a hook function may read or change besides the packet.
struct HookContext {
  const Node& node;
  Conntrack& ct;
  Counters& ctr;
  TraceSink& sink;
  Chooser& chooser;
  RuleHit& hit;
  /// A stage that stole a packet at LOCAL_IN asks for it to be sent again from LOCAL_OUT (IPVS NAT).
  bool& reinject;
};

/// State kept between packets by something registered on a datapath (rule counters, dynamic sets),
/// saved and restored around --enumerate so that it leaves no trace.
class Stateful {
 public:
  virtual ~Stateful() = default;
  virtual std::shared_ptr<void> snapshot() const = 0;
  virtual void restore(const std::shared_ptr<void>& s) = 0;
};

/// What happens to a packet at one hook registration.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual Verdict run(Hook h, Packet& p, HookContext& ctx) noexcept = 0;
  virtual std::string name() const = 0;
  /// Stages with state of their own (IPVS, rule counters) save and restore it, so --enumerate
  /// leaves no trace.
  virtual std::shared_ptr<void> snapshot() const { return nullptr; }
  virtual void restore(const std::shared_ptr<void>&) {}
};

struct Registration {
  Hook hook;
  int priority;
  Stage* stage;
};

}  // namespace svcpath::nf
