// The CUDA conv3d entry points (ops/conv3d_cuda.h) for builds without CUDA.
// No tensor can live on a GPU in such a build, so these are unreachable from
// the CPU entry points; called directly they throw an actionable error.
#include "core/error.h"
#include "ops/conv3d_cuda.h"

namespace ds {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  DS_FAIL(op, ": the tensor is on a GPU but this build of detseg3d has no CUDA support "
              "(rebuild with nvcc available and DETSEG3D_CUDA=ON)");
}
}  // namespace

Tensor conv3d_forward_cuda(const Tensor&, const Tensor&, const Tensor&, const Conv3dParams&) { no_cuda("conv3d"); }
void conv3d_forward_cuda_into(const Tensor&, const Tensor&, const Tensor&, const Conv3dParams&, Tensor&, bool, bool) {
  no_cuda("conv3d");
}
Conv3dGrads conv3d_backward_cuda(const Tensor&, const Tensor&, const Tensor&, const Conv3dParams&, bool, bool, bool) {
  no_cuda("conv3d backward");
}
void conv3d_backward_cuda_into(const Tensor&, const Tensor&, const Tensor&, const Conv3dParams&, Conv3dGrads&, bool) {
  no_cuda("conv3d backward");
}
std::vector<std::string> conv3d_cuda_candidates(const Tensor&, const Tensor&, const Conv3dParams&, Conv3dPass) {
  no_cuda("conv3d_cuda_candidates");
}
void conv3d_cuda_force_algo(const std::string&) {}
std::string conv3d_cuda_last_algo(Conv3dPass) { return ""; }

}  // namespace ds
