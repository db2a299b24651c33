#pragma once
// Trace events: what each stage did to a packet, in the kernel's TRACE vocabulary
// (table:chain:rule|return|policy:N). Building an event is guarded by TraceSink::enabled(), so the
// no-op sink costs one predictable branch on the fast path.
#include <string>
#include <string_view>
#include <vector>

#include "core/hook.hpp"
#include "core/tuple.hpp"

namespace svcpath {

enum class TraceKind : uint8_t {
  Rule,       // a rule matched (kernel "rule")
  Return,     // fell off / unconditional standard verdict in a user chain (kernel "return")
  Policy,     // built-in chain policy (kernel "policy")
  Conntrack,  // conntrack lookup/creation
  Nat,        // a NAT binding applied from conntrack (nat table not consulted)
  Route,      // routing decision
  Ipvs,       // an IPVS step
  Verdict,    // final outcome of a stage or of the packet
  Note,       // anything else worth showing
};

std::string_view trace_kind_name(TraceKind k);

struct TraceEvent {
  Hook hook = Hook::PreRouting;
  TraceKind kind = TraceKind::Note;
  std::string_view table;  // "nat", "filter", "conntrack", "routing", "ipvs"
  std::string_view chain;  // chain name (views into the immutable ruleset)
  uint32_t rulenum = 0;    // kernel numbering: rules from 1, the tail entry is n+1
  std::string target;      // target / verdict / short label
  std::string detail;      // human text (rule text for rules, reason for notes)
  std::string assumed;     // state a match took from the packet spec ("uid 0 gid 0 (uid=, gid=)")
  bool rewritten = false;
  bool answer = false;      // a step of the answer a REJECT sent (its reset or ICMP error), not of the packet
  FiveTuple before, after;  // set when rewritten
};

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual bool enabled() const { return false; }
  virtual void event(TraceEvent&&) {}
};

/// Discards everything; enabled() is false so callers skip building events.
class NullSink final : public TraceSink {};

/// Collects events in order.
class VectorSink final : public TraceSink {
 public:
  bool enabled() const override { return true; }
  void event(TraceEvent&& e) override { events.push_back(std::move(e)); }
  std::vector<TraceEvent> events;
};

}  // namespace svcpath
