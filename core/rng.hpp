#pragma once
// One seeded source of randomness per datapath, and the Chooser that either samples from it or
// enumerates every branch (the --enumerate mode): all random decisions that change an outcome go
// through Chooser, so enumeration is exact.
#include <cstdint>
#include <cstddef>
#include <vector>

namespace svcpath {

/// xoshiro256** seeded by splitmix64: fast, and identical on every platform for a given seed.
class Rng {
 public:
  explicit Rng(uint64_t seed = 1) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next();
  uint32_t u32() { return uint32_t(next() >> 32); }
  /// Uniform in [0, n) without modulo bias.
  uint32_t below(uint32_t n);

 private:
  uint64_t s_[4];
};

class Chooser {
 public:
  explicit Chooser(Rng& rng) : rng_(&rng) {}

  /// The kernel's statistic test: (random & 0x7fffffff) < p31, p31 = probability * 2^31.
  bool bernoulli31(uint32_t p31);
  /// One of n equally likely branches.
  uint32_t uniform(uint32_t n);
  /// Randomness that does not fork the outcome set (e.g. a NAT source port): always sampled.
  uint32_t incidental_u32() { return rng_->u32(); }

  // ---- enumeration ----
  /// Starts enumeration: subsequent runs follow the forced path and extend it.
  void begin_enumeration();
  /// Prepares the next run. Returns false when every path has been explored.
  bool next_path();
  /// Probability of the path taken by the run that just finished.
  double path_probability() const { return prob_; }
  void start_run() {
    pos_ = 0;
    prob_ = 1.0;
  }
  bool enumerating() const { return enumerate_; }

 private:
  struct Branch {
    uint32_t chosen, arity;
    double p_first;  // for binary branches: probability of branch 0 (true)
  };
  uint32_t take(uint32_t arity, double p_first);

  Rng* rng_;
  bool enumerate_ = false;
  std::vector<Branch> path_;
  size_t pos_ = 0;
  double prob_ = 1.0;
};

}  // namespace svcpath
