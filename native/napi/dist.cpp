// Distributed training primitives: process groups (Gloo / NCCL), collectives
// on NativeTensors (in place) and the bucketed gradient reducer. The
// TypeScript wrapper is src/dist/process_group.ts; typed arrays are copied
// into tensors there. Blocking calls (init, collectives, reducer wait) have
// *Async variants that run on a libuv worker so the event loop (and the
// rendezvous store that rank 0 may host) keeps running.
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "dist/backend.h"
#include "dist/batchnorm_sync.h"
#include "dist/gloo_backend.h"
#include "dist/nccl_backend.h"
#include "dist/reducer.h"
#include "napi/common.h"
#include "nn/retinanet.h"

namespace ds::napi {

// Defined in napi/nn_model.cpp.
std::shared_ptr<nn::RetinaNet> retinanet_from_handle(const Napi::Value& v);

namespace {

using dist::Backend;
using dist::Reducer;

constexpr uint32_t kPgMagic = 0x50471e01, kReducerMagic = 0x52ed0c01;
struct PgHolder {
  uint32_t magic = kPgMagic;
  std::shared_ptr<Backend> pg;
};
struct ReducerHolder {
  uint32_t magic = kReducerMagic;
  std::shared_ptr<Reducer> r;
};

std::shared_ptr<Backend> pg_arg(const Napi::Value& v) {
  DS_CHECK(v.IsExternal(), "expected a process group handle");
  auto* h = v.As<Napi::External<PgHolder>>().Data();
  DS_CHECK(h && h->magic == kPgMagic, "expected a process group handle");
  DS_CHECK(h->pg != nullptr, "the process group has been destroyed");
  return h->pg;
}

std::shared_ptr<Reducer> reducer_arg(const Napi::Value& v) {
  DS_CHECK(v.IsExternal(), "expected a reducer handle");
  auto* h = v.As<Napi::External<ReducerHolder>>().Data();
  DS_CHECK(h && h->magic == kReducerMagic, "expected a reducer handle");
  DS_CHECK(h->r != nullptr, "the reducer has been destroyed");
  return h->r;
}

// CPU tensors, or (device_ok) tensors anywhere: device ones are checked against the group where they are used.
std::vector<Tensor> tensors_arg(const Napi::Value& v, const char* what, bool device_ok = false) {
  DS_CHECK(v.IsArray(), what, " must be an array of Tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    out.push_back(tensor_arg(a.Get(i), what));
    if (!device_ok) check_cpu(out.back(), what);
  }
  return out;
}

// True for a tensor in the memory of the group's GPU (NCCL collectives then
// run on it in place); throws for a device tensor the group cannot reach.
bool on_group_device(const Backend& pg, const Tensor& t, const char* what) {
  if (t.device().is_cpu()) return false;
  DS_CHECK(pg.device_collectives(), what, ": ", t.describe(), " is on ", t.device().str(), " but process group '",
           pg.name(), "' works on CPU memory only; copy it to the CPU first or use backend 'nccl'");
  DS_CHECK(pg.device_index() == t.device().index, what, ": ", t.describe(), " is on ", t.device().str(),
           " but this nccl group uses cuda:", pg.device_index());
  return true;
}

uint32_t tag_arg(const Napi::Value& v) { return v.IsUndefined() ? 0u : uint32_t(int_arg(v, "tag")); }

Napi::Value wrap_pg(Napi::Env env, std::shared_ptr<Backend> pg) {
  return Napi::External<PgHolder>::New(env, new PgHolder{kPgMagic, std::move(pg)},
                                       [](Napi::Env, PgHolder* h) { delete h; });
}

Napi::Value DistInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("glooCompiled", dist::gloo_compiled());
  o.Set("ncclCompiled", dist::nccl_compiled());
  return o;
}

Napi::Value NcclVersion(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dist::nccl_version()); }

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  auto id = dist::nccl_unique_id();
  auto out = Napi::Uint8Array::New(info.Env(), id.size());
  std::memcpy(out.Data(), id.data(), id.size());
  return out;
}

// distInitGloo({host, port, prefix, rank, size, timeoutMs, hostname, iface}) -> handle
Job InitGloo(const Napi::CallbackInfo& info) {
  DS_CHECK(info[0].IsObject(), "distInitGloo expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  struct State { dist::GlooOptions opts; std::shared_ptr<Backend> pg; };
  auto s = std::make_shared<State>();
  s->opts.store_host = string_arg(o.Get("host"), "store host");
  s->opts.store_port = int(int_arg(o.Get("port"), "store port"));
  s->opts.prefix = string_arg(o.Get("prefix"), "store prefix");
  s->opts.rank = int(int_arg(o.Get("rank"), "rank"));
  s->opts.size = int(int_arg(o.Get("size"), "world size"));
  s->opts.timeout = std::chrono::milliseconds(int_arg(o.Get("timeoutMs"), "timeoutMs"));
  if (!get_opt(o, "hostname").IsUndefined()) s->opts.hostname = string_arg(o.Get("hostname"), "hostname");
  if (!get_opt(o, "iface").IsUndefined()) s->opts.iface = string_arg(o.Get("iface"), "iface");
  return {[s] { s->pg = dist::make_gloo_backend(s->opts); },
          [s](Napi::Env env) { return wrap_pg(env, s->pg); }};
}

// distInitNccl({rank, size, device, id: Uint8Array(128)}) -> handle
Job InitNccl(const Napi::CallbackInfo& info) {
  DS_CHECK(info[0].IsObject(), "distInitNccl expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  struct State { dist::NcclOptions opts; std::shared_ptr<Backend> pg; };
  auto s = std::make_shared<State>();
  s->opts.rank = int(int_arg(o.Get("rank"), "rank"));
  s->opts.size = int(int_arg(o.Get("size"), "world size"));
  s->opts.device = int(int_arg(o.Get("device"), "device"));
  Napi::Value id = o.Get("id");
  DS_CHECK(id.IsTypedArray() && id.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array &&
               id.As<Napi::Uint8Array>().ElementLength() == dist::kNcclUniqueIdBytes,
           "NCCL unique id must be a Uint8Array of ", dist::kNcclUniqueIdBytes, " bytes");
  std::memcpy(s->opts.id.data(), id.As<Napi::Uint8Array>().Data(), dist::kNcclUniqueIdBytes);
  return {[s] { s->pg = dist::make_nccl_backend(s->opts); },
          [s](Napi::Env env) { return wrap_pg(env, s->pg); }};
}

// distAllReduce(pg, tensors, op, tag) — in place, one collective per tensor.
Job AllReduce(const Napi::CallbackInfo& info) {
  struct State { std::shared_ptr<Backend> pg; std::vector<Tensor> ts; dist::ReduceOp op; uint32_t tag; };
  auto s = std::make_shared<State>();
  s->pg = pg_arg(info[0]);
  s->ts = tensors_arg(info[1], "allReduce tensors", true);
  for (auto& t : s->ts) on_group_device(*s->pg, t, "allReduce");
  s->op = dist::reduce_op_from_name(info[2].IsUndefined() ? "sum" : string_arg(info[2], "allReduce op"));
  s->tag = tag_arg(info[3]);
  return {[s] {
            for (auto& t : s->ts)
              s->pg->all_reduce(t.raw(), size_t(t.numel()), t.dtype(), s->op, s->tag, !t.device().is_cpu());
            s->pg->synchronize();  // device results: later compute-stream work is queued after this host wait
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

// distBroadcast(pg, tensors, root, tag) — in place.
Job Broadcast(const Napi::CallbackInfo& info) {
  struct State { std::shared_ptr<Backend> pg; std::vector<Tensor> ts; int root; uint32_t tag; };
  auto s = std::make_shared<State>();
  s->pg = pg_arg(info[0]);
  s->ts = tensors_arg(info[1], "broadcast tensors", true);
  for (auto& t : s->ts) on_group_device(*s->pg, t, "broadcast");
  s->root = int(int_arg(info[2], "broadcast root"));
  s->tag = tag_arg(info[3]);
  return {[s] {
            for (auto& t : s->ts) s->pg->broadcast(t.raw(), t.nbytes(), s->root, s->tag, !t.device().is_cpu());
            s->pg->synchronize();
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

// distAllGather(pg, Uint8Array, tag) -> Uint8Array[] (one per rank, any lengths)
Job AllGather(const Napi::CallbackInfo& info) {
  struct State { std::shared_ptr<Backend> pg; std::vector<uint8_t> in; std::vector<std::vector<uint8_t>> out; uint32_t tag; };
  auto s = std::make_shared<State>();
  s->pg = pg_arg(info[0]);
  DS_CHECK(info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
           "allGather data must be a Uint8Array");
  auto u = info[1].As<Napi::Uint8Array>();
  s->in.assign(u.Data(), u.Data() + u.ElementLength());
  s->tag = tag_arg(info[2]);
  return {[s] { s->out = s->pg->all_gather_bytes(s->in, s->tag); },
          [s](Napi::Env env) -> Napi::Value {
            Napi::Array a = Napi::Array::New(env, s->out.size());
            for (size_t r = 0; r < s->out.size(); ++r) {
              auto b = Napi::Uint8Array::New(env, s->out[r].size());
              if (!s->out[r].empty()) std::memcpy(b.Data(), s->out[r].data(), s->out[r].size());
              a.Set(uint32_t(r), b);
            }
            return a;
          }};
}

Job Barrier(const Napi::CallbackInfo& info) {
  auto pg = pg_arg(info[0]);
  uint32_t tag = tag_arg(info[1]);
  return {[pg, tag] { pg->barrier(tag); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

// distTimeAllReduce(pg, count, iters) -> seconds per float32 sum all-reduce (benchmark)
Job TimeAllReduce(const Napi::CallbackInfo& info) {
  struct State { std::shared_ptr<Backend> pg; size_t count; int iters; double sec = 0; };
  auto s = std::make_shared<State>();
  s->pg = pg_arg(info[0]);
  int64_t c = int_arg(info[1], "element count");
  DS_CHECK(c >= 1, "element count must be >= 1, got ", c);
  s->count = size_t(c);
  s->iters = int(int_arg(info[2], "iterations"));
  return {[s] { s->sec = s->pg->time_all_reduce(s->count, s->iters); },
          [s](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, s->sec); }};
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    auto* h = info[0].As<Napi::External<PgHolder>>().Data();
    if (h && h->magic == kPgMagic) h->pg.reset();  // in-flight jobs keep their own reference
  }
  return info.Env().Undefined();
}

// distReducerCreate(pg, gradTensors, {bucketBytes, average, inPlace, device}) -> handle.
// device 'cuda:i': device buckets (NCCL); with inPlace the gradient tensors
// only give shapes and dtypes (they may be CPU tensors).
Napi::Value ReducerCreate(const Napi::CallbackInfo& info) {
  auto pg = pg_arg(info[0]);
  auto grads = tensors_arg(info[1], "reducer gradients", true);
  dist::ReducerOptions o;
  if (info[2].IsObject()) {
    Napi::Object opt = info[2].As<Napi::Object>();
    if (!get_opt(opt, "bucketBytes").IsUndefined()) {
      double b = number_arg(opt.Get("bucketBytes"), "bucketBytes");
      DS_CHECK(b >= 1, "bucketBytes must be >= 1, got ", b);
      o.bucket_bytes = size_t(b);
    }
    if (!get_opt(opt, "average").IsUndefined()) o.average = bool_arg(opt.Get("average"), "average");
    if (!get_opt(opt, "inPlace").IsUndefined()) o.in_place = bool_arg(opt.Get("inPlace"), "inPlace");
    if (!get_opt(opt, "device").IsUndefined()) o.device = device_from_name(string_arg(opt.Get("device"), "device"));
  }
  auto r = std::make_shared<Reducer>(pg, std::move(grads), o);
  return Napi::External<ReducerHolder>::New(info.Env(), new ReducerHolder{kReducerMagic, r},
                                            [](Napi::Env, ReducerHolder* h) { delete h; });
}

Napi::Value ReducerMarkReady(const Napi::CallbackInfo& info) {
  auto r = reducer_arg(info[0]);
  int index = int(int_arg(info[1], "gradient index"));
  if (info[2].IsUndefined() || info[2].IsNull()) {
    r->mark_ready(index);
  } else {
    Tensor value = tensor_arg(info[2], "reducer gradient");
    r->mark_ready(index, &value);
  }
  return info.Env().Undefined();
}

Job ReducerWait(const Napi::CallbackInfo& info) {
  auto r = reducer_arg(info[0]);
  return {[r] { r->wait(); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

Napi::Value ReducerBuckets(const Napi::CallbackInfo& info) {
  auto r = reducer_arg(info[0]);
  Napi::Env env = info.Env();
  const auto& b = r->buckets();
  Napi::Array out = Napi::Array::New(env, b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    Napi::Array m = Napi::Array::New(env, b[i].size());
    for (size_t k = 0; k < b[i].size(); ++k) m.Set(uint32_t(k), b[i][k]);
    out.Set(uint32_t(i), m);
  }
  return out;
}

Napi::Value ReducerViews(const Napi::CallbackInfo& info) {
  auto views = reducer_arg(info[0])->bucket_views();
  Napi::Array out = Napi::Array::New(info.Env(), views.size());
  for (size_t i = 0; i < views.size(); ++i) out.Set(uint32_t(i), TensorWrap::Wrap(info.Env(), views[i]));
  return out;
}

Napi::Value ReducerDestroy(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    auto* h = info[0].As<Napi::External<ReducerHolder>>().Data();
    if (h && h->magic == kReducerMagic) h->r.reset();
  }
  return info.Env().Undefined();
}

// ---- data-parallel training of a RetinaNet ---------------------------------

// Parameters (trainable) and/or buffers of the model, in registration order.
std::vector<nn::ParamEntry*> model_entries(nn::RetinaNet& m, bool params, bool buffers) {
  std::vector<nn::ParamEntry*> out;
  for (auto& e : m.store().entries()) {
    const bool is_param = !e.buffer && e.trainable;
    if ((is_param && params) || (e.buffer && buffers)) out.push_back(&e);
  }
  return out;
}

// Host entries packed into one host message (the NCCL backend stages it).
void broadcast_host_entries(Backend& pg, const std::vector<nn::ParamEntry*>& es, int root) {
  size_t total = 0;
  for (auto* e : es) total += e->value.nbytes();
  if (total == 0) return;
  std::vector<uint8_t> buf(total);
  size_t off = 0;
  for (auto* e : es) {
    std::memcpy(buf.data() + off, e->value.raw(), e->value.nbytes());
    off += e->value.nbytes();
  }
  pg.broadcast(buf.data(), total, root, 0);
  pg.synchronize();
  off = 0;
  for (auto* e : es) {
    std::memcpy(e->value.raw(), buf.data() + off, e->value.nbytes());
    off += e->value.nbytes();
  }
}

// Device entries packed into one device buffer (copies on the compute
// stream), broadcast in place by NCCL (its stream waits for the packing),
// then, after one host wait for the NCCL stream (start of training and epoch
// ends only), unpacked on the compute stream.
void broadcast_device_entries(Backend& pg, const std::vector<nn::ParamEntry*>& es, int root) {
  if (es.empty()) return;
  const Device dev = es.front()->value.device();
  size_t total = 0;
  for (auto* e : es) {
    DS_CHECK(e->value.device() == dev, "distBroadcastModel: '", e->name, "' is on ", e->value.device().str(),
             " but '", es.front()->name, "' on ", dev.str(), "; move the whole model with model.to()");
    total += e->value.nbytes();
  }
  on_group_device(pg, es.front()->value, "distBroadcastModel");
  if (total == 0) return;
  Tensor buf = Tensor::empty({int64_t(total)}, DType::UInt8, dev);
  auto* base = static_cast<uint8_t*>(buf.raw());
  size_t off = 0;
  for (auto* e : es) {
    cuda::copy_d2d(base + off, e->value.raw(), e->value.nbytes(), dev.index);
    off += e->value.nbytes();
  }
  pg.broadcast(base, total, root, 0, /*device_ptr=*/true);
  pg.synchronize();
  off = 0;
  for (auto* e : es) {
    cuda::copy_d2d(e->value.raw(), base + off, e->value.nbytes(), dev.index);
    off += e->value.nbytes();
  }
  // buf goes back to the caching allocator for the compute stream, behind the
  // copies; NCCL is done with it (host wait above).
}

// distBroadcastModel(pg, model, {params, buffers}, root): every rank ends with
// root's values of the chosen entries, packed into one message (one collective
// whatever the number of tensors: the many small BatchNorm buffers would
// otherwise cost one round trip each).
Job BroadcastModel(const Napi::CallbackInfo& info) {
  struct State { std::shared_ptr<Backend> pg; std::shared_ptr<nn::RetinaNet> m; bool params, buffers; int root; };
  auto s = std::make_shared<State>();
  s->pg = pg_arg(info[0]);
  s->m = retinanet_from_handle(info[1]);
  DS_CHECK(info[2].IsObject(), "distBroadcastModel expects {params, buffers}");
  Napi::Object o = info[2].As<Napi::Object>();
  s->params = bool_arg(o.Get("params"), "params");
  s->buffers = bool_arg(o.Get("buffers"), "buffers");
  s->root = int(int_arg(info[3], "root"));
  DS_CHECK(s->root >= 0 && s->root < s->pg->size(), "broadcast root ", s->root, " is not a rank of this group of ",
           s->pg->size());
  return {[s] {
            std::lock_guard<std::mutex> lk(s->m->mutex());
            auto es = model_entries(*s->m, s->params, s->buffers);
            std::vector<nn::ParamEntry*> host, dev;
            for (auto* e : es) (e->value.device().is_cpu() ? host : dev).push_back(e);
            broadcast_host_entries(*s->pg, host, s->root);
            broadcast_device_entries(*s->pg, dev, s->root);
            // Mixed precision: the 16-bit compute copies follow the new float32 masters.
            if (s->params) s->m->refresh_compute_copies();
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

// The reducer a model's hook feeds: gradient index per trainable parameter.
struct ModelLink {
  std::shared_ptr<Reducer> r;
  std::vector<nn::ParamEntry*> params;  // reducer gradient i = params[i]
};

// distReducerAttachModel(reducer, model, {syncBatchNorm}) -> number of
// synchronised BatchNorm layers: the reducer must have been created over the
// model's trainable parameters in registration order (shapes and dtypes are
// checked) with inPlace. From now on the model's backward marks each gradient
// ready as soon as it is final (RetinaNet::set_grad_ready_hook), so buckets
// are all-reduced while backward goes on. With syncBatchNorm the backbone's
// BatchNorm layers take training statistics over all ranks, their collectives
// ordered with the buckets' on the reducer's thread (dist/batchnorm_sync.h).
Napi::Value ReducerAttachModel(const Napi::CallbackInfo& info) {
  auto r = reducer_arg(info[0]);
  auto m = retinanet_from_handle(info[1]);
  bool sync_bn = false;
  if (info[2].IsObject() && !get_opt(info[2].As<Napi::Object>(), "syncBatchNorm").IsUndefined())
    sync_bn = bool_arg(info[2].As<Napi::Object>().Get("syncBatchNorm"), "syncBatchNorm");
  std::unique_lock<std::mutex> lk(m->mutex(), std::try_to_lock);
  DS_CHECK(lk.owns_lock(), "distReducerAttachModel: the model is busy; await its forward/backward first");
  DS_CHECK(m->device() == r->device(), "distReducerAttachModel: the model is on ", m->device().str(),
           " but the reducer's buckets are on ", r->device().str(),
           "; create the reducer after model.to(device) (createModelReducer does)");
  auto link = std::make_shared<ModelLink>();
  link->r = r;
  link->params = model_entries(*m, true, false);
  auto views = r->bucket_views();
  DS_CHECK(views.size() == link->params.size(), "distReducerAttachModel: the reducer has ", views.size(),
           " gradients but the model has ", link->params.size(), " trainable parameters");
  std::unordered_map<const nn::ParamEntry*, int> index;
  for (size_t i = 0; i < link->params.size(); ++i) {
    const Tensor& v = link->params[i]->value;
    DS_CHECK(views[i].numel() == v.numel() && views[i].dtype() == v.dtype(), "distReducerAttachModel: gradient ", i,
             " is ", views[i].describe(), " but parameter '", link->params[i]->name, "' is ", v.describe());
    index[link->params[i]] = int(i);
  }
  m->set_grad_ready_hook([link, index](const std::vector<nn::ParamEntry*>& ready) {
    for (nn::ParamEntry* e : ready) {
      auto it = index.find(e);
      DS_CHECK(it != index.end(), "reducer hook: parameter '", e->name, "' is not registered with the reducer");
      Tensor& g = nn::ParamStore::grad(*e);
      link->r->mark_ready(it->second, &g);
    }
  });
  const int synced = m->set_batchnorm_sync(sync_bn ? dist::make_batchnorm_sync(r) : nullptr);
  return Napi::Number::New(info.Env(), sync_bn ? synced : 0);
}

Napi::Value ReducerDetachModel(const Napi::CallbackInfo& info) {
  auto m = retinanet_from_handle(info[0]);
  std::unique_lock<std::mutex> lk(m->mutex(), std::try_to_lock);
  DS_CHECK(lk.owns_lock(), "distReducerDetachModel: the model is busy; await its forward/backward first");
  m->set_grad_ready_hook(nullptr);
  m->set_batchnorm_sync(nullptr);
  return info.Env().Undefined();
}

// distReducerFinishModel(reducer, model): waits for every bucket, then writes
// the averaged gradients into the model's parameter gradients (the reducer's
// views are in the model's trainable-parameter order, see AttachModel).
Job ReducerFinishModel(const Napi::CallbackInfo& info) {
  auto r = reducer_arg(info[0]);
  auto m = retinanet_from_handle(info[1]);
  return {[r, m] {
            r->wait();
            std::lock_guard<std::mutex> lk(m->mutex());
            auto params = model_entries(*m, true, false);
            auto views = r->bucket_views();
            DS_CHECK(views.size() == params.size(), "distReducerFinishModel: the reducer does not match the model");
            if (r->on_device()) {
              // The averaged gradients stay where NCCL left them: each parameter's
              // gradient becomes its bucket view (the compute stream already waits for
              // the buckets). The next zero_grad drops the views again.
              for (size_t i = 0; i < params.size(); ++i) {
                DS_CHECK(views[i].numel() == params[i]->value.numel(), "distReducerFinishModel: gradient ", i,
                         " changed size");
                params[i]->grad = views[i];
                params[i]->grad_set = true;
              }
              return;
            }
            for (size_t i = 0; i < params.size(); ++i) {
              Tensor& g = nn::ParamStore::grad(*params[i]);
              DS_CHECK(g.nbytes() == views[i].nbytes(), "distReducerFinishModel: gradient ", i, " changed size");
              std::memcpy(g.raw(), views[i].raw(), g.nbytes());
            }
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }};
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "distInfo", DistInfo);
  export_fn(env, exports, "ncclVersion", NcclVersion);
  export_fn(env, exports, "ncclUniqueId", NcclUniqueId);
  export_job(env, exports, "distInitGloo", InitGloo);
  export_job(env, exports, "distInitNccl", InitNccl);
  export_job(env, exports, "distAllReduce", AllReduce);
  export_job(env, exports, "distBroadcast", Broadcast);
  export_job(env, exports, "distAllGather", AllGather);
  export_job(env, exports, "distBarrier", Barrier);
  export_job(env, exports, "distTimeAllReduce", TimeAllReduce);
  export_fn(env, exports, "distDestroy", Destroy);
  export_fn(env, exports, "distReducerCreate", ReducerCreate);
  export_fn(env, exports, "distReducerMarkReady", ReducerMarkReady);
  export_job(env, exports, "distReducerWait", ReducerWait);
  export_fn(env, exports, "distReducerBuckets", ReducerBuckets);
  export_fn(env, exports, "distReducerViews", ReducerViews);
  export_fn(env, exports, "distReducerDestroy", ReducerDestroy);
  export_job(env, exports, "distBroadcastModel", BroadcastModel);
  export_fn(env, exports, "distReducerAttachModel", ReducerAttachModel);
  export_fn(env, exports, "distReducerDetachModel", ReducerDetachModel);
  export_job(env, exports, "distReducerFinishModel", ReducerFinishModel);
}

}  // namespace

DS_NAPI_REGISTER(dist, Init);

}  // namespace ds::napi
