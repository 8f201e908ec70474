// Native benchmarks of the GEMM and conv3d (no Node needed):
//   detseg3d_bench gemm [threads]     FMA peak, then GEMM shapes
//   detseg3d_bench conv3d [threads] [layer filter]   the detector's conv3d layers
//                                     (forward, grad input, grad weight)
// Besides wall time each line shows GFLOP per CPU-second of the process
// (CLOCK_PROCESS_CPUTIME_ID): on a machine shared with other jobs this stays
// close to what the code achieves on the cores it actually got, so compare
// it with the FMA loop's figure measured the same way.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "ops/conv3d.h"
#include "ops/gemm.h"

namespace {

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
double wall_now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Timing {
  double best_wall, cpu_per_rep;
};
Timing measure(const std::function<void()>& fn, int reps) {
  fn();
  double best = 1e30;
  const double c0 = cpu_now();
  for (int r = 0; r < reps; ++r) {
    const double t0 = wall_now();
    fn();
    best = std::min(best, wall_now() - t0);
  }
  return {best, (cpu_now() - c0) / reps};
}

void fill(std::vector<float>& v, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : v) x = u(g);
}

int threads_arg(const std::vector<std::string>& a) {
  if (!a.empty()) ds::set_num_threads(std::stoi(a[0]));
  return ds::num_threads();
}

double peak_per_cpu_second() {
  const double c0 = cpu_now(), t0 = wall_now();
  const double gf = ds::gemm::peak_gflops(1, 0.3);
  return gf * (wall_now() - t0) / std::max(1e-9, cpu_now() - c0);
}

}  // namespace

DS_BENCH(gemm) {
  const int nt = threads_arg(args);
  const double p1 = ds::gemm::peak_gflops(1), pn = ds::gemm::peak_gflops(nt), pc = peak_per_cpu_second();
  std::printf("simd %s, kernel %s, %d thread(s)\n", ds::simd_name(ds::simd_level()),
              ds::gemm::micro_kernel<float>().name, nt);
  std::printf("FMA peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads), %.1f GFLOP per CPU-second\n", p1, pn,
              nt, pc);
  const int64_t shapes[][3] = {{2048, 2048, 2048}, {4096, 1024, 1024}, {16384, 64, 1728}, {2048, 256, 6912},
                               {1536, 1536, 256}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    std::vector<float> a(size_t(M * K)), b(size_t(N * K)), c(size_t(M * N));
    fill(a, 1);
    fill(b, 2);
    Timing t = measure([&] { ds::gemm::gemm_matrix<float>(false, true, M, N, K, a.data(), K, b.data(), K, c.data(), N, false); }, 5);
    const double fl = 2.0 * double(M) * double(N) * double(K);
    std::printf("gemm %5lld x %5lld x %5lld  %8.2f ms  %7.1f GFLOP/s (%5.1f%% of %d-thread peak)  %7.1f GFLOP/cpu-s (%5.1f%%)\n",
                (long long)M, (long long)N, (long long)K, t.best_wall * 1e3, fl / t.best_wall / 1e9,
                100 * fl / t.best_wall / 1e9 / pn, nt, fl / t.cpu_per_rep / 1e9, 100 * fl / t.cpu_per_rep / 1e9 / pc);
  }
  return 0;
}

DS_BENCH(conv3d) {
  const int nt = threads_arg(args);
  const double pn = ds::gemm::peak_gflops(nt), pc = peak_per_cpu_second();
  std::printf("simd %s, %d thread(s); FMA peak %.1f GFLOP/s, %.1f GFLOP per CPU-second\n",
              ds::simd_name(ds::simd_level()), nt, pn, pc);
  struct L { const char* name; int64_t d[3], ci, co, k, s[3], pad; };
  // Tensor order (D1, D2, D3) = (z, y, x).
  const L layers[] = {{"3x3x3 64->64", {16, 32, 32}, 64, 64, 3, {1, 1, 1}, 1},
                      {"3x3x3 256->256", {8, 16, 16}, 256, 256, 3, {1, 1, 1}, 1},
                      {"1x1x1 256->64", {16, 32, 32}, 256, 64, 1, {1, 1, 1}, 0},
                      {"7x7x7 stem 1->64", {32, 64, 64}, 1, 64, 7, {1, 2, 2}, 3},
                      {"3x3x3 128->128 s2", {16, 32, 32}, 128, 128, 3, {2, 2, 2}, 1}};
  for (const L& l : layers) {
    if (args.size() > 1 && std::string(l.name).find(args[1]) == std::string::npos) continue;
    ds::Tensor x = ds::Tensor::empty({1, l.d[0], l.d[1], l.d[2], l.ci}, ds::DType::Float32);
    ds::Tensor w = ds::Tensor::empty({l.co, l.k, l.k, l.k, l.ci}, ds::DType::Float32);
    std::vector<float> tmp(size_t(x.numel()));
    fill(tmp, 1);
    std::copy(tmp.begin(), tmp.end(), x.data<float>());
    tmp.resize(size_t(w.numel()));
    fill(tmp, 2);
    std::copy(tmp.begin(), tmp.end(), w.data<float>());
    ds::Conv3dParams p;
    for (int i = 0; i < 3; ++i) p.stride[i] = l.s[i], p.padding[i] = l.pad;
    ds::Tensor y = ds::conv3d_forward(x, w, ds::Tensor(), p);
    ds::Tensor dy = y.clone();
    const double fl = 2.0 * double(y.numel()) * double(l.k * l.k * l.k * l.ci);
    const std::pair<const char*, std::function<void()>> passes[] = {
        {"forward", [&] { ds::conv3d_forward(x, w, ds::Tensor(), p); }},
        {"grad input", [&] { ds::conv3d_backward(x, w, dy, p, true, false, false); }},
        {"grad weight", [&] { ds::conv3d_backward(x, w, dy, p, false, true, false); }}};
    for (auto& ps : passes) {
      Timing t = measure(ps.second, 5);
      std::printf("%-20s %-12s %8.2f ms %7.1f GFLOP/s (%5.1f%% of peak) %7.1f GFLOP/cpu-s (%5.1f%%)\n", l.name,
                  ps.first, t.best_wall * 1e3, fl / t.best_wall / 1e9, 100 * fl / t.best_wall / 1e9 / pn,
                  fl / t.cpu_per_rep / 1e9, 100 * fl / t.cpu_per_rep / 1e9 / pc);
    }
  }
  return 0;
}

// The micro-kernel alone on L1/L2-resident packed panels (no packing, no C traffic to speak of).
DS_BENCH(gemm_kernel) {
  const auto uk = ds::gemm::micro_kernel<float>();
  const double pc = peak_per_cpu_second();
  for (int64_t kc : {64, 128, 256, 384, 512}) {
    std::vector<float> a(size_t(uk.mr * kc * 24) + 64), b(size_t(uk.nr * kc) + 64), c(size_t(uk.mr * 24 * 64));
    fill(a, 1);
    fill(b, 2);
    float* ap = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(a.data()) + 63) & ~uintptr_t(63));
    float* bp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(b.data()) + 63) & ~uintptr_t(63));
    const int calls = 20000;
    Timing t = measure([&] {
      for (int i = 0; i < calls; ++i) {
        const int p = i % 24;
        uk.fn(kc, ap + p * uk.mr * kc, bp, c.data() + p * uk.mr * 64, 64, uk.mr, uk.nr, true);
      }
    }, 3);
    const double fl = 2.0 * uk.mr * uk.nr * double(kc) * calls;
    std::printf("%s kc=%lld: %.1f GFLOP/cpu-s (%.1f%% of FMA loop)\n", uk.name, (long long)kc, fl / t.cpu_per_rep / 1e9,
                100 * fl / t.cpu_per_rep / 1e9 / pc);
  }
  return 0;
}
