// Functional bindings of the network layers (native/nn) for tests and
// custom use: nnBatchNorm, nnGroupNorm, nnRelu, nnMaxPool3d,
// nnUpsampleNearest, nnAdd and their *Backward (each also *Async).
#include "napi/common.h"
#include "nn/activation.h"
#include "nn/batchnorm.h"
#include "nn/elementwise.h"
#include "nn/groupnorm.h"
#include "nn/maxpool.h"
#include "nn/upsample.h"

namespace ds::napi {
namespace {

using namespace ds::nn;

Napi::Object opts_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && info[i].IsObject()) return info[i].As<Napi::Object>();
  return Napi::Object::New(info.Env());
}
double num_opt(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = get_opt(o, key);
  return v.IsUndefined() ? def : number_arg(v, key);
}
bool bool_opt(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = get_opt(o, key);
  return v.IsUndefined() ? def : bool_arg(v, key);
}
Napi::Value wrap_or_null(Napi::Env env, const Tensor& t) { return t.defined() ? TensorWrap::Wrap(env, t) : env.Null(); }
// {name: NativeTensor, ...} for a forward pass's outputs.
Napi::Value tensors_obj(Napi::Env env, std::initializer_list<std::pair<const char*, const Tensor*>> fields) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& f : fields) o.Set(f.first, TensorWrap::Wrap(env, *f.second));
  return o;
}

Napi::Value grads_obj(Napi::Env env, const NormGrads& g) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("gradInput", wrap_or_null(env, g.grad_input));
  o.Set("gradGamma", wrap_or_null(env, g.grad_gamma));
  o.Set("gradBeta", wrap_or_null(env, g.grad_beta));
  o.Set("gradPre", wrap_or_null(env, g.grad_pre));
  return o;
}

// nnBatchNorm(x, gamma, beta, runningMean, runningVar, residual|null, {training, momentum, eps, relu})
//   -> {y, mean, invstd}; running statistics are updated in place in training mode.
Job BatchNorm(const Napi::CallbackInfo& info) {
  struct S { Tensor x, g, b, rm, rv, res, y; BatchNormOptions o; BatchNormSaved s; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "batchnorm input");
  s->g = tensor_arg(info[1], "batchnorm weight");
  s->b = tensor_arg(info[2], "batchnorm bias");
  s->rm = tensor_arg(info[3], "batchnorm running mean");
  s->rv = tensor_arg(info[4], "batchnorm running var");
  s->res = optional_tensor_arg(info[5], "batchnorm residual");
  Napi::Object o = opts_arg(info, 6);
  s->o.training = bool_opt(o, "training", true);
  s->o.momentum = num_opt(o, "momentum", 0.1);
  s->o.eps = num_opt(o, "eps", 1e-5);
  s->o.relu = bool_opt(o, "relu", false);
  return {[s] { s->y = batchnorm_forward(s->x, s->g, s->b, s->rm, s->rv, s->res, s->o, &s->s); },
          [s](Napi::Env env) {
            return tensors_obj(env, {{"y", &s->y}, {"mean", &s->s.mean}, {"invstd", &s->s.invstd}});
          }};
}

// nnBatchNormBackward(x, y|null, gamma, mean, invstd, dy, {training, eps, relu, gradPre})
Job BatchNormBackward(const Napi::CallbackInfo& info) {
  struct S { Tensor x, y, g, m, is, dy; BatchNormOptions o; bool pre = false; NormGrads r; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "batchnorm input");
  s->y = optional_tensor_arg(info[1], "batchnorm output");
  s->g = tensor_arg(info[2], "batchnorm weight");
  s->m = tensor_arg(info[3], "batchnorm saved mean");
  s->is = tensor_arg(info[4], "batchnorm saved invstd");
  s->dy = tensor_arg(info[5], "batchnorm output gradient");
  Napi::Object o = opts_arg(info, 6);
  s->o.training = bool_opt(o, "training", true);
  s->o.eps = num_opt(o, "eps", 1e-5);
  s->o.relu = bool_opt(o, "relu", false);
  s->pre = bool_opt(o, "gradPre", false);
  return {[s] { s->r = batchnorm_backward(s->x, s->y, s->g, {s->m, s->is}, s->dy, s->o, s->pre); },
          [s](Napi::Env env) { return grads_obj(env, s->r); }};
}

// nnGroupNorm(x, gamma, beta, groups, {eps, relu}) -> {y, mean, rstd}
Job GroupNorm(const Napi::CallbackInfo& info) {
  struct S { Tensor x, g, b, y; int64_t groups; double eps; bool relu; GroupNormSaved s; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "groupnorm input");
  s->g = tensor_arg(info[1], "groupnorm weight");
  s->b = tensor_arg(info[2], "groupnorm bias");
  s->groups = int_arg(info[3], "groupnorm groups");
  Napi::Object o = opts_arg(info, 4);
  s->eps = num_opt(o, "eps", 1e-5);
  s->relu = bool_opt(o, "relu", false);
  return {[s] { s->y = groupnorm_forward(s->x, s->g, s->b, s->groups, s->eps, s->relu, &s->s); },
          [s](Napi::Env env) { return tensors_obj(env, {{"y", &s->y}, {"mean", &s->s.mean}, {"rstd", &s->s.rstd}}); }};
}

// nnGroupNormBackward(x, y|null, gamma, groups, mean, rstd, dy, {relu})
Job GroupNormBackward(const Napi::CallbackInfo& info) {
  struct S { Tensor x, y, g, m, r, dy; int64_t groups; bool relu; NormGrads out; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "groupnorm input");
  s->y = optional_tensor_arg(info[1], "groupnorm output");
  s->g = tensor_arg(info[2], "groupnorm weight");
  s->groups = int_arg(info[3], "groupnorm groups");
  s->m = tensor_arg(info[4], "groupnorm saved mean");
  s->r = tensor_arg(info[5], "groupnorm saved rstd");
  s->dy = tensor_arg(info[6], "groupnorm output gradient");
  s->relu = bool_opt(opts_arg(info, 7), "relu", false);
  return {[s] { s->out = groupnorm_backward(s->x, s->y, s->g, s->groups, {s->m, s->r}, s->dy, s->relu); },
          [s](Napi::Env env) { return grads_obj(env, s->out); }};
}

Job Relu(const Napi::CallbackInfo& info) {
  auto x = std::make_shared<Tensor>(tensor_arg(info[0], "relu input"));
  auto y = std::make_shared<Tensor>();
  return {[x, y] { *y = relu_forward(*x); }, [y](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, *y); }};
}

Job ReluBackward(const Napi::CallbackInfo& info) {
  auto y = std::make_shared<Tensor>(tensor_arg(info[0], "relu output"));
  auto dy = std::make_shared<Tensor>(tensor_arg(info[1], "relu output gradient"));
  auto dx = std::make_shared<Tensor>();
  return {[y, dy, dx] { *dx = relu_backward(*y, *dy); },
          [dx](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, *dx); }};
}

// nnMaxPool3d(x, {kernel, stride, padding}) -> {y, argmax}; per-axis values in tensor order.
Job MaxPool(const Napi::CallbackInfo& info) {
  struct S { Tensor x, y, am; MaxPoolParams p; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "maxpool3d input");
  Napi::Object o = opts_arg(info, 1);
  s->p.kernel = triple_arg(get_opt(o, "kernel"), "maxpool3d kernel");
  s->p.stride = get_opt(o, "stride").IsUndefined() ? s->p.kernel : triple_arg(o.Get("stride"), "maxpool3d stride");
  if (!get_opt(o, "padding").IsUndefined()) s->p.padding = triple_arg(o.Get("padding"), "maxpool3d padding");
  return {[s] { s->y = maxpool3d_forward(s->x, s->p, &s->am); },
          [s](Napi::Env env) { return tensors_obj(env, {{"y", &s->y}, {"argmax", &s->am}}); }};
}

// nnMaxPool3dBackward(dy, argmax, inputShape)
Job MaxPoolBackward(const Napi::CallbackInfo& info) {
  struct S { Tensor dy, am, dx; Shape shape; };
  auto s = std::make_shared<S>();
  s->dy = tensor_arg(info[0], "maxpool3d output gradient");
  s->am = tensor_arg(info[1], "maxpool3d argmax");
  s->shape = int_array_arg(info[2], "maxpool3d input shape");
  return {[s] { s->dx = maxpool3d_backward(s->dy, s->am, s->shape); },
          [s](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, s->dx); }};
}

// nnUpsampleNearest(x, [O1, O2, O3])
Job Upsample(const Napi::CallbackInfo& info) {
  struct S { Tensor x, y; std::array<int64_t, 3> size; };
  auto s = std::make_shared<S>();
  s->x = tensor_arg(info[0], "upsample input");
  s->size = triple_arg(info[1], "upsample size");
  return {[s] { s->y = upsample_nearest_forward(s->x, s->size); },
          [s](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, s->y); }};
}

// nnUpsampleNearestBackward(dy, inputShape)
Job UpsampleBackward(const Napi::CallbackInfo& info) {
  struct S { Tensor dy, dx; Shape shape; };
  auto s = std::make_shared<S>();
  s->dy = tensor_arg(info[0], "upsample output gradient");
  s->shape = int_array_arg(info[1], "upsample input shape");
  return {[s] { s->dx = upsample_nearest_backward(s->dy, s->shape); },
          [s](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, s->dx); }};
}

Job Add(const Napi::CallbackInfo& info) {
  struct S { Tensor a, b, y; };
  auto s = std::make_shared<S>();
  s->a = tensor_arg(info[0], "add operand a");
  s->b = tensor_arg(info[1], "add operand b");
  return {[s] { s->y = add(s->a, s->b); },
          [s](Napi::Env env) -> Napi::Value { return TensorWrap::Wrap(env, s->y); }};
}

void Init(Napi::Env env, Napi::Object exports) {
  export_job(env, exports, "nnBatchNorm", BatchNorm);
  export_job(env, exports, "nnBatchNormBackward", BatchNormBackward);
  export_job(env, exports, "nnGroupNorm", GroupNorm);
  export_job(env, exports, "nnGroupNormBackward", GroupNormBackward);
  export_job(env, exports, "nnRelu", Relu);
  export_job(env, exports, "nnReluBackward", ReluBackward);
  export_job(env, exports, "nnMaxPool3d", MaxPool);
  export_job(env, exports, "nnMaxPool3dBackward", MaxPoolBackward);
  export_job(env, exports, "nnUpsampleNearest", Upsample);
  export_job(env, exports, "nnUpsampleNearestBackward", UpsampleBackward);
  export_job(env, exports, "nnAdd", Add);
}

}  // namespace

DS_NAPI_REGISTER(nn_layers, Init);

}  // namespace ds::napi
