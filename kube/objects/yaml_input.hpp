#pragma once
// The one door YAML input comes through: parse errors, nesting depth and alias expansion become
// LoadErrors with file:line:col, so a hostile manifest costs bounded time and memory.
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace svcpath {

/// Nodes a document may expand to through anchors and aliases, per byte of its file. Plain YAML
/// has fewer nodes than bytes, so only alias amplification ("billion laughs") reaches it.
inline constexpr size_t kYamlNodesPerByte = 4;

/// Nesting of mappings and lists; Kubernetes objects stay under 20.
inline constexpr size_t kMaxYamlDepth = 100;

/// Every document in the file; throws LoadError for unreadable, malformed, too deeply nested or
/// alias-amplified input.
std::vector<YAML::Node> load_yaml_documents(const std::string& path);

}  // namespace svcpath
