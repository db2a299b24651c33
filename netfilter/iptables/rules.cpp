#include "netfilter/iptables/rules.hpp"

#include <algorithm>

namespace svcpath::nf {

bool IfaceMatch::matches(std::string_view ifname) const {
  if (!set) return true;
  bool eq = wildcard ? ifname.substr(0, name.size()) == name : ifname == name;
  return eq != inv;
}

namespace {
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;
}  // namespace

std::string_view match_name(const Match& m) {
  return std::visit(Overloaded{
                        [](const TcpMatch&) { return std::string_view("tcp"); },
                        [](const UdpMatch&) { return std::string_view("udp"); },
                        [](const SctpMatch&) { return std::string_view("sctp"); },
                        [](const DccpMatch&) { return std::string_view("dccp"); },
                        [](const MultiportMatch&) { return std::string_view("multiport"); },
                        [](const IcmpMatch& x) { return std::string_view(x.v6 ? "icmp6" : "icmp"); },
                        [](const CommentMatch&) { return std::string_view("comment"); },
                        [](const MarkMatch&) { return std::string_view("mark"); },
                        [](const ConnmarkMatch&) { return std::string_view("connmark"); },
                        [](const ConntrackMatch&) { return std::string_view("conntrack"); },
                        [](const StateMatch&) { return std::string_view("state"); },
                        [](const AddrtypeMatch&) { return std::string_view("addrtype"); },
                        [](const StatisticMatch&) { return std::string_view("statistic"); },
                        [](const RecentMatch&) { return std::string_view("recent"); },
                        [](const SetMatch&) { return std::string_view("set"); },
                        [](const IprangeMatch&) { return std::string_view("iprange"); },
                        [](const PhysdevMatch&) { return std::string_view("physdev"); },
                        [](const LimitMatch&) { return std::string_view("limit"); },
                        [](const NfacctMatch&) { return std::string_view("nfacct"); },
                        [](const RpfilterMatch&) { return std::string_view("rpfilter"); },
                        [](const SocketMatch&) { return std::string_view("socket"); },
                        [](const PolicyMatch&) { return std::string_view("policy"); },
                        [](const LengthMatch&) { return std::string_view("length"); },
                        [](const TtlMatch& x) { return std::string_view(x.hl ? "hl" : "ttl"); },
                        [](const PkttypeMatch&) { return std::string_view("pkttype"); },
                        [](const IpvsMatch&) { return std::string_view("ipvs"); },
                        [](const MacMatch&) { return std::string_view("mac"); },
                        [](const OwnerMatch&) { return std::string_view("owner"); },
                        [](const HashlimitMatch&) { return std::string_view("hashlimit"); },
                        [](const ConnlimitMatch&) { return std::string_view("connlimit"); },
                        [](const TimeMatch&) { return std::string_view("time"); },
                        [](const StringMatch&) { return std::string_view("string"); },
                        [](const HelperMatch&) { return std::string_view("helper"); },
                        [](const TosMatch&) { return std::string_view("tos"); },
                        [](const DscpMatch&) { return std::string_view("dscp"); },
                        [](const EcnMatch&) { return std::string_view("ecn"); },
                        [](const TcpmssMatch&) { return std::string_view("tcpmss"); },
                        [](const DevgroupMatch&) { return std::string_view("devgroup"); },
                        [](const CgroupMatch&) { return std::string_view("cgroup"); },
                        [](const CpuMatch&) { return std::string_view("cpu"); },
                        [](const QuotaMatch&) { return std::string_view("quota"); },
                        [](const U32Match&) { return std::string_view("u32"); },
                        [](const BpfMatch&) { return std::string_view("bpf"); },
                        [](const SpiMatch& x) { return std::string_view(x.name()); },
                        [](const FragMatch&) { return std::string_view("frag"); },
                        [](const Ipv6HeaderMatch&) { return std::string_view("ipv6header"); },
                        [](const OptsMatch& x) { return std::string_view(x.dst ? "dst" : "hbh"); },
                        [](const RtMatch&) { return std::string_view("rt"); },
                        [](const Ah6Match&) { return std::string_view("ah"); },
                    },
                    m);
}

std::string target_name(const Target& t) {
  return std::visit(Overloaded{
                        [](const NoTarget&) { return std::string(); },
                        [](const StandardTarget& s) {
                          switch (s.v) {
                            case StdVerdict::Accept: return std::string("ACCEPT");
                            case StdVerdict::Drop: return std::string("DROP");
                            case StdVerdict::Return: return std::string("RETURN");
                            case StdVerdict::Queue: return std::string("QUEUE");
                          }
                          return std::string();
                        },
                        [](const JumpTarget& j) { return j.chain; },
                        [](const RejectTarget&) { return std::string("REJECT"); },
                        [](const NatTarget& n) {
                          switch (n.kind) {
                            case NatTarget::Kind::Dnat: return std::string("DNAT");
                            case NatTarget::Kind::Snat: return std::string("SNAT");
                            case NatTarget::Kind::Masquerade: return std::string("MASQUERADE");
                            case NatTarget::Kind::Redirect: return std::string("REDIRECT");
                            case NatTarget::Kind::Netmap: return std::string("NETMAP");
                          }
                          return std::string();
                        },
                        [](const MarkTarget&) { return std::string("MARK"); },
                        [](const ConnmarkTarget&) { return std::string("CONNMARK"); },
                        [](const LogTarget&) { return std::string("LOG"); },
                        [](const NflogTarget&) { return std::string("NFLOG"); },
                        [](const TraceTarget&) { return std::string("TRACE"); },
                        [](const NotrackTarget&) { return std::string("NOTRACK"); },
                        [](const CtTarget&) { return std::string("CT"); },
                        [](const TcpmssTarget&) { return std::string("TCPMSS"); },
                        [](const TproxyTarget&) { return std::string("TPROXY"); },
                        [](const NfqueueTarget&) { return std::string("NFQUEUE"); },
                        [](const ChecksumTarget&) { return std::string("CHECKSUM"); },
                        [](const SetTarget&) { return std::string("SET"); },
                        [](const ClassifyTarget&) { return std::string("CLASSIFY"); },
                        [](const DscpTarget&) { return std::string("DSCP"); },
                        [](const TosTarget&) { return std::string("TOS"); },
                        [](const TeeTarget&) { return std::string("TEE"); },
                    },
                    t);
}

bool Rule::unconditional() const {
  return !src_set && !dst_set && !iif.set && !oif.set && !proto_set && !frag_set && matches.empty();
}

CtNeed ct_need(const Rule& r) {
  CtNeed need = CtNeed::None;
  auto at_least = [&](CtNeed n) { need = std::max(need, n); };
  for (auto& m : r.matches) {
    if (std::holds_alternative<ConntrackMatch>(m) || std::holds_alternative<StateMatch>(m) ||
        std::holds_alternative<ConnmarkMatch>(m) || std::holds_alternative<ConnlimitMatch>(m) ||
        std::holds_alternative<HelperMatch>(m))
      at_least(CtNeed::Conntrack);
    else if (std::holds_alternative<SocketMatch>(m)) at_least(CtNeed::Defrag);
  }
  if (std::holds_alternative<NatTarget>(r.target) || std::holds_alternative<ConnmarkTarget>(r.target))
    at_least(CtNeed::Conntrack);
  // CT --notrack returns before nf_ct_netns_get (xt_ct_tg_check); NOTRACK has no check at all.
  if (auto* ct = std::get_if<CtTarget>(&r.target); ct && !ct->notrack) at_least(CtNeed::Conntrack);
  if (std::holds_alternative<TproxyTarget>(r.target)) at_least(CtNeed::Defrag);
  return need;
}

int Table::find(std::string_view chain) const {
  for (size_t i = 0; i < chains.size(); ++i)
    if (chains[i].name == chain) return int(i);
  return -1;
}

const Table* Ruleset::table(TableId id) const {
  for (auto& t : tables)
    if (t.id == id) return &t;
  return nullptr;
}

Table* Ruleset::table(TableId id) {
  for (auto& t : tables)
    if (t.id == id) return &t;
  return nullptr;
}

}  // namespace svcpath::nf

namespace svcpath::nf {

namespace {
constexpr uint32_t kMinRun = 8;

bool dst_only(const Rule& r) { return r.dst_set && !r.dst_inv && r.dst.len == r.dst.addr.bits(); }
}  // namespace

uint32_t DstRun::next(const Addr& dst, uint32_t i) const {
  auto it = std::lower_bound(by_dst.begin(), by_dst.end(), std::pair<Addr, uint32_t>{dst, i});
  return it != by_dst.end() && it->first == dst ? it->second : end;
}

void index_chain(Chain& c) {
  c.runs.clear();
  c.run_of.assign(c.rules.size(), -1);
  uint32_t n = uint32_t(c.rules.size());
  for (uint32_t i = 0; i < n;) {
    if (!dst_only(c.rules[i])) {
      ++i;
      continue;
    }
    uint32_t j = i;
    while (j < n && dst_only(c.rules[j])) ++j;
    if (j - i >= kMinRun) {
      DstRun run;
      run.begin = i;
      run.end = j;
      for (uint32_t k = i; k < j; ++k) run.by_dst.push_back({c.rules[k].dst.addr, k});
      std::sort(run.by_dst.begin(), run.by_dst.end());
      for (uint32_t k = i; k < j; ++k) c.run_of[k] = int32_t(c.runs.size());
      c.runs.push_back(std::move(run));
    }
    i = j;
  }
}

}  // namespace svcpath::nf
