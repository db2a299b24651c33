#pragma once
// ipsets as `ipset save` prints them and `ipset restore` reads them, and the -m set test.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/addr.hpp"
#include "core/packet.hpp"

namespace svcpath::nf {

enum class SetType : uint8_t { HashIp, HashIpPort, HashIpPortIp, HashIpPortNet, HashNet, HashNetPort, BitmapPort, ListSet };
std::string_view set_type_name(SetType t);

/// One element. Unused dimensions stay zero. Addresses are stored masked to their cidr.
struct SetKey {
  Addr a1;
  uint8_t cidr1 = 0;
  uint8_t proto = 0;
  uint16_t port = 0;
  Addr a3;
  uint8_t cidr3 = 0;
  bool operator==(const SetKey&) const = default;
};
struct SetKeyHash {
  size_t operator()(const SetKey& k) const noexcept;
};

struct SetEntry {
  SetKey key;
  bool nomatch = false;
  uint32_t timeout = 0;
  bool timeout_set = false;
  std::string comment;
  uint64_t packets = 0, bytes = 0;
  bool counters_set = false;
  // skbinfo extension: what a SET --map-set target would write to the packet (kept and printed).
  uint32_t skbmark = 0, skbmark_mask = 0xffffffff, skbprio = 0;
  uint16_t skbqueue = 0;
  bool skbmark_set = false, skbprio_set = false, skbqueue_set = false;
};

struct IpSet {
  std::string name;
  SetType type = SetType::HashIp;
  Family family = Family::V4;
  // create options, kept to print them back
  uint32_t hashsize = 1024, maxelem = 65536, timeout = 0, size = 8;
  bool timeout_set = false, counters = false, comment = false, skbinfo = false, forceadd = false;
  std::string bucketsize, initval;
  uint8_t netmask = 0;  // hash:ip netmask option (0 = none)
  PortRange range{0, 65535};
  int line = 0;

  std::vector<SetEntry> entries;  // in insertion order
  boost::unordered_flat_map<SetKey, uint32_t, SetKeyHash> index;
  std::vector<uint8_t> cidrs1, cidrs3;  // prefix lengths present, most specific first
  std::vector<std::string> members;     // list:set
  std::vector<int> member_index;

  /// How many dimensions the type matches on (hash:ip,port = 2 ...).
  unsigned dims() const;
};

class IpSets {
 public:
  const IpSet* find(std::string_view name) const;
  int index_of(std::string_view name) const;
  const IpSet& at(int i) const { return sets_[size_t(i)]; }
  const std::vector<IpSet>& all() const { return sets_; }
  std::vector<IpSet>& all() { return sets_; }
  size_t size() const { return sets_.size(); }

 private:
  std::vector<IpSet> sets_;
  friend class IpsetLoader;
};

/// Parses `ipset save` / `ipset restore` text (create, add, and also flush, destroy, -exist). Throws
/// LoadError with every problem found, each with file:line:column.
void load_ipsets(std::string_view text, const std::string& file, IpSets& sets);
IpSets load_ipsets_file(const std::string& path);
/// Prints in `ipset save` form: sets in load order (list:set last, as ipset does), elements in
/// insertion order.
std::string save_ipsets(const IpSets& sets);
/// One element as `ipset save` prints it ("10.0.0.0/16", "10.0.0.5,udp:53").
std::string element_text(const IpSet& s, const SetKey& k);

/// What -j SET changed while packets ran (xt_SET --add-set/--del-set): per set, the elements added
/// (with their expiry) or deleted. The loaded IpSets stay as loaded; the test reads both. One per
/// datapath, cleared with its other rule state.
struct SetChanges {
  struct Change {
    bool present = false;
    uint64_t expires_ns = UINT64_MAX;  // packet time the element times out; UINT64_MAX: never
  };
  struct PerSet {
    boost::unordered_flat_map<SetKey, Change, SetKeyHash> keys;
    std::vector<uint8_t> cidrs1, cidrs3;  // prefix lengths of the added elements, most specific first
    int64_t count_delta = 0;              // elements added less loaded ones deleted (maxelem)
  };
  std::vector<PerSet> sets;  // by set index; empty until the first change
  void clear() { sets.clear(); }
};

/// How a rule names a set's dimensions: flags bit i set means dimension i comes from the source.
struct SetDims {
  uint8_t src_flags = 0;
  uint8_t dims = 0;
};

/// The -m set test (and --map-set's lookup). Returns whether the packet matches; an element
/// flagged nomatch matches only with return_nomatch. `changes` may be null. *entry, when given, is
/// set to the loaded element that decided (null for one a SET target added).
bool ipset_test(const IpSets& sets, const SetChanges* changes, int set_index, const Packet& p, SetDims d, bool return_nomatch,
                uint64_t* lookups, const SetEntry** entry = nullptr);

/// What an --add-set/--del-set did: the set (a list:set's member) and element it tried, whether
/// the element was there before, and whether it was added/refreshed or deleted. set_index -1: the
/// packet gives no element for the set (family, dimensions, no port).
struct SetChange {
  int set_index = -1;
  SetKey key;
  bool present = false, done = false;
};

/// xt_SET's --add-set: adds the element the packet gives (a hash:net type at its most specific
/// prefix present, as the kernel's kadt does); an existing live element keeps its timeout unless
/// `exist`. `timeout` is the target's --timeout, or nullopt for the set's default. A list:set adds
/// to the first member that takes it.
SetChange ipset_add(const IpSets& sets, SetChanges& changes, int set_index, const Packet& p, SetDims d,
                    std::optional<uint32_t> timeout, bool exist);
/// xt_SET's --del-set: deletes from the set, or a list:set's first member holding it.
SetChange ipset_del(const IpSets& sets, SetChanges& changes, int set_index, const Packet& p, SetDims d);

}  // namespace svcpath::nf
