#include "core/rng.hpp"

namespace svcpath {

void Rng::reseed(uint64_t seed) {
  for (auto& s : s_) {
    seed += 0x9e3779b97f4a7c15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s = z ^ (z >> 31);
  }
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  uint64_t r = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

uint32_t Rng::below(uint32_t n) {
  if (n <= 1) return 0;
  uint32_t limit = uint32_t(-n) % n;  // reject the biased low values
  for (;;) {
    uint32_t x = u32();
    if (x >= limit) return x % n;
  }
}

bool Chooser::bernoulli31(uint32_t p31) {
  if (p31 == 0) return false;
  if (p31 >= 0x80000000u) return true;
  if (!enumerate_) return (rng_->u32() & 0x7fffffffu) < p31;
  return take(2, double(p31) / 2147483648.0) == 0;
}

uint32_t Chooser::uniform(uint32_t n) {
  if (n <= 1) return 0;
  if (!enumerate_) return rng_->below(n);
  return take(n, 0);
}

uint32_t Chooser::take(uint32_t arity, double p_first) {
  if (pos_ == path_.size()) path_.push_back({0, arity, p_first});
  const Branch& b = path_[pos_++];
  if (arity == 2 && b.p_first > 0) prob_ *= b.chosen == 0 ? b.p_first : 1.0 - b.p_first;
  else prob_ /= arity;
  return b.chosen;
}

void Chooser::begin_enumeration() {
  enumerate_ = true;
  path_.clear();
  start_run();
}

bool Chooser::next_path() {
  // Only the branches the last run actually reached count; drop any beyond it.
  path_.resize(pos_);
  while (!path_.empty() && path_.back().chosen + 1 >= path_.back().arity) path_.pop_back();
  if (path_.empty()) return false;
  ++path_.back().chosen;
  start_run();
  return true;
}

}  // namespace svcpath
