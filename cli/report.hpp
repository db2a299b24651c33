#pragma once
// The HTML report: one self-contained file (styles, pictures and plots inline; nothing fetched) with
// the replay comparison, backend shares, cost distributions, disagreements drawn side by side, traced
// packets, and scaling plots. Plots come from gnuplot (its SVG terminal); without gnuplot the numbers
// are shown as tables instead.
#include <deque>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/picture.hpp"

namespace svcpath::cli {

struct ReportInput {
  std::string title = "svcpath report";
  nlohmann::json replay;                   // `svcpath replay --format json`, or null
  nlohmann::json sweep;                    // {"sweep": [{"services", "mode", "ns_per_packet", "rules_per_packet"}...]}, or null
  std::vector<nlohmann::json> benchmarks;  // Google Benchmark JSON files
  std::vector<Picture> pictures;           // traced packets to show
  std::string intro;                       // HTML paragraph under the title
};

std::string render_report(const ReportInput& in);
/// Renders and writes it; a LoadError names the file when it cannot be written.
void write_report_file(const std::string& path, const ReportInput& in);

/// An outcome as `outcome_json` printed it, turned back into one a picture can draw. Strings the
/// trace events view into live in store.
nf::Outcome outcome_from_json(const nlohmann::json& j, std::deque<std::string>& store);

/// Runs gnuplot on script with data in $DATA; the SVG it draws, or "" when gnuplot is missing or fails.
std::string gnuplot_svg(const std::string& script, const std::string& data);

}  // namespace svcpath::cli
