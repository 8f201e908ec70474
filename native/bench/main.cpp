// Entry point of detseg3d_bench: `detseg3d_bench <name> [args...]`.
#include <cstdio>
#include <cstring>
#include <exception>

#include "bench/harness.h"

namespace ds::bench {
std::vector<BenchCase>& registry() {
  static std::vector<BenchCase> r;
  return r;
}
}  // namespace ds::bench

int main(int argc, char** argv) {
  using namespace ds::bench;
  if (argc < 2) {
    std::printf("usage: detseg3d_bench <name> [args...]\navailable:");
    for (auto& b : registry()) std::printf(" %s", b.name);
    std::printf("\n");
    return 2;
  }
  for (auto& b : registry()) {
    if (std::strcmp(b.name, argv[1]) == 0) {
      try {
        return b.fn(std::vector<std::string>(argv + 2, argv + argc));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "detseg3d_bench %s: %s\n", argv[1], e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "unknown benchmark '%s'\n", argv[1]);
  return 2;
}
