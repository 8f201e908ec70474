// NCCL (GPU) process group. libnccl.so.2 is loaded at run time with dlopen
// (path overridable with DETSEG3D_NCCL_PATH), so neither building nor running
// on a machine without NCCL needs it; only the few NCCL types used here are
// declared (NCCL >= 2.4; below 2.10, which added ncclAvg, an average is a sum
// and a scale kernel). One communicator per process on device LOCAL_RANK;
// collectives run on a dedicated stream, ordered after the device's compute
// stream (core/cuda_runtime.h) by events: host buffers are staged through
// device memory and waited for; device buffers are reduced asynchronously,
// including the reducer's per-bucket stream-ordered collectives
// (Backend::all_reduce_device). Compiled in full only with CUDA
// (DETSEG3D_WITH_CUDA); otherwise every entry point explains why it is
// unavailable.
#pragma once
#include <array>
#include <memory>
#include <string>

#include "dist/backend.h"

namespace ds::dist {

constexpr size_t kNcclUniqueIdBytes = 128;
using NcclUniqueId = std::array<uint8_t, kNcclUniqueIdBytes>;

bool nccl_compiled();  // CUDA build (NCCL itself is only looked for at run time)
// Loads libnccl and reports its version (e.g. "2.21.5"); throws with the
// dlopen error and what to install when it is missing.
std::string nccl_version();
// Rank 0 creates the id and passes it to the others through the store.
NcclUniqueId nccl_unique_id();

struct NcclOptions {
  int rank = 0, size = 1;
  int device = 0;  // CUDA device index (LOCAL_RANK)
  NcclUniqueId id{};
};
// Collective over all ranks (blocks until every rank has called it).
std::shared_ptr<Backend> make_nccl_backend(const NcclOptions& opts);

// Makes the NCCL stream wait for work already queued on `compute_stream`
// (a cudaStream_t) before each collective, so gradients produced there are
// complete when they are reduced. The default (and null) is the device's
// compute stream, where every op on a CUDA tensor runs.
void nccl_set_compute_stream(Backend& b, void* compute_stream);

}  // namespace ds::dist
