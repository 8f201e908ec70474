// Shared pieces of the N-API layer: module registration, the Tensor wrapper,
// argument conversion, and running native work synchronously or on a worker
// thread (Promise). This layer only converts values and schedules work; all
// maths lives in the core library.
#pragma once
#include <napi.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ds::napi {

// ---- module registration --------------------------------------------------
// Each binding file registers an init function with DS_NAPI_REGISTER; the
// addon's entry point calls them all. No central list to edit.
using InitFn = void (*)(Napi::Env env, Napi::Object exports);
struct Registrar {
  Registrar(const char* name, InitFn fn);
};
void init_all(Napi::Env env, Napi::Object exports);
#define DS_NAPI_REGISTER(name, fn) static ::ds::napi::Registrar ds_napi_registrar_##name(#name, fn)

// ---- Tensor wrapper -------------------------------------------------------
class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object Wrap(Napi::Env env, const Tensor& t);
  static bool Is(const Napi::Value& v);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  const Tensor& tensor() const { return t_; }
  Tensor& tensor() { return t_; }

 private:
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Clone(const Napi::CallbackInfo& info);
  Tensor t_;
};

// ---- argument conversion (throw ds::Error on bad values) ------------------
Tensor tensor_arg(const Napi::Value& v, const char* what);          // required
Tensor optional_tensor_arg(const Napi::Value& v, const char* what);  // null/undefined -> undefined tensor
std::array<int64_t, 3> triple_arg(const Napi::Value& v, const char* what);
std::vector<int64_t> int_array_arg(const Napi::Value& v, const char* what);
double number_arg(const Napi::Value& v, const char* what);
int64_t int_arg(const Napi::Value& v, const char* what);
bool bool_arg(const Napi::Value& v, const char* what);
std::string string_arg(const Napi::Value& v, const char* what);
Napi::Value get_opt(const Napi::Object& o, const char* key);  // undefined when absent

// ---- running work ---------------------------------------------------------
// A Job is prepared on the JS thread (arguments converted and validated),
// `run` does the native work (on the JS thread or a worker; it may throw
// ds::Error), and `finish` converts the result back on the JS thread.
struct Job {
  std::function<void()> run;
  std::function<Napi::Value(Napi::Env)> finish;
};
using JobFactory = Job (*)(const Napi::CallbackInfo& info);

// Exports `name` (synchronous, returns the value) and `nameAsync` (runs on a
// libuv worker thread, returns a Promise).
void export_job(Napi::Env env, Napi::Object target, const char* name, JobFactory make);

// Exports a plain synchronous function whose C++ exceptions become JS Errors.
using PlainFn = Napi::Value (*)(const Napi::CallbackInfo& info);
void export_fn(Napi::Env env, Napi::Object target, const char* name, PlainFn fn);

// Runs f and turns any C++ exception into a pending JS exception.
Napi::Value guard(Napi::Env env, const std::function<Napi::Value()>& f);

}  // namespace ds::napi
