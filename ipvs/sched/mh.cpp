// mh: Maglev hashing, a 4093-slot lookup table filled from per-server permutations
// (net/netfilter/ipvs/ip_vs_mh.c).
#include "ipvs/sched/schedulers.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "ipvs/sched/common.hpp"

namespace svcpath::ipvs {

namespace {

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

std::unique_ptr<Scheduler> make_mh() { return std::make_unique<Mh>(); }

}  // namespace svcpath::ipvs
