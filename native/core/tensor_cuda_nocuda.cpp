// core/tensor_cuda.h for builds without CUDA (no CUDA tensor can exist there).
#include "core/error.h"
#include "core/tensor_cuda.h"

namespace ds::cuda {

void fill_tensor(Tensor& t, double) { DS_FAIL("fill: ", t.describe(), " needs a CUDA build"); }
void convert_tensor(const Tensor& src, Tensor&) { DS_FAIL("conversion of ", src.describe(), " needs a CUDA build"); }

}  // namespace ds::cuda
