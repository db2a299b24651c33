#include "netfilter/iptables/engine.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/diag.hpp"
#include "core/hash.hpp"
#include "core/ipv6_ext.hpp"
#include "netfilter/iptables/iptables.hpp"

namespace svcpath::nf {

uint64_t RuleState::Recent::newest() const { return stamps.empty() ? 0 : stamps[(next + stamps.size() - 1) % stamps.size()]; }

size_t RuleState::AddrHash::operator()(const Addr& a) const noexcept {
  return size_t(Fnv1a{}.mix(a.b.data(), 16).mix(uint8_t(a.fam), 1).h);
}

void RuleState::reset(const Ruleset& rs) {
  slot.assign(rs.stat_slots, 0);
  slot_time.assign(rs.stat_slots, 0);
  rule_pkts.assign(rs.rule_count, 0);
  rule_bytes.assign(rs.rule_count, 0);
  recent.clear();
  nfacct.clear();
  recent_clock = 0;
}

void resolve_sets(Ruleset& rs, const IpSets& sets, const std::string& file) {
  Diagnostics d(file);
  auto resolve = [&](const Rule& r, const std::string& name, int& index) {
    index = sets.index_of(name);
    if (index < 0) return d.error(r.line, 0, fmt::format("Set {} doesn't exist (load it with --ipsets)", name));
    const IpSet& set = sets.at(index);
    if (set.type != SetType::ListSet && set.type != SetType::BitmapPort && set.family != rs.family)
      d.error(r.line, 0,
              fmt::format("set {} is family inet{}, the ruleset is IPv{}", name, set.family == Family::V4 ? "" : "6",
                          int(rs.family)));
  };
  for (auto& t : rs.tables)
    for (auto& c : t.chains)
      for (auto& r : c.rules) {
        for (auto& m : r.matches)
          if (auto* s = std::get_if<SetMatch>(&m)) resolve(r, s->name, s->set_index);
        if (auto* st = std::get_if<SetTarget>(&r.target))
          for (SetTarget::Ref* ref : {&st->add, &st->del, &st->map})
            if (ref->set()) resolve(r, ref->name, ref->set_index);
      }
  d.throw_if_errors();
}

namespace {

constexpr uint64_t kSec = 1'000'000'000ull;

const CtEntry* ct_of(const Packet& p, const EvalEnv& env) {
  if (!p.ct || p.ctinfo == CtInfo::Untracked || p.ctinfo == CtInfo::Invalid) return nullptr;
  return env.ct.get(p.ct);
}

// Without an entry (INVALID, or no conntrack) the state is INVALID, as xt_state sees it.
uint16_t state_bit(const Packet& p, const CtEntry* ct) {
  if (p.ctinfo == CtInfo::Untracked) return ctstate::UNTRACKED;
  return ct ? ct_state_bit(p.ctinfo) : ctstate::INVALID;
}

bool l4_ok(const Packet& p) { return !p.fragment; }

struct Ctx {
  Packet& p;
  EvalEnv& env;
  Hook hook;
  const char* unsim = nullptr;  // set by a match whose answer svcpath cannot know
  bool hotdrop = false;         // a match found the packet malformed: the table drops it (par->hotdrop)
};

bool eval(const TcpMatch& m, Ctx& c) {
  const Packet& p = c.p;
  if (!l4_ok(p) || p.t.proto != proto::TCP) return false;
  if (!m.sport.test(p.t.sport) || !m.dport.test(p.t.dport)) return false;
  if (m.flags_set && (((p.tcp_flags & m.flg_mask) == m.flg_cmp) == m.flags_inv)) return false;
  if (m.option_set && !m.option_inv) return false;  // TCP options are not modelled: none present
  return true;
}
bool eval(const UdpMatch& m, Ctx& c) { return l4_ok(c.p) && m.sport.test(c.p.t.sport) && m.dport.test(c.p.t.dport); }
bool eval(const SctpMatch& m, Ctx& c) { return l4_ok(c.p) && m.sport.test(c.p.t.sport) && m.dport.test(c.p.t.dport); }
bool eval(const DccpMatch&, Ctx& c) {
  // The rule demands -p dccp; svcpath's packets carry no DCCP header to test.
  c.unsim = "DCCP ports, types and options are not simulated";
  return false;
}
bool eval(const MultiportMatch& m, Ctx& c) {
  if (!l4_ok(c.p)) return false;
  bool hit = false;
  for (auto& r : m.ports) {
    if (m.dir != MultiportMatch::Dir::Dst && r.contains(c.p.t.sport)) hit = true;
    if (m.dir != MultiportMatch::Dir::Src && r.contains(c.p.t.dport)) hit = true;
  }
  return hit != m.inv;
}
bool eval(const IcmpMatch& m, Ctx& c) {
  if (!l4_ok(c.p) || !c.p.is_icmp()) return false;
  bool hit = m.any || (c.p.icmp_type() == m.type && c.p.icmp_code() >= m.code_lo && c.p.icmp_code() <= m.code_hi);
  return hit != m.inv;
}
bool eval(const CommentMatch&, Ctx&) { return true; }
bool eval(const MarkMatch& m, Ctx& c) { return ((c.p.mark & m.mask) == m.value) != m.inv; }
bool eval(const ConnmarkMatch& m, Ctx& c) {
  const CtEntry* ct = ct_of(c.p, c.env);
  if (!ct) return false;
  return ((ct->mark & m.mask) == m.value) != m.inv;
}
bool eval(const ConntrackMatch& m, Ctx& c) {
  const CtEntry* ct = ct_of(c.p, c.env);
  if (m.state_set) {
    uint16_t bit = state_bit(c.p, ct);
    if (ct) {
      if (ct->status & ctstatus::SRC_NAT) bit |= ctstate::SNAT;
      if (ct->status & ctstatus::DST_NAT) bit |= ctstate::DNAT;
    }
    if (((m.state_mask & bit) != 0) == m.state_inv) return false;
  }
  if (!ct) return m.state_set;  // xt_conntrack: with no entry only the state test can pass
  if (m.dir_set && ((c.p.dir == CtDir::Reply) != m.dir_reply)) return false;
  if (m.proto_set && ((ct->orig.proto == m.l4proto) == m.proto_inv)) return false;
  auto addr = [](const ConntrackMatch::AddrSpec& a, const Addr& v) { return !a.set || (a.p.contains(v) != a.inv); };
  if (!addr(m.origsrc, ct->orig.src) || !addr(m.origdst, ct->orig.dst) || !addr(m.replsrc, ct->reply.src) ||
      !addr(m.repldst, ct->reply.dst))
    return false;
  if (!m.origsrcport.test(ct->orig.sport) || !m.origdstport.test(ct->orig.dport) || !m.replsrcport.test(ct->reply.sport) ||
      !m.repldstport.test(ct->reply.dport))
    return false;
  if (m.status_set && (((ct->status & m.status_mask) != 0) == m.status_inv)) return false;
  if (m.expire_set) {
    uint64_t left = ct->expires_ns > c.p.ts_ns ? (ct->expires_ns - c.p.ts_ns) / kSec : 0;
    if ((left >= m.expire_lo && left <= m.expire_hi) == m.expire_inv) return false;
  }
  return true;
}
bool eval(const StateMatch& m, Ctx& c) { return ((m.state_mask & state_bit(c.p, ct_of(c.p, c.env))) != 0) != m.inv; }
bool eval(const AddrtypeMatch& m, Ctx& c) {
  const Node& n = c.env.node;
  // xt_addrtype uses one device for both tests: the input one, else the output one.
  int16_t dev = m.limit_in ? c.p.iif : m.limit_out ? c.p.oif : kNoIf;
  if (m.src && (((n.addr_type(c.p.t.src, dev) & m.src) != 0) == m.src_inv)) return false;
  if (m.dst && (((n.addr_type(c.p.t.dst, dev) & m.dst) != 0) == m.dst_inv)) return false;
  return true;
}
bool eval(const StatisticMatch& m, Ctx& c) {
  if (!m.nth) return c.env.choose.bernoulli31(m.p31) != m.inv;
  // The kernel keeps one counter per rule; the i-th packet (from 0) to reach it matches when
  // i % every == packet (checked against a real kernel).
  uint64_t i = c.env.state.slot[m.slot]++;
  return ((i % (uint64_t(m.every) + 1)) == m.packet) != m.inv;
}
bool eval(const RecentMatch& m, Ctx& c) {
  auto& table = c.env.state.recent[m.name];
  Addr a = (m.rdest ? c.p.t.dst : c.p.t.src) & m.mask;
  uint64_t now = c.p.ts_ns;
  bool ret = m.inv;
  auto it = table.find(a);
  if (it != table.end() && m.rttl && it->second.ttl != c.p.ttl) it = table.end();
  auto update = [&](RuleState::Recent& e) {
    if (e.stamps.size() < 20) {
      e.stamps.push_back(now);
      e.next = uint8_t(e.stamps.size() % 20);
    } else {
      e.stamps[e.next] = now;
      e.next = uint8_t((e.next + 1) % 20);
    }
    e.lru = ++c.env.state.recent_clock;
    e.ttl = c.p.ttl;
  };
  if (it == table.end()) {
    if (!(m.mode & RecentMatch::Set)) return ret;
    if (table.size() >= 200) {  // ip_list_tot: the least recently updated entry makes room
      auto oldest = std::min_element(table.begin(), table.end(), [](auto& x, auto& y) { return x.second.lru < y.second.lru; });
      table.erase(oldest);
    }
    RuleState::Recent e;
    update(e);
    table.emplace(a, std::move(e));
    return !ret;
  }
  RuleState::Recent& e = it->second;
  if (m.mode & RecentMatch::Set) {
    ret = !ret;
  } else if (m.mode & RecentMatch::Remove) {
    table.erase(it);
    return !ret;
  } else {
    uint64_t window = uint64_t(m.seconds) * kSec;
    uint64_t since = now > window ? now - window : 0;
    unsigned hits = 0;
    for (uint64_t s : e.stamps) {
      if (m.seconds && s < since) continue;
      if (!m.hitcount || ++hits >= m.hitcount) {
        ret = !ret;
        break;
      }
    }
    if (m.reap) {
      // recent_entry_reap: only the least recently updated entry, and not the one being updated.
      auto oldest = std::min_element(table.begin(), table.end(), [](auto& x, auto& y) { return x.second.lru < y.second.lru; });
      bool updating = (m.mode & RecentMatch::Update) && ret;
      if (oldest != table.end() && !(oldest->first == a && updating) && oldest->second.newest() < since) {
        bool self = oldest->first == a;
        table.erase(oldest);
        if (self) return ret;
      }
    }
  }
  if ((m.mode & RecentMatch::Set) || ((m.mode & RecentMatch::Update) && ret)) update(table.find(a)->second);
  return ret;
}
bool eval(const SetMatch& m, Ctx& c) {
  ++c.env.ctr.set_lookups;
  bool hit = c.env.sets &&
             ipset_test(*c.env.sets, &c.env.set_changes, m.set_index, c.p, {m.src_flags, m.dims}, m.return_nomatch, nullptr);
  return hit != m.inv;
}
bool eval(const IprangeMatch& m, Ctx& c) {
  auto in = [](const Addr& a, const Addr& lo, const Addr& hi) { return a.fam == lo.fam && !(a < lo) && !(hi < a); };
  if (m.src_set && in(c.p.t.src, m.src_lo, m.src_hi) == m.src_inv) return false;
  if (m.dst_set && in(c.p.t.dst, m.dst_lo, m.dst_hi) == m.dst_inv) return false;
  return true;
}
bool eval(const PhysdevMatch& m, Ctx& c) {
  using P = PhysdevMatch;
  auto on = [&](uint8_t bit) { return (m.bitmask & bit) != 0; };
  auto inv = [&](uint8_t bit) { return (m.invert & bit) != 0; };
  bool bridged_info = c.p.phys_in != kNoIf;
  if (!bridged_info) {
    for (uint8_t bit : {P::IsBridged, P::IsIn, P::IsOut, P::In, P::Out})
      if (on(bit) && !inv(bit)) return false;
    return true;
  }
  std::string_view in = c.env.node.ifname(c.p.phys_in);
  std::string_view out = c.env.node.ifname(c.p.phys_out);
  bool has_out = c.p.phys_out != kNoIf;
  if (on(P::IsBridged) && (has_out == inv(P::IsBridged))) return false;
  if (on(P::IsIn) && (in.empty() != inv(P::IsIn))) return false;
  if (on(P::IsOut) && (!has_out != inv(P::IsOut))) return false;
  if (on(P::In) && !in.empty()) {
    IfaceMatch im = m.in;
    im.inv = false;
    if (im.matches(in) == inv(P::In)) return false;
  }
  if (!on(P::Out)) return true;
  if (!has_out) return false;
  IfaceMatch om = m.out;
  om.inv = false;
  return om.matches(out) != inv(P::Out);
}
bool eval(const LimitMatch& m, Ctx& c) {
  // Token bucket in nanoseconds: a packet costs avg/10000 s; the bucket holds burst packets.
  uint64_t cost = uint64_t(m.avg) * (kSec / 10000);
  uint64_t cap = cost * m.burst;
  uint64_t& credit = c.env.state.slot[m.slot];
  uint64_t& last = c.env.state.slot_time[m.slot];
  uint64_t now = c.p.ts_ns + 1;  // +1 keeps 0 meaning "never used"
  if (last == 0) credit = cap;
  else if (now > last) credit = std::min(cap, credit + (now - last));
  last = now;
  if (credit >= cost) {
    credit -= cost;
    return true;
  }
  return false;
}
bool eval(const NfacctMatch& m, Ctx& c) {
  auto it = c.env.state.nfacct.find(m.name);
  if (it == c.env.state.nfacct.end()) it = c.env.state.nfacct.emplace(m.name, 0).first;
  ++it->second;
  return true;
}
bool eval(const RpfilterMatch& m, Ctx& c) {
  const Node& n = c.env.node;
  if (c.p.looped || (c.p.iif >= 0 && n.iface(c.p.iif).loopback)) return !m.invert;  // rpfilter_is_loopback
  const Addr& s = c.p.t.src;
  const Addr& d = c.p.t.dst;
  // rpfilter_mt: a 0/8 source passes only towards limited broadcast or 224.0.0.0/24 (DHCP, IGMP);
  // anything else is looked up in reverse from the packet's source, as from lo.
  if (s.is_v4() && (s.host4() >> 24) == 0 && (d.is_limited_broadcast() || (d.is_v4() && (d.host4() >> 8) == 0xe00000)))
    return !m.invert;
  Node::RouteKey key{d, "lo", m.validmark ? c.p.mark : 0};
  if (d.is_multicast() || d.is_limited_broadcast() || (d.is_v4() && (d.host4() >> 24) == 0)) key.src = Addr::any(d.fam);
  auto r = n.lookup(s, &key);
  bool ok;
  if (r.type == RouteType::Unicast) ok = m.loose || r.oif == c.p.iif;
  else ok = m.accept_local && r.type == RouteType::Local;
  return ok != m.invert;
}
bool eval(const SocketMatch& m, Ctx& c) {
  for (auto& s : c.env.node.sockets) {
    if (s.proto != c.p.t.proto || s.port != c.p.t.dport) continue;
    bool wild = s.addr.is_unspecified();
    if (wild && m.nowildcard) continue;
    if (!wild && s.addr != c.p.t.dst) continue;
    if (m.transparent && !s.transparent) continue;
    return true;
  }
  return false;
}
bool eval(const PolicyMatch& m, Ctx&) { return !m.ipsec; }  // no IPsec state exists on the node
bool eval(const LengthMatch& m, Ctx& c) { return (c.p.len >= m.lo && c.p.len <= m.hi) != m.inv; }
bool eval(const TtlMatch& m, Ctx& c) {
  switch (m.op) {
    case TtlMatch::Op::Eq: return c.p.ttl == m.value;
    case TtlMatch::Op::Ne: return c.p.ttl != m.value;
    case TtlMatch::Op::Lt: return c.p.ttl < m.value;
    case TtlMatch::Op::Gt: return c.p.ttl > m.value;
  }
  return false;
}
bool eval(const PkttypeMatch& m, Ctx& c) { return (c.p.pkt_type == m.type) != m.inv; }
bool eval(const IpvsMatch& m, Ctx& c) {
  if (m.ipvs_set && (c.p.ipvs_property == m.ipvs_inv)) return false;
  if (m.vdir_set) {
    if (!c.p.ipvs_property) return false;
    if ((c.p.dir == CtDir::Reply) != m.vdir_reply ? !m.vdir_inv : m.vdir_inv) return false;
  }
  return true;
}

// ------------------------------------------------ matches on state the packet spec assumes
bool eval(const MacMatch& m, Ctx& c) {
  // xt_mac: no Ethernet header (loopback) never matches, inverted or not.
  if (c.p.iif < 0 || c.env.node.iface(c.p.iif).loopback) return false;
  return std::equal(m.mac, m.mac + 6, c.p.src_mac) != m.inv;
}
bool eval(const OwnerMatch& m, Ctx& c) {
  const Packet& p = c.p;
  // xt_owner: without a socket only a match whose every option is inverted passes.
  if (!p.local_out || (p.assume & assume::NoSocket)) return (m.match ^ m.invert) == 0;
  if (m.match & m.invert & OwnerMatch::SocketExists) return false;
  if ((m.match & OwnerMatch::Uid) && ((p.uid >= m.uid_lo && p.uid <= m.uid_hi) == bool(m.invert & OwnerMatch::Uid))) return false;
  // Supplementary groups are not modelled: the socket owner has none.
  if ((m.match & OwnerMatch::Gid) && ((p.gid >= m.gid_lo && p.gid <= m.gid_hi) == bool(m.invert & OwnerMatch::Gid))) return false;
  return true;
}
bool eval(const HashlimitMatch& m, Ctx& c) { return bool(c.p.assume & assume::OverLimit) == m.above; }
bool eval(const ConnlimitMatch& m, Ctx& c) { return (c.p.conns > m.limit) != m.upto; }
bool eval(const TimeMatch& m, Ctx& c) {
  // xt_time with the kernel's time zone taken as UTC (--kerneltz then changes nothing).
  int64_t stamp = int64_t(c.p.wall) + int64_t(c.p.ts_ns / kSec);
  if (stamp < m.date_start || stamp > m.date_stop) return false;
  uint32_t tod = uint32_t(stamp % 86400);
  if (m.daytime_start < m.daytime_stop) {
    if (tod < m.daytime_start || tod > m.daytime_stop) return false;
  } else {
    if (tod < m.daytime_start && tod > m.daytime_stop) return false;
    if (m.contiguous && tod <= m.daytime_stop) stamp -= 86400;
  }
  int64_t days = stamp / 86400;
  unsigned wday = unsigned((days + 3) % 7) + 1;  // 1970-01-01 was a Thursday (ISO 4)
  if (!(m.weekdays & (1u << wday))) return false;
  if (m.monthdays != 0xfffffffe) {
    int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    unsigned mday = unsigned(doy - (153 * mp + 2) / 5 + 1);
    if (!(m.monthdays & (1u << mday))) return false;
  }
  return true;
}
bool eval(const StringMatch& m, Ctx& c) { return bool(c.p.assume & assume::StringFound) != m.inv; }
bool eval(const HelperMatch& m, Ctx&) { return m.inv; }  // no expected (helper-created) connections exist
bool eval(const TosMatch& m, Ctx& c) { return ((c.p.tos & m.mask) == m.value) != m.inv; }
bool eval(const DscpMatch& m, Ctx& c) { return ((c.p.tos >> 2) == m.dscp) != m.inv; }
bool eval(const EcnMatch& m, Ctx& c) {
  auto inv = [&](uint8_t bit) { return (m.invert & bit) != 0; };
  if ((m.ops & EcnMatch::IpEct) && (((c.p.tos & 3) == m.ect) == inv(EcnMatch::IpEct))) return false;
  if (m.ops & (EcnMatch::TcpEce | EcnMatch::TcpCwr)) {
    if (!l4_ok(c.p) || c.p.t.proto != proto::TCP) return false;
    if ((m.ops & EcnMatch::TcpEce) && (bool(c.p.tcp_flags & tcpflag::ECE) == inv(EcnMatch::TcpEce))) return false;
    if ((m.ops & EcnMatch::TcpCwr) && (bool(c.p.tcp_flags & tcpflag::CWR) == inv(EcnMatch::TcpCwr))) return false;
  }
  return true;
}
bool eval(const TcpmssMatch& m, Ctx& c) {
  if (!l4_ok(c.p) || c.p.t.proto != proto::TCP) return false;
  if (c.p.mss == 0) return m.inv;  // no MSS option: xt_tcpmss returns the invert flag
  return (c.p.mss >= m.lo && c.p.mss <= m.hi) != m.inv;
}
// xt_esp / xt_ah (IPv4): the header is the L4 one, absent from a later fragment. IPcomp's CPI is
// not in the packet spec.
bool eval(const SpiMatch& m, Ctx& c) {
  if (m.kind == SpiMatch::Ipcomp) {
    c.unsim = "the CPI of IPcomp packets is not simulated";
    return false;
  }
  return !c.p.fragment && ((c.p.spi >= m.lo && c.p.spi <= m.hi) != m.inv);
}

// The IPv6 extension-header matches read the packet's headers as the kernel's do: found with
// ipv6_find_hdr, a header cut short by the packet's end is a hotdrop, a missing one no match.
std::optional<uint32_t> be_at(const Packet& p, unsigned off, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; ++i) {
    auto b = ext6::byte_at(p, off + i);
    if (!b) return std::nullopt;
    v = v << 8 | *b;
  }
  return v;
}

// The header of type t, or 0 (no match; hotdrop set when the walk hit the packet's end).
unsigned find_ext(Ctx& c, uint8_t t) {
  unsigned off = 0;
  int r = ext6::find_hdr(c.p, t, &off);
  if (r >= 0) return off;
  if (r != ext6::kNoEnt) c.hotdrop = true;
  return 0;
}

bool eval(const FragMatch& m, Ctx& c) {  // ip6t_frag: --fraglen is never tested
  unsigned off = find_ext(c, ext6::FRAGMENT);
  if (!off) return false;
  auto res = be_at(c.p, off + 1, 1), fo = be_at(c.p, off + 2, 2), id = be_at(c.p, off + 4, 4);
  if (!res || !fo || !id) return c.hotdrop = true, false;
  return ((*id >= m.id_lo && *id <= m.id_hi) != m.id_inv) && !(m.res && (*res || (*fo & 6))) && !(m.first && (*fo & ~7u)) &&
         !(m.more && !(*fo & 1)) && !(m.last && (*fo & 1));
}

bool eval(const OptsMatch& m, Ctx& c) {  // ip6t_hbh: -m hbh and -m dst
  const Packet& p = c.p;
  unsigned ptr = find_ext(c, m.dst ? ext6::DEST : ext6::HOP);
  if (!ptr) return false;
  auto hl = be_at(p, ptr + 1, 1);
  if (!hl) return c.hotdrop = true, false;
  unsigned hdrlen = (*hl + 1) << 3;
  if (p.len - ptr < hdrlen) return false;
  bool ret = !m.len_set || ((m.len == hdrlen) != m.len_inv);
  if (!m.opts_set) return ret;
  ptr += 2;
  hdrlen -= 2;
  unsigned k = 0;
  // Strict: the header's first options must be the listed ones, in order (LEN 0xff: any length).
  for (; k < m.nopts; ++k) {
    if (hdrlen < 1) break;
    auto tp = be_at(p, ptr, 1);
    if (!tp) break;
    if (*tp != m.opts[k] >> 8) return false;
    unsigned optlen = 1;
    if (*tp) {
      if (hdrlen < 2) break;
      auto lp = be_at(p, ptr + 1, 1);
      if (!lp) break;
      unsigned want = m.opts[k] & 0xff;
      if (want != 0xff && want != *lp) return false;
      optlen = *lp + 2;
    }
    if ((ptr > p.len - optlen || hdrlen < optlen) && k + 1 < m.nopts) break;
    ptr += optlen;
    hdrlen -= optlen;
  }
  return k == m.nopts && ret;
}

bool eval(const RtMatch& m, Ctx& c) {  // ip6t_rt
  const Packet& p = c.p;
  unsigned ptr = find_ext(c, ext6::ROUTING);
  if (!ptr) return false;
  auto hl = be_at(p, ptr + 1, 1), type = be_at(p, ptr + 2, 1), left = be_at(p, ptr + 3, 1);
  if (!hl || !type || !left) return c.hotdrop = true, false;
  unsigned hdrlen = (*hl + 1) << 3;
  if (p.len - ptr < hdrlen) return false;
  bool ret = ((*left >= m.left_lo && *left <= m.left_hi) != m.left_inv) && (!m.len_set || ((m.len == hdrlen) != m.len_inv)) &&
             (!m.type_set || ((m.type == *type) != m.type_inv));
  if (ret && m.res) ret = be_at(p, ptr + 4, 4).value_or(1) == 0;
  if (!m.addrs_set) return ret;
  unsigned slots = (hdrlen - 8) / 16, n = unsigned(m.addrs.size());
  if (n > slots) return false;
  auto addr_is = [&](unsigned slot, const Addr& a) {
    for (unsigned b = 0; b < 16; ++b)
      if (be_at(p, ptr + 8 + 16 * slot + b, 1) != a.b[b]) return false;
    return true;
  };
  if (m.not_strict) {  // the listed addresses appear in this order, others may sit between them
    unsigned i = 0;
    for (unsigned k = 0; k < slots && i < n; ++k)
      if (addr_is(k, m.addrs[i])) ++i;
    return i == n && ret;
  }
  unsigned k = 0;
  while (k < n && addr_is(k, m.addrs[k])) ++k;
  return k == n && k == slots && ret;
}

bool eval(const Ah6Match& m, Ctx& c) {  // ip6t_ah
  unsigned off = find_ext(c, ext6::AUTH);
  if (!off) return false;
  auto hl = be_at(c.p, off + 1, 1), res = be_at(c.p, off + 2, 2), spi = be_at(c.p, off + 4, 4);
  if (!be_at(c.p, off + 8, 4)) return c.hotdrop = true, false;
  unsigned hdrlen = (*hl + 2) << 2;
  return ((*spi >= m.spi_lo && *spi <= m.spi_hi) != m.spi_inv) && (!m.len || ((m.len == hdrlen) != m.len_inv)) &&
         !(m.res && *res);
}

bool eval(const Ipv6HeaderMatch& m, Ctx& c) {  // ip6t_ipv6header: which headers the chain holds
  using M = Ipv6HeaderMatch;
  const Packet& p = c.p;
  uint8_t nh = ext6::first_header(p);
  unsigned ptr = 40;
  int len = int(p.len) - 40;
  uint8_t seen = 0;
  while (ext6::is_ext(nh) || nh == ext6::ESP) {
    if (nh == ext6::NONE) {
      seen |= M::None;
      break;
    }
    if (len < 2) return false;
    if (nh == ext6::ESP) {
      seen |= M::Esp;
      break;
    }
    auto next = be_at(p, ptr, 1), hl = be_at(p, ptr + 1, 1);
    if (!next || !hl) return c.hotdrop = true, false;
    int hdrlen = nh == ext6::FRAGMENT ? 8 : nh == ext6::AUTH ? (*hl + 2) << 2 : (*hl + 1) << 3;
    seen |= nh == ext6::HOP        ? M::Hop
            : nh == ext6::ROUTING  ? M::Route
            : nh == ext6::FRAGMENT ? M::Frag
            : nh == ext6::AUTH     ? M::Ah
                                   : M::Dst;
    nh = uint8_t(*next);
    len -= hdrlen;
    ptr += unsigned(hdrlen);
    if (ptr > p.len) break;
  }
  if (nh != ext6::NONE && nh != ext6::ESP) seen |= M::Proto;
  uint8_t inv = m.inv ? 0xff : 0;
  if (m.soft) return !((seen ^ m.flags ^ inv) & m.flags);
  return m.inv ? seen != m.flags : seen == m.flags;
}
bool eval(const DevgroupMatch& m, Ctx& c) {
  const Node& n = c.env.node;
  auto group = [&](int16_t i) { return i >= 0 ? n.iface(i).group : 0u; };
  if ((m.flags & DevgroupMatch::Src) && ((((group(c.p.iif) ^ m.src) & m.src_mask) != 0) != bool(m.flags & DevgroupMatch::InvSrc)))
    return false;
  if ((m.flags & DevgroupMatch::Dst) && ((((group(c.p.oif) ^ m.dst) & m.dst_mask) != 0) != bool(m.flags & DevgroupMatch::InvDst)))
    return false;
  return true;
}
bool eval(const CgroupMatch& m, Ctx& c) {
  if (!c.p.local_out || (c.p.assume & assume::NoSocket)) return false;
  if (!m.path.empty()) {
    c.unsim = "cgroup --path: the sending socket's cgroup is not simulated";
    return false;
  }
  return (c.p.classid == m.classid) != m.inv;
}
bool eval(const CpuMatch& m, Ctx& c) { return (c.p.cpu == m.cpu) != m.inv; }
bool eval(const QuotaMatch& m, Ctx& c) {
  // xt_quota: bytes left start at --quota (slot_time marks the slot as started).
  uint64_t& left = c.env.state.slot[m.slot];
  if (!c.env.state.slot_time[m.slot]) left = m.quota, c.env.state.slot_time[m.slot] = 1;
  if (left >= c.p.len) {
    left -= c.p.len;
    return !m.inv;
  }
  left = 0;
  return m.inv;
}
bool eval(const U32Match&, Ctx& c) {
  c.unsim = "u32 tests on raw packet bytes are not simulated";
  return false;
}
bool eval(const BpfMatch&, Ctx& c) {
  c.unsim = "bpf bytecode is not run";
  return false;
}

bool ip_part(const Rule& r, const Packet& p, const Node& n, bool& hotdrop) {
  if (r.src_set && (r.src.contains(p.t.src) == r.src_inv)) return false;
  if (r.dst_set && (r.dst.contains(p.t.dst) == r.dst_inv)) return false;
  if (r.iif.set && !r.iif.matches(n.ifname(p.iif))) return false;
  if (r.oif.set && !r.oif.matches(n.ifname(p.oif))) return false;
  if (r.proto_set && p.ext_len) {
    // ip6_packet_match: the protocol is what ipv6_find_hdr finds behind the extension headers; a
    // later fragment whose next header is itself an extension header has none, a hotdrop.
    unsigned off = 0;
    uint16_t fragoff = 0;
    int pr = ext6::find_hdr(p, -1, &off, &fragoff);
    if (pr < 0) return hotdrop = fragoff == 0, false;
    return (pr == r.proto) != r.proto_inv;
  }
  if (r.proto_set && ((p.t.proto == r.proto) == r.proto_inv)) return false;
  if (r.frag_set && (p.fragment == r.frag_inv)) return false;
  return true;
}

// What the rule's matches assumed about state the packet spec sets (the trace event's assumed field).
std::string assumed(const Rule& r, const Packet& p) {
  std::string o;
  auto add = [&](std::string s) { o += (o.empty() ? "" : ", ") + s; };
  for (auto& m : r.matches) {
    if (std::holds_alternative<MacMatch>(m))
      add(fmt::format("source MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} (mac=)", p.src_mac[0], p.src_mac[1], p.src_mac[2],
                      p.src_mac[3], p.src_mac[4], p.src_mac[5]));
    else if (std::holds_alternative<OwnerMatch>(m))
      add((p.assume & assume::NoSocket) ? std::string("no socket (nosock)")
                                        : fmt::format("uid {} gid {} (uid=, gid=)", p.uid, p.gid));
    else if (std::holds_alternative<HashlimitMatch>(m))
      add((p.assume & assume::OverLimit) ? "over the hashlimit rate (hashlimit=over)" : "within the hashlimit rate (hashlimit=)");
    else if (std::holds_alternative<ConnlimitMatch>(m)) add(fmt::format("{} connections (conns=)", p.conns));
    else if (std::holds_alternative<TimeMatch>(m)) {
      uint64_t t = p.wall + p.ts_ns / kSec;
      add(fmt::format("time {} UTC (time=)", t));
    } else if (std::holds_alternative<StringMatch>(m))
      add((p.assume & assume::StringFound) ? "the payload holds the string (string=found)"
                                           : "the payload lacks the string (string=)");
    else if (std::holds_alternative<CpuMatch>(m)) add(fmt::format("CPU {} (cpu=)", p.cpu));
    else if (std::holds_alternative<CgroupMatch>(m)) add(fmt::format("net_cls classid {} (classid=)", p.classid));
    else if (std::holds_alternative<TcpmssMatch>(m)) add(fmt::format("MSS option {} (mss=)", p.mss));
  }
  return o;
}

// The label is a string_view or a callable making one: text is built only when a sink wants it,
// so an untraced walk copies no chain name and formats nothing.
template <class Label>
void trace_rule(Ctx& c, const Table& t, const Chain& ch, const Rule* r, uint32_t num, TraceKind kind, Label&& target) {
  if (!c.env.trace.enabled()) return;
  TraceEvent e;
  e.hook = c.hook;
  e.kind = kind;
  e.table = table_name(t.id);
  e.chain = ch.name;
  e.rulenum = num;
  if constexpr (std::is_invocable_v<Label>) e.target = target();
  else e.target = std::string(std::string_view(target));
  if (r) e.detail = rule_text(ch, *r, c.env.fam), e.assumed = assumed(*r, c.p);
  c.env.trace.event(std::move(e));
}

// What a SET target did, for the trace: the element, and why nothing changed when nothing did.
void note_set_change(Ctx& c, const char* op, const std::string& name, const SetChange& r) {
  if (!c.env.trace.enabled()) return;
  TraceEvent e;
  e.hook = c.hook;
  e.kind = TraceKind::Note;
  e.table = "SET";
  bool add = op[0] == 'a';
  if (r.set_index < 0) {
    e.detail = fmt::format("the packet gives no element for set {}", name);
  } else {
    const IpSet& s = c.env.sets->at(r.set_index);
    std::string elem = element_text(s, r.key);
    e.detail = r.done      ? fmt::format("{} {} {} {}", add ? (r.present ? "refreshed" : "added") : "deleted", elem,
                                    add ? (r.present ? "in" : "to") : "from", s.name)
               : r.present ? fmt::format("{} is already in {}", elem, s.name)
               : add       ? fmt::format("{} not added: set {} is full (maxelem {})", elem, s.name, s.maxelem)
                           : fmt::format("{} is not in {}", elem, s.name);
  }
  c.env.trace.event(std::move(e));
}

// NF_QUEUE: a listener's verdict cannot be simulated; with none running, nf_queue fails and the
// packet is dropped, or with --queue-bypass accepted by this table (nf_hook_slow goes on).
Verdict queue_verdict(const Node& n, uint16_t num, bool bypass) {
  if (n.nfqueue == Node::QueueListener::Unknown) return {VerdictKind::Unsimulated, DropReason::None, num};
  if (bypass) return Verdict::accept();
  return {VerdictKind::Drop, DropReason::QueueNoListener, num};
}

// Runs a non-standard target. Returns true with *v set when the walk ends here.
bool run_target(const Rule& r, Ctx& c, Verdict* v) {
  Packet& p = c.p;
  EvalEnv& env = c.env;
  return std::visit(
      [&](const auto& tg) -> bool {
        using T = std::decay_t<decltype(tg)>;
        if constexpr (std::is_same_v<T, RejectTarget>) {
          *v = Verdict::drop(DropReason::RuleReject);
          return true;
        } else if constexpr (std::is_same_v<T, NatTarget>) {
          *v = nat_target(tg, c.hook, p, env.node, env.ct, env.choose);
          return true;
        } else if constexpr (std::is_same_v<T, MarkTarget>) {
          p.mark = (p.mark & ~tg.mask) ^ tg.value;
          return false;
        } else if constexpr (std::is_same_v<T, ConnmarkTarget>) {
          CtEntry* e = p.ct ? env.ct.get(p.ct) : nullptr;
          if (!e) return false;
          switch (tg.mode) {
            case ConnmarkTarget::Mode::Set: e->mark = (e->mark & ~tg.mask) ^ tg.value; break;
            case ConnmarkTarget::Mode::Save: e->mark = (e->mark & ~tg.ctmask) ^ (p.mark & tg.nfmask); break;
            case ConnmarkTarget::Mode::Restore: p.mark = (p.mark & ~tg.nfmask) ^ (e->mark & tg.ctmask); break;
          }
          return false;
        } else if constexpr (std::is_same_v<T, TraceTarget>) {
          p.nf_trace = true;
          return false;
        } else if constexpr (std::is_same_v<T, NotrackTarget>) {
          p.notrack = true;
          return false;
        } else if constexpr (std::is_same_v<T, CtTarget>) {
          if (tg.notrack) p.notrack = true;
          if (tg.zone_set) p.ct_zone = tg.zone_mark ? uint16_t(p.mark) : tg.zone;
          return false;
        } else if constexpr (std::is_same_v<T, TproxyTarget>) {
          uint16_t port = tg.port;
          for (auto& s : env.node.sockets)
            if (s.transparent && s.proto == p.t.proto && s.port == port &&
                (s.addr.is_unspecified() || s.addr == (tg.ip_set ? tg.ip : p.t.dst))) {
              if (tg.mark_set) p.mark = (p.mark & ~tg.mask) ^ tg.mark;
              p.tproxied = true;
              *v = Verdict::accept();
              return true;
            }
          *v = Verdict::drop(DropReason::TproxyNoSocket);
          return true;
        } else if constexpr (std::is_same_v<T, NfqueueTarget>) {
          *v = queue_verdict(env.node, tg.num, tg.bypass);
          return true;
        } else if constexpr (std::is_same_v<T, DscpTarget>) {
          p.tos = uint8_t((p.tos & ~0xfc) | (tg.dscp << 2));  // xt_DSCP: the ECN bits stay
          return false;
        } else if constexpr (std::is_same_v<T, TosTarget>) {
          p.tos = uint8_t((p.tos & ~tg.mask) ^ tg.value);
          return false;
        } else if constexpr (std::is_same_v<T, SetTarget>) {
          if (!env.sets) return false;
          auto dims = [](const SetTarget::Ref& ref) { return SetDims{ref.src_flags, ref.dims}; };
          if (tg.add.set())
            note_set_change(c, "add", tg.add.name,
                            ipset_add(*env.sets, env.set_changes, tg.add.set_index, p, dims(tg.add),
                                      tg.timeout_set ? std::optional<uint32_t>(tg.timeout) : std::nullopt, tg.exist));
          if (tg.del.set())
            note_set_change(c, "del", tg.del.name, ipset_del(*env.sets, env.set_changes, tg.del.set_index, p, dims(tg.del)));
          const SetEntry* e = nullptr;
          // --map-set: the element's skbinfo; one a SET target added carries none (zero mark and mask).
          if (tg.map.set() && tg.map_mark &&
              ipset_test(*env.sets, &env.set_changes, tg.map.set_index, p, dims(tg.map), false, nullptr, &e) && e &&
              e->skbmark_set)
            p.mark = (p.mark & ~e->skbmark_mask) ^ e->skbmark;
          return false;
        } else if constexpr (std::is_same_v<T, TeeTarget>) {
          if (env.trace.enabled()) {
            TraceEvent e;
            e.hook = c.hook;
            e.kind = TraceKind::Note;
            e.table = "TEE";
            e.target = "clone";
            e.detail = fmt::format("a copy goes to gateway {}; svcpath does not follow the copy", tg.gateway.str());
            env.trace.event(std::move(e));
          }
          return false;
        } else {
          return false;  // LOG, NFLOG, TCPMSS, CHECKSUM: observe only
        }
      },
      r.target);
}

}  // namespace

Verdict run_table(const Table& t, Hook h, Packet& p, EvalEnv& env) noexcept {
  int start = t.builtin[int(h)];
  if (start < 0) return Verdict::accept();
  Ctx c{p, env, h};
  // Jump stack of (chain, rule index of the jump); sized for the deepest nesting the loader allows.
  struct Frame {
    int chain;
    size_t rule;
  } stack[kMaxJumpDepth];
  int sp = 0;
  const Chain* ch = &t.chains[size_t(start)];
  const Chain* base = ch;
  size_t i = 0;
  for (;;) {
    if (i >= ch->rules.size()) {
      uint32_t num = uint32_t(ch->rules.size() + 1);
      if (ch->builtin) {
        trace_rule(c, t, *ch, nullptr, num, TraceKind::Policy, ch->policy == Policy::Drop ? "DROP" : "ACCEPT");
        env.hit_rule = nullptr;
        env.hit_chain = ch;
        env.hit_num = num;
        return ch->policy == Policy::Drop ? Verdict::drop(DropReason::ChainPolicy) : Verdict::accept();
      }
      trace_rule(c, t, *ch, nullptr, num, TraceKind::Return, "RETURN");
      if (sp == 0) {
        ch = base;
        i = ch->rules.size();
        continue;
      }
      --sp;
      ch = &t.chains[size_t(stack[sp].chain)];
      i = stack[sp].rule + 1;
      continue;
    }
    if (!ch->run_of.empty() && ch->run_of[i] >= 0 && !env.linear) {
      // Rules naming other destinations fail in ipt_ip: count them, jump to the next candidate.
      const DstRun& run = ch->runs[size_t(ch->run_of[i])];
      uint32_t next = run.next(p.t.dst, uint32_t(i));
      env.ctr.rules_evaluated += next - i;
      i = next;
      if (next == run.end) continue;  // the candidate, if any, is counted below as usual
    }
    const Rule& r = ch->rules[i];
    ++env.ctr.rules_evaluated;
    bool hot = false;
    if (!ip_part(r, p, env.node, hot) && !hot) {
      ++i;
      continue;
    }
    bool ok = !hot;
    c.hotdrop = hot;
    for (size_t k = 0; ok && k < r.matches.size(); ++k) {
      const Match& m = r.matches[k];
      ++env.ctr.matches_evaluated;
      if (!std::visit([&](const auto& mm) { return eval(mm, c); }, m)) {
        ok = false;
        break;
      }
    }
    if (c.unsim) {
      // The rule reached a match whose answer cannot be known: say so instead of guessing.
      trace_rule(c, t, *ch, &r, uint32_t(i + 1), TraceKind::Note, [&] { return fmt::format("unsimulated: {}", c.unsim); });
      env.hit_rule = &r;
      env.hit_chain = ch;
      env.hit_num = uint32_t(i + 1);
      return {VerdictKind::Unsimulated, DropReason::None, 0};
    }
    if (c.hotdrop) {
      // ip6t_do_table stops at once and drops; TRACE never logs the rule.
      if (env.trace.enabled()) {
        TraceEvent e;
        e.hook = c.hook;
        e.kind = TraceKind::Note;
        e.table = table_name(t.id);
        e.chain = ch->name;
        e.rulenum = uint32_t(i + 1);
        e.target = "hotdrop";
        e.detail = "a header the rule reads cannot be found: the table drops the packet";
        env.trace.event(std::move(e));
      }
      env.hit_rule = &r;
      env.hit_chain = ch;
      env.hit_num = uint32_t(i + 1);
      return Verdict::drop(DropReason::HotDrop);
    }
    if (!ok) {
      ++i;
      continue;
    }
    env.state.rule_pkts[r.id]++;
    env.state.rule_bytes[r.id] += p.len;
    uint32_t num = uint32_t(i + 1);
    env.hit_rule = &r;
    env.hit_chain = ch;
    env.hit_num = num;
    if (auto* st = std::get_if<StandardTarget>(&r.target)) {
      // The kernel's TRACE prints an unconditional standard verdict as "return" in a user chain and
      // "policy" in a built-in one, because it cannot tell it from the chain's tail entry.
      TraceKind kind = r.unconditional() ? (ch->builtin ? TraceKind::Policy : TraceKind::Return) : TraceKind::Rule;
      trace_rule(c, t, *ch, &r, num, kind, [&] { return target_name(r.target); });
      switch (st->v) {
        case StdVerdict::Accept: return Verdict::accept();
        case StdVerdict::Drop: return Verdict::drop(DropReason::RuleDrop);
        case StdVerdict::Queue: return queue_verdict(env.node, 0, false);
        case StdVerdict::Return:
          if (sp == 0) {
            // Underflow: the built-in chain's policy entry decides.
            ch = base;
            i = ch->rules.size();
          } else {
            --sp;
            ch = &t.chains[size_t(stack[sp].chain)];
            i = stack[sp].rule + 1;
          }
          continue;
      }
    }
    if (auto* j = std::get_if<JumpTarget>(&r.target)) {
      trace_rule(c, t, *ch, &r, num, TraceKind::Rule, std::string_view(j->chain));
      ++env.ctr.chain_jumps;
      if (!j->go) {
        if (sp >= int(kMaxJumpDepth)) return Verdict::drop(DropReason::RuleDrop);  // the loader refuses such tables
        stack[sp++] = {int(ch - t.chains.data()), i};
      }
      ch = &t.chains[size_t(j->index)];
      i = 0;
      continue;
    }
    if (std::holds_alternative<NoTarget>(r.target)) {
      trace_rule(c, t, *ch, &r, num, TraceKind::Rule, std::string_view());
      ++i;
      continue;
    }
    trace_rule(c, t, *ch, &r, num, TraceKind::Rule, [&] { return target_name(r.target); });
    Verdict v;
    if (run_target(r, c, &v)) return v;
    ++i;
  }
}

}  // namespace svcpath::nf
