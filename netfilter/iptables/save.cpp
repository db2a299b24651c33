// Ruleset -> iptables-save text, in the canonical form iptables-save 1.8 prints (checked against both
// iptables-legacy-save and iptables-nft-save: global options in the order -s -d -i -o -p -f, matches in
// the order they were given, each module's options in its save() order, /32 on addresses).
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "netfilter/iptables/iptables.hpp"
#include "netfilter/iptables/names.hpp"

namespace svcpath::nf {

std::string save_string(std::string_view s) {
  static constexpr std::string_view kPlain = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  bool plain = !s.empty() && s.find_first_not_of(kPlain) == std::string_view::npos;
  if (plain) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

namespace {

std::string hex(uint32_t v) { return fmt::format("0x{:x}", v); }

std::string value_mask(uint32_t v, uint32_t m) { return m == 0xffffffff ? hex(v) : fmt::format("{}/{}", hex(v), hex(m)); }

// The conntrack match prints a host address without "/32".
std::string ct_addr(const Prefix& p) { return p.len == p.addr.bits() ? p.addr.str() : fmt::format("{}/{}", p.addr.str(), p.len); }

void ports(std::string& o, const PortSpec& ps, std::string_view opt) {
  if (!ps.set || (ps.range.lo == 0 && ps.range.hi == 65535 && !ps.inv)) return;
  o += fmt::format("{} {} {}", ps.inv ? " !" : "", opt, ps.range.str(':'));
}

void print(std::string& o, const TcpMatch& m, Family) {
  ports(o, m.sport, "--sport");
  ports(o, m.dport, "--dport");
  if (m.option_set) o += fmt::format("{} --tcp-option {}", m.option_inv ? " !" : "", m.option);
  if (m.flags_set)
    o += fmt::format("{} --tcp-flags {} {}", m.flags_inv ? " !" : "", names::tcp_flags_str(m.flg_mask),
                     names::tcp_flags_str(m.flg_cmp));
}
void print(std::string& o, const UdpMatch& m, Family) {
  ports(o, m.sport, "--sport");
  ports(o, m.dport, "--dport");
}
void print(std::string& o, const SctpMatch& m, Family) {
  ports(o, m.sport, "--sport");
  ports(o, m.dport, "--dport");
}
void print(std::string& o, const DccpMatch& m, Family) {
  ports(o, m.sport, "--sport");
  ports(o, m.dport, "--dport");
  if (m.types) {
    std::string list;
    for (unsigned t = 0; t < 16; ++t)
      if (m.types & (1u << t)) list += fmt::format("{}{}", list.empty() ? "" : ",", names::dccp_type_name(t));
    o += fmt::format("{} --dccp-types {}", m.types_inv ? " !" : "", list);
  }
  if (m.option_set) o += fmt::format("{} --dccp-option {}", m.option_inv ? " !" : "", m.option);
}
void print(std::string& o, const MultiportMatch& m, Family) {
  const char* opt = m.dir == MultiportMatch::Dir::Src ? "--sports" : m.dir == MultiportMatch::Dir::Dst ? "--dports" : "--ports";
  std::string list;
  for (auto& r : m.ports) {
    if (!list.empty()) list += ',';
    list += r.str(':');
  }
  o += fmt::format("{} {} {}", m.inv ? " !" : "", opt, list);
}
void print(std::string& o, const IcmpMatch& m, Family) {
  const char* opt = m.v6 ? "--icmpv6-type" : "--icmp-type";
  o += m.inv ? " !" : "";
  if (m.any) o += fmt::format(" {} any", opt);
  else if (m.code_lo == 0 && m.code_hi == 0xff) o += fmt::format(" {} {}", opt, m.type);
  else o += fmt::format(" {} {}/{}", opt, m.type, m.code_lo);
}
void print(std::string& o, const CommentMatch& m, Family) { o += " --comment " + save_string(m.text); }
void print(std::string& o, const MarkMatch& m, Family) {
  o += fmt::format("{} --mark {}", m.inv ? " !" : "", value_mask(m.value, m.mask));
}
void print(std::string& o, const ConnmarkMatch& m, Family) {
  o += fmt::format("{} --mark {}", m.inv ? " !" : "", value_mask(m.value, m.mask));
}
void print(std::string& o, const ConntrackMatch& m, Family) {
  auto inv = [](bool b) { return b ? " !" : ""; };
  if (m.state_set) o += fmt::format("{} --ctstate {}", inv(m.state_inv), names::ctstates_str(m.state_mask));
  if (m.proto_set) o += fmt::format("{} --ctproto {}", inv(m.proto_inv), m.l4proto);
  auto addr = [&](const ConntrackMatch::AddrSpec& a, const char* n) {
    if (a.set) o += fmt::format("{} {} {}", inv(a.inv), n, ct_addr(a.p));
  };
  addr(m.origsrc, "--ctorigsrc");
  addr(m.origdst, "--ctorigdst");
  addr(m.replsrc, "--ctreplsrc");
  addr(m.repldst, "--ctrepldst");
  ports(o, m.origsrcport, "--ctorigsrcport");
  ports(o, m.origdstport, "--ctorigdstport");
  ports(o, m.replsrcport, "--ctreplsrcport");
  ports(o, m.repldstport, "--ctrepldstport");
  if (m.status_set) o += fmt::format("{} --ctstatus {}", inv(m.status_inv), names::ctstatus_str(m.status_mask));
  if (m.expire_set) {
    o += fmt::format("{} --ctexpire {}", inv(m.expire_inv), m.expire_lo);
    if (m.expire_hi != m.expire_lo) o += fmt::format(":{}", m.expire_hi);
  }
  if (m.dir_set) o += m.dir_reply ? " --ctdir REPLY" : " --ctdir ORIGINAL";
}
void print(std::string& o, const StateMatch& m, Family) {
  o += fmt::format("{} --state {}", m.inv ? " !" : "", names::ctstates_str(m.state_mask));
}
void print(std::string& o, const AddrtypeMatch& m, Family) {
  if (m.src) o += fmt::format("{} --src-type {}", m.src_inv ? " !" : "", names::addrtypes_str(m.src));
  if (m.dst) o += fmt::format("{} --dst-type {}", m.dst_inv ? " !" : "", names::addrtypes_str(m.dst));
  if (m.limit_in) o += " --limit-iface-in";
  if (m.limit_out) o += " --limit-iface-out";
}
void print(std::string& o, const StatisticMatch& m, Family) {
  if (m.nth) o += fmt::format(" --mode nth{} --every {} --packet {}", m.inv ? " !" : "", uint64_t(m.every) + 1, m.packet);
  else o += fmt::format(" --mode random{} --probability {:.11f}", m.inv ? " !" : "", double(m.p31) / 2147483648.0);
}
void print(std::string& o, const RecentMatch& m, Family) {
  if (m.inv) o += " !";
  if (m.mode & RecentMatch::Set) o += " --set";
  if (m.mode & RecentMatch::Check) o += " --rcheck";
  if (m.mode & RecentMatch::Update) o += " --update";
  if (m.mode & RecentMatch::Remove) o += " --remove";
  if (m.seconds) o += fmt::format(" --seconds {}", m.seconds);
  if (m.reap) o += " --reap";
  if (m.hitcount) o += fmt::format(" --hitcount {}", m.hitcount);
  if (m.rttl) o += " --rttl";
  o += fmt::format(" --name {} --mask {}", m.name, m.mask.str());
  o += m.rdest ? " --rdest" : " --rsource";
}
void print(std::string& o, const SetMatch& m, Family) {
  std::string flags;
  for (unsigned i = 0; i < m.dims; ++i) {
    if (i) flags += ',';
    flags += (m.src_flags >> i) & 1 ? "src" : "dst";
  }
  o += fmt::format("{} --match-set {} {}", m.inv ? " !" : "", m.name, flags);
  if (m.return_nomatch) o += " --return-nomatch";
  if (m.no_update_counters) o += " ! --update-counters";
  if (m.no_update_subcounters) o += " ! --update-subcounters";
  if (m.pkts_set)
    o += fmt::format("{} --packets-{} {}", m.pkts_inv ? " !" : "",
                     m.pkts_op == '='   ? "eq"
                     : m.pkts_op == '<' ? "lt"
                                        : "gt",
                     m.pkts);
}
void print(std::string& o, const IprangeMatch& m, Family) {
  if (m.src_set) o += fmt::format("{} --src-range {}-{}", m.src_inv ? " !" : "", m.src_lo.str(), m.src_hi.str());
  if (m.dst_set) o += fmt::format("{} --dst-range {}-{}", m.dst_inv ? " !" : "", m.dst_lo.str(), m.dst_hi.str());
}
void print(std::string& o, const PhysdevMatch& m, Family) {
  auto inv = [&](uint8_t bit) { return (m.invert & bit) ? " !" : ""; };
  if (m.bitmask & PhysdevMatch::IsIn) o += fmt::format("{} --physdev-is-in", inv(PhysdevMatch::IsIn));
  if (m.bitmask & PhysdevMatch::In) o += fmt::format("{} --physdev-in {}", inv(PhysdevMatch::In), m.in.str());
  if (m.bitmask & PhysdevMatch::IsOut) o += fmt::format("{} --physdev-is-out", inv(PhysdevMatch::IsOut));
  if (m.bitmask & PhysdevMatch::Out) o += fmt::format("{} --physdev-out {}", inv(PhysdevMatch::Out), m.out.str());
  if (m.bitmask & PhysdevMatch::IsBridged) o += fmt::format("{} --physdev-is-bridged", inv(PhysdevMatch::IsBridged));
}
void print(std::string& o, const LimitMatch& m, Family) {
  o += " --limit " + names::limit_rate_str(m.avg);
  if (m.burst != 5) o += fmt::format(" --limit-burst {}", m.burst);
}
void print(std::string& o, const NfacctMatch& m, Family) { o += " --nfacct-name " + save_string(m.name); }
void print(std::string& o, const RpfilterMatch& m, Family) {
  if (m.loose) o += " --loose";
  if (m.validmark) o += " --validmark";
  if (m.accept_local) o += " --accept-local";
  if (m.invert) o += " --invert";
}
void print(std::string& o, const SocketMatch& m, Family) {
  if (m.transparent) o += " --transparent";
  if (m.nowildcard) o += " --nowildcard";
  if (m.restore_skmark) o += " --restore-skmark";
}
void print(std::string& o, const PolicyMatch& m, Family) {
  o += fmt::format(" --dir {} --pol {}", m.dir_out ? "out" : "in", m.ipsec ? "ipsec" : "none");
  if (m.strict) o += " --strict";
  for (auto& e : m.elements) o += " " + e;
}
void print(std::string& o, const LengthMatch& m, Family) {
  o +=
      fmt::format("{} --length {}", m.inv ? " !" : "", m.lo == m.hi ? fmt::format("{}", m.lo) : fmt::format("{}:{}", m.lo, m.hi));
}
void print(std::string& o, const TtlMatch& m, Family) {
  const char* p = m.hl ? "hl" : "ttl";
  switch (m.op) {
    case TtlMatch::Op::Eq: o += fmt::format(" --{}-eq {}", p, m.value); break;
    case TtlMatch::Op::Ne: o += fmt::format(" ! --{}-eq {}", p, m.value); break;
    case TtlMatch::Op::Lt: o += fmt::format(" --{}-lt {}", p, m.value); break;
    case TtlMatch::Op::Gt: o += fmt::format(" --{}-gt {}", p, m.value); break;
  }
}
void print(std::string& o, const PkttypeMatch& m, Family) {
  o += fmt::format("{} --pkt-type {}", m.inv ? " !" : "", names::pkttype_str(m.type));
}
void print(std::string& o, const IpvsMatch& m, Family) {
  if (m.ipvs_set) o += fmt::format("{} --ipvs", m.ipvs_inv ? " !" : "");
  if (m.vdir_set) o += fmt::format("{} --vdir {}", m.vdir_inv ? " !" : "", m.vdir_reply ? "REPLY" : "ORIGINAL");
}

void print(std::string& o, const MacMatch& m, Family) {
  o += fmt::format("{} --mac-source {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m.inv ? " !" : "", m.mac[0], m.mac[1], m.mac[2],
                   m.mac[3], m.mac[4], m.mac[5]);
}
void print(std::string& o, const OwnerMatch& m, Family) {
  // libxt_owner's save order, whatever order the options were given in.
  auto item = [&](uint8_t bit, std::string_view opt) {
    if (!(m.match & bit)) return false;
    o += fmt::format("{} {}", (m.invert & bit) ? " !" : "", opt);
    return true;
  };
  auto range = [&](uint32_t lo, uint32_t hi) { o += lo == hi ? fmt::format(" {}", lo) : fmt::format(" {}-{}", lo, hi); };
  item(OwnerMatch::SocketExists, "--socket-exists");
  if (item(OwnerMatch::Uid, "--uid-owner")) range(m.uid_lo, m.uid_hi);
  if (item(OwnerMatch::Gid, "--gid-owner")) range(m.gid_lo, m.gid_hi);
  item(OwnerMatch::SupplGroups, "--suppl-groups");
}
// libxt_hashlimit's print_rate: the largest unit whose count is still exact enough.
std::string hashlimit_rate_str(uint64_t period) {
  static constexpr std::pair<std::string_view, uint64_t> kRates[] = {
      {"day", 86400ull * 1000000}, {"hour", 3600ull * 1000000}, {"min", 60ull * 1000000}, {"sec", 1000000}};
  size_t i = 1;
  for (; i < std::size(kRates); ++i)
    if (period > kRates[i].second || kRates[i].second / period < kRates[i].second % period) break;
  return fmt::format("{}/{}", kRates[i - 1].second / period, kRates[i - 1].first);
}
void print(std::string& o, const HashlimitMatch& m, Family f) {
  o += m.above ? " --hashlimit-above " : " --hashlimit-upto ";
  if (m.bytes) o += m.rate_text;
  else o += fmt::format("{} --hashlimit-burst {}", hashlimit_rate_str(m.avg), m.burst);
  if (m.mode) {
    std::string l;
    for (auto [bit, n] : {std::pair{HashlimitMatch::SrcIp, "srcip"}, std::pair{HashlimitMatch::SrcPort, "srcport"},
                          std::pair{HashlimitMatch::DstIp, "dstip"}, std::pair{HashlimitMatch::DstPort, "dstport"}})
      if (m.mode & bit) l += l.empty() ? n : fmt::format(",{}", n);
    o += " --hashlimit-mode " + l;
  }
  o += " --hashlimit-name " + m.name;
  if (m.size) o += fmt::format(" --hashlimit-htable-size {}", m.size);
  if (m.max) o += fmt::format(" --hashlimit-htable-max {}", m.max);
  if (m.gc && m.gc != 1000) o += fmt::format(" --hashlimit-htable-gcinterval {}", m.gc);
  if (m.expire && m.expire != 10000) o += fmt::format(" --hashlimit-htable-expire {}", m.expire);
  unsigned full = f == Family::V4 ? 32 : 128;
  if (m.srcmask != full) o += fmt::format(" --hashlimit-srcmask {}", m.srcmask);
  if (m.dstmask != full) o += fmt::format(" --hashlimit-dstmask {}", m.dstmask);
}
void print(std::string& o, const ConnlimitMatch& m, Family) {
  o += fmt::format(" --connlimit-{} {} --connlimit-mask {} --connlimit-{}", m.upto ? "upto" : "above", m.limit, m.mask,
                   m.daddr ? "daddr" : "saddr");
}
std::string time_date_str(uint32_t t) {
  int64_t days = t / 86400, secs = t % 86400;
  // Civil date from days (Howard Hinnant's algorithm).
  days += 719468;
  int64_t era = days / 146097, doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1, mo = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (mo <= 2);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", y, mo, d, secs / 3600, secs / 60 % 60, secs % 60);
}
void print(std::string& o, const TimeMatch& m, Family) {
  auto hms = [](uint32_t s) { return fmt::format("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60); };
  if (m.daytime_start != 0 || m.daytime_stop != 86399)
    o += fmt::format(" --timestart {} --timestop {}", hms(m.daytime_start), hms(m.daytime_stop));
  if (m.monthdays != 0xfffffffe) {
    std::string l;
    for (unsigned d = 1; d <= 31; ++d)
      if (m.monthdays & (1u << d)) l += l.empty() ? fmt::format("{}", d) : fmt::format(",{}", d);
    o += " --monthdays " + l;
  }
  if (m.weekdays != 0xfe) {
    static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    std::string l;
    for (unsigned d = 1; d <= 7; ++d)
      if (m.weekdays & (1u << d)) l += l.empty() ? std::string(kDays[d - 1]) : fmt::format(",{}", kDays[d - 1]);
    o += " --weekdays " + l;
  }
  if (m.date_start != 0) o += " --datestart " + time_date_str(m.date_start);
  if (m.date_stop != 0) o += " --datestop " + time_date_str(m.date_stop);
  if (m.localtz) o += " --kerneltz";
  if (m.contiguous) o += " --contiguous";
}
void print(std::string& o, const StringMatch& m, Family) {
  // libxt_string prints a pattern with any unprintable byte in hex, every other one quoted.
  bool hex = std::any_of(m.pattern.begin(), m.pattern.end(), [](char c) { return !std::isprint(uint8_t(c)); });
  o += fmt::format("{} --{} \"", m.inv ? " !" : "", hex ? "hex-string" : "string");
  if (hex) {
    o += '|';
    for (char c : m.pattern) o += fmt::format("{:02x}", uint8_t(c));
    o += '|';
  } else {
    for (char c : m.pattern) {
      if (c == '"' || c == '\\') o += '\\';
      o += c;
    }
  }
  o += fmt::format("\" --algo {}", m.algo);
  if (m.from) o += fmt::format(" --from {}", m.from);
  if (m.to != 65535) o += fmt::format(" --to {}", m.to);
  if (m.icase) o += " --icase";
}
void print(std::string& o, const HelperMatch& m, Family) {
  o += fmt::format("{} --helper {}", m.inv ? " !" : "", save_string(m.name));
}
void print(std::string& o, const TosMatch& m, Family) {
  o += fmt::format("{} --tos 0x{:02x}/0x{:02x}", m.inv ? " !" : "", m.value, m.mask);
}
void print(std::string& o, const DscpMatch& m, Family) { o += fmt::format("{} --dscp 0x{:02x}", m.inv ? " !" : "", m.dscp); }
void print(std::string& o, const EcnMatch& m, Family) {
  auto inv = [&](uint8_t bit) { return (m.invert & bit) ? " !" : ""; };
  if (m.ops & EcnMatch::TcpEce) o += fmt::format("{} --ecn-tcp-ece", inv(EcnMatch::TcpEce));
  if (m.ops & EcnMatch::TcpCwr) o += fmt::format("{} --ecn-tcp-cwr", inv(EcnMatch::TcpCwr));
  if (m.ops & EcnMatch::IpEct) o += fmt::format("{} --ecn-ip-ect {}", inv(EcnMatch::IpEct), m.ect);
}
void print(std::string& o, const TcpmssMatch& m, Family) {
  o += fmt::format("{} --mss {}", m.inv ? " !" : "", m.lo == m.hi ? fmt::format("{}", m.lo) : fmt::format("{}:{}", m.lo, m.hi));
}
void print(std::string& o, const SpiMatch& m, Family) {
  if (m.lo == 0 && m.hi == 0xffffffff && !m.inv) return;  // libxt_esp prints an inverted full range
  o += fmt::format("{} --{}spi {}", m.inv ? " !" : "", m.name(),
                   m.lo == m.hi ? fmt::format("{}", m.lo) : fmt::format("{}:{}", m.lo, m.hi));
}
void print(std::string& o, const DevgroupMatch& m, Family) {
  auto grp = [](uint32_t v, uint32_t mask) { return mask == 0xffffffff ? hex(v) : fmt::format("{}/{}", hex(v), hex(mask)); };
  if (m.flags & DevgroupMatch::Src)
    o += fmt::format("{} --src-group {}", (m.flags & DevgroupMatch::InvSrc) ? " !" : "", grp(m.src, m.src_mask));
  if (m.flags & DevgroupMatch::Dst)
    o += fmt::format("{} --dst-group {}", (m.flags & DevgroupMatch::InvDst) ? " !" : "", grp(m.dst, m.dst_mask));
}
void print(std::string& o, const CgroupMatch& m, Family) {
  if (!m.path.empty()) o += fmt::format("{} --path {}", m.inv ? " !" : "", save_string(m.path));
  else o += fmt::format("{} --cgroup {}", m.inv ? " !" : "", m.classid);
}
void print(std::string& o, const CpuMatch& m, Family) { o += fmt::format("{} --cpu {}", m.inv ? " !" : "", m.cpu); }
void print(std::string& o, const QuotaMatch& m, Family) { o += fmt::format("{} --quota {}", m.inv ? " !" : "", m.quota); }
void print(std::string& o, const U32Match& m, Family) { o += fmt::format("{} --u32 \"{}\"", m.inv ? " !" : "", m.text); }
void print(std::string& o, const BpfMatch& m, Family) { o += fmt::format(" --bytecode \"{}\"", m.bytecode); }

// libip6t_frag, _ipv6header, _hbh, _dst, _rt and _ah's save functions (iptables 1.8).
std::string range_str(uint32_t lo, uint32_t hi) { return lo == hi ? fmt::format("{}", lo) : fmt::format("{}:{}", lo, hi); }
void print(std::string& o, const FragMatch& m, Family) {
  if (!(m.id_lo == 0 && m.id_hi == 0xffffffff))
    o += fmt::format("{} --fragid {}", m.id_inv ? " !" : "", range_str(m.id_lo, m.id_hi));
  if (m.len_set) o += fmt::format("{} --fraglen {}", m.len_inv ? " !" : "", m.len);
  if (m.res) o += " --fragres";
  if (m.first) o += " --fragfirst";
  if (m.more) o += " --fragmore";
  if (m.last) o += " --fraglast";
}
void print(std::string& o, const Ipv6HeaderMatch& m, Family) {
  // The names /etc/protocols gives the header numbers (hop-by-hop is the module's own).
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {Ipv6HeaderMatch::Hop, "hop-by-hop"},  {Ipv6HeaderMatch::Dst, "ipv6-opts"}, {Ipv6HeaderMatch::Route, "ipv6-route"},
      {Ipv6HeaderMatch::Frag, "ipv6-frag"},  {Ipv6HeaderMatch::Ah, "ah"},         {Ipv6HeaderMatch::Esp, "esp"},
      {Ipv6HeaderMatch::None, "ipv6-nonxt"}, {Ipv6HeaderMatch::Proto, "protocol"}};
  o += fmt::format("{} --header ", m.inv ? " !" : "");
  bool first = true;
  for (auto& [bit, name] : kNames)
    if (m.flags & bit) o += fmt::format("{}{}", first ? "" : ",", name), first = false;
  if (m.soft) o += " --soft";
}
void print(std::string& o, const OptsMatch& m, Family) {
  std::string_view n = m.dst ? "dst" : "hbh";
  if (m.len_set) o += fmt::format("{} --{}-len {}", m.len_inv ? " !" : "", n, m.len);
  if (m.opts_set) o += fmt::format(" --{}-opts", n);
  for (uint8_t i = 0; i < m.nopts; ++i) {
    o += i ? ',' : ' ';
    o += fmt::format("{}", m.opts[i] >> 8);
    if ((m.opts[i] & 0xff) != 0xff) o += fmt::format(":{}", m.opts[i] & 0xff);
  }
}
void print(std::string& o, const RtMatch& m, Family) {
  if (m.type_set) o += fmt::format("{} --rt-type {}", m.type_inv ? " !" : "", m.type);
  if (!(m.left_lo == 0 && m.left_hi == 0xffffffff))
    o += fmt::format("{} --rt-segsleft {}", m.left_inv ? " !" : "", range_str(m.left_lo, m.left_hi));
  if (m.len_set) o += fmt::format("{} --rt-len {}", m.len_inv ? " !" : "", m.len);
  if (m.res) o += " --rt-0-res";
  if (m.addrs_set) o += " --rt-0-addrs";
  for (size_t i = 0; i < m.addrs.size(); ++i) o += (i ? "," : " ") + m.addrs[i].str();
  if (m.not_strict) o += " --rt-0-not-strict";
}
void print(std::string& o, const Ah6Match& m, Family) {
  if (!(m.spi_lo == 0 && m.spi_hi == 0xffffffff))
    o += fmt::format("{} --ahspi {}", m.spi_inv ? " !" : "", range_str(m.spi_lo, m.spi_hi));
  if (m.len || m.len_inv) o += fmt::format("{} --ahlen {}", m.len_inv ? " !" : "", m.len);
  if (m.res) o += " --ahres";
}

std::string nat_addr(const Addr& a, bool bracket) { return bracket && !a.is_v4() ? "[" + a.str() + "]" : a.str(); }

void tprint(std::string&, const NoTarget&, Family) {}
void tprint(std::string&, const StandardTarget&, Family) {}
void tprint(std::string&, const JumpTarget&, Family) {}
void tprint(std::string& o, const RejectTarget& t, Family) { o += " --reject-with " + t.with; }
void tprint(std::string& o, const NatTarget& t, Family) {
  using K = NatTarget::Kind;
  if (t.kind == K::Dnat || t.kind == K::Snat) {
    std::string r;
    bool br = t.port_set;
    if (t.addr_set) {
      r = nat_addr(t.min, br);
      if (t.max != t.min) r += "-" + nat_addr(t.max, br);
    }
    if (t.port_set) r += ":" + t.ports.str('-');
    o += fmt::format(" {} {}", t.kind == K::Dnat ? "--to-destination" : "--to-source", r);
  } else if (t.kind == K::Netmap) {
    Addr m;
    for (int i = 0; i < 16; ++i) m.b[size_t(i)] = uint8_t(~(t.min.b[size_t(i)] ^ t.max.b[size_t(i)]));
    unsigned len = 0;
    while (len < t.min.bits() && ((m.b[len / 8] >> (7 - len % 8)) & 1)) ++len;
    o += fmt::format(" --to {}/{}", t.min.str(), len);
  } else if (t.port_set) {
    o += " --to-ports " + t.ports.str('-');
  }
  if (t.random) o += " --random";
  if (t.random_fully) o += " --random-fully";
  if (t.persistent) o += " --persistent";
}
void tprint(std::string& o, const MarkTarget& t, Family) { o += fmt::format(" --set-xmark {}/{}", hex(t.value), hex(t.mask)); }
void tprint(std::string& o, const ConnmarkTarget& t, Family) {
  switch (t.mode) {
    case ConnmarkTarget::Mode::Set: o += fmt::format(" --set-xmark {}/{}", hex(t.value), hex(t.mask)); break;
    case ConnmarkTarget::Mode::Save:
      o += fmt::format(" --save-mark --nfmask {} --ctmask {}", hex(t.nfmask), hex(t.ctmask));
      break;
    case ConnmarkTarget::Mode::Restore:
      o += fmt::format(" --restore-mark --nfmask {} --ctmask {}", hex(t.nfmask), hex(t.ctmask));
      break;
  }
}
void tprint(std::string& o, const LogTarget& t, Family) {
  if (!t.prefix.empty()) o += " --log-prefix " + save_string(t.prefix);
  if (t.level != 4) o += fmt::format(" --log-level {}", t.level);
  if (t.flags & 1) o += " --log-tcp-sequence";
  if (t.flags & 2) o += " --log-tcp-options";
  if (t.flags & 4) o += " --log-ip-options";
  if (t.flags & 8) o += " --log-uid";
  if (t.flags & 16) o += " --log-macdecode";
}
void tprint(std::string& o, const NflogTarget& t, Family) {
  if (!t.prefix.empty()) o += " --nflog-prefix " + save_string(t.prefix);
  if (t.group) o += fmt::format(" --nflog-group {}", t.group);
  if (t.size_set) o += fmt::format(" --nflog-size {}", t.size);
  else if (t.range) o += fmt::format(" --nflog-range {}", t.range);
  if (t.threshold != 1) o += fmt::format(" --nflog-threshold {}", t.threshold);
}
void tprint(std::string&, const TraceTarget&, Family) {}
void tprint(std::string&, const NotrackTarget&, Family) {}
// libxt_CT's save: names unquoted, events in bit order, a zone only when not 0 (or "mark").
void ct_events(std::string& o, const char* opt, uint16_t bits) {
  static constexpr const char* kNames[] = {"new",       "related", "destroy", "reply",      "assured",
                                           "protoinfo", "helper",  "mark",    "natseqinfo", "secmark"};
  if (!bits) return;
  o += fmt::format(" {} ", opt);
  bool first = true;
  for (unsigned i = 0; i < 10; ++i)
    if (bits & (1u << i)) {
      if (!first) o += ',';
      o += kNames[i];
      first = false;
    }
}
void tprint(std::string& o, const CtTarget& t, Family) {
  if (t.notrack) o += " --notrack";
  if (!t.helper.empty()) o += " --helper " + t.helper;
  if (!t.timeout.empty()) o += " --timeout " + t.timeout;
  ct_events(o, "--ctevents", t.ctevents);
  ct_events(o, "--expevents", t.expevents);
  const char* dir = t.zone_dir == 1 ? "-orig" : t.zone_dir == 2 ? "-reply" : "";
  if (t.zone_mark) o += fmt::format(" --zone{} mark", dir);
  else if (t.zone) o += fmt::format(" --zone{} {}", dir, t.zone);
}
void set_ref(std::string& o, const char* opt, const SetTarget::Ref& r) {
  if (!r.set()) return;
  o += fmt::format(" {} {} ", opt, r.name);
  for (unsigned i = 0; i < r.dims; ++i) {
    if (i) o += ',';
    o += (r.src_flags >> i) & 1 ? "src" : "dst";
  }
}
void tprint(std::string& o, const SetTarget& t, Family) {
  set_ref(o, "--add-set", t.add);  // libxt_SET prints --exist and --timeout with the add
  if (t.exist) o += " --exist";
  if (t.timeout_set) o += fmt::format(" --timeout {}", t.timeout);
  set_ref(o, "--del-set", t.del);
  set_ref(o, "--map-set", t.map);
  if (t.map_mark) o += " --map-mark";
  if (t.map_prio) o += " --map-prio";
  if (t.map_queue) o += " --map-queue";
}
void tprint(std::string& o, const ClassifyTarget& t, Family) {
  o += fmt::format(" --set-class {:04x}:{:04x}", t.priority >> 16, t.priority & 0xffff);
}
void tprint(std::string& o, const DscpTarget& t, Family) { o += fmt::format(" --set-dscp 0x{:02x}", t.dscp); }
void tprint(std::string& o, const TosTarget& t, Family) { o += fmt::format(" --set-tos 0x{:02x}/0x{:02x}", t.value, t.mask); }
void tprint(std::string& o, const TeeTarget& t, Family) {
  o += " --gateway " + t.gateway.str();
  if (!t.oif.empty()) o += " --oif " + t.oif;
}
void tprint(std::string& o, const TcpmssTarget& t, Family) {
  if (t.clamp) o += " --clamp-mss-to-pmtu";
  else o += fmt::format(" --set-mss {}", t.mss);
}
void tprint(std::string& o, const TproxyTarget& t, Family f) {
  o += fmt::format(" --on-port {}", t.port);
  if (t.ip_set) o += " --on-ip " + t.ip.str();
  else o += f == Family::V4 ? " --on-ip 0.0.0.0" : " --on-ip ::";
  o += fmt::format(" --tproxy-mark {}/{}", hex(t.mark), hex(t.mark_set ? t.mask : 0));
}
void tprint(std::string& o, const NfqueueTarget& t, Family) {
  if (t.balance) o += fmt::format(" --queue-balance {}:{}", t.num, t.balance_hi);
  else o += fmt::format(" --queue-num {}", t.num);
  if (t.bypass) o += " --queue-bypass";
  if (t.cpu_fanout) o += " --queue-cpu-fanout";
}
void tprint(std::string& o, const ChecksumTarget&, Family) { o += " --checksum-fill"; }

}  // namespace

std::string rule_text(const Chain& c, const Rule& r, Family fam) {
  std::string o = "-A " + c.name;
  if (r.src_set) o += fmt::format("{} -s {}", r.src_inv ? " !" : "", r.src.str());
  if (r.dst_set) o += fmt::format("{} -d {}", r.dst_inv ? " !" : "", r.dst.str());
  if (r.iif.set) o += fmt::format("{} -i {}", r.iif.inv ? " !" : "", r.iif.str());
  if (r.oif.set) o += fmt::format("{} -o {}", r.oif.inv ? " !" : "", r.oif.str());
  if (r.proto_set) o += fmt::format("{} -p {}", r.proto_inv ? " !" : "", proto::name(r.proto));
  if (r.frag_set) o += r.frag_inv ? " ! -f" : " -f";
  for (auto& m : r.matches) {
    o += " -m ";
    o += match_name(m);
    std::visit([&](auto& x) { print(o, x, fam); }, m);
  }
  if (!std::holds_alternative<NoTarget>(r.target)) {
    auto* j = std::get_if<JumpTarget>(&r.target);
    o += (j && j->go) ? " -g " : " -j ";
    o += target_name(r.target);
    std::visit([&](auto& t) { tprint(o, t, fam); }, r.target);
  }
  return o;
}

std::string save(const Ruleset& rs, bool counters) {
  std::string o;
  for (auto& t : rs.tables) {
    o += fmt::format("*{}\n", table_name(t.id));
    std::vector<const Chain*> order;
    for (auto& c : t.chains)
      if (c.builtin) order.push_back(&c);
    std::vector<const Chain*> user;
    for (auto& c : t.chains)
      if (!c.builtin) user.push_back(&c);
    std::sort(user.begin(), user.end(), [](const Chain* a, const Chain* b) { return a->name < b->name; });
    order.insert(order.end(), user.begin(), user.end());
    for (auto* c : order) {
      const char* pol = c->policy == Policy::Accept ? "ACCEPT" : c->policy == Policy::Drop ? "DROP" : "-";
      o += fmt::format(":{} {} [{}:{}]\n", c->name, pol, c->pkts, c->bytes);
    }
    for (auto* c : order)
      for (auto& r : c->rules) {
        if (counters) o += fmt::format("[{}:{}] ", r.pkts, r.bytes);
        o += rule_text(*c, r, rs.family);
        o += '\n';
      }
    o += "COMMIT\n";
  }
  return o;
}

}  // namespace svcpath::nf
