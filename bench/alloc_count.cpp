// Replaces the global operator new/delete for the bench binary only (a replacement is program-wide,
// so it must never be linked into the product). Counting is thread-local: benchmarks with threads
// report their own thread's allocations, and the counter costs no atomic.
#include "bench/alloc_count.hpp"

#include <execinfo.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

thread_local uint64_t t_allocations = 0;
thread_local bool t_tracing = false;
thread_local bool t_in_trace = false;  // backtrace() may allocate on first use

long trace_budget() {
  static long n = [] {
    const char* e = std::getenv("SVCPATH_ALLOC_TRACE");
    return e ? std::atol(e) : 0L;
  }();
  return n;
}

void* counted(std::size_t n, std::size_t align) {
  ++t_allocations;
  if (t_tracing && !t_in_trace) {
    static long printed = 0;
    if (printed < trace_budget()) {
      t_in_trace = true;
      ++printed;
      void* frames[32];
      int k = backtrace(frames, 32);
      static const char sep[] = "--- allocation\n";
      (void)!write(2, sep, sizeof sep - 1);
      backtrace_symbols_fd(frames, k, 2);
      t_in_trace = false;
    }
  }
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align) : std::malloc(n);
  return p;
}

void* or_throw(void* p) {
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

namespace svcpath::bench {
uint64_t allocations() noexcept { return t_allocations; }
void trace_allocations(bool on) noexcept { t_tracing = on; }
}  // namespace svcpath::bench

void* operator new(std::size_t n) { return or_throw(counted(n, 0)); }
void* operator new[](std::size_t n) { return or_throw(counted(n, 0)); }
void* operator new(std::size_t n, std::align_val_t a) { return or_throw(counted(n, std::size_t(a))); }
void* operator new[](std::size_t n, std::align_val_t a) { return or_throw(counted(n, std::size_t(a))); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted(n, std::size_t(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
