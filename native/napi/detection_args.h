// Argument helpers shared by the detection bindings (detection_*.cpp):
// typed arrays are copied into std::vectors so that the same job can run on
// a worker thread while JavaScript keeps (or mutates) its arrays.
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "detection/box_ops.h"
#include "napi/common.h"

namespace ds::napi::det_args {

inline std::vector<float> f32(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, what,
           " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

inline std::vector<int32_t> i32(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array, what,
           " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// A flat box array: checks the length and (when validate) the coordinates.
inline std::vector<float> boxes(const Napi::Value& v, const char* what, bool validate = true) {
  std::vector<float> b = f32(v, what);
  int64_t n = ds::det::box_count(int64_t(b.size()), what);
  if (validate) ds::det::check_boxes(b.data(), n, what);
  return b;
}

// A Float32Array used in place (no copy) and kept alive by a reference held
// in `keep` until the job is destroyed (on the JS thread). The caller must not
// mutate or transfer the array while an async call runs (documented in the TS API).
struct F32Ref {
  const float* data = nullptr;
  int64_t len = 0;
};
inline F32Ref f32_ref(const Napi::Value& v, const char* what, std::vector<Napi::Reference<Napi::Value>>& keep) {
  DS_CHECK(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, what,
           " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  keep.push_back(Napi::Persistent(v));
  return {a.Data(), int64_t(a.ElementLength())};
}

// Anchor levels in place: pointers and box counts per level.
struct BoxLevelRefs {
  std::vector<const float*> ptrs;
  std::vector<int64_t> counts;
};
inline BoxLevelRefs box_level_refs(const Napi::Value& v, const char* what,
                                   std::vector<Napi::Reference<Napi::Value>>& keep) {
  DS_CHECK(v.IsArray(), what, " must be an array of Float32Array (one per level)");
  Napi::Array a = v.As<Napi::Array>();
  BoxLevelRefs out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    F32Ref r = f32_ref(a.Get(i), what, keep);
    out.ptrs.push_back(r.data);
    out.counts.push_back(ds::det::box_count(r.len, what));
  }
  return out;
}

inline std::vector<Tensor> tensors(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsArray(), what, " must be an array of Tensors (one per level)");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(tensor_arg(a.Get(i), what));
  return out;
}

inline void weights6(const Napi::Value& v, double w[6], const char* what) {
  if (v.IsUndefined() || v.IsNull()) return;
  DS_CHECK(v.IsArray() && v.As<Napi::Array>().Length() == 6, what, " must be an array of 6 numbers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < 6; ++i) w[i] = number_arg(a.Get(i), what);
}

inline std::array<double, 3> dtriple(const Napi::Value& v, const char* what) {
  DS_CHECK(v.IsArray() && v.As<Napi::Array>().Length() == 3, what, " must be an array of 3 numbers (x, y, z)");
  Napi::Array a = v.As<Napi::Array>();
  return {number_arg(a.Get(0u), what), number_arg(a.Get(1u), what), number_arg(a.Get(2u), what)};
}

inline Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v) {
  auto a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

inline Napi::Int32Array to_js(Napi::Env env, const std::vector<int32_t>& v) {
  auto a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

// Optional option readers: leave `out` unchanged when the key is absent.
inline void opt_num(const Napi::Object& o, const char* key, double& out, const std::string& what) {
  Napi::Value v = get_opt(o, key);
  if (!v.IsUndefined() && !v.IsNull()) out = number_arg(v, (what + " option '" + key + "'").c_str());
}
inline void opt_int(const Napi::Object& o, const char* key, int64_t& out, const std::string& what) {
  Napi::Value v = get_opt(o, key);
  if (!v.IsUndefined() && !v.IsNull()) out = int_arg(v, (what + " option '" + key + "'").c_str());
}
inline void opt_bool(const Napi::Object& o, const char* key, bool& out, const std::string& what) {
  Napi::Value v = get_opt(o, key);
  if (!v.IsUndefined() && !v.IsNull()) out = bool_arg(v, (what + " option '" + key + "'").c_str());
}

}  // namespace ds::napi::det_args
