#pragma once
// A stage's answer for a packet (the kernel's NF_* verdicts), with the reason for a drop.
#include <cstdint>
#include <string_view>

namespace svcpath {

// Unsimulated: the packet reached something whose answer svcpath cannot know (a -m bpf program, an
// NFQUEUE listener's verdict): the outcome says so instead of guessing.
enum class VerdictKind : uint8_t { Accept, Drop, Stolen, Queue, Repeat, Unsimulated };

enum class DropReason : uint8_t {
  None,
  RuleDrop,       // -j DROP
  RuleReject,     // -j REJECT (an error went back)
  ChainPolicy,    // built-in chain policy DROP
  ForwardingOff,  // ip_forward = 0
  RpFilter,       // reverse-path filter
  MartianSource,  // a source the input route refuses (multicast, 0.0.0.0, 127/8, a local address...)
  MartianDest,    // a destination the input route refuses (0.0.0.0, 127/8 without route_localnet...)
  LocalnetOut,    // a 127/8 source leaving a non-loopback interface (route_localnet off)
  NoRoute,        // unreachable destination
  Blackhole,      // blackhole / prohibit route
  CtInsertClash,  // conntrack confirm found the tuple taken
  CtTableFull,
  NatNoAddress,  // MASQUERADE/REDIRECT with no address to use
  TproxyNoSocket,
  QueueNoListener,
  Ipvs,            // IPVS refused the packet
  IpvsNoDest,      // IPVS found the service but the scheduler gave no destination (ICMP unreachable)
  McastNotJoined,  // multicast to a group the receiving interface has not joined
  BeyondScope,     // a link-local source forwarded off its link (ip6_forward answers ICMPv6 beyond scope)
  HotDrop,         // a match (or ip6tables' -p) found a header missing or cut short: the table drops it
  FragHeld,        // a fragment held for reassembly (nf_defrag) whose other fragments never arrive
  FragInvalid,     // a fragment reassembly refuses (empty, or past 64 KiB)
};

std::string_view drop_reason_name(DropReason r);

struct Verdict {
  VerdictKind kind = VerdictKind::Accept;
  DropReason reason = DropReason::None;
  uint16_t queue = 0;
  static Verdict accept() { return {}; }
  static Verdict drop(DropReason r) { return {VerdictKind::Drop, r, 0}; }
};

}  // namespace svcpath
