// CUDA conv3d benchmark: `detseg3d_bench conv3d_cuda [quick] [f16|bf16|f32 ...]`.
// Batch 4 (shapes given as x, y, z; tensors are [N, z, y, x, C]):
//   3x3x3 256->256 at 48x48x40, 3x3x3 128->128 at 24x24x20, 1x1x1 256->64 at
//   48x48x40, and the stem 1->64 7x7x7 stride (2, 2, 1) padding 3 from 192x192x80,
// in float16, bfloat16 and float32. For each: forward, grad input, grad weight
// and fwd+bwd (the sum; for the stem only fwd + grad weight: the image needs no
// gradient, so its grad input is not timed), in ms (median of the timed calls, CUDA events on the compute
// stream, after a warm-up call that also runs the autotuner) and TFLOP/s
// (2 * positions * Cout * taps * Cin per pass), next to cuDNN on the same
// tensors when libcudnn.so.9 loads (cudnn_conv.h; float32 without TF32 on
// both sides). ratio = cuDNN ms / our ms (> 1: faster than cuDNN).
// Without a GPU it prints why and exits 0.
#include <algorithm>
#include <array>
#include <exception>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/cudnn_conv.h"
#include "bench/cuda_timing.h"
#include "bench/harness.h"
#include "core/cuda_runtime.h"
#include "core/tensor.h"
#include "ops/conv3d.h"
#include "ops/conv3d_cuda.h"

using namespace ds;

namespace {

const Device kGpu = Device::cuda(0);

// Uniform values in [lo, hi) on the GPU in dtype dt: a 1 Mi-value random block
// tiled over the tensor (fast to make; the values only need to be ordinary).
Tensor rand_gpu(const Shape& s, DType dt, std::mt19937_64& r, float lo, float hi) {
  Tensor t = Tensor::empty(s, DType::Float32);
  std::uniform_real_distribution<float> u{lo, hi};
  const int64_t block = std::min<int64_t>(t.numel(), int64_t(1) << 20);
  float* p = t.data<float>();
  for (int64_t i = 0; i < block; ++i) p[i] = u(r);
  for (int64_t i = block; i < t.numel(); i += block) std::copy_n(p, std::min(block, t.numel() - i), p + i);
  return t.to(kGpu).to(dt);
}


struct Problem {
  const char* name;
  int64_t X, Y, Z, Ci, Co, k;
  std::array<int64_t, 3> stride, pad;  // (D1, D2, D3) = (z, y, x)
  bool stem;
};

struct Row {
  std::string shape, pass, dtype, algo;
  double ms, tflops, cudnn_ms, cudnn_tflops;
};

void print_rows(const std::vector<Row>& rows) {
  std::printf("%-30s %-9s %-9s %-10s %9s %8s %10s %8s %7s\n", "shape", "pass", "dtype", "kernel", "ms", "TFLOP/s",
              "cuDNN ms", "TFLOP/s", "ratio");
  for (const Row& r : rows) {
    std::printf("%-30s %-9s %-9s %-10s %9.3f %8.1f", r.shape.c_str(), r.pass.c_str(), r.dtype.c_str(), r.algo.c_str(),
                r.ms, r.tflops);
    if (r.cudnn_ms > 0)
      std::printf(" %10.3f %8.1f %7.2f\n", r.cudnn_ms, r.cudnn_tflops, r.cudnn_ms / r.ms);
    else
      std::printf(" %10s %8s %7s\n", "-", "-", "-");
  }
}

}  // namespace

DS_BENCH(conv3d_cuda) {
  if (!cuda::available()) {
    std::printf("conv3d_cuda: skipped: needs a GPU (%s)\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  bool quick = false;
  std::vector<DType> dtypes;
  for (const auto& a : args) {
    if (a == "quick") quick = true;
    else if (a == "f16") dtypes.push_back(DType::Float16);
    else if (a == "bf16") dtypes.push_back(DType::BFloat16);
    else if (a == "f32") dtypes.push_back(DType::Float32);
    else {
      std::fprintf(stderr, "conv3d_cuda: unknown argument '%s' (quick, f16, bf16, f32)\n", a.c_str());
      return 2;
    }
  }
  if (dtypes.empty()) dtypes = {DType::Float16, DType::BFloat16, DType::Float32};
  const int reps = quick ? 2 : 5;
  bench::CudnnConv* cudnn = bench::CudnnConv::get();
  if (!cudnn) std::printf("cuDNN baseline unavailable: %s\n", bench::CudnnConv::reason().c_str());

  const std::vector<Problem> problems = {
      {"3x3x3 256->256 48x48x40", 48, 48, 40, 256, 256, 3, {1, 1, 1}, {1, 1, 1}, false},
      {"3x3x3 128->128 24x24x20", 24, 24, 20, 128, 128, 3, {1, 1, 1}, {1, 1, 1}, false},
      {"1x1x1 256->64 48x48x40", 48, 48, 40, 256, 64, 1, {1, 1, 1}, {0, 0, 0}, false},
      {"stem 7x7x7 1->64 192x192x80", 192, 192, 80, 1, 64, 7, {1, 2, 2}, {3, 3, 3}, true},
  };
  const int64_t N = 4;
  std::mt19937_64 rng(7);
  std::vector<Row> rows;
  double big_fp16_ratio = -1, stem_fp16_ratio = -1;
  for (const Problem& pr : problems) {
    for (DType dt : dtypes) {
      Conv3dParams p;
      p.stride = pr.stride;
      p.padding = pr.pad;
      Tensor x = rand_gpu({N, pr.Z, pr.Y, pr.X, pr.Ci}, dt, rng, -1.f, 1.f);
      Tensor w = rand_gpu({pr.Co, pr.k, pr.k, pr.k, pr.Ci}, dt, rng, -0.1f, 0.1f);
      const auto o = conv3d_output_size(x, w, p);
      Tensor y = Tensor::empty({N, o[0], o[1], o[2], pr.Co}, dt, kGpu);
      Tensor dy = rand_gpu(y.shape(), dt, rng, -1.f, 1.f);
      Tensor dx = Tensor::empty(x.shape(), dt, kGpu);
      Tensor dw = Tensor::empty(w.shape(), dt, kGpu);
      const double flop = 2.0 * double(N * o[0] * o[1] * o[2]) * double(pr.Co) * double(pr.k * pr.k * pr.k * pr.Ci);
      const char* dname = dtype_name(dt);
      double ours[3], theirs[3];
      std::string algos[3];
      const char* pass_names[3] = {"fwd", "dgrad", "wgrad"};
      const Conv3dPass cpass[3] = {Conv3dPass::Forward, Conv3dPass::GradInput, Conv3dPass::GradWeight};
      const bench::CudnnPass dpass[3] = {bench::CudnnPass::Forward, bench::CudnnPass::GradInput,
                                         bench::CudnnPass::GradWeight};
      for (int ps = 0; ps < 3; ++ps) {
        // The stem's input gradient is never needed (the image has none) and,
        // with one input channel, only the tile-wasting general kernels do it: skipped.
        if (pr.stem && ps == 1) {
          ours[ps] = theirs[ps] = -1;
          continue;
        }
        std::function<void()> fn;
        if (ps == 0) fn = [&] { conv3d_forward_into(x, w, Tensor(), p, y); };
        if (ps == 1) fn = [&] {
          Conv3dGrads g{dx, Tensor(), Tensor()};
          conv3d_backward_into(x, w, dy, p, g);
        };
        if (ps == 2) fn = [&] {
          Conv3dGrads g{Tensor(), dw, Tensor()};
          conv3d_backward_into(x, w, dy, p, g);
        };
        ours[ps] = bench::cuda_median_ms(fn, reps);
        algos[ps] = conv3d_cuda_last_algo(cpass[ps]);
        theirs[ps] = -1;
        if (cudnn) {
          std::string note;
          Tensor& out = ps == 0 ? y : (ps == 1 ? dx : dw);
          const Tensor& a = ps == 1 ? dy : x;
          const Tensor& b = ps == 2 ? dy : w;
          try {
            theirs[ps] = cudnn->time_pass(dpass[ps], a, b, out, p, reps, &note);
          } catch (const std::exception& e) {
            std::printf("cuDNN %s %s %s: %s\n", pr.name, pass_names[ps], dname, e.what());
          }
          if (theirs[ps] < 0 && !note.empty())
            std::printf("cuDNN %s %s %s: %s\n", pr.name, pass_names[ps], dname, note.c_str());
        }
        rows.push_back({pr.name, pass_names[ps], dname, algos[ps], ours[ps], flop / (ours[ps] * 1e9), theirs[ps],
                        theirs[ps] > 0 ? flop / (theirs[ps] * 1e9) : 0});
      }
      // fwd+bwd: the stem needs no input gradient.
      const bool all = !pr.stem;
      const double ms = ours[0] + ours[2] + (all ? ours[1] : 0);
      const bool have = theirs[0] > 0 && theirs[2] > 0 && (!all || theirs[1] > 0);
      const double cms = have ? theirs[0] + theirs[2] + (all ? theirs[1] : 0) : -1;
      const double passes = all ? 3 : 2;
      rows.push_back({pr.name, all ? "fwd+bwd" : "fwd+wgrad", dname, "", ms, passes * flop / (ms * 1e9), cms,
                      have ? passes * flop / (cms * 1e9) : 0});
      if (dt == DType::Float16 && have && pr.Ci == 256 && pr.k == 3) big_fp16_ratio = cms / ms;
      if (dt == DType::Float16 && have && pr.stem) stem_fp16_ratio = cms / ms;
    }
  }
  print_rows(rows);
  auto verdict = [](double ratio, double target) {
    if (ratio < 0) return std::string("no cuDNN number");
    return std::to_string(ratio) + (ratio >= target ? " met" : " NOT met");
  };
  std::printf("\ntargets (issue 9): 3x3x3 256->256 fp16 fwd+bwd >= 0.90 of cuDNN's speed: %s; "
              "stem fp16 fwd+wgrad >= 3x cuDNN: %s\n",
              verdict(big_fp16_ratio, 0.9).c_str(), verdict(stem_fp16_ratio, 3.0).c_str());
  return 0;
}
