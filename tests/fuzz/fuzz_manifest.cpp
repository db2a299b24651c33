// Kubernetes manifests (YAML/JSON) in: objects or a LoadError. The loader reads files, so each
// input goes through a per-process scratch file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "kube/objects/cluster.hpp"
#include "core/diag.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace svcpath;
  static const std::string path = "/tmp/svcpath-fuzz-manifest-" + std::to_string(::getpid()) + ".yaml";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  k8s::Cluster c;
  try {
    k8s::load_cluster_file(path, c);
  } catch (const LoadError&) {
  }
  try {
    (void)k8s::load_proxy_config(path);
  } catch (const LoadError&) {
  }
  return 0;
}
