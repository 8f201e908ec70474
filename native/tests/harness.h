// Minimal registry for the standalone native test executable
// (detseg3d_native_tests): each test file defines checks with
//   DS_TEST(name) { ... DS_EXPECT(cond, "message", values...); ... }
// and the shared main runs them all (or those whose name contains argv[1]),
// printing one line per test and a closing "N passed, N failed" line.
// Runs without Node and without a GPU; GPU parity checks report "skipped".
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace ds::testing {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};
std::vector<TestCase>& registry();
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
// Thrown by DS_SKIP: the test is reported as skipped with the reason.
struct Skip {
  std::string why;
};

}  // namespace ds::testing

#define DS_TEST_CONCAT2(a, b) a##b
#define DS_TEST_CONCAT(a, b) DS_TEST_CONCAT2(a, b)
#define DS_TEST(name)                                                                       \
  static void DS_TEST_CONCAT(ds_test_fn_, name)();                                          \
  static ::ds::testing::Register DS_TEST_CONCAT(ds_test_reg_, name)(#name, DS_TEST_CONCAT(ds_test_fn_, name)); \
  static void DS_TEST_CONCAT(ds_test_fn_, name)()
#define DS_EXPECT(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond)) throw ::ds::Error(::ds::detail::concat("expectation failed: " #cond " ", __VA_ARGS__)); \
  } while (0)
#define DS_SKIP(...) throw ::ds::testing::Skip{::ds::detail::concat(__VA_ARGS__)}
