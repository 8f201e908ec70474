// Entry point of detseg3d_native_tests: runs every registered DS_TEST.
//   detseg3d_native_tests [filter]
#include <chrono>
#include <cstdio>
#include <cstring>

#include "tests/harness.h"

namespace ds::testing {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
}  // namespace ds::testing

int main(int argc, char** argv) {
  using namespace ds::testing;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0, skipped = 0;
  for (auto& t : registry()) {
    if (filter && !std::strstr(t.name, filter)) continue;
    auto t0 = std::chrono::steady_clock::now();
    try {
      t.fn();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf("PASS  %-40s %8.1f ms\n", t.name, ms);
      ++passed;
    } catch (const Skip& s) {
      std::printf("SKIP  %-40s %s\n", t.name, s.why.c_str());
      ++skipped;
    } catch (const std::exception& e) {
      std::printf("FAIL  %-40s %s\n", t.name, e.what());
      ++failed;
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
