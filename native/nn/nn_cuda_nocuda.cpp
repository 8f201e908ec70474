// The *_cuda entry points of native/nn for builds without CUDA. No tensor can
// live on a GPU in such a build, so these are unreachable in practice; they
// exist so that the CPU functions can dispatch unconditionally.
#include "core/error.h"
#include "nn/loss_scaler.h"
#include "nn/nn_cuda.h"
#include "nn/reduce.h"
#include "nn/sgd_multi.h"

namespace ds::nn {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  DS_FAIL(op, ": the tensor is on a GPU but this build of detseg3d has no CUDA support");
}
}  // namespace

Tensor add_cuda(const Tensor&, const Tensor&) { no_cuda("add"); }
void axpy_cuda_(Tensor&, double, const Tensor&) { no_cuda("accumulate"); }
Tensor relu_forward_cuda(const Tensor&) { no_cuda("relu"); }
Tensor relu_backward_cuda(const Tensor&, const Tensor&) { no_cuda("relu backward"); }
Tensor batchnorm_forward_cuda(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const BatchNormOptions&, BatchNormSaved*) {
  no_cuda("batchnorm");
}
NormGrads batchnorm_backward_cuda(const Tensor&, const Tensor&, const Tensor&, const BatchNormSaved&, const Tensor&,
                                  const BatchNormOptions&, bool) {
  no_cuda("batchnorm backward");
}
Tensor groupnorm_forward_cuda(const Tensor&, const Tensor&, const Tensor&, int64_t, double, bool, GroupNormSaved*) {
  no_cuda("groupnorm");
}
NormGrads groupnorm_backward_cuda(const Tensor&, const Tensor&, const Tensor&, int64_t, const GroupNormSaved&,
                                  const Tensor&, bool) {
  no_cuda("groupnorm backward");
}
Tensor maxpool3d_forward_cuda(const Tensor&, const MaxPoolParams&, Tensor*) { no_cuda("maxpool3d"); }
Tensor maxpool3d_backward_cuda(const Tensor&, const Tensor&, const Shape&) { no_cuda("maxpool3d backward"); }
Tensor upsample_nearest_forward_cuda(const Tensor&, const std::array<int64_t, 3>&) { no_cuda("upsample"); }
Tensor upsample_nearest_backward_cuda(const Tensor&, const Shape&) { no_cuda("upsample backward"); }
void sgd_multi_step_cuda(SgdMultiArgs&) { no_cuda("SGD"); }
double sum_cuda(const Tensor&) { no_cuda("sum"); }
double sum_squares_cuda(const Tensor&) { no_cuda("sum of squares"); }
double max_abs_cuda(const Tensor&) { no_cuda("max abs"); }
int64_t count_nonfinite_cuda(const Tensor&) { no_cuda("non-finite count"); }
bool scale_and_check_nonfinite_cuda_(std::vector<Tensor>&, double) { no_cuda("gradient check"); }

}  // namespace ds::nn