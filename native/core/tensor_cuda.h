// Tensor operations on CUDA tensors used by core/tensor.cpp and
// core/device_copy.cpp (tensor_cuda.cu; tensor_cuda_nocuda.cpp throws).
#pragma once
#include "core/tensor.h"

namespace ds::cuda {

// Fills a CUDA tensor with v converted to its dtype exactly as Tensor::fill_ does on the CPU.
void fill_tensor(Tensor& t, double v);
// dst = src converted element by element (same numel, same CUDA device, any dtypes;
// the conversions match Tensor::to on the CPU).
void convert_tensor(const Tensor& src, Tensor& dst);

}  // namespace ds::cuda
