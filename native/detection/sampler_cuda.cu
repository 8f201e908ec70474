// Hard-negative sampler with the ranking on the GPU (see det_cuda.h).
// Every anchor gets a 33-bit key: bit 32 = background (matched == -1), bits
// 0..31 = the score mapped to an unsigned integer of the same order (NaN ->
// -inf, -0 -> +0, as the CPU's comparison treats them). A stable descending
// radix sort (CUB) then lists the background anchors first, hardest first,
// ties by ascending index -- exactly the CPU's `harder` order -- and the host
// replays the CPU's random draws on the first `pool` of them.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <vector>

#include "detection/det_cuda.h"
#include "core/cuda_kernels.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;

__global__ void sampler_keys_kernel(const int32_t* __restrict__ matched, const float* __restrict__ score, int64_t n,
                                    unsigned long long* __restrict__ keys, int32_t* __restrict__ idx) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float v = score[i];
    if (v != v) v = -INFINITY;
    if (v == 0.f) v = 0.f;  // -0 ranks like +0
    const unsigned int b = __float_as_uint(v);
    const unsigned int ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    keys[i] = (matched[i] == -1 ? (1ull << 32) : 0ull) | ord;
    idx[i] = int32_t(i);
  }
}

// Moves k uniformly chosen elements to the front: the CPU's choose_front.
void choose_front(std::vector<int32_t>& v, int64_t k, Rng& rng) {
  for (int64_t i = 0; i < k; ++i) {
    auto j = int64_t(i + int64_t(rng.below(uint64_t(int64_t(v.size()) - i))));
    std::swap(v[size_t(i)], v[size_t(j)]);
  }
}

}  // namespace

Sample sample_hard_negatives_cuda(const Tensor& matched, const Tensor& score, const SamplerOptions& o, Rng& rng) {
  check_sampler_options(o);
  check_cuda_tensor(matched, "sampler: matched labels");
  check_cuda_tensor(score, "sampler: scores");
  check_same_device(matched, score, "sampler: matched labels", "sampler: scores");
  const int64_t n = matched.numel();
  DS_CHECK(matched.dtype() == DType::Int32 && score.dtype() == DType::Float32 && score.numel() == n,
           "sampler: matched must be int32 [n] and score float32 [n], got ", matched.describe(), " and ",
           score.describe());
  DS_CHECK(n < (int64_t(1) << 31), "sampler: too many anchors (", n, ")");
  const Device dev = matched.device();
  DeviceGuard guard(dev.index);
  // Counts and the foreground list from the labels (n int32 to the host).
  Tensor hm = matched.to(Device::cpu());
  const int32_t* m = hm.data<int32_t>();
  std::vector<int32_t> fg;
  int64_t n_bg = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (m[i] >= 0) fg.push_back(int32_t(i));
    n_bg += m[i] == -1;
  }
  const int64_t num_pos = sampler_num_pos(int64_t(fg.size()), o);
  const int64_t num_neg = sampler_num_neg(n_bg, num_pos, o);
  const int64_t pool = std::min<int64_t>(n_bg, num_neg * o.pool_size);
  std::vector<int32_t> bg(static_cast<size_t>(pool));
  if (pool > 0) {
    cudaStream_t st = stream_for(matched);
    Tensor keys = Tensor::empty({n}, DType::Int64, dev), keys_out = Tensor::empty({n}, DType::Int64, dev);
    Tensor idx = Tensor::empty({n}, DType::Int32, dev), order = Tensor::empty({n}, DType::Int32, dev);
    auto* k_in = static_cast<unsigned long long*>(keys.raw());
    auto* k_out = static_cast<unsigned long long*>(keys_out.raw());
    sampler_keys_kernel<<<grid_for(n), kThreads, 0, st>>>(dptr<const int32_t>(matched), dptr<const float>(score), n,
                                                          k_in, dptr<int32_t>(idx));
    DS_CUDA_LAUNCH_CHECK();
    size_t temp_bytes = 0;
    DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, temp_bytes, k_in, k_out, dptr<const int32_t>(idx),
                                                            dptr<int32_t>(order), int(n), 0, 33, st));
    Tensor temp = Tensor::empty({int64_t(temp_bytes) + 1}, DType::UInt8, dev);
    DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(temp.raw(), temp_bytes, k_in, k_out,
                                                            dptr<const int32_t>(idx), dptr<int32_t>(order), int(n), 0,
                                                            33, st));
    // The first n_bg sorted entries are the background anchors, hardest first.
    copy_d2h(bg.data(), order.raw(), size_t(pool) * sizeof(int32_t), dev.index);
  }
  // The CPU's draws, in the CPU's order: positives first, then negatives.
  Sample s;
  choose_front(fg, num_pos, rng);
  s.pos.assign(fg.begin(), fg.begin() + num_pos);
  choose_front(bg, num_neg, rng);
  s.neg.assign(bg.begin(), bg.begin() + num_neg);
  std::sort(s.pos.begin(), s.pos.end());
  std::sort(s.neg.begin(), s.neg.end());
  return s;
}

}  // namespace ds::det
