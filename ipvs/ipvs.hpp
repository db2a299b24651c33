#pragma once
// IPVS as the kernel implements it (net/netfilter/ipvs, ../shared/design/ipvs.md): a 256-bucket
// service table with the kernel's hash, real servers kept in the kernel's list order (newest first),
// the kernel's schedulers, and a chained connection table with per-state timeouts, active/inactive
// accounting and persistence templates.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "core/counters.hpp"
#include "core/packet.hpp"

namespace svcpath::ipvs {

enum class Fwd : uint8_t { Masq, Route, Tunnel };

struct Dest {
  Addr addr;
  uint16_t port = 0;
  int weight = 1;
  int last_weight = 1;  // mh keeps the weight a server had before it was quiesced
  uint32_t u_threshold = 0, l_threshold = 0;
  bool overloaded = false;
  Fwd fwd = Fwd::Masq;
  uint32_t activeconns = 0, inactconns = 0, persistconns = 0;
  uint64_t conns = 0, inpkts = 0, outpkts = 0, inbytes = 0, outbytes = 0;

  bool unavailable() const { return weight <= 0 || overloaded; }
  /// ip_vs_dest_conn_overhead: active connections cost 256 inactive ones.
  uint64_t overhead() const { return (uint64_t(activeconns) << 8) + inactconns; }
};

class Service;

/// A scheduler: the kernel's algorithm, state rebuilt when destinations change.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual std::string_view name() const = 0;
  virtual std::unique_ptr<Scheduler> clone() const = 0;
  /// Called after any add/edit/remove of a destination (and once when bound).
  virtual void update(const Service& s) = 0;
  /// Index into s.dests, or -1 for none. why receives a short explanation for traces.
  virtual int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) = 0;
  /// A destination is about to be removed (rr moves its cursor to the predecessor).
  virtual void removing(const Service&, int /*index*/) {}
  /// sh, dh, mh: the lookup table (dest index per bucket/slot, -1 = empty); nullptr otherwise.
  virtual const std::vector<int>* lookup_table() const { return nullptr; }
};

/// Creates a scheduler by name (rr, wrr, lc, wlc, sed, nq, sh, dh, mh); nullptr if unknown.
std::unique_ptr<Scheduler> make_scheduler(std::string_view name);
bool known_scheduler(std::string_view name);

namespace flag {  // scheduler flags as ipvsadm -b names them
inline constexpr uint32_t SH_FALLBACK = 1, SH_PORT = 2, MH_FALLBACK = 1, MH_PORT = 2;
}

class Service {
 public:
  Service() = default;
  Service(const Service& o);  // deep: the scheduler's state is cloned
  Service& operator=(const Service&) = delete;
  uint8_t proto = proto::TCP;  // 0 for fwmark services
  Addr addr;
  uint16_t port = 0;
  uint32_t fwmark = 0;
  bool persistent = false;
  uint32_t timeout = 300;  // persistence timeout, seconds (ipvsadm's default)
  Addr netmask;            // persistence netmask
  uint32_t sched_flags = 0;
  std::vector<Dest> dests;  // kernel list order: the last added is first
  uint64_t conns = 0, inpkts = 0, outpkts = 0;

  const std::string& sched_name() const { return sched_name_; }
  void set_scheduler(std::string_view name);  // throws LoadError for an unknown name
  Scheduler& scheduler() const { return *sched_; }

  /// ipvsadm -a: inserted at the head of the list, as list_add_rcu does.
  void add_dest(const Dest& d);
  /// ipvsadm -e.
  void edit_dest(int index, int weight, uint32_t u_thresh, uint32_t l_thresh);
  void remove_dest(int index);
  int find_dest(const Addr& a, uint16_t port) const;
  std::string key() const;  // "TCP 10.96.0.1:443", "FWM 5"

 private:
  std::string sched_name_ = "wlc";
  std::unique_ptr<Scheduler> sched_ = make_scheduler("wlc");
};

/// The service table: 256 buckets, the kernel's hash (ip_vs_svc_hashkey, netns pointer taken as 0),
/// newest service first in its bucket.
class ServiceTable {
 public:
  static constexpr unsigned kBits = 8;
  ServiceTable() : buckets_(1u << kBits), fwm_buckets_(1u << kBits) {}
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;
  ServiceTable(ServiceTable&&) = default;
  ServiceTable& operator=(ServiceTable&&) = default;

  static unsigned hash(uint8_t proto, const Addr& a, uint16_t port);
  Service* add(std::unique_ptr<Service> s);  // nullptr if it exists already
  Service* find(uint8_t proto, const Addr& a, uint16_t port, uint64_t* walked = nullptr) const;
  Service* find_fwmark(uint32_t mark, Family fam, uint64_t* walked = nullptr) const;
  bool remove(const Service* s);
  ServiceTable clone() const;  // a deep copy (services keep their creation order)
  /// Services in creation order (for printing).
  const std::vector<std::unique_ptr<Service>>& all() const { return services_; }
  Service* at(int i) const { return i >= 0 && size_t(i) < services_.size() ? services_[size_t(i)].get() : nullptr; }
  int index_of(const Service* s) const;
  size_t size() const { return services_.size(); }

 private:
  std::vector<std::unique_ptr<Service>> services_;
  std::vector<std::vector<Service*>> buckets_, fwm_buckets_;  // front = newest
  boost::unordered_flat_map<const Service*, int> index_;      // position in services_
};

enum class ConnState : uint8_t {
  None,
  Established,
  SynSent,
  SynRecv,
  FinWait,
  TimeWait,
  Close,
  CloseWait,
  LastAck,
  Listen,
  SynAck,
  Udp
};
std::string_view conn_state_name(ConnState s);

struct Conn {
  uint32_t id = 0;
  uint8_t proto = 0;
  Addr caddr, vaddr, daddr;
  uint16_t cport = 0, vport = 0, dport = 0;
  int svc = -1;  // index into ServiceTable::all() (stable while a datapath runs; survives clone())
  Addr dest_addr;
  uint16_t dest_port = 0;
  ConnState state = ConnState::None;
  bool inactive = true;  // counted in inactconns (IP_VS_CONN_F_INACTIVE)
  bool is_template = false;
  uint64_t expires_ns = 0;
  uint32_t control = 0;           // the persistence template this connection belongs to
  uint32_t hnext = 0, hprev = 0;  // ConnTable's bucket chain (ids; 0 ends it), the kernel's c_list hlist
};

/// Timeouts (ipvsadm --set tcp tcpfin udp), 0 = kernel default.
struct Timeouts {
  uint32_t tcp = 900, tcpfin = 120, udp = 300;
};

/// The connection table: 2^bits chained buckets, jhash over (client address, client port, protocol)
/// with a seeded random, newest first; lookups count the entries they compare.
class ConnTable {
 public:
  explicit ConnTable(unsigned bits = 12, uint32_t rnd = 0x9e3779b9u);
  unsigned bucket(uint8_t proto, const Addr& a, uint16_t port) const;
  Conn* in_get(uint8_t proto, const Addr& caddr, uint16_t cport, const Addr& vaddr, uint16_t vport, uint64_t now,
               uint64_t* walked);
  Conn* out_get(uint8_t proto, const Addr& daddr, uint16_t dport, const Addr& caddr, uint16_t cport, uint64_t now,
                uint64_t* walked);
  Conn* template_get(uint8_t proto, const Addr& caddr, const Addr& vaddr, uint16_t vport, uint64_t now);
  Conn* create(const Conn& c);
  Conn* get(uint32_t id);
  void expire(uint32_t id);
  /// Forgets every connection (ids restart from 1), keeping the table's memory. The kernel has no
  /// such flush; benchmarks use it to bound the table.
  void clear();
  size_t size() const { return live_; }
  unsigned bits() const { return bits_; }

 private:
  void unlink(Conn& c);
  unsigned bits_;
  uint32_t rnd_;
  // Chained through Conn::hnext/hprev, newest first, as the kernel's hlist: linking a connection
  // never allocates, and freed ids are reused.
  std::vector<uint32_t> heads_;
  std::vector<Conn> conns_;  // id - 1
  std::vector<uint32_t> free_;
  size_t live_ = 0;
};

/// The TCP state machine IPVS keeps per connection (ip_vs_proto_tcp.c), by direction of travel.
ConnState tcp_next(ConnState s, bool from_client, uint8_t flags);
bool state_active(ConnState s);
uint64_t state_timeout_ns(ConnState s, uint8_t proto, const Timeouts& t);

}  // namespace svcpath::ipvs
