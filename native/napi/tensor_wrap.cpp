// The JS-visible native Tensor: constructed from a typed array and a shape
// (copying the data), read back with toArray() (a copy). 16-bit floats cross
// the boundary as Uint16Array bit patterns.
#include <cstring>

#include "core/device_copy.h"
#include "core/error.h"
#include "napi/common.h"

namespace ds::napi {
namespace {

struct InstanceData {
  Napi::FunctionReference tensor_ctor;
};

DType natural_dtype(napi_typedarray_type t, bool* ok) {
  *ok = true;
  switch (t) {
    case napi_float32_array: return DType::Float32;
    case napi_float64_array: return DType::Float64;
    case napi_int32_array: return DType::Int32;
    case napi_bigint64_array: return DType::Int64;
    case napi_uint8_array: return DType::UInt8;
    case napi_uint16_array: return DType::Float16;  // raw bits; the dtype argument says which 16-bit float
    default: *ok = false; return DType::Float32;
  }
}

Tensor from_typed_array(const Napi::TypedArray& arr, const Shape& shape, const std::string& dtype_opt) {
  bool ok;
  DType nat = natural_dtype(arr.TypedArrayType(), &ok);
  DS_CHECK(ok, "Tensor.from: unsupported typed array; use Float32Array, Float64Array, Int32Array, BigInt64Array, "
               "Uint8Array, or Uint16Array (float16/bfloat16 bits)");
  DType want = dtype_opt.empty() ? nat : dtype_from_name(dtype_opt);
  const bool raw16 = arr.TypedArrayType() == napi_uint16_array;
  if (raw16) {
    DS_CHECK(!dtype_opt.empty() && (want == DType::Float16 || want == DType::BFloat16),
             "Tensor.from: a Uint16Array holds float16 or bfloat16 bits; pass dtype 'float16' or 'bfloat16'");
    nat = want;
  }
  DS_CHECK(shape.size() <= size_t(kMaxDims), "Tensor.from: tensors have at most ", kMaxDims, " dimensions, got shape ",
           shape_str(shape));
  for (auto d : shape) DS_CHECK(d >= 0, "Tensor.from: dimensions must be >= 0, got shape ", shape_str(shape));
  int64_t n = shape_numel(shape);
  DS_CHECK(int64_t(arr.ElementLength()) == n, "Tensor.from: shape ", shape_str(shape), " needs ", n,
           " elements but the array has ", arr.ElementLength());
  Tensor src = Tensor::empty(shape, nat);
  const char* bytes = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  if (src.nbytes()) std::memcpy(src.raw(), bytes, src.nbytes());
  return src.to(want);
}

}  // namespace

void TensorWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeTensor",
                                    {
                                        InstanceAccessor<&TensorWrap::GetShape>("shape"),
                                        InstanceAccessor<&TensorWrap::GetDType>("dtype"),
                                        InstanceAccessor<&TensorWrap::GetDevice>("device"),
                                        InstanceMethod<&TensorWrap::ToArray>("toArray"),
                                        InstanceMethod<&TensorWrap::To>("to"),
                                        InstanceMethod<&TensorWrap::Reshape>("reshape"),
                                        InstanceMethod<&TensorWrap::Clone>("clone"),
                                    });
  auto* data = new InstanceData();
  data->tensor_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<InstanceData>(data);
  exports.Set("NativeTensor", ctor);
}

Napi::Object TensorWrap::Wrap(Napi::Env env, const Tensor& t) {
  auto* data = env.GetInstanceData<InstanceData>();
  Tensor* holder = new Tensor(t);
  Napi::External<Tensor> ext = Napi::External<Tensor>::New(env, holder, [](Napi::Env, Tensor* p) { delete p; });
  return data->tensor_ctor.New({ext});
}

bool TensorWrap::Is(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  auto* data = v.Env().GetInstanceData<InstanceData>();
  return v.As<Napi::Object>().InstanceOf(data->tensor_ctor.Value());
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() == 1 && info[0].IsExternal()) {
    t_ = *info[0].As<Napi::External<Tensor>>().Data();
    return;
  }
  guard(env, [&]() -> Napi::Value {
    DS_CHECK(info.Length() >= 2 && info[0].IsTypedArray(),
             "NativeTensor(data, shape[, dtype]): data must be a typed array");
    Shape shape = int_array_arg(info[1], "shape");
    std::string dt = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    t_ = from_typed_array(info[0].As<Napi::TypedArray>(), shape, dt);
    return env.Undefined();
  });
}

Napi::Value TensorWrap::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), t_.shape().size());
  for (size_t i = 0; i < t_.shape().size(); ++i) a.Set(uint32_t(i), Napi::Number::New(info.Env(), double(t_.shape()[i])));
  return a;
}

Napi::Value TensorWrap::GetDType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(t_.dtype()));
}

Napi::Value TensorWrap::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), t_.device().str());
}

Napi::Value TensorWrap::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const Tensor h = t_.device().is_cpu() ? t_ : t_.to(Device::cpu());  // device tensors are copied back first
    const size_t n = size_t(h.numel());
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, h.nbytes());
    if (h.nbytes()) std::memcpy(buf.Data(), h.raw(), h.nbytes());
    switch (h.dtype()) {
      case DType::Float32: return Napi::Float32Array::New(env, n, buf, 0);
      case DType::Float64: return Napi::Float64Array::New(env, n, buf, 0);
      case DType::Int32: return Napi::Int32Array::New(env, n, buf, 0);
      case DType::Int64: return Napi::TypedArrayOf<int64_t>::New(env, n, buf, 0, napi_bigint64_array);
      case DType::UInt8: return Napi::Uint8Array::New(env, n, buf, 0);
      case DType::Float16:
      case DType::BFloat16: return Napi::Uint16Array::New(env, n, buf, 0);
    }
    return env.Undefined();
  });
}

Napi::Value TensorWrap::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string name = string_arg(info[0], "dtype");
    if (name == "cpu" || name == "cuda" || name.rfind("cuda:", 0) == 0) return Wrap(env, t_.to(device_from_name(name)));
    return Wrap(env, t_.to(dtype_from_name(name)));
  });
}

Napi::Value TensorWrap::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value { return Wrap(env, t_.reshape(int_array_arg(info[0], "shape"))); });
}

Napi::Value TensorWrap::Clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value { return Wrap(env, t_.clone()); });
}

}  // namespace ds::napi
