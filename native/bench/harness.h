// Minimal registry for the standalone benchmark executable (detseg3d_bench):
//   DS_BENCH(conv3d) { ... print a table ... }
// `detseg3d_bench <name> [args...]` runs one; without arguments it lists them.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace ds::bench {

using BenchFn = std::function<int(const std::vector<std::string>& args)>;
struct BenchCase {
  const char* name;
  BenchFn fn;
};
std::vector<BenchCase>& registry();
struct Register {
  Register(const char* name, BenchFn fn) { registry().push_back({name, std::move(fn)}); }
};

}  // namespace ds::bench

#define DS_BENCH_CONCAT2(a, b) a##b
#define DS_BENCH_CONCAT(a, b) DS_BENCH_CONCAT2(a, b)
#define DS_BENCH(name)                                                                            \
  static int DS_BENCH_CONCAT(ds_bench_fn_, name)(const std::vector<std::string>& args);           \
  static ::ds::bench::Register DS_BENCH_CONCAT(ds_bench_reg_, name)(#name, DS_BENCH_CONCAT(ds_bench_fn_, name)); \
  static int DS_BENCH_CONCAT(ds_bench_fn_, name)(const std::vector<std::string>& args)
