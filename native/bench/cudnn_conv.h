// cuDNN's 3D convolution as a benchmark baseline, loaded at run time with
// dlopen (no cuDNN headers or link dependency): libcudnn.so.9 from
// $DETSEG3D_CUDNN_PATH (a directory or the library file), then the PyTorch
// virtual environment's nvidia/cudnn/lib, then the default search path.
// Only the legacy descriptor API is used (the few types and functions
// declared in cudnn_conv.cpp). Channels-last tensors map to cuDNN's
// CUDNN_TENSOR_NHWC format with 5 dimensions (dims given as N, C, D1, D2, D3).
#pragma once
#include <string>

#include "core/tensor.h"
#include "ops/conv3d.h"

namespace ds::bench {

enum class CudnnPass { Forward, GradInput, GradWeight };

class CudnnConv {
 public:
  // The process-wide instance, or nullptr when cuDNN could not be loaded
  // (reason() says why).
  static CudnnConv* get();
  static const std::string& reason();

  // Median milliseconds per call (after cudnnFind*AlgorithmEx picks the fastest
  // algorithm, which is also timed once as warm-up) of one pass:
  //   Forward:    a = x, b = w,  out = y
  //   GradInput:  a = dy, b = w, out = dx
  //   GradWeight: a = x, b = dy, out = dw
  // All tensors on cuda:0 in one dtype (float16, bfloat16, float32). float32
  // runs with CUDNN_FMA_MATH (true FP32, no TF32), 16-bit with tensor cores.
  // Returns a negative value (and sets *note) when cuDNN has no algorithm for it.
  double time_pass(CudnnPass pass, const Tensor& a, const Tensor& b, Tensor& out, const Conv3dParams& p, int reps,
                   std::string* note);

 private:
  CudnnConv() = default;
  struct Api;
  Api* api_ = nullptr;
  void* handle_ = nullptr;
};

}  // namespace ds::bench
