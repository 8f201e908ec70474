#include "core/device_copy.h"

#include <cstdlib>
#include <cstring>

#include "core/cuda_runtime.h"

namespace ds {

void copy_tensor(const Tensor& src, Tensor& dst) {
  DS_CHECK(src.defined() && dst.defined(), "copy: undefined tensor");
  DS_CHECK(src.shape() == dst.shape() && src.dtype() == dst.dtype(), "copy: expected ", dst.describe(), ", got ",
           src.describe());
  const size_t n = src.nbytes();
  if (!n) return;
  const Device s = src.device(), d = dst.device();
  if (s.is_cpu() && d.is_cpu()) {
    std::memmove(dst.raw(), src.raw(), n);
  } else if (s.is_cpu()) {
    cuda::copy_h2d(dst.raw(), src.raw(), n, d.index);
  } else if (d.is_cpu()) {
    cuda::copy_d2h(dst.raw(), src.raw(), n, s.index);
  } else if (s == d) {
    cuda::copy_d2d(dst.raw(), src.raw(), n, d.index);
  } else {
    // Between GPUs: via the host (rare; peer access is not assumed).
    Tensor tmp = Tensor::empty(src.shape(), src.dtype());
    cuda::copy_d2h(tmp.raw(), src.raw(), n, s.index);
    cuda::copy_h2d(dst.raw(), tmp.raw(), n, d.index);
    cuda::synchronize(d.index);  // tmp dies here; small copies may still read it
  }
}

Tensor to_device(const Tensor& t, Device dev) {
  DS_CHECK(t.defined(), "to_device: undefined tensor");
  if (t.device() == dev) return t;
  if (dev.kind == Device::CUDA) cuda::check_device(dev);
  Tensor out = Tensor::empty(t.shape(), t.dtype(), dev);
  copy_tensor(t, out);
  return out;
}

Device device_from_name(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return Device::cuda(0);
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5) {
    char* end = nullptr;
    long i = std::strtol(name.c_str() + 5, &end, 10);
    if (end && *end == 0 && i >= 0 && i < 1024) return Device::cuda(int(i));
  }
  DS_FAIL("unknown device '", name, "': use 'cpu', 'cuda' or 'cuda:N'");
}

}  // namespace ds
