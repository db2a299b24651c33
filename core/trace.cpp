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
