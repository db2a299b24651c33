#pragma once
// Connection tracking: one entry, two tuples (original and reply), both indexing the same table, as
// nf_conntrack_tuple_hash does. NAT is a rewrite of the reply tuple, set up once per manip type on a
// connection's first packet; later packets and replies are rewritten from it.
#include <cstdint>
#include <optional>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/packet.hpp"
#include "core/rng.hpp"

namespace svcpath::nf {

enum class TcpState : uint8_t { None, SynSent, SynRecv, Established, FinWait, CloseWait, LastAck, TimeWait, Close, SynSent2 };
std::string_view tcp_state_name(TcpState s);

enum class Manip : uint8_t { Src, Dst };

/// A packet's conntrack state as a bit (NF_CT_STATE_*: what xt_state, xt_conntrack's --ctstate and
/// nftables' `ct state` compare against). SNAT and DNAT are xt_conntrack's pseudo-states for
/// entries with a NAT binding; svcpath keeps them above the kernel's bits.
namespace ctstate {
inline constexpr uint16_t INVALID = 1 << 0, ESTABLISHED = 1 << 1, RELATED = 1 << 2, NEW = 1 << 3, UNTRACKED = 1 << 6,
                          SNAT = 1 << 8, DNAT = 1 << 9;
}
/// NF_CT_STATE_BIT of the packet's ctinfo (INVALID without an entry, UNTRACKED for notrack).
constexpr uint16_t ct_state_bit(CtInfo info) {
  switch (info) {
    case CtInfo::New: return ctstate::NEW;
    case CtInfo::Established: return ctstate::ESTABLISHED;
    case CtInfo::Related: return ctstate::RELATED;
    case CtInfo::Untracked: return ctstate::UNTRACKED;
    case CtInfo::Invalid:
    case CtInfo::None: return ctstate::INVALID;
  }
  return ctstate::INVALID;
}
namespace ctstatus {  // IPS_* bits
inline constexpr uint32_t EXPECTED = 1 << 0, SEEN_REPLY = 1 << 1, ASSURED = 1 << 2, CONFIRMED = 1 << 3, SRC_NAT = 1 << 4,
                          DST_NAT = 1 << 5;
}

struct CtEntry {
  uint32_t id = 0;
  FiveTuple orig, reply;
  uint32_t status = 0;  // ctstatus::* bits
  uint32_t mark = 0;    // connmark
  uint16_t zone = 0;
  TcpState tcp = TcpState::None;
  bool confirmed = false;
  bool nat_done[2] = {false, false};  // nf_nat_initialized per Manip
  uint64_t expires_ns = 0;
  uint64_t packets[2] = {0, 0};
};

/// How a packet relates to the table, as nf_conntrack_in decides.
struct CtLookup {
  uint32_t id = 0;  // 0: no entry
  CtDir dir = CtDir::Original;
};

class Conntrack {
 public:
  explicit Conntrack(size_t max_entries = 1u << 22) : max_(max_entries) {}

  /// Whether conntrack is attached to the namespace for a family. The kernel registers its hooks
  /// (and nf_defrag's) per family only once something asks (nf_ct_netns_get: a rule or statement
  /// using conntrack, a NAT target, a ct object; an inet table asks for both families). Until
  /// then packets carry no entry: nothing is created, the nat chains are never walked
  /// (nf_nat_inet_fn returns without a ct) and no NAT happens. Decided once, at load: a rule
  /// removed later does not release it within one load.
  void engage(Family f) { engaged_[f == Family::V6] = true; }
  bool engaged(Family f) const { return engaged_[f == Family::V6]; }
  /// Whether IPv4/IPv6 fragments are reassembled before PREROUTING/OUTPUT (nf_defrag_ipv4/6 at
  /// -400): registered together with conntrack, or on its own by a user that needs whole packets
  /// without conntrack (xt_socket, TPROXY). Without it every fragment walks the hooks on its own.
  void enable_defrag(Family f) { defrag_[f == Family::V6] = true; }
  bool defrag(Family f) const { return engaged(f) || defrag_[f == Family::V6]; }

  /// The reply tuple the kernel expects for an original tuple (ports swapped; ICMP echo type inverted).
  static std::optional<FiveTuple> invert(const FiveTuple& t);

  /// Finds a confirmed entry for the packet's tuple, expiring it first if it timed out.
  CtLookup find(const FiveTuple& t, uint16_t zone, uint64_t now_ns);
  CtEntry* get(uint32_t id);
  const CtEntry* get(uint32_t id) const;
  /// A new, unconfirmed entry (not yet in the hash), or nullptr when the table is full.
  CtEntry* create(const FiveTuple& orig, uint16_t zone);
  /// Inserts both tuples (nf_conntrack_confirm). False on a clash: the packet is dropped.
  bool confirm(uint32_t id);
  /// Adds a confirmed entry as a node's table already holds it (conntrack -L: both tuples, status,
  /// mark, zone, state, timeout), as ctnetlink's IPCTNL_MSG_CT_NEW does. A reply tuple that is not
  /// the inverse of the original is a NAT binding already set up: both manips count as done, so
  /// later packets are rewritten from it and no rule is asked again. nullptr when the table is full
  /// or either tuple is already taken.
  CtEntry* insert(const CtEntry& e);
  void destroy(uint32_t id);
  /// Forgets every entry (ids restart from 1) but keeps the table's memory and what the rules
  /// engaged: a flush (conntrack -F), not a new netns.
  void clear();
  /// Drops unconfirmed entries (the packet that created them died).
  void drop_unconfirmed(uint32_t id);

  /// nf_nat_used_tuple: would this reply tuple clash with another confirmed connection?
  bool reply_taken(const FiveTuple& reply, uint16_t zone, uint32_t except) const;

  size_t size() const { return live_; }
  uint64_t created() const { return created_; }
  const std::vector<CtEntry>& entries() const { return entries_; }

  /// Updates the TCP state from a packet. Returns false if the packet is invalid for the connection.
  /// *reopen is set when a SYN reopens a connection in TIME_WAIT/CLOSE (the old entry must go).
  bool tcp_packet(CtEntry& e, CtDir dir, uint8_t flags, bool loose, bool* reopen);
  /// Timeout for the entry in its current state, as the kernel's defaults set it.
  static uint64_t timeout_ns(const CtEntry& e);

 private:
  struct Key {
    FiveTuple t;
    uint16_t zone;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept { return FiveTupleHash{}(k.t) ^ (size_t(k.zone) << 1); }
  };
  CtEntry* alloc();  // a blank entry with its id, or nullptr when full

  boost::unordered_flat_map<Key, uint64_t, KeyHash> index_;  // value: id << 1 | dir
  std::vector<CtEntry> entries_;                             // id - 1 -> entry; destroyed entries get id 0
  std::vector<uint32_t> free_;
  size_t live_ = 0, max_;
  uint64_t created_ = 0;
  bool engaged_[2] = {false, false};  // nf_conntrack_net users4 / users6 != 0
  bool defrag_[2] = {false, false};   // nf_defrag_ipv4/6 users besides conntrack
};

}  // namespace svcpath::nf
