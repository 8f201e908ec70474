// CUDA conv3d entry points (ops/conv3d_cuda.h): argument checks, the choice
// of kernel per pass (candidates + autotuner) and the small amount of glue
// around the kernels (weight transpose for grad input, split reductions).
//
// Autotuner: the eligible non-generic candidates of a (pass, dtype, device,
// geometry) are each run once to warm up and then timed twice with CUDA
// events on the compute stream, writing into scratch outputs (so accumulate
// outputs are never disturbed); the fastest is cached for the process. This
// synchronises the device once per new problem; tuning runs are serialised
// process-wide (concurrent ones would time each other's kernels). With a single candidate
// besides the generic fallback (float32 / float64 and unaligned 16-bit shapes:
// "simt128"; the 7x7x7 stem's grad weight: "stem") nothing is timed.
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <type_traits>

#include "core/cuda_runtime.h"
#include "ops/conv3d_cuda.h"
#include "ops/conv3d_cuda_common.cuh"

namespace ds {
using namespace convcuda;

namespace {

enum class Kind { Tc, Stem, Simt, Generic };
struct Cand {
  std::string name;
  Kind kind;
  int cfg;
};

template <class T>
constexpr bool is16 = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

struct DevInfo {
  int sms = 0, major = 0, smem_optin = 0;
};
DevInfo dev_info(int dev) {
  static std::mutex mu;
  static std::map<int, DevInfo> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  DevInfo d;
  DS_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev));
  DS_CUDA_CHECK(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev));
  DS_CUDA_CHECK(cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cache[dev] = d;
  return d;
}

std::mutex g_mu;
std::string g_forced;
std::string g_last[3];
std::map<std::string, std::string> g_tuned;

Geo make_geo(const Tensor& x, const Tensor& w, const Conv3dParams& p) {
  const auto o = conv3d_output_size(x, w, p);  // shared shape validation
  Geo g;
  const int64_t lim = int64_t(1) << 31;
  g.N = int(x.size(0));
  g.Ci = int(x.size(4));
  g.Co = int(w.size(0));
  g.taps = int(w.size(1) * w.size(2) * w.size(3));
  for (int i = 0; i < 3; ++i) {
    g.D[i] = int(x.size(1 + i));
    g.O[i] = int(o[i]);
    g.K[i] = int(w.size(1 + i));
    g.s[i] = int(p.stride[i]);
    g.p[i] = int(p.padding[i]);
    g.d[i] = int(p.dilation[i]);
  }
  DS_CHECK(g.in_pos() < lim && g.out_pos() < lim && int64_t(g.taps) * std::max(g.Ci, g.Co) < lim &&
               int64_t(g.Co) * g.taps * g.Ci < lim,
           "conv3d (CUDA): problem too large (positions and weight elements must stay below 2^31): input ",
           shape_str(x.shape()), ", weight ", shape_str(w.shape()));
  return g;
}

void check_args(const Tensor& x, const Tensor& w, const Tensor* dy) {
  cuda::check_cuda_tensor(x, "conv3d input");
  cuda::check_cuda_tensor(w, "conv3d weight");
  cuda::check_same_device(x, w, "conv3d input", "weight");
  DS_CHECK(dtype_is_float(x.dtype()), "conv3d: input must be float32, float64, float16 or bfloat16, got ",
           x.describe());
  check_same_dtype(x, w, "conv3d input", "weight");
  if (dy) {
    cuda::check_cuda_tensor(*dy, "conv3d output gradient");
    cuda::check_same_device(x, *dy, "conv3d input", "output gradient");
    check_same_dtype(x, *dy, "conv3d input", "output gradient");
  }
}

// A tensor that is either x's dtype or float32 (bias, master gradients).
// float32 gradients are accepted for float32 and 16-bit x (not for float64,
// whose partial sums are double); a float32 bias for every dtype.
void check_aux(const Tensor& t, const Tensor& x, const Shape& shape, const char* what, bool is_grad) {
  cuda::check_cuda_tensor(t, what);
  cuda::check_same_device(x, t, "conv3d input", what);
  const bool f32_ok = !is_grad || x.dtype() != DType::Float64;
  DS_CHECK(t.shape() == shape && (t.dtype() == x.dtype() || (f32_ok && t.dtype() == DType::Float32)), "conv3d: ",
           what, " must be ", shape_str(shape), " of ", dtype_name(x.dtype()), f32_ok ? " or float32" : "",
           ", got ", t.describe());
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }
bool is_half_dtype(DType d) { return d == DType::Float16 || d == DType::BFloat16; }

std::vector<Cand> candidates(const Geo& g, DType dt, Conv3dPass pass, bool aligned, int dev) {
  std::vector<Cand> c;
  const DevInfo di = dev_info(dev);
  const bool tc = is_half_dtype(dt) && di.major >= 8 && aligned;
  const bool pw = g.pointwise();
  const bool stem_ok = is_half_dtype(dt) && di.major >= 8 && g.Ci == 1 && g.taps <= kStemMaxK;
  bool tc_ok = false, stem = false;
  switch (pass) {
    case Conv3dPass::Forward:
      tc_ok = tc && g.Ci % 8 == 0;
      stem = stem_ok && di.smem_optin >= kStemFwdSmem;
      break;
    case Conv3dPass::GradInput: tc_ok = tc && g.Co % 8 == 0; break;
    case Conv3dPass::GradWeight: tc_ok = tc && g.Ci % 8 == 0 && g.Co % 8 == 0; stem = stem_ok; break;
  }
  if (tc_ok)
    for (int i = 0; i < kNumTcConfigs; ++i)
      c.push_back({std::string(pw ? "gemm" : "tc") + kTcConfigs[i].name, Kind::Tc, i});
  if (stem) c.push_back({"stem", Kind::Stem, 0});
  // The SIMT kernels only where no tensor-core kernel applies (they would lose
  // and timing them on large layers costs).
  if (!tc_ok && !stem) c.push_back({"simt128", Kind::Simt, 0});
  c.push_back({"generic", Kind::Generic, 0});
  return c;
}

cudaStream_t stream_of(const Tensor& t) { return static_cast<cudaStream_t>(cuda::stream(t.device().index)); }

Epilogue make_epilogue(const Tensor& bias, bool acc, bool relu) {
  Epilogue e;
  if (bias.defined()) {
    if (bias.dtype() == DType::Float32)
      e.bias_f = static_cast<const float*>(bias.raw());
    else
      e.bias_t = bias.raw();
  }
  e.accumulate = acc;
  e.relu = relu;
  return e;
}

// ---- per-pass runners ----------------------------------------------------------
void run_forward(const Cand& c, const Geo& g, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
                 bool acc, bool relu) {
  const Epilogue e = make_epilogue(bias, acc, relu);
  cudaStream_t st = stream_of(x);
  cuda::dispatch_gpu_float(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cuda::dptr<const T>(x);
    const T* wp = cuda::dptr<const T>(w);
    T* yp = cuda::dptr<T>(y);
    if constexpr (is16<T>) {
      if (c.kind == Kind::Tc) return launch_tc_fwd_dgrad<T>(c.cfg, false, g.pointwise(), g, xp, wp, yp, e, st);
      if (c.kind == Kind::Stem) return launch_stem_fwd<T>(g, xp, wp, yp, e, st);
    }
    if (c.kind == Kind::Simt) return launch_simt_fwd_dgrad<T>(false, g, xp, wp, yp, e, st);
    launch_generic_fwd_dgrad<T>(false, g, xp, wp, yp, e, st);
  });
}

// The stride phases of grad input (see convcuda::Phase); empty when every
// stride is 1 or a kernel extent exceeds kPhaseMaxK.
std::vector<Phase> stride_phases(const Geo& g) {
  std::vector<Phase> out;
  if (g.s[0] == 1 && g.s[1] == 1 && g.s[2] == 1) return out;
  for (int j = 0; j < 3; ++j)
    if (g.K[j] > kPhaseMaxK) return out;
  for (int f0 = 0; f0 < g.s[0]; ++f0)
    for (int f1 = 0; f1 < g.s[1]; ++f1)
      for (int f2 = 0; f2 < g.s[2]; ++f2) {
        const int phi[3] = {f0, f1, f2};
        Phase ph{};
        bool empty = false;
        for (int j = 0; j < 3; ++j) {
          // inputs i with (i + p) mod s == phi: the first is (phi - p) mod s
          ph.i0[j] = ((phi[j] - g.p[j]) % g.s[j] + g.s[j]) % g.s[j];
          ph.E[j] = ph.i0[j] < g.D[j] ? (g.D[j] - ph.i0[j] + g.s[j] - 1) / g.s[j] : 0;
          empty |= ph.E[j] == 0;
          ph.nt[j] = 0;
          for (int k = 0; k < g.K[j]; ++k)
            if ((k * g.d[j]) % g.s[j] == phi[j]) ph.tk[j][ph.nt[j]++] = k;
        }
        if (!empty) out.push_back(ph);  // (a phase without taps still runs: it writes zeros)
      }
  return out;
}

// WT[c, tap, co] = w[co, tap, c] (the grad-input GEMM's B operand), on dy's stream.
Tensor transpose_weight(const Geo& g, const Tensor& w, const Tensor& dy) {
  Tensor wt = Tensor::empty({int64_t(g.Ci), int64_t(g.taps) * g.Co}, w.dtype(), w.device());
  cuda::dispatch_gpu_float(w.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    launch_transpose_weight<T>(g, cuda::dptr<const T>(w), cuda::dptr<T>(wt), stream_of(dy));
  });
  return wt;
}

// wt: transpose_weight(g, w, dy).
void run_grad_input(const Cand& c, const Geo& g, const Tensor& wt, const Tensor& dy, Tensor& dx, bool acc) {
  const Epilogue e = make_epilogue(Tensor(), acc, false);
  cudaStream_t st = stream_of(dy);
  cuda::dispatch_gpu_float(wt.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    const T* dyp = cuda::dptr<const T>(dy);
    const T* wtp = cuda::dptr<const T>(wt);
    T* dxp = cuda::dptr<T>(dx);
    if constexpr (is16<T>) {
      if (c.kind == Kind::Tc) {
        // Strides > 1: one GEMM per stride phase (only the taps that reach it).
        const std::vector<Phase> phases = g.pointwise() ? std::vector<Phase>() : stride_phases(g);
        if (phases.empty()) return launch_tc_fwd_dgrad<T>(c.cfg, true, g.pointwise(), g, dyp, wtp, dxp, e, st);
        for (const Phase& ph : phases) launch_tc_fwd_dgrad<T>(c.cfg, true, false, g, dyp, wtp, dxp, e, st, &ph);
        return;
      }
    }
    if (c.kind == Kind::Simt) return launch_simt_fwd_dgrad<T>(true, g, dyp, wtp, dxp, e, st);
    launch_generic_fwd_dgrad<T>(true, g, dyp, wtp, dxp, e, st);
  });
}

template <class A, class T>
void finalize_into(const A* part, int splits, Tensor& out, bool acc, cudaStream_t st) {
  if (out.dtype() == DType::Float32) {
    if constexpr (std::is_same_v<A, float>)
      return launch_finalize<float, float>(part, splits, out.numel(), cuda::dptr<float>(out), acc, st);
    DS_FAIL("internal: float32 output with float64 partials");
  } else {
    launch_finalize<A, T>(part, splits, out.numel(), cuda::dptr<T>(out), acc, st);
  }
}

void run_grad_weight(const Cand& c, const Geo& g, const Tensor& x, const Tensor& dy, Tensor& dw, bool acc) {
  cudaStream_t st = stream_of(x);
  const int sms = dev_info(x.device().index).sms;
  const int64_t K = int64_t(g.taps) * g.Ci, R = g.out_pos();
  cuda::dispatch_gpu_float(x.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    using A = cuda::acc_t<T>;
    const T* xp = cuda::dptr<const T>(x);
    const T* dyp = cuda::dptr<const T>(dy);
    if constexpr (is16<T>) {
      if (c.kind == Kind::Tc) {
        const TcConfig& cf = kTcConfigs[c.cfg];
        const int64_t tiles = ((K + cf.bn - 1) / cf.bn) * ((g.Co + cf.bm - 1) / cf.bm);
        const int splits = wgrad_splits(tiles, (R + 31) / 32, g.Co * K, sms);
        Tensor part = Tensor::empty({int64_t(splits) * g.Co * K}, DType::Float32, x.device());
        launch_tc_wgrad<T>(c.cfg, g.pointwise(), g, xp, dyp, cuda::dptr<float>(part), splits, st);
        return finalize_into<float, T>(cuda::dptr<float>(part), splits, dw, acc, st);
      }
      if (c.kind == Kind::Stem) {
        const int splits = wgrad_splits((g.Co + 63) / 64, (R + 31) / 32, g.Co * K, sms);
        Tensor part = Tensor::empty({int64_t(splits) * g.Co * K}, DType::Float32, x.device());
        launch_stem_wgrad<T>(g, xp, dyp, cuda::dptr<float>(part), splits, st);
        return finalize_into<float, T>(cuda::dptr<float>(part), splits, dw, acc, st);
      }
    }
    const int tile = c.kind == Kind::Simt ? 128 : 64;
    const int64_t tiles = ((K + tile - 1) / tile) * ((g.Co + tile - 1) / tile);
    const int splits = wgrad_splits(tiles, (R + 15) / 16, g.Co * K, sms);
    const DType part_dt = std::is_same_v<A, double> ? DType::Float64 : DType::Float32;
    Tensor part = Tensor::empty({int64_t(splits) * g.Co * K}, part_dt, x.device());
    if (c.kind == Kind::Simt)
      launch_simt_wgrad<T, A>(g, xp, dyp, static_cast<A*>(part.raw()), splits, st);
    else
      launch_generic_wgrad<T, A>(g, xp, dyp, static_cast<A*>(part.raw()), splits, st);
    finalize_into<A, T>(static_cast<const A*>(part.raw()), splits, dw, acc, st);
  });
}

void run_grad_bias(const Geo& g, const Tensor& dy, Tensor& db, bool acc) {
  cudaStream_t st = stream_of(dy);
  const int sms = dev_info(dy.device().index).sms;
  const int64_t R = g.out_pos();
  int64_t splits = std::max<int64_t>(1, 2 * int64_t(sms) / ((g.Co + 31) / 32));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, (R + 255) / 256));
  cuda::dispatch_gpu_float(dy.dtype(), "conv3d", [&](auto tag) {
    using T = decltype(tag);
    using A = cuda::acc_t<T>;
    Tensor part = Tensor::empty({splits * g.Co}, std::is_same_v<A, double> ? DType::Float64 : DType::Float32,
                                dy.device());
    launch_bias_partials<T, A>(g, cuda::dptr<const T>(dy), static_cast<A*>(part.raw()), int(splits), st);
    finalize_into<A, T>(static_cast<const A*>(part.raw()), int(splits), db, acc, st);
  });
}

// ---- selection -------------------------------------------------------------------
std::string tune_key(Conv3dPass pass, const Geo& g, DType dt, int dev, bool aligned) {
  std::string k = std::to_string(int(pass)) + "|" + dtype_name(dt) + "|" + std::to_string(dev) + "|" +
                  std::to_string(aligned) + "|" + std::to_string(g.N) + "," + std::to_string(g.Ci) + "," +
                  std::to_string(g.Co);
  for (int i = 0; i < 3; ++i)
    k += "|" + std::to_string(g.D[i]) + "," + std::to_string(g.K[i]) + "," + std::to_string(g.s[i]) + "," +
         std::to_string(g.p[i]) + "," + std::to_string(g.d[i]);
  return k;
}

// Picks the candidate: forced name (API, then environment) when eligible, the
// cached tuning result, or a fresh tuning run through `time_one(cand)` (ms).
template <class TimeFn>
Cand choose(Conv3dPass pass, const Geo& g, DType dt, int dev, bool aligned, TimeFn&& time_one) {
  const std::vector<Cand> cands = candidates(g, dt, pass, aligned, dev);
  std::string forced;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    forced = g_forced;
  }
  if (forced.empty()) {
    const char* env = std::getenv("DETSEG3D_CONV_CUDA_ALGO");
    if (env) forced = env;
  }
  for (const Cand& c : cands)
    if (!forced.empty() && c.name == forced) return c;
  if (cands.size() <= 2) return cands[0];  // one candidate besides the generic fallback: nothing to time
  const std::string key = tune_key(pass, g, dt, dev, aligned);
#if defined(DETSEG3D_CUDA_EMU)
  // On the CPU emulator (native/emu) timings say nothing about a GPU: take a
  // candidate picked by the shape, so different shapes exercise different
  // kernels, without running the others.
  return cands[std::hash<std::string>()(key) % (cands.size() - 1)];
#endif
  auto cached = [&](Cand& out) {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_tuned.find(key);
    if (it != g_tuned.end())
      for (const Cand& c : cands)
        if (c.name == it->second) {
          out = c;
          return true;
        }
    return false;
  };
  Cand hit;
  if (cached(hit)) return hit;
  // One tuning run at a time in the process: candidates timed concurrently
  // (async jobs on worker threads share the device's compute stream) would
  // time each other's kernels. Another thread may have tuned this key meanwhile.
  static std::mutex tune_mu;
  std::lock_guard<std::mutex> tune_lock(tune_mu);
  if (cached(hit)) return hit;
  // Time every candidate except the generic fallback (always last, always slower).
  size_t best = 0;
  double best_ms = 1e30;
  for (size_t i = 0; i + 1 < cands.size(); ++i) {
    const double ms = time_one(cands[i]);
    if (ms < best_ms) {
      best_ms = ms;
      best = i;
    }
  }
  std::lock_guard<std::mutex> lock(g_mu);
  g_tuned[key] = cands[best].name;
  return cands[best];
}

template <class Run>
double time_candidate(int dev, Run&& run) {
  run();  // warm-up (also sets the kernels' shared-memory attributes)
  cuda::Event a(dev), b(dev);
  a.record();
  run();
  run();
  b.record();
  b.synchronize();
  return b.elapsed_ms(a) / 2;
}

// Chooses the pass's kernel (timing candidates into a scratch tensor shaped
// like `out`), records it for conv3d_cuda_last_algo and runs it into `out`.
// run(cand, out, accumulate) launches one candidate.
template <class Run>
void choose_and_run(Conv3dPass pass, const Geo& g, DType dt, int dev, bool aligned, Tensor& out, bool acc,
                    Run&& run) {
  const Cand c = choose(pass, g, dt, dev, aligned, [&](const Cand& cand) {
    Tensor scratch = Tensor::empty(out.shape(), out.dtype(), out.device());
    return time_candidate(dev, [&] { run(cand, scratch, false); });
  });
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_last[int(pass)] = c.name;
  }
  run(c, out, acc);
}

void forward_impl(const Geo& g, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, bool acc,
                  bool relu) {
  const int dev = x.device().index;
  cuda::DeviceGuard guard(dev);
  choose_and_run(Conv3dPass::Forward, g, x.dtype(), dev, aligned16(x) && aligned16(w), y, acc,
                 [&](const Cand& c, Tensor& out, bool a) { run_forward(c, g, x, w, bias, out, a, relu); });
}

// An output the caller provides: a CUDA tensor on x's device, x's dtype, `shape`.
void check_out(const Tensor& t, const Tensor& x, const Shape& shape, const char* name) {
  const std::string what = std::string("conv3d ") + name;
  cuda::check_cuda_tensor(t, what.c_str());
  cuda::check_same_device(x, t, "conv3d input", name);
  DS_CHECK(t.dtype() == x.dtype() && t.shape() == shape, what, " must be ", dtype_name(x.dtype()), shape_str(shape),
           ", got ", t.describe());
}

}  // namespace

// ---- public API -------------------------------------------------------------------
std::vector<std::string> conv3d_cuda_candidates(const Tensor& x, const Tensor& w, const Conv3dParams& p,
                                                Conv3dPass pass) {
  check_args(x, w, nullptr);
  const Geo g = make_geo(x, w, p);
  std::vector<std::string> names;
  for (const Cand& c : candidates(g, x.dtype(), pass, aligned16(x) && aligned16(w), x.device().index))
    names.push_back(c.name);
  return names;
}

void conv3d_cuda_force_algo(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_forced = name;
}

std::string conv3d_cuda_last_algo(Conv3dPass pass) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_last[int(pass)];
}

Tensor conv3d_forward_cuda(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p) {
  check_args(x, w, nullptr);
  const Geo g = make_geo(x, w, p);
  if (bias.defined()) check_aux(bias, x, {g.Co}, "conv3d bias", false);
  Tensor y = Tensor::empty({g.N, g.O[0], g.O[1], g.O[2], g.Co}, x.dtype(), x.device());
  forward_impl(g, x, w, bias, y, false, false);
  return y;
}

void conv3d_forward_cuda_into(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p, Tensor& y,
                              bool accumulate, bool relu) {
  check_args(x, w, nullptr);
  const Geo g = make_geo(x, w, p);
  if (bias.defined()) check_aux(bias, x, {g.Co}, "conv3d bias", false);
  check_out(y, x, {g.N, g.O[0], g.O[1], g.O[2], g.Co}, "output");
  forward_impl(g, x, w, bias, y, accumulate, relu);
}

void conv3d_backward_cuda_into(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv3dParams& p,
                               Conv3dGrads& grads, bool accumulate) {
  check_args(x, w, &dy);
  const Geo g = make_geo(x, w, p);
  const Shape ys{g.N, g.O[0], g.O[1], g.O[2], g.Co};
  DS_CHECK(dy.shape() == ys, "conv3d backward: output gradient must have shape ", shape_str(ys),
           " (the forward output's shape), got ", shape_str(dy.shape()));
  if (grads.grad_input.defined()) check_out(grads.grad_input, x, x.shape(), "input gradient");
  if (grads.grad_weight.defined()) check_aux(grads.grad_weight, x, w.shape(), "conv3d weight gradient", true);
  if (grads.grad_bias.defined()) check_aux(grads.grad_bias, x, {g.Co}, "conv3d bias gradient", true);
  const int dev = x.device().index;
  cuda::DeviceGuard guard(dev);
  if (grads.grad_bias.defined()) run_grad_bias(g, dy, grads.grad_bias, accumulate);
  if (grads.grad_weight.defined())
    choose_and_run(Conv3dPass::GradWeight, g, x.dtype(), dev, aligned16(x) && aligned16(dy), grads.grad_weight,
                   accumulate, [&](const Cand& c, Tensor& out, bool a) { run_grad_weight(c, g, x, dy, out, a); });
  if (grads.grad_input.defined()) {
    const Tensor wt = transpose_weight(g, w, dy);  // once, shared by the tuning runs and the real one
    choose_and_run(Conv3dPass::GradInput, g, x.dtype(), dev, aligned16(dy), grads.grad_input, accumulate,
                   [&](const Cand& c, Tensor& out, bool a) { run_grad_input(c, g, wt, dy, out, a); });
  }
}

Conv3dGrads conv3d_backward_cuda(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv3dParams& p,
                                 bool need_input, bool need_weight, bool need_bias) {
  check_args(x, w, &dy);
  const Geo g = make_geo(x, w, p);
  Conv3dGrads r;
  if (need_input) r.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_weight) r.grad_weight = Tensor::empty(w.shape(), x.dtype(), x.device());
  if (need_bias) r.grad_bias = Tensor::empty({int64_t(g.Co)}, x.dtype(), x.device());
  conv3d_backward_cuda_into(x, w, dy, p, r, false);
  return r;
}

}  // namespace ds
