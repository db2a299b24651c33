#include "core/trace.hpp"

namespace svcpath {

std::string_view trace_kind_name(TraceKind k) {
  switch (k) {
    case TraceKind::Rule: return "rule";
    case TraceKind::Return: return "return";
    case TraceKind::Policy: return "policy";
    case TraceKind::Conntrack: return "conntrack";
    case TraceKind::Nat: return "nat";
    case TraceKind::Route: return "route";
    case TraceKind::Ipvs: return "ipvs";
    case TraceKind::Verdict: return "verdict";
    case TraceKind::Note: return "note";
  }
  return "note";
}

}  // namespace svcpath

#include "core/verdict.hpp"

namespace svcpath {

std::string_view drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::None: return "none";
    case DropReason::RuleDrop: return "rule DROP";
    case DropReason::RuleReject: return "rule REJECT";
    case DropReason::ChainPolicy: return "chain policy DROP";
    case DropReason::ForwardingOff: return "forwarding disabled (net.ipv4.ip_forward=0)";
    case DropReason::RpFilter: return "reverse-path filter (rp_filter)";
    case DropReason::MartianSource: return "martian source";
    case DropReason::MartianDest: return "martian destination";
    case DropReason::McastNotJoined: return "multicast group not joined on the receiving interface";
    case DropReason::BeyondScope: return "link-local source beyond its scope";
    case DropReason::LocalnetOut: return "loopback source leaving a non-loopback interface (route_localnet=0)";
    case DropReason::NoRoute: return "no route to destination";
    case DropReason::Blackhole: return "blackhole/prohibit route";
    case DropReason::CtInsertClash: return "conntrack insert clash";
    case DropReason::CtTableFull: return "conntrack table full";
    case DropReason::NatNoAddress: return "NAT: no address on the interface";
    case DropReason::TproxyNoSocket: return "TPROXY: no transparent socket";
    case DropReason::QueueNoListener: return "NFQUEUE: no listener";
    case DropReason::Ipvs: return "IPVS";
    case DropReason::IpvsNoDest: return "IPVS: no destination available";
    case DropReason::HotDrop: return "hotdrop: a header the rule reads is missing or cut short";
    case DropReason::FragHeld: return "fragment held for reassembly (nf_defrag); the other fragments never arrive";
    case DropReason::FragInvalid: return "fragment refused by reassembly (empty, or past 64 KiB)";
  }
  return "unknown";
}

}  // namespace svcpath
