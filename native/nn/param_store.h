// Named parameters and buffers of a network, in registration order (which
// follows MONAI's module order, so names and order match its state_dict).
// Entries live in a deque: pointers handed to layers stay valid.
#pragma once
#include <deque>
#include <string>

#include "core/tensor.h"

namespace ds::nn {

struct ParamEntry {
  std::string name;   // MONAI module path, e.g. "feature_extractor.body.conv1.weight"
  Tensor value;       // our layout (conv weights [Cout, k1, k2, k3, Cin])
  // Gradient (parameters only). After zero_grad it is dropped (grad_set false)
  // and the first accumulation adopts its tensor without a copy; read it
  // through ParamStore::grad(), which materialises zeros when nothing arrived.
  Tensor grad;
  bool grad_set = false;
  Shape monai_shape;  // the PyTorch tensor's shape (conv weights [Cout, Cin, kx, ky, kz])
  bool buffer = false;     // running statistics and counters (not trained)
  bool trainable = true;   // parameters only
  // Mixed precision (RetinaNet::set_precision): the float16/bfloat16 copy of a
  // conv weight that forward/backward use; `value` stays the float32 master.
  // Undefined otherwise. Refreshed by the optimizer step.
  Tensor compute;
};

class ParamStore {
 public:
  ParamEntry* add_param(const std::string& name, const Shape& shape, const Shape& monai_shape, DType dt);
  ParamEntry* add_buffer(const std::string& name, const Shape& shape, DType dt);
  ParamEntry* find(const std::string& name);  // nullptr when absent
  std::deque<ParamEntry>& entries() { return entries_; }
  const std::deque<ParamEntry>& entries() const { return entries_; }
  // Forgets all gradients (the next backward starts from zero).
  void zero_grad();
  // grad += g (adopting g when no gradient has arrived since zero_grad; g must be a
  // fresh tensor nobody else writes to).
  static void accumulate_grad(ParamEntry& e, const Tensor& g);
  // The gradient, zeros when none has arrived.
  static Tensor& grad(ParamEntry& e);
  int64_t num_parameters(bool trainable_only) const;
  // dtype of the tensors registered from now on.
  void set_dtype(DType dt) { dtype_ = dt; }
  DType dtype() const { return dtype_; }

 private:
  std::deque<ParamEntry> entries_;
  DType dtype_ = DType::Float32;
};

// The MONAI shape of a conv weight stored as [Cout, k1, k2, k3, Cin]:
// [Cout, Cin, kx, ky, kz] with (kx, ky, kz) = (k3, k2, k1).
Shape monai_conv_shape(const Shape& ours);

}  // namespace ds::nn
