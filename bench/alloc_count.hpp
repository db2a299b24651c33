#pragma once
// Heap allocations made by this thread, counted by the bench binary's replacement of the global
// operator new (alloc_count.cpp). Benchmarks read the count around the timed loop and report
// allocations per packet: the style guide's "nothing allocated per packet", measured.
#include <cstdint>

namespace svcpath::bench {

/// operator new calls (every form) on the calling thread since it started.
uint64_t allocations() noexcept;

/// While armed (SVCPATH_ALLOC_TRACE=N in the environment), the next N allocations on this thread
/// print a backtrace to stderr: where a packet allocates, without a profiler.
void trace_allocations(bool on) noexcept;

}  // namespace svcpath::bench
