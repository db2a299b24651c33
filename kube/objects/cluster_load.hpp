#pragma once
// The cluster loader through one chosen parser: load_cluster_file tries yaml::parsers_for(text) in
// turn, and tests compare each fast parser's result with yaml-cpp's on the same text.
#include <string>

#include "kube/objects/cluster.hpp"
#include "kube/objects/yaml_input.hpp"

namespace svcpath::k8s {

/// Loads text (the contents of path) through parser into c; false when that parser refuses the
/// text (c then holds a partial load). Throws LoadError as load_cluster_file does.
bool load_cluster_text(const std::string& path, const std::string& text, yaml::Parser parser, Cluster& c);

}  // namespace svcpath::k8s
