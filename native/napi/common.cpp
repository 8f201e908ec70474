#include "napi/common.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/error.h"

namespace ds::napi {

// ---- registration ----------------------------------------------------------
static std::vector<std::pair<const char*, InitFn>>& registry() {
  static std::vector<std::pair<const char*, InitFn>> r;
  return r;
}

Registrar::Registrar(const char* name, InitFn fn) { registry().emplace_back(name, fn); }

void init_all(Napi::Env env, Napi::Object exports) {
  TensorWrap::Init(env, exports);
  for (auto& [name, fn] : registry()) fn(env, exports);
}

Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "out of memory in detseg3d native code: use smaller volumes, patches or batches");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// ---- argument conversion -----------------------------------------------------
Napi::Value get_opt(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return o.Env().Undefined();
  return o.Get(key);
}

double number_arg(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsNumber(), what, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_arg(const Napi::Value& v, const char* what) {
  double d = number_arg(v, what);
  DS_CHECK(std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15, what, " must be an integer, got ", d);
  return int64_t(d);
}

bool bool_arg(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsBoolean(), what, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string string_arg(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsString(), what, " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> int_array_arg(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsArray(), what, " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out[i] = int_arg(a.Get(i), what);
  return out;
}

std::array<int64_t, 3> triple_arg(const Napi::Value& v, const char* what) {
  if (v.IsNumber()) {
    int64_t n = int_arg(v, what);
    return {n, n, n};
  }
  auto a = int_array_arg(v, what);
  DS_CHECK(a.size() == 3, what, " must be a number or an array of 3 numbers (one per axis), got ", a.size(),
           " values");
  return {a[0], a[1], a[2]};
}

Tensor tensor_arg(const Napi::Value& v, const char* what) {
  DS_CHECK(TensorWrap::Is(v), what, " must be a Tensor");
  return TensorWrap::Unwrap(v.As<Napi::Object>())->tensor();
}

Tensor optional_tensor_arg(const Napi::Value& v, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return Tensor();
  return tensor_arg(v, what);
}

// ---- jobs ----------------------------------------------------------------------
namespace {

class JobWorker : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, "detseg3d"), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      job_.run();
    } catch (const std::bad_alloc&) {
      SetError("out of memory in detseg3d native code: use smaller volumes, patches or batches");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(job_.finish(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Job job_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value call_sync(const Napi::CallbackInfo& info) {
  auto make = reinterpret_cast<JobFactory>(info.Data());
  return guard(info.Env(), [&] {
    Job job = make(info);
    job.run();
    return job.finish(info.Env());
  });
}

Napi::Value call_async(const Napi::CallbackInfo& info) {
  auto make = reinterpret_cast<JobFactory>(info.Data());
  Napi::Env env = info.Env();
  Job job;
  try {
    job = make(info);
  } catch (const std::exception& e) {
    // Argument errors reject the promise instead of throwing synchronously.
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(Napi::Error::New(env, e.what()).Value());
    return d.Promise();
  }
  auto* w = new JobWorker(env, std::move(job));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value call_plain(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<PlainFn>(info.Data());
  return guard(info.Env(), [&] { return fn(info); });
}

}  // namespace

void export_job(Napi::Env env, Napi::Object target, const char* name, JobFactory make) {
  target.Set(name, Napi::Function::New(env, call_sync, name, reinterpret_cast<void*>(make)));
  std::string async_name = std::string(name) + "Async";
  target.Set(async_name, Napi::Function::New(env, call_async, async_name, reinterpret_cast<void*>(make)));
}

void export_fn(Napi::Env env, Napi::Object target, const char* name, PlainFn fn) {
  target.Set(name, Napi::Function::New(env, call_plain, name, reinterpret_cast<void*>(fn)));
}

}  // namespace ds::napi
