// Tensor: a contiguous, row-major block of one dtype on one device, with up
// to 5 dimensions. Memory is reference counted (copies of a Tensor share it);
// clone() makes a deep copy. Layout conventions of the whole library:
//   activations  [N, D1, D2, D3, C]      (channels last)
//   conv weights [Cout, k1, k2, k3, Cin]
// where (D1, D2, D3) are the spatial axes. The mapping of the volume's
// (x, y, z) onto (D1, D2, D3) is defined once, in src/tensor.ts (see
// `volumeToTensor`); the native core never needs to know it.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ds {

constexpr int kMaxDims = 5;
using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Storage {
 public:
  Storage(size_t bytes, Device dev);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return dev_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device dev_;
  Allocator* alloc_ = nullptr;
};

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::Float32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::Float64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::UInt8; };

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory. On a CUDA device the memory comes from the caching
  // allocator; ops on CUDA tensors run on the device's compute stream.
  static Tensor empty(const Shape& shape, DType dtype, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype, Device dev = Device::cpu());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int dim() const { return int(shape_.size()); }
  int64_t size(int i) const { return shape_.at(i < 0 ? i + dim() : i); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* raw() const { return storage_ ? static_cast<char*>(storage_->data()) + offset_ : nullptr; }
  template <class T>
  T* data() const {
    DS_CHECK(DTypeOf<T>::value == dtype_, "internal: tensor holds ", dtype_name(dtype_), ", accessed as ",
             dtype_name(DTypeOf<T>::value));
    return static_cast<T*>(raw());
  }
  // 16-bit floats are stored as raw bits.
  uint16_t* data_u16() const {
    DS_CHECK(dtype_ == DType::Float16 || dtype_ == DType::BFloat16, "internal: not a 16-bit float tensor");
    return static_cast<uint16_t*>(raw());
  }

  // A view with the same memory and another shape of the same element count.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the first dimension, sharing memory.
  Tensor slice0(int64_t begin, int64_t end) const;
  Tensor clone() const;
  // Converted copy (or this tensor when the dtype already matches and copy is false).
  Tensor to(DType dtype, bool copy = false) const;
  // This tensor on another device (itself when already there); see core/device_copy.h.
  Tensor to(Device dev) const;
  void fill_(double value);
  void zero_();
  // Copies the contents of src (same shape and dtype) into this tensor.
  void copy_from(const Tensor& src);

  std::string describe() const;  // e.g. "float32[2, 16, 16, 8, 4] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::Float32;
};

// Validation helpers that throw ds::Error with the argument's name.
void check_cpu(const Tensor& t, const char* what);
void check_dtype(const Tensor& t, DType dt, const char* what);
void check_float(const Tensor& t, const char* what);  // float32 or float64
void check_dims(const Tensor& t, int dims, const char* what, const char* layout);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* what_a, const char* what_b);

}  // namespace ds
