// The report from replay JSON someone else wrote: an HTML file or a LoadError, never a crash.
// The input goes through a per-process scratch file, as `svcpath report --replay` reads files.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "cli/commands.hpp"
#include "core/diag.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  static const std::string dir = [] {
    setenv("SVCPATH_NO_GNUPLOT", "1", 1);  // plots are gnuplot's business, not this target's
    return "/tmp/svcpath-fuzz-report-" + std::to_string(::getpid());
  }();
  const std::string in = dir + ".json", out = dir + ".html";
  FILE* f = std::fopen(in.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  cli::ReportOptions o;
  o.replay = in;
  o.out = out;
  std::ostringstream sink;
  try {
    cli::run_report(o, sink);
  } catch (const LoadError&) {
  }
  return 0;
}
