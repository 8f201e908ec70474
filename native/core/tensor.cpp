#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "core/tensor_cuda.h"

namespace ds {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Storage::Storage(size_t bytes, Device dev) : bytes_(bytes), dev_(dev), alloc_(&allocator_for(dev)) {
  ptr_ = alloc_->allocate(bytes);
}

Storage::~Storage() { alloc_->deallocate(ptr_, bytes_); }

static void validate_shape(const Shape& shape) {
  DS_CHECK(shape.size() <= size_t(kMaxDims), "tensors have at most ", kMaxDims, " dimensions, got shape ",
           shape_str(shape));
  for (auto d : shape) {
    DS_CHECK(d >= 0, "tensor dimensions must be >= 0, got shape ", shape_str(shape));
  }
  // Guard against size_t overflow for absurd shapes.
  double total = 1;
  for (auto d : shape) total *= double(d);
  DS_CHECK(total < 9.0e15, "tensor shape ", shape_str(shape), " is too large");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  validate_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), dev);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(value);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  validate_shape(shape);
  DS_CHECK(shape_numel(shape) == numel(), "cannot reshape ", describe(), " to ", shape_str(shape),
           ": element counts differ");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  DS_CHECK(dim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice [", begin, ", ", end,
           ") out of range for ", describe());
  Tensor t = *this;
  int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  t.offset_ += size_t(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  if (!device().is_cpu()) {  // CUDA: device-to-device copy on the compute stream
    copy_tensor(*this, t);
    return t;
  }
  check_cpu(*this, "tensor");
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DS_CHECK(src.shape() == shape_ && src.dtype() == dtype_, "copy_from: expected ", describe(), ", got ",
           src.describe());
  if (!device().is_cpu() || !src.device().is_cpu()) return copy_tensor(src, *this);
  check_cpu(*this, "tensor");
  check_cpu(src, "tensor");
  if (nbytes()) std::memmove(raw(), src.raw(), nbytes());
}

template <class Src>
static void convert_from(const Src* s, int64_t n, Tensor& out) {
  switch (out.dtype()) {
    case DType::Float32: { auto* d = out.data<float>(); for (int64_t i = 0; i < n; ++i) d[i] = float(s[i]); break; }
    case DType::Float64: { auto* d = out.data<double>(); for (int64_t i = 0; i < n; ++i) d[i] = double(s[i]); break; }
    case DType::Int32: { auto* d = out.data<int32_t>(); for (int64_t i = 0; i < n; ++i) d[i] = int32_t(s[i]); break; }
    case DType::Int64: { auto* d = out.data<int64_t>(); for (int64_t i = 0; i < n; ++i) d[i] = int64_t(s[i]); break; }
    case DType::UInt8: { auto* d = out.data<uint8_t>(); for (int64_t i = 0; i < n; ++i) d[i] = uint8_t(s[i]); break; }
    case DType::Float16: { auto* d = out.data_u16(); for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(float(s[i])); break; }
    case DType::BFloat16: { auto* d = out.data_u16(); for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(float(s[i])); break; }
  }
}

Tensor Tensor::to(DType dtype, bool copy) const {
  if (dtype == dtype_ && !copy) return *this;
  if (!device().is_cpu()) {
    Tensor out = empty(shape_, dtype, device());
    cuda::convert_tensor(*this, out);
    return out;
  }
  check_cpu(*this, "tensor");
  Tensor out = empty(shape_, dtype, device());
  const int64_t n = numel();
  switch (dtype_) {
    case DType::Float32: convert_from(data<float>(), n, out); break;
    case DType::Float64: convert_from(data<double>(), n, out); break;
    case DType::Int32: convert_from(data<int32_t>(), n, out); break;
    case DType::Int64: convert_from(data<int64_t>(), n, out); break;
    case DType::UInt8: convert_from(data<uint8_t>(), n, out); break;
    case DType::Float16:
    case DType::BFloat16: {
      if (dtype == dtype_) { std::memcpy(out.raw(), raw(), nbytes()); break; }
      std::vector<float> tmp(static_cast<size_t>(n));
      const uint16_t* s = data_u16();
      for (int64_t i = 0; i < n; ++i) tmp[i] = dtype_ == DType::Float16 ? half_to_float(s[i]) : bf16_to_float(s[i]);
      convert_from(tmp.data(), n, out);
      break;
    }
  }
  return out;
}

Tensor Tensor::to(Device dev) const { return to_device(*this, dev); }

void Tensor::fill_(double v) {
  if (!device().is_cpu()) return cuda::fill_tensor(*this, v);
  check_cpu(*this, "tensor");
  const int64_t n = numel();
  switch (dtype_) {
    case DType::Float32: { auto* d = data<float>(); for (int64_t i = 0; i < n; ++i) d[i] = float(v); break; }
    case DType::Float64: { auto* d = data<double>(); for (int64_t i = 0; i < n; ++i) d[i] = v; break; }
    case DType::Int32: { auto* d = data<int32_t>(); for (int64_t i = 0; i < n; ++i) d[i] = int32_t(v); break; }
    case DType::Int64: { auto* d = data<int64_t>(); for (int64_t i = 0; i < n; ++i) d[i] = int64_t(v); break; }
    case DType::UInt8: { auto* d = data<uint8_t>(); for (int64_t i = 0; i < n; ++i) d[i] = uint8_t(v); break; }
    case DType::Float16: { auto* d = data_u16(); uint16_t h = float_to_half(float(v)); for (int64_t i = 0; i < n; ++i) d[i] = h; break; }
    case DType::BFloat16: { auto* d = data_u16(); uint16_t h = float_to_bf16(float(v)); for (int64_t i = 0; i < n; ++i) d[i] = h; break; }
  }
}

void Tensor::zero_() {
  if (!device().is_cpu()) {
    if (nbytes()) cuda::memset_async(raw(), 0, nbytes(), device().index);
    return;
  }
  check_cpu(*this, "tensor");
  if (nbytes()) std::memset(raw(), 0, nbytes());
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on " + device().str();
}

void check_cpu(const Tensor& t, const char* what) {
  DS_CHECK(t.defined(), what, " is missing (undefined tensor)");
  DS_CHECK(t.device().is_cpu(), what, " is on ", t.device().str(),
           " but this operation runs on the CPU: move it with .to('cpu')");
}

void check_dtype(const Tensor& t, DType dt, const char* what) {
  DS_CHECK(t.dtype() == dt, what, " must be ", dtype_name(dt), ", got ", t.describe());
}

void check_float(const Tensor& t, const char* what) {
  DS_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, what,
           " must be float32 or float64 on the CPU, got ", t.describe(), " (convert it with .to('float32'))");
}

void check_dims(const Tensor& t, int dims, const char* what, const char* layout) {
  DS_CHECK(t.dim() == dims, what, " must have ", dims, " dimensions ", layout, ", got ", t.describe());
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* wa, const char* wb) {
  DS_CHECK(a.dtype() == b.dtype(), wa, " and ", wb, " must have the same dtype, got ", dtype_name(a.dtype()),
           " and ", dtype_name(b.dtype()));
}

}  // namespace ds
