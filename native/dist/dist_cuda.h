// CUDA helpers of the NCCL backend (dist_cuda.cu; CUDA builds only, called
// only from code compiled with DETSEG3D_WITH_CUDA).
#pragma once
#include <cstddef>

#include "core/dtype.h"

namespace ds::dist {

// data[i] *= factor for `count` float32 / float64 elements of device memory,
// enqueued on `stream` (a cudaStream_t). The average of an NCCL older than
// 2.10, which has no ncclAvg: sum, then this with factor 1 / world size.
void scale_on_stream(void* data, size_t count, DType dtype, double factor, void* stream);

}  // namespace ds::dist
