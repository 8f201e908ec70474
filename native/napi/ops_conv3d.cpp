// conv3d / conv3dBackward (and their *Async variants).
#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "napi/common.h"
#include "ops/conv3d.h"
#include "ops/gemm.h"

namespace ds::napi {
namespace {

Conv3dParams params_arg(const Napi::Value& v) {
  Conv3dParams p;
  if (v.IsUndefined() || v.IsNull()) return p;
  DS_CHECK(v.IsObject(), "conv3d options must be an object {stride, padding, dilation}");
  Napi::Object o = v.As<Napi::Object>();
  if (!get_opt(o, "stride").IsUndefined()) p.stride = triple_arg(o.Get("stride"), "conv3d stride");
  if (!get_opt(o, "padding").IsUndefined()) p.padding = triple_arg(o.Get("padding"), "conv3d padding");
  if (!get_opt(o, "dilation").IsUndefined()) p.dilation = triple_arg(o.Get("dilation"), "conv3d dilation");
  return p;
}

// conv3d(x, w, bias|null, {stride, padding, dilation}) -> Tensor
Job Conv3d(const Napi::CallbackInfo& info) {
  struct State { Tensor x, w, b, y; Conv3dParams p; };
  auto s = std::make_shared<State>();
  s->x = tensor_arg(info[0], "conv3d input");
  s->w = tensor_arg(info[1], "conv3d weight");
  s->b = optional_tensor_arg(info[2], "conv3d bias");
  s->p = params_arg(info[3]);
  return {[s] { s->y = conv3d_forward(s->x, s->w, s->b, s->p); },
          [s](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, s->y); }};
}

// conv3dBackward(x, w, gradOut, {stride, padding, dilation, bias, input, weight}) -> {gradInput, gradWeight, gradBias}
Job Conv3dBackward(const Napi::CallbackInfo& info) {
  struct State { Tensor x, w, dy; Conv3dParams p; bool gi = true, gw = true, gb = false; Conv3dGrads g; };
  auto s = std::make_shared<State>();
  s->x = tensor_arg(info[0], "conv3d input");
  s->w = tensor_arg(info[1], "conv3d weight");
  s->dy = tensor_arg(info[2], "conv3d output gradient");
  s->p = params_arg(info[3]);
  if (info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    if (!get_opt(o, "bias").IsUndefined()) s->gb = bool_arg(o.Get("bias"), "conv3dBackward option 'bias'");
    if (!get_opt(o, "input").IsUndefined()) s->gi = bool_arg(o.Get("input"), "conv3dBackward option 'input'");
    if (!get_opt(o, "weight").IsUndefined()) s->gw = bool_arg(o.Get("weight"), "conv3dBackward option 'weight'");
  }
  return {[s] { s->g = conv3d_backward(s->x, s->w, s->dy, s->p, s->gi, s->gw, s->gb); },
          [s](Napi::Env env) -> Napi::Value {
            Napi::Object o = Napi::Object::New(env);
            o.Set("gradInput", s->g.grad_input.defined() ? TensorWrap::Wrap(env, s->g.grad_input) : env.Null());
            o.Set("gradWeight", s->g.grad_weight.defined() ? TensorWrap::Wrap(env, s->g.grad_weight) : env.Null());
            o.Set("gradBias", s->g.grad_bias.defined() ? TensorWrap::Wrap(env, s->g.grad_bias) : env.Null());
            return o;
          }};
}

// benchPeakFlops(threads) -> GFLOP/s of independent FMA chains (float32, current SIMD level).
Napi::Value BenchPeakFlops(const Napi::CallbackInfo& info) {
  const int64_t t = info.Length() > 0 && !info[0].IsUndefined() ? int_arg(info[0], "benchPeakFlops threads") : 0;
  DS_CHECK(t >= 0, "benchPeakFlops: threads must be >= 0 (0 = all), got ", t);
  const int threads = t == 0 ? num_threads() : int(t);
  return Napi::Number::New(info.Env(), gemm::peak_gflops(threads));
}

// benchGemm(M, N, K, reps) -> {seconds (best of reps), gflops, kernel}: C = A·B^T
// on random float32 row-major matrices (the layout of a 1x1x1 convolution).
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  const int64_t M = int_arg(info[0], "benchGemm M"), N = int_arg(info[1], "benchGemm N"),
                K = int_arg(info[2], "benchGemm K");
  const int64_t reps = info.Length() > 3 && !info[3].IsUndefined() ? int_arg(info[3], "benchGemm reps") : 3;
  DS_CHECK(M >= 1 && N >= 1 && K >= 1 && reps >= 1, "benchGemm: sizes and reps must be >= 1");
  std::vector<float> a(size_t(M * K)), b(size_t(N * K)), c(size_t(M * N));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  double best = 1e30;
  for (int64_t r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    gemm::gemm_matrix<float>(false, true, M, N, K, a.data(), K, b.data(), K, c.data(), N, false);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("seconds", best);
  o.Set("gflops", 2.0 * double(M) * double(N) * double(K) / best / 1e9);
  o.Set("kernel", gemm::micro_kernel<float>().name);
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  export_job(env, exports, "conv3d", Conv3d);
  export_job(env, exports, "conv3dBackward", Conv3dBackward);
  export_fn(env, exports, "benchPeakFlops", BenchPeakFlops);
  export_fn(env, exports, "benchGemm", BenchGemm);
}

}  // namespace

DS_NAPI_REGISTER(conv3d, Init);

}  // namespace ds::napi
