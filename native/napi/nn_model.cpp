// Bindings of the RetinaNet model and its SGD optimiser. A model or
// optimiser lives in a JS External holding a shared_ptr; jobs keep the
// object alive while they run on a worker thread. Jobs take the model's
// mutex (operations on one model run one after another); the synchronous
// accessors refuse to wait and say the model is busy instead.
#include <memory>
#include <mutex>

#include "napi/common.h"
#include "nn/amp.h"
#include "nn/loss_scaler.h"
#include "nn/retinanet.h"
#include "nn/sgd.h"

namespace ds::napi {
namespace {

using namespace ds::nn;

struct ModelHolder {
  std::shared_ptr<RetinaNet> m;
};
struct SgdHolder {
  std::shared_ptr<RetinaNet> m;
  std::shared_ptr<SGD> opt;
};

std::shared_ptr<RetinaNet> model_arg(const Napi::Value& v) {
  DS_CHECK(v.IsExternal(), "internal: expected a native RetinaNet handle");
  return v.As<Napi::External<ModelHolder>>().Data()->m;
}
SgdHolder sgd_arg(const Napi::Value& v) {
  DS_CHECK(v.IsExternal(), "internal: expected a native SGD handle");
  return *v.As<Napi::External<SgdHolder>>().Data();
}

// Locks without waiting, for calls on the JS thread.
std::unique_lock<std::mutex> try_lock(RetinaNet& m) {
  std::unique_lock<std::mutex> lk(m.mutex(), std::try_to_lock);
  DS_CHECK(lk.owns_lock(), "RetinaNet: the model is busy with an asynchronous forward/backward/step; await it first");
  return lk;
}

int64_t int_opt(const Napi::Object& o, const char* key, int64_t def) {
  Napi::Value v = get_opt(o, key);
  return v.IsUndefined() ? def : int_arg(v, key);
}

Napi::Array shape_array(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); ++i) a.Set(uint32_t(i), double(s[i]));
  return a;
}

// nnModelCreate({depth, returnedLayers, conv1Size, conv1Stride (tensor order), inChannels, numClasses,
//   numAnchors, widths, maxPool, norm: 'batch'|'group', normGroups, fpnChannels, headGroups, seed, dtype})
Napi::Value Create(const Napi::CallbackInfo& info) {
  DS_CHECK(info[0].IsObject(), "RetinaNet config must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  RetinaNetConfig c;
  c.backbone.depth = int(int_opt(o, "depth", 50));
  if (!get_opt(o, "returnedLayers").IsUndefined()) {
    c.returned_layers.clear();
    for (int64_t l : int_array_arg(o.Get("returnedLayers"), "returnedLayers")) c.returned_layers.push_back(int(l));
  }
  if (!get_opt(o, "conv1Stride").IsUndefined()) c.backbone.conv1_stride = triple_arg(o.Get("conv1Stride"), "conv1TStride");
  if (!get_opt(o, "conv1Size").IsUndefined()) c.backbone.conv1_size = triple_arg(o.Get("conv1Size"), "conv1TSize");
  c.backbone.in_channels = int_opt(o, "inChannels", 1);
  if (!get_opt(o, "widths").IsUndefined()) {
    auto w = int_array_arg(o.Get("widths"), "widths");
    DS_CHECK(w.size() == 4, "widths must list 4 block widths (layer1..layer4), got ", w.size());
    for (int i = 0; i < 4; ++i) c.backbone.widths[i] = w[i];
  }
  Napi::Value mp = get_opt(o, "maxPool");
  if (!mp.IsUndefined()) c.backbone.max_pool = bool_arg(mp, "maxPool");
  Napi::Value norm = get_opt(o, "norm");
  if (!norm.IsUndefined()) {
    std::string n = string_arg(norm, "norm");
    DS_CHECK(n == "batch" || n == "group", "norm must be 'batch' or 'group', got '", n, "'");
    c.backbone.norm = n == "batch" ? NormKind::Batch : NormKind::Group;
  }
  c.backbone.norm_groups = int_opt(o, "normGroups", 32);
  c.num_classes = int_opt(o, "numClasses", 1);
  c.num_anchors = int_opt(o, "numAnchors", 3);
  c.fpn_channels = int_opt(o, "fpnChannels", 256);
  c.head_groups = int_opt(o, "headGroups", 8);
  const int64_t seed = int_opt(o, "seed", 0);
  DS_CHECK(seed >= 0, "seed must be a non-negative integer, got ", seed);
  c.seed = uint64_t(seed);
  Napi::Value dt = get_opt(o, "dtype");
  if (!dt.IsUndefined()) {
    std::string d = string_arg(dt, "dtype");
    DS_CHECK(d == "float32" || d == "float64", "RetinaNet dtype must be 'float32' or 'float64', got '", d, "'");
    c.dtype = d == "float32" ? DType::Float32 : DType::Float64;
  }
  auto* h = new ModelHolder{std::make_shared<RetinaNet>(c)};
  return Napi::External<ModelHolder>::New(info.Env(), h, [](Napi::Env, ModelHolder* p) { delete p; });
}

// nnModelForward(h, x, save) -> {cls: Tensor[], box: Tensor[]}
Job Forward(const Napi::CallbackInfo& info) {
  struct S { std::shared_ptr<RetinaNet> m; Tensor x; bool save; RetinaNet::Output out; };
  auto s = std::make_shared<S>();
  s->m = model_arg(info[0]);
  s->x = tensor_arg(info[1], "RetinaNet input");
  s->save = bool_arg(info[2], "save");
  return {[s] {
            std::lock_guard<std::mutex> lk(s->m->mutex());
            s->out = s->m->forward(s->x, s->save);
          },
          [s](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            Napi::Array cls = Napi::Array::New(env), box = Napi::Array::New(env);
            for (size_t i = 0; i < s->out.cls.size(); ++i) cls.Set(uint32_t(i), TensorWrap::Wrap(env, s->out.cls[i]));
            for (size_t i = 0; i < s->out.box.size(); ++i) box.Set(uint32_t(i), TensorWrap::Wrap(env, s->out.box[i]));
            r.Set("cls", cls);
            r.Set("box", box);
            return r;
          }};
}

std::vector<Tensor> tensor_list(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsArray(), what, " must be an array of Tensors (one per level)");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(tensor_arg(a.Get(i), what));
  return out;
}

// nnModelBackward(h, clsGrads[], boxGrads[], needInputGrad) -> Tensor | null
Job Backward(const Napi::CallbackInfo& info) {
  struct S { std::shared_ptr<RetinaNet> m; std::vector<Tensor> c, b; bool dx; Tensor gx; };
  auto s = std::make_shared<S>();
  s->m = model_arg(info[0]);
  s->c = tensor_list(info[1], "clsGrads");
  s->b = tensor_list(info[2], "boxGrads");
  s->dx = bool_arg(info[3], "inputGrad");
  return {[s] {
            std::lock_guard<std::mutex> lk(s->m->mutex());
            s->gx = s->m->backward(s->c, s->b, s->dx);
          },
          [s](Napi::Env env) -> Napi::Value {
            return s->gx.defined() ? Napi::Value(TensorWrap::Wrap(env, s->gx)) : env.Null();
          }};
}

// nnModelEntries(h) -> [{name, shape, monaiShape, numel, trainable, buffer}]
Napi::Value Entries(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  auto lk = try_lock(*m);
  Napi::Env env = info.Env();
  auto& es = m->store().entries();
  Napi::Array a = Napi::Array::New(env, es.size());
  uint32_t i = 0;
  for (auto& e : es) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", e.name);
    o.Set("shape", shape_array(env, e.value.shape()));
    o.Set("monaiShape", shape_array(env, e.monai_shape));
    o.Set("numel", double(e.value.numel()));
    o.Set("trainable", !e.buffer && e.trainable);
    o.Set("buffer", e.buffer);
    a.Set(i++, o);
  }
  return a;
}

ParamEntry& entry(RetinaNet& m, const std::string& name) {
  ParamEntry* e = m.store().find(name);
  DS_CHECK(e, "RetinaNet: no parameter or buffer named '", name, "' (see model.parameters() / buffers())");
  return *e;
}

// nnModelGet(h, name, 'value'|'grad') -> Tensor (a copy)
Napi::Value Get(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  auto lk = try_lock(*m);
  ParamEntry& e = entry(*m, string_arg(info[1], "name"));
  const std::string what = string_arg(info[2], "what");
  DS_CHECK(what == "value" || what == "grad", "internal: nnModelGet expects 'value' or 'grad'");
  if (what == "grad") {
    return TensorWrap::Wrap(info.Env(), ParamStore::grad(e).clone());
  }
  return TensorWrap::Wrap(info.Env(), e.value.clone());
}

// nnModelSet(h, name, Tensor): copies (converting the dtype) after checking the element count.
Napi::Value Set(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  auto lk = try_lock(*m);
  ParamEntry& e = entry(*m, string_arg(info[1], "name"));
  Tensor t = tensor_arg(info[2], "value");
  check_float(t, "weight value");
  DS_CHECK(t.numel() == e.value.numel(), "RetinaNet: '", e.name, "' has shape ", shape_str(e.value.shape()),
           " (MONAI shape ", shape_str(e.monai_shape), ", ", e.value.numel(), " values) but ", t.numel(),
           " values were given");
  e.value.copy_from(t.to(e.value.dtype()).reshape(e.value.shape()).to(e.value.device()));
  if (e.compute.defined()) e.compute = e.value.to(e.compute.dtype(), true);  // the 16-bit compute copy follows
  return info.Env().Undefined();
}

// nnModelTo(h, 'cpu' | 'cuda' | 'cuda:i'): moves parameters, buffers and gradients.
Napi::Value To(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  const std::string d = string_arg(info[1], "device");
  Device dev = Device::cpu();
  if (d.rfind("cuda", 0) == 0) {
    int idx = 0;
    if (d.size() > 4) {
      DS_CHECK(d[4] == ':' && d.size() > 5 && d.find_first_not_of("0123456789", 5) == std::string::npos,
               "device must be 'cpu', 'cuda' or 'cuda:<index>', got '", d, "'");
      idx = std::stoi(d.substr(5));
    }
    dev = Device::cuda(idx);
  } else {
    DS_CHECK(d == "cpu", "device must be 'cpu', 'cuda' or 'cuda:<index>', got '", d, "'");
  }
  auto lk = try_lock(*m);
  m->to(dev);
  return info.Env().Undefined();
}

// nnModelSetPrecision(h, 'float32' | 'float64' | 'float16' | 'bfloat16')
Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  const DType dt = dtype_from_name(string_arg(info[1], "precision"));
  auto lk = try_lock(*m);
  m->set_precision(dt);
  return info.Env().Undefined();
}

// nnModelDevice(h) -> 'cpu' | 'cuda:i'; nnModelComputeDtype(h) -> dtype name
Napi::Value ModelDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_arg(info[0])->device().str());
}
Napi::Value ComputeDtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(model_arg(info[0])->compute_dtype()));
}

// nnModelGradsNonFinite(h) -> boolean: any inf/NaN in the trainable
// parameters' gradients (one multi-tensor pass; on a GPU it waits for it).
Job GradsNonFinite(const Napi::CallbackInfo& info) {
  struct S { std::shared_ptr<RetinaNet> m; bool bad = false; };
  auto s = std::make_shared<S>();
  s->m = model_arg(info[0]);
  return {[s] {
            std::lock_guard<std::mutex> lk(s->m->mutex());
            std::vector<Tensor> g = trainable_grads(s->m->store());
            s->bad = scale_and_check_nonfinite_(g, 1.0);
          },
          [s](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, s->bad); }};
}

Napi::Value SetTraining(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  auto lk = try_lock(*m);
  m->set_training(bool_arg(info[1], "training"));
  return info.Env().Undefined();
}

Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  auto lk = try_lock(*m);
  m->store().zero_grad();
  return info.Env().Undefined();
}

Napi::Value SizeDivisible(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  Triple d = m->size_divisible();
  return shape_array(info.Env(), {d[0], d[1], d[2]});
}

SGDOptions sgd_options(const Napi::Object& o, SGDOptions base) {
  auto num = [&](const char* k, double& dst) {
    Napi::Value v = get_opt(o, k);
    if (!v.IsUndefined()) dst = number_arg(v, k);
  };
  num("lr", base.lr);
  num("momentum", base.momentum);
  num("dampening", base.dampening);
  num("weightDecay", base.weight_decay);
  Napi::Value n = get_opt(o, "nesterov");
  if (!n.IsUndefined()) base.nesterov = bool_arg(n, "nesterov");
  validate_sgd_options(base);
  return base;
}

// nnSgdCreate(h, {lr, momentum, dampening, weightDecay, nesterov}) -> handle
Napi::Value SgdCreate(const Napi::CallbackInfo& info) {
  auto m = model_arg(info[0]);
  DS_CHECK(info[1].IsObject(), "SGD options must be an object");
  SGDOptions o = sgd_options(info[1].As<Napi::Object>(), SGDOptions());
  auto lk = try_lock(*m);
  auto* h = new SgdHolder{m, std::make_shared<SGD>(m->store(), o)};
  return Napi::External<SgdHolder>::New(info.Env(), h, [](Napi::Env, SgdHolder* p) { delete p; });
}

// nnSgdStep(s, lr, gradScale = 1): gradients are multiplied by gradScale
// first (1 / loss scale for float16 mixed precision).
Job SgdStep(const Napi::CallbackInfo& info) {
  auto h = std::make_shared<SgdHolder>(sgd_arg(info[0]));
  const double lr = number_arg(info[1], "lr");
  DS_CHECK(lr >= 0, "SGD: learning rate must be >= 0, got ", lr);
  const double gs = info.Length() > 2 && !info[2].IsUndefined() ? number_arg(info[2], "gradScale") : 1.0;
  DS_CHECK(gs > 0 && gs < 1e300, "SGD: gradScale must be positive and finite, got ", gs);
  return {[h, lr, gs] {
            std::lock_guard<std::mutex> lk(h->m->mutex());
            h->opt->options().lr = lr;
            h->opt->step(gs);
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

// nnSgdState(s) -> [{name, value: Tensor}]
Napi::Value SgdState(const Napi::CallbackInfo& info) {
  SgdHolder h = sgd_arg(info[0]);
  auto lk = try_lock(*h.m);
  Napi::Env env = info.Env();
  auto st = h.opt->state();
  Napi::Array a = Napi::Array::New(env, st.size());
  for (size_t i = 0; i < st.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", st[i].first);
    o.Set("value", TensorWrap::Wrap(env, st[i].second));
    a.Set(uint32_t(i), o);
  }
  return a;
}

// nnSgdLoadState(s, [{name, value}])
Napi::Value SgdLoadState(const Napi::CallbackInfo& info) {
  SgdHolder h = sgd_arg(info[0]);
  auto lk = try_lock(*h.m);
  DS_CHECK(info[1].IsArray(), "SGD state must be an array of {name, value}");
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<std::pair<std::string, Tensor>> st;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    DS_CHECK(a.Get(i).IsObject(), "SGD state entries must be {name, value}");
    Napi::Object o = a.Get(i).As<Napi::Object>();
    st.emplace_back(string_arg(o.Get("name"), "SGD state name"), tensor_arg(o.Get("value"), "SGD state value"));
  }
  h.opt->load_state(st);
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "nnModelCreate", Create);
  export_job(env, exports, "nnModelForward", Forward);
  export_job(env, exports, "nnModelBackward", Backward);
  export_fn(env, exports, "nnModelEntries", Entries);
  export_fn(env, exports, "nnModelGet", Get);
  export_fn(env, exports, "nnModelSet", Set);
  export_fn(env, exports, "nnModelSetTraining", SetTraining);
  export_fn(env, exports, "nnModelZeroGrad", ZeroGrad);
  export_fn(env, exports, "nnModelSizeDivisible", SizeDivisible);
  export_fn(env, exports, "nnModelTo", To);
  export_fn(env, exports, "nnModelSetPrecision", SetPrecision);
  export_fn(env, exports, "nnModelDevice", ModelDevice);
  export_fn(env, exports, "nnModelComputeDtype", ComputeDtype);
  export_job(env, exports, "nnModelGradsNonFinite", GradsNonFinite);
  export_fn(env, exports, "nnSgdCreate", SgdCreate);
  export_job(env, exports, "nnSgdStep", SgdStep);
  export_fn(env, exports, "nnSgdState", SgdState);
  export_fn(env, exports, "nnSgdLoadState", SgdLoadState);
}

}  // namespace

// For other binding files (napi/dist.cpp attaches the gradient reducer's
// hook and broadcasts weights): the model behind a JS RetinaNet handle.
std::shared_ptr<nn::RetinaNet> retinanet_from_handle(const Napi::Value& v) { return model_arg(v); }

DS_NAPI_REGISTER(nn_model, Init);

}  // namespace ds::napi
