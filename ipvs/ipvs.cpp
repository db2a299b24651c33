#include "ipvs/ipvs.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "core/jhash.hpp"

namespace svcpath::ipvs {

namespace {

// The address as the kernel folds it: IPv4 in host order; IPv6 as the XOR of its four words.
uint32_t fold(const Addr& a) {
  auto w = [&](int i) {
    return uint32_t(a.b[4 * i]) << 24 | uint32_t(a.b[4 * i + 1]) << 16 | uint32_t(a.b[4 * i + 2]) << 8 | a.b[4 * i + 3];
  };
  return a.is_v4() ? w(0) : (w(0) ^ w(1) ^ w(2) ^ w(3));
}

uint32_t hash_32(uint32_t v, unsigned bits) { return (v * 0x61C88647u) >> (32 - bits); }

std::string dest_str(const Dest& d) { return FiveTuple::endpoint(d.addr, d.port, proto::TCP); }

// ---------------------------------------------------------------------------------- rr
class Rr final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Rr>(*this); }
  std::string_view name() const override { return "rr"; }
  void update(const Service&) override {}
  void removing(const Service& s, int i) override {
    if (cursor_ == key(s.dests[size_t(i)])) cursor_ = i == 0 ? "" : key(s.dests[size_t(i - 1)]);
  }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    // The cursor is a list node: scan after it to the end, then from the start up to it.
    int n = int(s.dests.size());
    int at = -1;
    for (int i = 0; i < n; ++i)
      if (key(s.dests[size_t(i)]) == cursor_) at = i;
    for (int k = 1; k <= n; ++k) {
      int i = (at + k) % (n + 1);
      if (i == n) {
        if (at == -1) break;  // started at the head: one pass is all
        continue;
      }
      if (scanned) ++*scanned;
      if (!s.dests[size_t(i)].overloaded && s.dests[size_t(i)].weight > 0) {
        cursor_ = key(s.dests[size_t(i)]);
        if (why) *why = fmt::format("round robin: next available after the cursor is {}", dest_str(s.dests[size_t(i)]));
        return i;
      }
    }
    if (at >= 0 && at < n) {
      // The cursor's own node is checked last, after a full turn.
      if (scanned) ++*scanned;
      if (!s.dests[size_t(at)].overloaded && s.dests[size_t(at)].weight > 0) {
        if (why) *why = fmt::format("round robin: only {} is available", dest_str(s.dests[size_t(at)]));
        return at;
      }
    }
    if (why) *why = "round robin: no available destination";
    return -1;
  }

 private:
  static std::string key(const Dest& d) { return dest_str(d); }
  std::string cursor_;  // "" = the list head
};

// ---------------------------------------------------------------------------------- wrr
class Wrr final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Wrr>(*this); }
  std::string_view name() const override { return "wrr"; }
  void update(const Service& s) override {
    int g = 0, mx = 0;
    for (auto& d : s.dests)
      if (d.weight > 0) {
        g = std::gcd(g, d.weight);
        mx = std::max(mx, d.weight);
      }
    di_ = g ? g : 1;
    mw_ = mx - (di_ - 1);
    cursor_ = -1;  // reset to the list head
    if (!bound_) {
      cw_ = mw_;
      bound_ = true;
    } else if (cw_ > mw_ || cw_ == 0) {
      cw_ = mw_;
    } else if (di_ > 1) {
      cw_ = (cw_ / di_) * di_ + 1;
    }
  }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int n = int(s.dests.size());
    if (mw_ <= 0 || n == 0) {
      if (why) *why = "weighted round robin: no destination has weight";
      return -1;
    }
    // Classic LVS interleaved WRR over the kernel list with a head position; bounded so that an
    // all-overloaded service cannot loop.
    long guard = long(n + 1) * (mw_ / di_ + 2) + 2;
    int i = cursor_;
    while (guard-- > 0) {
      i = i + 1;
      if (i >= n) {
        i = -1;
        cw_ -= di_;
        if (cw_ <= 0) cw_ = mw_;
        continue;
      }
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (!d.overloaded && d.weight >= cw_) {
        cursor_ = i;
        if (why) *why = fmt::format("weighted round robin: {} has weight {} >= current weight {}", dest_str(d), d.weight, cw_);
        return i;
      }
    }
    if (why) *why = "weighted round robin: every destination is overloaded";
    return -1;
  }

 private:
  int mw_ = 0, di_ = 1, cw_ = 0, cursor_ = -1;
  bool bound_ = false;
};

// ---------------------------------------------------------------------------------- lc, wlc, sed, nq
class Lc final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Lc>(*this); }
  std::string_view name() const override { return "lc"; }
  void update(const Service&) override {}
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int least = -1;
    uint64_t loh = 0;
    for (int i = 0; i < int(s.dests.size()); ++i) {
      const Dest& d = s.dests[size_t(i)];
      if (scanned) ++*scanned;
      if (d.overloaded || d.weight == 0) continue;
      if (least < 0 || d.overhead() < loh) {
        least = i;
        loh = d.overhead();
      }
    }
    if (why)
      *why = least < 0
                 ? "least connection: no available destination"
                 : fmt::format("least connection: {} has the lowest overhead 256*{}+{} = {}", dest_str(s.dests[size_t(least)]),
                               s.dests[size_t(least)].activeconns, s.dests[size_t(least)].inactconns, loh);
    return least;
  }
};

// wlc and sed share the kernel's shape: the first available dest seeds the minimum, later ones win
// by cross-multiplication (so a weight-0 dest can never win).
template <bool Sed>
class WeightedLeast final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<WeightedLeast>(*this); }
  std::string_view name() const override { return Sed ? "sed" : "wlc"; }
  void update(const Service&) override {}
  static uint64_t oh(const Dest& d) { return Sed ? uint64_t(d.activeconns) + 1 : d.overhead(); }
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int n = int(s.dests.size()), least = -1;
    uint64_t loh = 0;
    int i = 0;
    for (; i < n; ++i) {
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (!d.overloaded && d.weight > 0) {
        least = i;
        loh = oh(d);
        break;
      }
    }
    if (least < 0) {
      if (why) *why = fmt::format("{}: no available destination", name());
      return -1;
    }
    for (++i; i < n; ++i) {
      if (scanned) ++*scanned;
      const Dest& d = s.dests[size_t(i)];
      if (d.overloaded) continue;
      uint64_t doh = oh(d);
      if (__int128(loh) * d.weight > __int128(doh) * s.dests[size_t(least)].weight) {
        least = i;
        loh = doh;
      }
    }
    const Dest& w = s.dests[size_t(least)];
    if (why)
      *why = fmt::format("{}: {} has the lowest {}/weight = {}/{}", name(), dest_str(w),
                         Sed ? "(active+1)" : "(256*active+inactive)", loh, w.weight);
    return least;
  }
};

class Nq final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Nq>(*this); }
  std::string_view name() const override { return "nq"; }
  void update(const Service&) override {}
  int schedule(const Service& s, const Packet&, std::string* why, uint64_t* scanned) override {
    int least = -1;
    uint64_t loh = 0;
    for (int i = 0; i < int(s.dests.size()); ++i) {
      const Dest& d = s.dests[size_t(i)];
      if (scanned) ++*scanned;
      if (d.overloaded || d.weight == 0) continue;
      uint64_t doh = uint64_t(d.activeconns) + 1;
      if (d.activeconns == 0) {
        if (why) *why = fmt::format("never queue: {} is idle", dest_str(d));
        return i;
      }
      if (least < 0 || __int128(loh) * d.weight > __int128(doh) * s.dests[size_t(least)].weight) {
        least = i;
        loh = doh;
      }
    }
    if (why)
      *why = least < 0
                 ? "never queue: no available destination"
                 : fmt::format("never queue: none idle; {} has the lowest (active+1)/weight", dest_str(s.dests[size_t(least)]));
    return least;
  }
};

// ---------------------------------------------------------------------------------- sh, dh
class Sh final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Sh>(*this); }
  static constexpr unsigned kBits = 8, kSize = 1u << kBits;
  std::string_view name() const override { return "sh"; }
  void update(const Service& s) override {
    // ip_vs_sh_reassign: walk the buckets, each dest takes `weight` buckets in a row (at least one).
    table_.assign(kSize, -1);
    if (s.dests.empty()) return;
    size_t p = 0;
    int count = 0;
    for (unsigned i = 0; i < kSize; ++i) {
      table_[i] = int(p);
      if (++count >= s.dests[p].weight) {
        p = (p + 1) % s.dests.size();
        count = 0;
      }
    }
  }
  int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) override {
    uint16_t port = (s.sched_flags & flag::SH_PORT) ? p.t.sport : 0;
    auto key = [&](unsigned offset) { return (offset + hash_32(uint32_t(port) + fold(p.t.src), kBits)) & (kSize - 1); };
    unsigned ih = key(0);
    int d = table_.empty() ? -1 : table_[ih];
    if (scanned) ++*scanned;
    if (d >= 0 && !s.dests[size_t(d)].unavailable()) {
      if (why) *why = fmt::format("source hash: bucket {} -> {}", ih, dest_str(s.dests[size_t(d)]));
      return d;
    }
    if (d < 0 || !(s.sched_flags & flag::SH_FALLBACK)) {
      if (why) *why = fmt::format("source hash: bucket {} has no available destination", ih);
      return -1;
    }
    for (unsigned off = 0; off < kSize; ++off) {
      unsigned b = key((off + ih) % kSize);
      if (scanned) ++*scanned;
      int x = table_[b];
      if (x < 0) break;
      if (!s.dests[size_t(x)].unavailable()) {
        if (why)
          *why = fmt::format("source hash: bucket {} unavailable, fallback bucket {} -> {}", ih, b, dest_str(s.dests[size_t(x)]));
        return x;
      }
    }
    if (why) *why = "source hash: no available destination in any bucket";
    return -1;
  }
  const std::vector<int>* lookup_table() const override { return &table_; }

 private:
  std::vector<int> table_;
};

class Dh final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Dh>(*this); }
  static constexpr unsigned kBits = 8, kSize = 1u << kBits;
  std::string_view name() const override { return "dh"; }
  void update(const Service& s) override {
    table_.assign(kSize, -1);
    if (s.dests.empty()) return;
    for (unsigned i = 0; i < kSize; ++i) table_[i] = int(i % s.dests.size());  // one bucket each, cycling
  }
  int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) override {
    unsigned b = (fold(p.t.dst) * 2654435761u) & (kSize - 1);
    if (scanned) ++*scanned;
    int d = table_.empty() ? -1 : table_[b];
    if (d < 0 || s.dests[size_t(d)].unavailable()) {
      if (why) *why = fmt::format("destination hash: bucket {} has no available destination", b);
      return -1;
    }
    if (why) *why = fmt::format("destination hash: {} -> bucket {} -> {}", p.t.dst.str(), b, dest_str(s.dests[size_t(d)]));
    return d;
  }
  const std::vector<int>* lookup_table() const override { return &table_; }

 private:
  std::vector<int> table_;
};

// ---------------------------------------------------------------------------------- mh
// hsiphash on 64-bit kernels is SipHash-1-3 with a 32-bit result.
uint32_t hsiphash_u32(uint32_t v, uint64_t k0, uint64_t k1) {
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1, v2 = 0x6c7967656e657261ull ^ k0,
           v3 = 0x7465646279746573ull ^ k1;
  auto round = [&]() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  };
  uint64_t b = (uint64_t(4) << 56) | v;
  v3 ^= b;
  round();
  v0 ^= b;
  v2 ^= 0xff;
  round();
  round();
  round();
  return uint32_t((v0 ^ v1) ^ (v2 ^ v3));
}

class Mh final : public Scheduler {
 public:
  std::unique_ptr<Scheduler> clone() const override { return std::make_unique<Mh>(*this); }
  static constexpr unsigned kSize = 4093;  // CONFIG_IP_VS_MH_TAB_INDEX 12
  static constexpr int kTabBits = 6;       // IP_VS_MH_TAB_INDEX / 2
  static constexpr uint64_t kH1 = 2654435761u, kH2 = 2654446892u;
  std::string_view name() const override { return "mh"; }
  static uint32_t hashkey(const Addr& a, uint16_t port, uint64_t key, unsigned offset) {
    return hsiphash_u32(offset + port + fold(a), key, key);
  }
  void update(const Service& s) override {
    table_.assign(kSize, -1);
    if (s.dests.empty()) return;
    int g = 0, mx = 0;
    for (auto& d : s.dests)
      if (d.last_weight > 0) g = std::gcd(g, d.last_weight);
    int rshift = 0;
    if (g >= 1) {
      for (auto& d : s.dests) mx = std::max(mx, d.last_weight);
      int fls = 0;
      for (int x = mx / g; x; x >>= 1) ++fls;
      rshift = std::max(0, fls - kTabBits);
    }
    struct Setup {
      unsigned offset, skip, perm;
      int turns;
    };
    std::vector<Setup> ds;
    for (auto& d : s.dests) {
      Setup x;
      x.offset = hashkey(d.addr, d.port, kH1, 0) % kSize;
      x.skip = hashkey(d.addr, d.port, kH2, 0) % (kSize - 1) + 1;
      x.perm = x.offset;
      int lw = d.last_weight;
      int t = g >= 1 ? ((lw / g) >> rshift) : 0;
      x.turns = t ? t : (lw != 0);
      ds.push_back(x);
    }
    std::vector<bool> used(kSize, false);
    unsigned n = 0;
    int dt_count = 0;
    bool any = std::any_of(ds.begin(), ds.end(), [](const Setup& x) { return x.turns >= 1; });
    if (!any) return;
    while (n < kSize) {
      for (size_t i = 0; i < ds.size() && n < kSize;) {
        Setup& x = ds[i];
        if (x.turns < 1) {
          ++i;
          continue;
        }
        unsigned c = x.perm;
        while (used[c]) {
          x.perm += x.skip;
          if (x.perm >= kSize) x.perm -= kSize;
          c = x.perm;
        }
        used[c] = true;
        table_[c] = int(i);
        if (++n == kSize) break;
        if (++dt_count >= x.turns) {
          dt_count = 0;
          ++i;
        }
      }
    }
  }
  int schedule(const Service& s, const Packet& p, std::string* why, uint64_t* scanned) override {
    uint16_t port = (s.sched_flags & flag::MH_PORT) ? p.t.sport : 0;
    unsigned ih = hashkey(p.t.src, port, kH1, 0) % kSize;
    if (scanned) ++*scanned;
    int d = table_.empty() ? -1 : table_[ih];
    if (d >= 0 && !s.dests[size_t(d)].unavailable()) {
      if (why) *why = fmt::format("maglev: slot {} of {} -> {}", ih, kSize, dest_str(s.dests[size_t(d)]));
      return d;
    }
    if (d < 0 || !(s.sched_flags & flag::MH_FALLBACK)) {
      if (why) *why = fmt::format("maglev: slot {} has no available destination", ih);
      return -1;
    }
    for (unsigned off = 0; off < kSize; ++off) {
      unsigned h = hashkey(p.t.src, port, kH1, (off + ih) % kSize) % kSize;
      if (scanned) ++*scanned;
      int x = table_[h];
      if (x < 0) break;
      if (!s.dests[size_t(x)].unavailable()) {
        if (why) *why = fmt::format("maglev: slot {} unavailable, fallback slot {} -> {}", ih, h, dest_str(s.dests[size_t(x)]));
        return x;
      }
    }
    if (why) *why = "maglev: no available destination";
    return -1;
  }
  const std::vector<int>* lookup_table() const override { return &table_; }

 private:
  std::vector<int> table_;
};

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(std::string_view n) {
  if (n == "rr") return std::make_unique<Rr>();
  if (n == "wrr") return std::make_unique<Wrr>();
  if (n == "lc") return std::make_unique<Lc>();
  if (n == "wlc") return std::make_unique<WeightedLeast<false>>();
  if (n == "sed") return std::make_unique<WeightedLeast<true>>();
  if (n == "nq") return std::make_unique<Nq>();
  if (n == "sh") return std::make_unique<Sh>();
  if (n == "dh") return std::make_unique<Dh>();
  if (n == "mh") return std::make_unique<Mh>();
  return nullptr;
}

bool known_scheduler(std::string_view n) { return make_scheduler(n) != nullptr; }

Service::Service(const Service& o)
    : proto(o.proto),
      addr(o.addr),
      port(o.port),
      fwmark(o.fwmark),
      persistent(o.persistent),
      timeout(o.timeout),
      netmask(o.netmask),
      sched_flags(o.sched_flags),
      dests(o.dests),
      conns(o.conns),
      inpkts(o.inpkts),
      outpkts(o.outpkts),
      sched_name_(o.sched_name_),
      sched_(o.sched_->clone()) {}

ServiceTable ServiceTable::clone() const {
  ServiceTable t;
  for (auto& s : services_) t.add(std::make_unique<Service>(*s));
  return t;
}

void Service::set_scheduler(std::string_view name) {
  auto s = make_scheduler(name);
  if (!s) throw std::invalid_argument(fmt::format("unknown scheduler '{}'", name));
  sched_ = std::move(s);
  sched_name_ = std::string(name);
  sched_->update(*this);
}

void Service::add_dest(const Dest& d) {
  Dest x = d;
  x.last_weight = d.weight > 0 ? d.weight : 0;
  dests.insert(dests.begin(), x);
  sched_->update(*this);
}

void Service::edit_dest(int i, int weight, uint32_t u, uint32_t l) {
  Dest& d = dests[size_t(i)];
  d.weight = weight;
  if (weight > 0) d.last_weight = weight;  // mh keeps the old weight of a quiesced server
  d.u_threshold = u;
  d.l_threshold = l;
  sched_->update(*this);
}

void Service::remove_dest(int i) {
  sched_->removing(*this, i);
  dests.erase(dests.begin() + i);
  sched_->update(*this);
}

int Service::find_dest(const Addr& a, uint16_t p) const {
  for (size_t i = 0; i < dests.size(); ++i)
    if (dests[i].addr == a && dests[i].port == p) return int(i);
  return -1;
}

std::string Service::key() const {
  if (fwmark) return fmt::format("FWM {}", fwmark);
  return fmt::format("{} {}",
                     proto == proto::TCP   ? "TCP"
                     : proto == proto::UDP ? "UDP"
                                           : "SCTP",
                     FiveTuple::endpoint(addr, port, proto::TCP));
}

unsigned ServiceTable::hash(uint8_t proto, const Addr& a, uint16_t port) {
  return (proto ^ fold(a) ^ (unsigned(port) >> kBits) ^ port) & ((1u << kBits) - 1);
}

Service* ServiceTable::add(std::unique_ptr<Service> s) {
  if (s->fwmark ? find_fwmark(s->fwmark, s->addr.fam) : find(s->proto, s->addr, s->port)) return nullptr;
  Service* p = s.get();
  auto& b = s->fwmark ? fwm_buckets_[s->fwmark & ((1u << kBits) - 1)] : buckets_[hash(s->proto, s->addr, s->port)];
  b.insert(b.begin(), p);
  index_[p] = int(services_.size());
  services_.push_back(std::move(s));
  return p;
}

Service* ServiceTable::find(uint8_t proto, const Addr& a, uint16_t port, uint64_t* walked) const {
  for (Service* s : buckets_[hash(proto, a, port)]) {
    if (walked) ++*walked;
    if (s->proto == proto && s->port == port && s->addr == a) return s;
  }
  return nullptr;
}

Service* ServiceTable::find_fwmark(uint32_t mark, Family fam, uint64_t* walked) const {
  for (Service* s : fwm_buckets_[mark & ((1u << kBits) - 1)]) {
    if (walked) ++*walked;
    if (s->fwmark == mark && s->addr.fam == fam) return s;
  }
  return nullptr;
}

int ServiceTable::index_of(const Service* s) const {
  auto it = index_.find(s);
  return it == index_.end() ? -1 : it->second;
}

bool ServiceTable::remove(const Service* s) {
  for (auto* bs : {&buckets_, &fwm_buckets_})
    for (auto& b : *bs) std::erase(b, s);
  auto it = std::find_if(services_.begin(), services_.end(), [&](auto& p) { return p.get() == s; });
  if (it == services_.end()) return false;
  services_.erase(it);
  index_.clear();
  for (size_t i = 0; i < services_.size(); ++i) index_[services_[i].get()] = int(i);
  return true;
}

std::string_view conn_state_name(ConnState s) {
  constexpr std::string_view n[] = {"NONE",  "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
                                    "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "SYNACK",   "UDP"};
  return n[int(s)];
}

namespace {
using S = ConnState;
constexpr S sNO = S::None, sES = S::Established, sSS = S::SynSent, sSR = S::SynRecv, sFW = S::FinWait, sTW = S::TimeWait,
            sCL = S::Close, sCW = S::CloseWait, sLA = S::LastAck, sLI = S::Listen, sSA = S::SynAck;
// ip_vs_proto_tcp.c tcp_states: [direction][syn, fin, ack, rst][state].
constexpr S kTcp[2][4][11] = {
    {
        /* INPUT  syn */ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
        /*        fin */ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
        /*        ack */ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
        /*        rst */ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
    },
    {
        /* OUTPUT syn */ {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
        /*        fin */ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
        /*        ack */ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
        /*        rst */ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
    },
};
}  // namespace

ConnState tcp_next(ConnState s, bool from_client, uint8_t f) {
  int idx = (f & tcpflag::RST) ? 3 : (f & tcpflag::SYN) ? 0 : (f & tcpflag::FIN) ? 1 : (f & tcpflag::ACK) ? 2 : -1;
  if (idx < 0 || s == ConnState::Udp) return s;
  return kTcp[from_client ? 0 : 1][idx][int(s)];
}

bool state_active(ConnState s) {
  return s == ConnState::Established || s == ConnState::SynSent || s == ConnState::SynRecv || s == ConnState::SynAck;
}

uint64_t state_timeout_ns(ConnState s, uint8_t proto, const Timeouts& t) {
  constexpr uint64_t sec = 1'000'000'000ull;
  if (proto != proto::TCP) return uint64_t(t.udp) * sec;
  switch (s) {
    case S::None: return 2 * sec;
    case S::Established: return uint64_t(t.tcp) * sec;
    case S::SynSent: return 120 * sec;
    case S::SynRecv: return 60 * sec;
    case S::FinWait: return uint64_t(t.tcpfin) * sec;
    case S::TimeWait: return 120 * sec;
    case S::Close: return 10 * sec;
    case S::CloseWait: return 60 * sec;
    case S::LastAck: return 30 * sec;
    case S::Listen: return 120 * sec;
    case S::SynAck: return 120 * sec;
    case S::Udp: return uint64_t(t.udp) * sec;
  }
  return 60 * sec;
}

ConnTable::ConnTable(unsigned bits, uint32_t rnd) : bits_(bits), rnd_(rnd), buckets_(1u << bits) {}

unsigned ConnTable::bucket(uint8_t proto, const Addr& a, uint16_t port) const {
  uint32_t addr;
  if (a.is_v4()) {
    addr = uint32_t(a.b[0]) | uint32_t(a.b[1]) << 8 | uint32_t(a.b[2]) << 16 | uint32_t(a.b[3]) << 24;  // raw be32
  } else {
    uint32_t w[4];
    for (int i = 0; i < 4; ++i)
      w[i] =
          uint32_t(a.b[4 * i]) | uint32_t(a.b[4 * i + 1]) << 8 | uint32_t(a.b[4 * i + 2]) << 16 | uint32_t(a.b[4 * i + 3]) << 24;
    addr = jhash2(w, 4, rnd_);
  }
  uint32_t port_be = uint32_t(uint16_t(port << 8 | port >> 8));
  return jhash_3words(addr, port_be, proto, rnd_) & ((1u << bits_) - 1);
}

Conn* ConnTable::get(uint32_t id) {
  if (id == 0 || id > conns_.size() || conns_[id - 1].id == 0) return nullptr;
  return &conns_[id - 1];
}

Conn* ConnTable::create(const Conn& c) {
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    conns_.emplace_back();
    id = uint32_t(conns_.size());
  }
  Conn& x = conns_[id - 1];
  x = c;
  x.id = id;
  auto& b = buckets_[bucket(c.proto, c.caddr, c.cport)];
  b.insert(b.begin(), id);
  ++live_;
  return &x;
}

void ConnTable::unlink(Conn& c) { std::erase(buckets_[bucket(c.proto, c.caddr, c.cport)], c.id); }

void ConnTable::expire(uint32_t id) {
  Conn* c = get(id);
  if (!c) return;
  unlink(*c);
  c->id = 0;
  free_.push_back(id);
  --live_;
}

Conn* ConnTable::in_get(uint8_t proto, const Addr& caddr, uint16_t cport, const Addr& vaddr, uint16_t vport, uint64_t now,
                        uint64_t* walked) {
  auto& b = buckets_[bucket(proto, caddr, cport)];
  for (size_t i = 0; i < b.size(); ++i) {
    Conn& c = conns_[b[i] - 1];
    if (walked) ++*walked;
    if (c.is_template || c.proto != proto || c.cport != cport || c.vport != vport || c.caddr != caddr || c.vaddr != vaddr)
      continue;
    if (c.expires_ns && now > c.expires_ns) return nullptr;  // the caller expires it
    return &c;
  }
  return nullptr;
}

Conn* ConnTable::out_get(uint8_t proto, const Addr& daddr, uint16_t dport, const Addr& caddr, uint16_t cport, uint64_t now,
                         uint64_t* walked) {
  auto& b = buckets_[bucket(proto, caddr, cport)];
  for (uint32_t id : b) {
    Conn& c = conns_[id - 1];
    if (walked) ++*walked;
    if (c.is_template || c.proto != proto || c.cport != cport || c.dport != dport || c.caddr != caddr || c.daddr != daddr)
      continue;
    if (c.expires_ns && now > c.expires_ns) return nullptr;
    return &c;
  }
  return nullptr;
}

Conn* ConnTable::template_get(uint8_t proto, const Addr& caddr, const Addr& vaddr, uint16_t vport, uint64_t now) {
  auto& b = buckets_[bucket(proto, caddr, 0)];
  for (uint32_t id : b) {
    Conn& c = conns_[id - 1];
    if (!c.is_template || c.proto != proto || c.vport != vport || c.caddr != caddr || c.vaddr != vaddr) continue;
    if (c.expires_ns && now > c.expires_ns) {
      expire(c.id);
      return nullptr;
    }
    return &c;
  }
  return nullptr;
}

}  // namespace svcpath::ipvs
