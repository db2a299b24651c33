#pragma once
// The iptables rule model: matches and targets are closed variants, chains hold rules, jumps are
// resolved to chain indexes at load. Everything here is immutable once loaded; per-rule mutable state
// (nth counters, limit buckets, packet counters) lives in the datapath, indexed by slot numbers
// assigned at load.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/addr.hpp"
#include "core/packet.hpp"
#include "netfilter/iptables/table.hpp"
#include "netfilter/nat.hpp"
#include "netfilter/node.hpp"

namespace svcpath::nf {

/// An interface name as iptables matches it: exact, or a prefix when written with a trailing '+'.
struct IfaceMatch {
  std::string name;
  bool wildcard = false;
  bool set = false;
  bool inv = false;
  bool matches(std::string_view ifname) const;
  std::string str() const { return wildcard ? name + "+" : name; }
};

// ---------------------------------------------------------------------------------------- matches
struct PortSpec {
  PortRange range;
  bool set = false, inv = false;
  bool test(uint16_t p) const { return !set || (range.contains(p) != inv); }
};

struct TcpMatch {
  PortSpec sport, dport;
  bool flags_set = false, flags_inv = false;
  uint8_t flg_mask = 0, flg_cmp = 0;
  bool syn_form = false;  // written as --syn (printed the same way as --tcp-flags)
  bool option_set = false, option_inv = false;
  uint8_t option = 0;
};
struct UdpMatch {
  PortSpec sport, dport;
};
struct SctpMatch {
  PortSpec sport, dport;
};

struct DccpMatch {  // xt_dccp: ports, packet types (bit per type), one option number
  PortSpec sport, dport;
  uint16_t types = 0;  // 0: --dccp-types not given
  bool types_inv = false;
  bool option_set = false, option_inv = false;
  uint8_t option = 0;
};

struct MultiportMatch {
  enum class Dir : uint8_t { Src, Dst, Any } dir = Dir::Dst;
  std::vector<PortRange> ports;  // at most 15
  bool inv = false;
};

struct IcmpMatch {
  bool any = true;  // "any" type: also the default when --icmp-type is not given
  uint8_t type = 0, code_lo = 0, code_hi = 0xff;
  bool inv = false;
  bool v6 = false;
};

struct CommentMatch {
  std::string text;
};

struct MarkMatch {
  uint32_t value = 0, mask = 0xffffffff;
  bool inv = false;
};
struct ConnmarkMatch {
  uint32_t value = 0, mask = 0xffffffff;
  bool inv = false;
};

struct ConntrackMatch {
  struct AddrSpec {
    Prefix p;
    bool set = false, inv = false;
  };
  uint16_t state_mask = 0;
  bool state_set = false, state_inv = false;
  uint32_t status_mask = 0;
  bool status_set = false, status_inv = false;
  uint8_t l4proto = 0;
  bool proto_set = false, proto_inv = false;
  AddrSpec origsrc, origdst, replsrc, repldst;
  PortSpec origsrcport, origdstport, replsrcport, repldstport;
  bool dir_set = false, dir_reply = false;
  bool expire_set = false, expire_inv = false;
  uint32_t expire_lo = 0, expire_hi = 0;
};
struct StateMatch {
  uint16_t state_mask = 0;
  bool inv = false;
};

struct AddrtypeMatch {
  uint16_t src = 0, dst = 0;
  bool src_inv = false, dst_inv = false;
  bool limit_in = false, limit_out = false;
};

struct StatisticMatch {
  bool nth = false;
  uint32_t p31 = 0;                // random: probability * 2^31, rounded as libxt_statistic does
  uint32_t every = 0, packet = 0;  // nth: every is n-1 as in the kernel struct
  bool inv = false;
  uint32_t slot = 0;  // datapath counter slot (nth)
  uint8_t seen = 0;   // parse bookkeeping: which options were given
};

struct RecentMatch {
  enum Mode : uint8_t { Set = 1, Check = 2, Update = 4, Remove = 8 };
  uint8_t mode = 0;
  std::string name = "DEFAULT";
  uint32_t seconds = 0;
  bool reap = false;
  uint32_t hitcount = 0;
  bool rttl = false;
  Addr mask;
  bool mask_set = false;
  bool rdest = false;
  bool inv = false;
};

struct SetMatch {
  std::string name;
  int set_index = -1;  // resolved against the IpSets at datapath build
  uint8_t dims = 0;
  uint8_t src_flags = 0;  // bit i set: dimension i is taken from the source
  bool inv = false;
  bool return_nomatch = false;
  bool no_update_counters = false, no_update_subcounters = false;
  bool pkts_set = false, pkts_inv = false;
  char pkts_op = '=';
  uint64_t pkts = 0;
};

struct IprangeMatch {
  bool src_set = false, dst_set = false, src_inv = false, dst_inv = false;
  Addr src_lo, src_hi, dst_lo, dst_hi;
};

struct PhysdevMatch {
  enum Op : uint8_t { In = 1, Out = 2, IsIn = 4, IsOut = 8, IsBridged = 16 };
  uint8_t bitmask = 0, invert = 0;
  IfaceMatch in, out;
};

struct LimitMatch {
  uint32_t avg = 0;  // XT_LIMIT_SCALE (10000) units per packet
  uint32_t burst = 5;
  uint32_t slot = 0;
};

struct NfacctMatch {
  std::string name;
};

struct RpfilterMatch {
  bool loose = false, validmark = false, accept_local = false, invert = false;
};

struct SocketMatch {
  bool transparent = false, nowildcard = false, restore_skmark = false;
};

struct PolicyMatch {
  bool dir_out = false;  // --dir in|out
  bool ipsec = false;    // --pol ipsec|none
  bool strict = false;
  std::vector<std::string> elements;  // --reqid/--spi/... kept verbatim for printing
};

struct LengthMatch {
  uint16_t lo = 0, hi = 0;
  bool inv = false;
};

struct TtlMatch {
  enum class Op : uint8_t { Eq, Ne, Lt, Gt } op = Op::Eq;
  uint8_t value = 0;
  bool hl = false;  // ip6tables -m hl
};

struct PkttypeMatch {
  PktType type = PktType::Host;
  bool inv = false;
};

struct IpvsMatch {
  bool ipvs_set = false, ipvs_inv = false;
  bool vdir_set = false, vdir_reply = false, vdir_inv = false;
};

// ----------------------------------------------------------- matches on state svcpath cannot see
// Each reads the packet's assumed fields (core/packet.hpp, set by the packet spec); the trace of a
// rule using one says which value it assumed.

struct MacMatch {  // xt_mac: Ethernet source, PREROUTING/INPUT/FORWARD only
  uint8_t mac[6] = {};
  bool inv = false;
};

struct OwnerMatch {  // xt_owner (revision 1): the sending socket's file owner
  enum : uint8_t { Uid = 1, Gid = 2, SocketExists = 4, SupplGroups = 8 };
  uint8_t match = 0, invert = 0;
  uint32_t uid_lo = 0, uid_hi = 0, gid_lo = 0, gid_hi = 0;
};

struct HashlimitMatch {  // xt_hashlimit revision 2 as iptables 1.8 writes it
  enum Mode : uint8_t { SrcIp = 1, SrcPort = 2, DstIp = 4, DstPort = 8 };
  std::string name;
  uint64_t avg = 0;  // XT_HASHLIMIT_SCALE_v2 (1000000) units per packet, or bytes for --...-upto NNb/s
  uint32_t burst = 0;
  bool above = false, bytes = false;
  bool upto_given = false;
  uint8_t mode = 0;
  uint32_t size = 0, max = 0, gc = 0, expire = 0;  // 0 = not given
  uint8_t srcmask = 0, dstmask = 0;                // the family's full length unless given
  std::string rate_text;                           // the rate as iptables-save prints it
};

struct ConnlimitMatch {  // xt_connlimit
  uint32_t limit = 0;
  uint8_t mask = 0;
  bool upto = false;  // --connlimit-upto (the kernel's invert flag)
  bool daddr = false;
};

struct TimeMatch {                                   // xt_time
  uint32_t date_start = 0, date_stop = 0x7fffffff;   // seconds since the epoch
  uint32_t daytime_start = 0, daytime_stop = 86399;  // seconds of the day
  uint32_t monthdays = 0xfffffffe;                   // bit n: day n of the month
  uint8_t weekdays = 0xfe;                           // bit n: ISO day n (Mon=1..Sun=7)
  bool localtz = false, contiguous = false;
  bool weekdays_inv = false, monthdays_inv = false;
};

struct StringMatch {  // xt_string: the payload is not simulated (see Packet::assume)
  std::string pattern;
  std::string algo;
  uint16_t from = 0, to = 65535;
  bool hex = false, inv = false, icase = false;
};

struct HelperMatch {
  std::string name;
  bool inv = false;
};

struct TosMatch {  // xt_tos (revision 1): (tos & mask) == value
  uint8_t value = 0, mask = 0xff;
  bool inv = false;
};

struct DscpMatch {  // xt_dscp: tos >> 2
  uint8_t dscp = 0;
  bool inv = false;
};

struct EcnMatch {
  enum : uint8_t { TcpCwr = 1, TcpEce = 2, IpEct = 4 };
  uint8_t ops = 0, invert = 0, ect = 0;
};

struct TcpmssMatch {
  uint16_t lo = 0, hi = 0;
  bool inv = false;
};

struct SpiMatch {  // xt_esp, xt_ah (v4) and xt_ipcomp: one SPI range each
  enum Kind : uint8_t { Esp, Ah, Ipcomp };
  uint32_t lo = 0, hi = 0xffffffff;
  bool inv = false;
  Kind kind = Esp;
  /// The module's name; its option is --NAMEspi and it needs -p NAME.
  std::string_view name() const { return kind == Ah ? "ah" : kind == Ipcomp ? "ipcomp" : "esp"; }
  uint8_t proto() const { return kind == Ah ? proto::AH : kind == Ipcomp ? 108 /* IPPROTO_COMP */ : proto::ESP; }
};

// ------------------------------------------------- IPv6 extension headers (net/ipv6/netfilter/ip6t_*)
// Each finds its header with ipv6_find_hdr over the packet's extension headers (core/ipv6_ext.hpp).

struct FragMatch {  // ip6t_frag
  uint32_t id_lo = 0, id_hi = 0xffffffff;
  bool id_inv = false;
  uint32_t len = 0;  // --fraglen: kept and printed; the kernel never tests it
  bool len_set = false, len_inv = false;
  bool res = false, first = false, more = false, last = false;
};

struct Ipv6HeaderMatch {  // ip6t_ipv6header
  // MASK_* of ip6t_ipv6header.h, in iptables-save's print order.
  enum : uint8_t { Hop = 128, Dst = 64, Route = 32, Frag = 16, Ah = 8, Esp = 4, None = 2, Proto = 1 };
  uint8_t flags = 0;
  bool inv = false, soft = false;
};

struct OptsMatch {  // ip6t_hbh, as -m hbh and -m dst
  bool dst = false;
  uint32_t len = 0;  // the whole header's length in bytes
  bool len_set = false, len_inv = false;
  bool opts_set = false;
  uint8_t nopts = 0;
  uint16_t opts[16] = {};  // TYPE << 8 | LEN, LEN 0xff = any length
};

struct RtMatch {  // ip6t_rt
  uint32_t type = 0;
  bool type_set = false, type_inv = false;
  uint32_t left_lo = 0, left_hi = 0xffffffff;
  bool left_inv = false;
  uint32_t len = 0;  // bytes
  bool len_set = false, len_inv = false;
  bool res = false, addrs_set = false, not_strict = false;
  std::vector<Addr> addrs;  // --rt-0-addrs, at most 16
};

struct Ah6Match {  // ip6t_ah: AH is an extension header in IPv6, found wherever it sits
  uint32_t spi_lo = 0, spi_hi = 0xffffffff;
  bool spi_inv = false;
  uint32_t len = 0;  // bytes; 0 = not tested
  bool len_inv = false;
  bool res = false;
};

struct DevgroupMatch {
  enum : uint8_t { Src = 1, Dst = 2, InvSrc = 4, InvDst = 8 };
  uint8_t flags = 0;
  uint32_t src = 0, src_mask = 0, dst = 0, dst_mask = 0;
};

struct CgroupMatch {  // xt_cgroup revision 1/2: --cgroup classid (net_cls) or --path (cgroup v2)
  uint32_t classid = 0;
  std::string path;
  bool inv = false;
};

struct CpuMatch {
  uint32_t cpu = 0;
  bool inv = false;
};

struct QuotaMatch {  // xt_quota: bytes left, consumed per packet (per rule state slot)
  uint64_t quota = 0;
  bool inv = false;
  uint32_t slot = 0;
};

struct U32Match {    // xt_u32: kept as written (normalized to what iptables-save prints)
  std::string text;  // tests as iptables-save prints them
  bool inv = false;
};

struct BpfMatch {  // xt_bpf: a program svcpath does not run (the packet gets Unsimulated)
  std::string bytecode;
  bool inv = false;
};

using Match = std::variant<TcpMatch, UdpMatch, SctpMatch, DccpMatch, MultiportMatch, IcmpMatch, CommentMatch, MarkMatch,
                           ConnmarkMatch, ConntrackMatch, StateMatch, AddrtypeMatch, StatisticMatch, RecentMatch, SetMatch,
                           IprangeMatch, PhysdevMatch, LimitMatch, NfacctMatch, RpfilterMatch, SocketMatch, PolicyMatch,
                           LengthMatch, TtlMatch, PkttypeMatch, IpvsMatch, MacMatch, OwnerMatch, HashlimitMatch, ConnlimitMatch,
                           TimeMatch, StringMatch, HelperMatch, TosMatch, DscpMatch, EcnMatch, TcpmssMatch, SpiMatch, DevgroupMatch,
                           CgroupMatch, CpuMatch, QuotaMatch, U32Match, BpfMatch, FragMatch, Ipv6HeaderMatch, OptsMatch, RtMatch,
                           Ah6Match>;

/// The -m name a match is written with ("tcp", "icmp6", "hl", ...).
std::string_view match_name(const Match& m);

// ---------------------------------------------------------------------------------------- targets
struct NoTarget {};  // a rule without -j: counts and continues

enum class StdVerdict : uint8_t { Accept, Drop, Return, Queue };
struct StandardTarget {
  StdVerdict v = StdVerdict::Accept;
};

struct JumpTarget {
  std::string chain;
  int index = -1;   // resolved chain index
  bool go = false;  // -g
};

struct RejectTarget {
  std::string with;  // canonical name, e.g. icmp-port-unreachable, tcp-reset
};

struct MarkTarget {
  uint32_t value = 0, mask = 0;  // mark = (mark & ~mask) ^ value
  bool given = false;            // parse bookkeeping: an operation was specified
};

struct ConnmarkTarget {
  enum class Mode : uint8_t { Set, Save, Restore } mode = Mode::Set;
  uint32_t value = 0, mask = 0;                       // Set: ctmark = (ctmark & ~mask) ^ value
  uint32_t nfmask = 0xffffffff, ctmask = 0xffffffff;  // Save/Restore
  bool given = false;                                 // parse bookkeeping
};

struct LogTarget {
  std::string prefix;
  uint8_t level = 4;
  uint8_t flags = 0;  // 1 tcp-seq, 2 tcp-opt, 4 ip-opt, 8 uid, 16 macdecode
};

struct NflogTarget {
  uint16_t group = 0;
  std::string prefix;
  uint32_t range = 0, size = 0;
  bool size_set = false;
  uint16_t threshold = 1;
};

struct TraceTarget {};
struct NotrackTarget {};
struct CtTarget {
  bool notrack = false;
  uint16_t zone = 0;
  bool zone_set = false;
  bool zone_mark = false;  // --zone mark: the zone is taken from the packet's mark
  uint8_t zone_dir = 0;    // 0 both directions (--zone), 1 --zone-orig, 2 --zone-reply
  std::string helper;
  std::string timeout;    // a cttimeout policy name, kept to print back
  uint16_t ctevents = 0;  // IPCT_* bits in libxt_CT's table order (new, related, destroy, ...)
  uint8_t expevents = 0;  // IPEXP_NEW
};
struct TcpmssTarget {
  bool clamp = false;
  uint16_t mss = 0;
};
struct TproxyTarget {
  uint16_t port = 0;
  Addr ip;
  bool ip_set = false;
  uint32_t mark = 0, mask = 0;
  bool mark_set = false;
};
struct NfqueueTarget {
  uint16_t num = 0, balance_hi = 0;
  bool balance = false, bypass = false, cpu_fanout = false;
};
struct ChecksumTarget {};

/// -j SET: adds the packet to / deletes it from ipsets, which later rules' -m set then see
/// (xt_SET); --map-set reads skbinfo from a set (loaded and printed; not applied).
struct SetTarget {
  struct Ref {
    std::string name;
    int set_index = -1;  // resolved against the IpSets at datapath build
    uint8_t dims = 0;
    uint8_t src_flags = 0;  // bit i set: dimension i is taken from the source
    bool set() const { return dims != 0; }
  };
  Ref add, del, map;
  bool exist = false;
  bool timeout_set = false;
  uint32_t timeout = 0;
  bool map_mark = false, map_prio = false, map_queue = false;
};
/// -j CLASSIFY --set-class MAJOR:MINOR: skb->priority.
struct ClassifyTarget {
  uint32_t priority = 0;
};
/// -j DSCP: the six DSCP bits of the TOS / traffic class byte.
struct DscpTarget {
  uint8_t dscp = 0;
};
/// -j TOS: tos = (tos & ~mask) ^ value (every --set/--and/--or/--xor-tos form is this one).
struct TosTarget {
  uint8_t value = 0, mask = 0;
  bool given = false;
};
/// -j TEE --gateway: a copy of the packet is routed to the gateway; the original goes on.
struct TeeTarget {
  Addr gateway;
  bool gateway_set = false;
  std::string oif;
};

using Target = std::variant<NoTarget, StandardTarget, JumpTarget, RejectTarget, NatTarget, MarkTarget, ConnmarkTarget, LogTarget,
                            NflogTarget, TraceTarget, NotrackTarget, CtTarget, TcpmssTarget, TproxyTarget, NfqueueTarget,
                            ChecksumTarget, SetTarget, ClassifyTarget, DscpTarget, TosTarget, TeeTarget>;

/// Name of the target as written after -j ("ACCEPT", "DNAT", a chain name...).
std::string target_name(const Target& t);

// ------------------------------------------------------------------------------ rules and chains
struct Rule {
  // The ipt_ip part, checked before any match module.
  Prefix src, dst;
  bool src_set = false, dst_set = false, src_inv = false, dst_inv = false;
  IfaceMatch iif, oif;
  uint8_t proto = 0;
  bool proto_set = false, proto_inv = false;
  bool frag_set = false, frag_inv = false;

  std::vector<Match> matches;
  Target target;

  uint64_t pkts = 0, bytes = 0;  // counters as loaded
  uint32_t id = 0;               // global rule index (datapath counter slot)
  int line = 0;                  // source line, for diagnostics and traces

  /// True when the rule has no ipt_ip conditions and no matches (the kernel's "unconditional").
  bool unconditional() const;
};

/// What loading a rule attaches to its namespace, as the checkentry functions do: conntrack
/// (conntrack, state, connmark, connlimit, helper; CONNMARK, CT without --notrack and the NAT
/// targets call nf_ct_netns_get) or only defragmentation (socket, TPROXY enable nf_defrag alone).
/// Loading is what counts: a rule in a chain nothing jumps to attaches it too.
enum class CtNeed : uint8_t { None, Defrag, Conntrack };
CtNeed ct_need(const Rule& r);

enum class Policy : uint8_t { None, Accept, Drop };

// Consecutive rules that each name one full-length, non-inverted destination (-d a.b.c.d/32), as
// KUBE-SERVICES is: the rules of the run per destination address, in order. The walk jumps to the
// ones naming the packet's destination and counts the rules in between as evaluated, as the
// kernel's linear walk does (their ipt_ip part fails on the destination before any match runs),
// so counters and traces stay exact.
struct DstRun {
  uint32_t begin = 0, end = 0;                    // rule indices [begin, end)
  std::vector<std::pair<Addr, uint32_t>> by_dst;  // (destination, rule index), sorted
  /// The first rule at or after i whose destination is dst, or end.
  uint32_t next(const Addr& dst, uint32_t i) const;
};

struct Chain {
  std::string name;
  bool builtin = false;
  Hook hook = Hook::PreRouting;  // for built-in chains
  Policy policy = Policy::None;
  uint64_t pkts = 0, bytes = 0;
  std::vector<Rule> rules;
  int line = 0;
  bool implicit = false;        // a built-in chain the input never named (created at COMMIT)
  uint8_t reach = 0;            // hooks this chain is reachable from (computed at load)
  std::vector<DstRun> runs;     // built at load (index_chain)
  std::vector<int32_t> run_of;  // per rule: its run, or -1
};

/// Builds a chain's destination runs (runs shorter than a few rules are not worth an index).
void index_chain(Chain& c);

/// The deepest nesting of user-chain jumps a table may have (gotos do not nest): the loader refuses
/// deeper tables, so the engine's jump stack of exactly this many frames never overflows.
inline constexpr uint32_t kMaxJumpDepth = 60;

struct Table {
  TableId id = TableId::Filter;
  std::vector<Chain> chains;
  int builtin[kNumHooks] = {-1, -1, -1, -1, -1};  // chain index per hook, -1 = not registered
  int line = 0;
  int find(std::string_view chain) const;
};

/// Which iptables the dump came from. They differ where the kernel sees their tables: iptables-nft
/// creates only the built-in chains a dump names (iptables-nft-save still prints them all) and
/// registers the security table at priority 150, iptables-legacy every chain and security at 50.
enum class XtBackend : uint8_t { Legacy, Nft };

/// The back end a dump's header names ("# Generated by iptables-save v1.8.9 (nf_tables)",
/// iptables-nft-save); legacy when it names none (older iptables had no other).
XtBackend detect_backend(std::string_view dump);

struct Ruleset {
  Family family = Family::V4;
  XtBackend backend = XtBackend::Legacy;
  std::vector<Table> tables;  // in input order
  uint32_t rule_count = 0;    // ids are 0..rule_count-1
  uint32_t stat_slots = 0;    // nth counters and limit buckets
  uint32_t max_depth = 0;     // deepest jump chain from a built-in chain

  const Table* table(TableId id) const;
  Table* table(TableId id);
};

}  // namespace svcpath::nf
