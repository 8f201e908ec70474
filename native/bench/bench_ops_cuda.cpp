// GPU op benchmarks: `detseg3d_bench cuda_ops [quick]`. Times each op with
// CUDA events on the compute stream (median of the timed repetitions after
// warm-up) and reports the achieved bandwidth, counting the minimum bytes the
// op must move (every input read once, every output written once), as a
// percentage of the device-to-device copy bandwidth measured in the same run
// (read + write counted, like the ops). Without a GPU it prints why and exits 0.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda_timing.h"
#include "bench/harness.h"
#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "core/tensor.h"
#include "nn/batchnorm.h"
#include "nn/groupnorm.h"
#include "nn/maxpool.h"
#include "nn/nn_cuda.h"
#include "nn/reduce.h"
#include "nn/sgd_multi.h"

using namespace ds;

namespace {

const Device kGpu = Device::cuda(0);

Tensor rand_gpu(const Shape& s, DType dt, std::mt19937_64& r, double lo = -1, double hi = 1) {
  Tensor t = Tensor::empty(s, DType::Float32);
  std::uniform_real_distribution<float> u{float(lo), float(hi)};
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(r);
  return t.to(dt).to(kGpu);
}


struct Row {
  std::string op, dtype, shape;
  double ms, gbps, pct;
};

std::string shape_of(const Shape& s) { return shape_str(s); }

}  // namespace

DS_BENCH(cuda_ops) {
  if (!cuda::available()) {
    std::printf("cuda_ops: skipped: no GPU (%s)\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  const bool quick = !args.empty() && args[0] == "quick";
  const int reps = quick ? 5 : 20;
  std::mt19937_64 rng(1);
  std::vector<Row> rows;

  // Ceiling: device-to-device copy of 256 MiB (read + write).
  const int64_t big = int64_t(64) << 20;
  Tensor src = Tensor::zeros({big}, DType::Float32, kGpu), dst = Tensor::empty({big}, DType::Float32, kGpu);
  const double copy_ms = bench::cuda_median_ms([&] { dst.copy_from(src); }, reps, 3);
  const double copy_gbps = 2.0 * double(big) * 4 / (copy_ms * 1e6);
  rows.push_back({"d2d copy (ceiling)", "float32", shape_of({big}), copy_ms, copy_gbps, 100.0});

  auto add_row = [&](const std::string& op, DType dt, const Shape& s, double bytes, const std::function<void()>& fn) {
    const double ms = bench::cuda_median_ms(fn, reps, 3);
    const double gbps = bytes / (ms * 1e6);
    rows.push_back({op, dtype_name(dt), shape_of(s), ms, gbps, 100.0 * gbps / copy_gbps});
  };

  // Activation-sized tensors: [2, 64, 64, 64, 32] (16.8 M elements).
  const Shape act = {2, 64, 64, 64, 32};
  const int64_t n = shape_numel(act);
  for (DType dt : {DType::Float32, DType::Float16, DType::BFloat16}) {
    const double es = double(dtype_size(dt));
    Tensor a = rand_gpu(act, dt, rng), b = rand_gpu(act, dt, rng);
    add_row("add", dt, act, 3 * n * es, [&] { nn::add_cuda(a, b); });
    add_row("relu fwd", dt, act, 2 * n * es, [&] { nn::relu_forward_cuda(a); });
    add_row("relu bwd", dt, act, 3 * n * es, [&] { nn::relu_backward_cuda(a, b); });
    add_row("axpy_", dt, act, 3 * n * es, [&] { nn::axpy_cuda_(a, 0.5, b); });
    add_row("sum", dt, act, n * es, [&] { nn::sum(a); });
    add_row("cast ->float32", dt, act, n * (es + 4), [&] { a.to(DType::Float32, true); });
    const int64_t C = act[4];
    const DType pdt = dt == DType::Float16 || dt == DType::BFloat16 ? DType::Float32 : dt;
    Tensor g = Tensor::full({C}, 1.0, pdt, kGpu), be = Tensor::zeros({C}, pdt, kGpu);
    Tensor rm = Tensor::zeros({C}, pdt, kGpu), rv = Tensor::full({C}, 1.0, pdt, kGpu);
    nn::BatchNormOptions o;
    o.relu = true;
    nn::BatchNormSaved saved;
    Tensor y;
    add_row("batchnorm fwd train+res+relu", dt, act, 3 * n * es,
            [&] { y = nn::batchnorm_forward_cuda(a, g, be, rm, rv, b, o, &saved); });
    add_row("batchnorm bwd train+relu", dt, act, 5 * n * es,
            [&] { nn::batchnorm_backward_cuda(a, y, g, saved, b, o, true); });
    nn::GroupNormSaved gs;
    add_row("groupnorm fwd relu (8 groups)", dt, act, 2 * n * es,
            [&] { y = nn::groupnorm_forward_cuda(a, g, be, 8, 1e-5, true, &gs); });
    add_row("groupnorm bwd relu", dt, act, 4 * n * es, [&] { nn::groupnorm_backward_cuda(a, y, g, 8, gs, b, true); });
    nn::MaxPoolParams mp;
    mp.kernel = {3, 3, 3};
    mp.stride = {2, 2, 2};
    mp.padding = {1, 1, 1};
    Tensor am;
    Tensor py = nn::maxpool3d_forward_cuda(a, mp, &am);
    add_row("maxpool3d fwd k3 s2 p1", dt, act, n * es + double(py.numel()) * (es + 4),
            [&] { nn::maxpool3d_forward_cuda(a, mp, &am); });
    Tensor dpy = rand_gpu(py.shape(), dt, rng);
    add_row("maxpool3d bwd", dt, act, double(py.numel()) * (es + 4) + n * es,
            [&] { nn::maxpool3d_backward_cuda(dpy, am, act); });
    const Shape half = {2, 32, 32, 32, 32};
    Tensor hx = rand_gpu(half, dt, rng);
    add_row("upsample x2 fwd", dt, half, double(shape_numel(half)) * es * 9,
            [&] { nn::upsample_nearest_forward_cuda(hx, {64, 64, 64}); });
    add_row("upsample x2 bwd", dt, half, double(shape_numel(half)) * es * 9,
            [&] { nn::upsample_nearest_backward_cuda(a, half); });
  }
  // Fused SGD over a ResNet-like parameter list (~20 M parameters in 300 tensors).
  {
    nn::SgdMultiArgs a;
    std::vector<int64_t> sizes;
    for (int i = 0; i < 300; ++i) sizes.push_back(i % 3 == 0 ? 64 : (i % 3 == 1 ? 110592 : 64));
    int64_t total = 0;
    for (int64_t s : sizes) {
      a.params.push_back(rand_gpu({s}, DType::Float32, rng));
      a.grads.push_back(rand_gpu({s}, DType::Float16, rng));
      a.compute.push_back(Tensor::empty({s}, DType::Float16, kGpu));
      total += s;
    }
    a.opt.lr = 0.01;
    a.opt.momentum = 0.9;
    a.opt.weight_decay = 1e-4;
    nn::sgd_multi_step(a);
    // Per element: read param, grad (2 B), buffer; write param, buffer, copy (2 B).
    add_row("sgd multi-tensor (amp)", DType::Float32, {total}, double(total) * (4 + 2 + 4 + 4 + 4 + 2),
            [&] { nn::sgd_multi_step(a); });
  }

  std::printf("\n%-30s %-9s %-22s %10s %10s %8s\n", "op", "dtype", "shape", "time ms", "GB/s", "% copy");
  for (const Row& r : rows)
    std::printf("%-30s %-9s %-22s %10.4f %10.1f %7.1f%%\n", r.op.c_str(), r.dtype.c_str(), r.shape.c_str(), r.ms,
                r.gbps, r.pct);
  return 0;
}
