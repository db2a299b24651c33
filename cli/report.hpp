#pragma once
// The HTML report: one self-contained file (styles, pictures and plots inline; nothing fetched) with
// the replay comparison, backend shares, cost distributions, disagreements drawn side by side, traced
// packets, and scaling plots. Plots come from gnuplot (its SVG terminal); without gnuplot the numbers
// are shown as tables instead.
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
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
  nlohmann::json diff;                     // `svcpath diff --format json`, or null
  std::string diff_title;                  // its section's heading ("" = "What changes between ...")
  std::vector<Picture> diff_pictures;      // one per class, when the diff was run here
};

std::string render_report(const ReportInput& in);

/// Plain words for the keys of `replay --format json` the report shows as rows (its tallies and
/// every kernel-work counter), so no row is labelled with a raw counter name.
const std::vector<std::pair<std::string, std::string>>& counter_labels();
/// The label of key; the key itself when it has none (a test checks they all do).
std::string label_of(const std::string& key);

/// What a mode counted that explains its other counts.
struct ModeCounts {
  std::string name;
  uint64_t new_flows = 0;
  uint64_t midstream = 0;                              // of new_flows: opened by a TCP packet without SYN
  uint64_t invalid = 0;                                // packets conntrack found INVALID
  std::map<std::string, uint64_t> invalid_dropped_at;  // of those, dropped, per rule
};
/// Sentences, derived from the counts, for counts that look wrong but are right: per mode, how its
/// new connections opened and what became of its INVALID packets; across modes, why they differ.
/// "" where nothing needs saying.
struct CountNotes {
  std::vector<std::string> new_flows, invalid;  // per mode, in order
  std::string new_flows_across, invalid_across;
};
CountNotes explain_counts(const std::vector<ModeCounts>& modes);
/// Renders and writes it; a LoadError names the file when it cannot be written.
void write_report_file(const std::string& path, const ReportInput& in);

/// An outcome as `outcome_json` printed it, turned back into one a picture can draw. Strings the
/// trace events view into live in store.
nf::Outcome outcome_from_json(const nlohmann::json& j, std::deque<std::string>& store);

/// Runs gnuplot on script with data in $DATA; the SVG it draws, or "" when gnuplot is missing or fails.
std::string gnuplot_svg(const std::string& script, const std::string& data);

}  // namespace svcpath::cli
