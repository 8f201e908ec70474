// Run-time binding of cuDNN's legacy convolution API (see cudnn_conv.h).
// Enum values and signatures follow cuDNN 9's public headers (cudnn_graph.h /
// cudnn_ops.h / cudnn_cnn.h): cudnnDataType_t FLOAT 0, DOUBLE 1, HALF 2,
// BFLOAT16 9; cudnnTensorFormat_t NHWC 1; CUDNN_CROSS_CORRELATION 1;
// cudnnMathType_t TENSOR_OP_MATH 1, FMA_MATH 3; the *AlgoPerf_t structs are
// {algo, status, time, memory, determinism, mathType, reserved[3]}.
#include "bench/cudnn_conv.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "bench/cuda_timing.h"
#include "core/cuda_runtime.h"

namespace ds::bench {

namespace {

using Status = int;
using Handle = void*;
using Desc = void*;
struct Perf {  // cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t (same layout)
  int algo;
  Status status;
  float time;
  size_t memory;
  int determinism;
  int mathType;
  int reserved[3];
};

constexpr int kDataFloat = 0, kDataDouble = 1, kDataHalf = 2, kDataBFloat16 = 9;
constexpr int kFormatNHWC = 1;
constexpr int kCrossCorrelation = 1;
constexpr int kTensorOpMath = 1, kFmaMath = 3;
constexpr size_t kMaxWorkspace = size_t(1) << 30;

}  // namespace

struct CudnnConv::Api {
  void* lib = nullptr;
  Status (*create)(Handle*);
  Status (*set_stream)(Handle, void*);
  const char* (*error_string)(Status);
  Status (*create_tensor)(Desc*);
  Status (*destroy_tensor)(Desc);
  Status (*set_tensor_nd_ex)(Desc, int format, int dtype, int nb, const int* dims);
  Status (*create_filter)(Desc*);
  Status (*destroy_filter)(Desc);
  Status (*set_filter_nd)(Desc, int dtype, int format, int nb, const int* dims);
  Status (*create_conv)(Desc*);
  Status (*destroy_conv)(Desc);
  Status (*set_conv_nd)(Desc, int n, const int* pad, const int* stride, const int* dil, int mode, int compute);
  Status (*set_math)(Desc, int math);
  Status (*find_fwd)(Handle, Desc xd, const void* x, Desc wd, const void* w, Desc cd, Desc yd, void* y, int req,
                     int* ret, Perf* perf, void* ws, size_t ws_bytes);
  Status (*find_bwd_data)(Handle, Desc wd, const void* w, Desc dyd, const void* dy, Desc cd, Desc dxd, void* dx,
                          int req, int* ret, Perf* perf, void* ws, size_t ws_bytes);
  Status (*find_bwd_filter)(Handle, Desc xd, const void* x, Desc dyd, const void* dy, Desc cd, Desc dwd, void* dw,
                            int req, int* ret, Perf* perf, void* ws, size_t ws_bytes);
  Status (*fwd)(Handle, const void* alpha, Desc xd, const void* x, Desc wd, const void* w, Desc cd, int algo,
                void* ws, size_t ws_bytes, const void* beta, Desc yd, void* y);
  Status (*bwd_data)(Handle, const void* alpha, Desc wd, const void* w, Desc dyd, const void* dy, Desc cd, int algo,
                     void* ws, size_t ws_bytes, const void* beta, Desc dxd, void* dx);
  Status (*bwd_filter)(Handle, const void* alpha, Desc xd, const void* x, Desc dyd, const void* dy, Desc cd,
                       int algo, void* ws, size_t ws_bytes, const void* beta, Desc dwd, void* dw);
};

namespace {

std::string g_reason;

void* open_cudnn() {
  std::vector<std::string> tries;
  if (const char* env = std::getenv("DETSEG3D_CUDNN_PATH")) {
    std::string p = env;
    if (p.find(".so") == std::string::npos) p += "/libcudnn.so.9";
    tries.push_back(p);
  }
  tries.push_back("/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9");
  tries.push_back("libcudnn.so.9");
  std::string errs;
  for (const auto& t : tries) {
    if (void* h = dlopen(t.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    const char* e = dlerror();
    errs += "\n    " + t + ": " + (e ? e : "not found");
  }
  g_reason = "libcudnn.so.9 not found (set DETSEG3D_CUDNN_PATH):" + errs;
  return nullptr;
}

template <class F>
bool bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) g_reason = std::string("cuDNN symbol ") + name + " missing";
  return f != nullptr;
}

int cudnn_dtype(DType d) {
  switch (d) {
    case DType::Float32: return kDataFloat;
    case DType::Float64: return kDataDouble;
    case DType::Float16: return kDataHalf;
    case DType::BFloat16: return kDataBFloat16;
    default: DS_FAIL("cuDNN baseline: unsupported dtype ", dtype_name(d));
  }
}

}  // namespace

const std::string& CudnnConv::reason() { return g_reason; }

CudnnConv* CudnnConv::get() {
  static CudnnConv* inst = [] () -> CudnnConv* {
    void* lib = open_cudnn();
    if (!lib) return nullptr;
    auto* a = new Api();
    a->lib = lib;
    bool ok = bind(lib, "cudnnCreate", a->create) && bind(lib, "cudnnSetStream", a->set_stream) &&
              bind(lib, "cudnnGetErrorString", a->error_string) &&
              bind(lib, "cudnnCreateTensorDescriptor", a->create_tensor) &&
              bind(lib, "cudnnDestroyTensorDescriptor", a->destroy_tensor) &&
              bind(lib, "cudnnSetTensorNdDescriptorEx", a->set_tensor_nd_ex) &&
              bind(lib, "cudnnCreateFilterDescriptor", a->create_filter) &&
              bind(lib, "cudnnDestroyFilterDescriptor", a->destroy_filter) &&
              bind(lib, "cudnnSetFilterNdDescriptor", a->set_filter_nd) &&
              bind(lib, "cudnnCreateConvolutionDescriptor", a->create_conv) &&
              bind(lib, "cudnnDestroyConvolutionDescriptor", a->destroy_conv) &&
              bind(lib, "cudnnSetConvolutionNdDescriptor", a->set_conv_nd) &&
              bind(lib, "cudnnSetConvolutionMathType", a->set_math) &&
              bind(lib, "cudnnFindConvolutionForwardAlgorithmEx", a->find_fwd) &&
              bind(lib, "cudnnFindConvolutionBackwardDataAlgorithmEx", a->find_bwd_data) &&
              bind(lib, "cudnnFindConvolutionBackwardFilterAlgorithmEx", a->find_bwd_filter) &&
              bind(lib, "cudnnConvolutionForward", a->fwd) &&
              bind(lib, "cudnnConvolutionBackwardData", a->bwd_data) &&
              bind(lib, "cudnnConvolutionBackwardFilter", a->bwd_filter);
    if (!ok) return nullptr;
    Handle h = nullptr;
    if (Status s = a->create(&h)) {
      g_reason = std::string("cudnnCreate failed: ") + a->error_string(s);
      return nullptr;
    }
    auto* c = new CudnnConv();
    c->api_ = a;
    c->handle_ = h;
    return c;
  }();
  return inst;
}

double CudnnConv::time_pass(CudnnPass pass, const Tensor& a, const Tensor& b, Tensor& out, const Conv3dParams& p,
                            int reps, std::string* note) {
  Api& A = *api_;
  const int dev = a.device().index;
  auto check = [&](Status s, const char* what) {
    DS_CHECK(s == 0, "cuDNN ", what, " failed: ", A.error_string(s));
  };
  check(A.set_stream(handle_, cuda::stream(dev)), "cudnnSetStream");
  const Tensor& x = pass == CudnnPass::GradInput ? out : a;
  const Tensor& w = pass == CudnnPass::GradWeight ? out : b;
  const Tensor& y = pass == CudnnPass::Forward ? out : (pass == CudnnPass::GradInput ? a : b);
  const int dt = cudnn_dtype(x.dtype());
  auto act_dims = [](const Tensor& t) {
    return std::vector<int>{int(t.size(0)), int(t.size(4)), int(t.size(1)), int(t.size(2)), int(t.size(3))};
  };
  Desc xd, yd, wd, cd;
  check(A.create_tensor(&xd), "create tensor descriptor");
  check(A.create_tensor(&yd), "create tensor descriptor");
  check(A.create_filter(&wd), "create filter descriptor");
  check(A.create_conv(&cd), "create convolution descriptor");
  struct Cleanup {
    Api& A;
    Desc xd, yd, wd, cd;
    ~Cleanup() {
      A.destroy_tensor(xd);
      A.destroy_tensor(yd);
      A.destroy_filter(wd);
      A.destroy_conv(cd);
    }
  } cleanup{A, xd, yd, wd, cd};
  const auto xdims = act_dims(x), ydims = act_dims(y);
  check(A.set_tensor_nd_ex(xd, kFormatNHWC, dt, 5, xdims.data()), "cudnnSetTensorNdDescriptorEx(x)");
  check(A.set_tensor_nd_ex(yd, kFormatNHWC, dt, 5, ydims.data()), "cudnnSetTensorNdDescriptorEx(y)");
  const int wdims[5] = {int(w.size(0)), int(w.size(4)), int(w.size(1)), int(w.size(2)), int(w.size(3))};
  check(A.set_filter_nd(wd, dt, kFormatNHWC, 5, wdims), "cudnnSetFilterNdDescriptor");
  int pad[3], str[3], dil[3];
  for (int i = 0; i < 3; ++i) {
    pad[i] = int(p.padding[i]);
    str[i] = int(p.stride[i]);
    dil[i] = int(p.dilation[i]);
  }
  const int compute = x.dtype() == DType::Float64 ? kDataDouble : kDataFloat;
  check(A.set_conv_nd(cd, 3, pad, str, dil, kCrossCorrelation, compute), "cudnnSetConvolutionNdDescriptor");
  check(A.set_math(cd, x.dtype() == DType::Float32 ? kFmaMath : kTensorOpMath), "cudnnSetConvolutionMathType");

  size_t free_b = 0, total_b = 0;
  cuda::mem_info(dev, &free_b, &total_b);
  const size_t ws_bytes = std::min(kMaxWorkspace, free_b / 4);
  Tensor ws = Tensor::empty({int64_t(std::max<size_t>(ws_bytes, 16))}, DType::UInt8, a.device());
  Perf perf[16];
  int n = 0;
  Status s = 0;
  if (pass == CudnnPass::Forward)
    s = A.find_fwd(handle_, xd, x.raw(), wd, w.raw(), cd, yd, out.raw(), 16, &n, perf, ws.raw(), ws_bytes);
  else if (pass == CudnnPass::GradInput)
    s = A.find_bwd_data(handle_, wd, w.raw(), yd, y.raw(), cd, xd, out.raw(), 16, &n, perf, ws.raw(), ws_bytes);
  else
    s = A.find_bwd_filter(handle_, xd, x.raw(), yd, y.raw(), cd, wd, out.raw(), 16, &n, perf, ws.raw(), ws_bytes);
  if (s != 0) {
    if (note) *note = std::string("find failed: ") + A.error_string(s);
    return -1;
  }
  // float32: only FP32 (FMA) algorithms, never TF32 tensor-op ones (math types 1, 2).
  const bool fp32 = x.dtype() == DType::Float32;
  int best = -1;
  for (int i = 0; i < n; ++i)
    if (perf[i].status == 0 && perf[i].memory <= ws_bytes &&
        (!fp32 || (perf[i].mathType != kTensorOpMath && perf[i].mathType != 2))) {
      best = i;
      break;
    }
  if (best < 0) {
    if (note) *note = "no algorithm";
    return -1;
  }
  check(A.set_math(cd, fp32 ? kFmaMath : perf[best].mathType), "cudnnSetConvolutionMathType");
  const float f1 = 1.f, f0 = 0.f;
  const double d1 = 1.0, d0 = 0.0;
  const void* alpha = x.dtype() == DType::Float64 ? static_cast<const void*>(&d1) : &f1;
  const void* beta = x.dtype() == DType::Float64 ? static_cast<const void*>(&d0) : &f0;
  const int algo = perf[best].algo;
  const size_t used = perf[best].memory;
  auto run = [&] {
    Status r;
    if (pass == CudnnPass::Forward)
      r = A.fwd(handle_, alpha, xd, x.raw(), wd, w.raw(), cd, algo, ws.raw(), used, beta, yd, out.raw());
    else if (pass == CudnnPass::GradInput)
      r = A.bwd_data(handle_, alpha, wd, w.raw(), yd, y.raw(), cd, algo, ws.raw(), used, beta, xd, out.raw());
    else
      r = A.bwd_filter(handle_, alpha, xd, x.raw(), yd, y.raw(), cd, algo, ws.raw(), used, beta, wd, out.raw());
    check(r, "convolution");
  };
  const double median = cuda_median_ms(run, reps, 1, dev);
  if (note) *note = "algo " + std::to_string(algo);
  return median;
}

}  // namespace ds::bench
