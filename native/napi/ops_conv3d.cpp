// conv3d / conv3dBackward (and their *Async variants).
#include "napi/common.h"
#include "ops/conv3d.h"

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

void Init(Napi::Env env, Napi::Object exports) {
  export_job(env, exports, "conv3d", Conv3d);
  export_job(env, exports, "conv3dBackward", Conv3dBackward);
}

}  // namespace

DS_NAPI_REGISTER(conv3d, Init);

}  // namespace ds::napi
