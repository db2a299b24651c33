#pragma once
// ipsets as `ipset save` prints them and `ipset restore` reads them, and the -m set test.
#include <cstdint>
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

/// The -m set test: flags bit i set means dimension i comes from the source. Returns whether the
/// packet matches; *nomatch_hit is set when the deciding element was flagged nomatch.
bool ipset_test(const IpSets& sets, int set_index, const Packet& p, uint8_t src_flags, uint8_t dims, bool return_nomatch,
                uint64_t* lookups);

}  // namespace svcpath::nf
