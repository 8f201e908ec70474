// SyncBatchNorm's collectives (nn/batchnorm_sync.h) on a process group.
//   make_batchnorm_sync(pg)       straight on the backend: only when nothing
//                                 else issues collectives on it concurrently.
//   make_batchnorm_sync(reducer)  through the gradient reducer's
//                                 communication thread, ordered with the
//                                 bucket all-reduces that backward launches
//                                 (Reducer::run_ordered): what data-parallel
//                                 training with a model-attached reducer needs.
// Host float64 buffers; the NCCL backend stages them through device memory.
#pragma once
#include <memory>

#include "dist/backend.h"
#include "dist/reducer.h"
#include "nn/batchnorm_sync.h"

namespace ds::dist {

// Gloo tag of SyncBatchNorm's all-reduces (apart from the reducer's 0x100000 + bucket).
constexpr uint32_t kSyncBatchNormTag = 0x200000u;

std::shared_ptr<nn::BatchNormSync> make_batchnorm_sync(std::shared_ptr<Backend> pg);
std::shared_ptr<nn::BatchNormSync> make_batchnorm_sync(std::shared_ptr<Reducer> reducer);

}  // namespace ds::dist
