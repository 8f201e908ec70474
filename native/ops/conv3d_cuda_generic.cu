// Generic CUDA conv3d kernels: SIMT implicit GEMMs with predicated scalar
// loads (any dtype, stride, padding, dilation and channel count; the float32
// and float64 paths and the fallback of the tensor-core ones), plus the small
// helpers every path shares: weight transpose for grad input, bias-gradient
// partials and the deterministic split reduction (finalize).
//
// Tiling: 64x64 output tile per 256-thread block, 16-deep k slices staged in
// shared memory (converted to the accumulation type A: float, or double for
// float64), each thread owns a 4x4 sub-tile (rows ty + 16i, columns tx + 16j).
#include <algorithm>

#include "ops/conv3d_cuda_common.cuh"

namespace ds::convcuda {
namespace {
using namespace ds::cuda;

constexpr int GBM = 64, GBN = 64, GBK = 16, GT = 256;

// One staged k slice of the 64x64 tile: acc[i][j] += As[kk][ty + 16i] * Bs[kk][tx + 16j].
template <class A>
__device__ __forceinline__ void mac_tile(A (&acc)[4][4], const A (&As)[GBK][GBM + 1], const A (&Bs)[GBK][GBN + 1],
                                         int tx, int ty) {
#pragma unroll
  for (int kk = 0; kk < GBK; ++kk) {
    A av[4], bv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
  }
}

// Forward (kDgrad false) / grad input: out[m, n] over rows = positions, cols = Cout resp. Cin.
// a: x resp. dy (gathered, Cg channels); b: w resp. WT, row-major [cols, K].
template <class T, bool kDgrad>
__global__ void __launch_bounds__(GT) generic_fwd_dgrad_kernel(Geo g, const T* __restrict__ a,
                                                               const T* __restrict__ b, T* __restrict__ out,
                                                               Epilogue e) {
  using A = acc_t<T>;
  __shared__ A As[GBK][GBM + 1];
  __shared__ A Bs[GBK][GBN + 1];
  const int Cg = kDgrad ? g.Co : g.Ci;        // channels of the gathered operand
  const int cols = kDgrad ? g.Ci : g.Co;      // output channels
  const int64_t rows = kDgrad ? g.in_pos() : g.out_pos();
  const int K = g.taps * Cg;
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int64_t m0 = int64_t(blockIdx.x) * GBM;
  const int n0 = blockIdx.y * GBN;
  // Loader mapping: row lr = t / 4 (fixed), k columns (t % 4) * 4 + e.
  const int lr = t / 4, lk = (t % 4) * 4;
  const Row row = make_row<kDgrad>(g, m0 + lr, rows);
  const int bn = n0 + lr;
  A acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += GBK) {
#pragma unroll
    for (int e4 = 0; e4 < 4; ++e4) {
      const int k = k0 + lk + e4;
      A va = A(0), vb = A(0);
      if (k < K) {
        const int tap = k / Cg, c = k - tap * Cg;
        int ka, kb, kc;
        split_tap(g, tap, ka, kb, kc);
        const int64_t pos = tap_pos<kDgrad>(g, row, ka, kb, kc);
        if (pos >= 0) va = A(Num<T>::load(a[pos * Cg + c]));
        if (bn < cols) vb = A(Num<T>::load(b[int64_t(bn) * K + k]));
      }
      As[lk + e4][lr] = va;
      Bs[lk + e4][lr] = vb;
    }
    __syncthreads();
    mac_tile(acc, As, Bs, tx, ty);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n < cols) epilogue_store(out, m * cols + n, n, acc[i][j], e);
    }
  }
}

// Grad weight partials: part[z][co, k] = sum over output positions r in split z
// of dy[r, co] * X(r, k). Tile: 64 co x 64 k, 16 positions per step.
template <class T, class A>
__global__ void __launch_bounds__(GT) generic_wgrad_kernel(Geo g, const T* __restrict__ x,
                                                           const T* __restrict__ dy, A* __restrict__ part,
                                                           int64_t steps_per_split) {
  __shared__ A As[GBK][GBM + 1];  // [r][co]
  __shared__ A Bs[GBK][GBN + 1];  // [r][k]
  const int K = g.taps * g.Ci;
  const int64_t R = g.out_pos();
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int co0 = blockIdx.y * GBM, kb0 = blockIdx.x * GBN;
  const int64_t r_begin = int64_t(blockIdx.z) * steps_per_split * GBK;
  const int64_t r_end = std::min<int64_t>(R, r_begin + steps_per_split * GBK);
  // Loader: position lr = t / 16 (fixed offset within the step), columns (t % 16) * 4 + e.
  const int lr = t / 16, lc = (t % 16) * 4;
  int ka[4], kb[4], kc[4], kcin[4];
  bool kval[4];
#pragma unroll
  for (int e4 = 0; e4 < 4; ++e4) {
    const int k = kb0 + lc + e4;
    kval[e4] = k < K;
    const int tap = kval[e4] ? k / g.Ci : 0;
    kcin[e4] = kval[e4] ? k - tap * g.Ci : 0;
    split_tap(g, tap, ka[e4], kb[e4], kc[e4]);
  }
  A acc[4][4] = {};
  for (int64_t r0 = r_begin; r0 < r_end; r0 += GBK) {
    const int64_t r = r0 + lr;
    const Row row = make_row<false>(g, r, r_end);
#pragma unroll
    for (int e4 = 0; e4 < 4; ++e4) {
      const int co = co0 + lc + e4;
      A va = A(0), vb = A(0);
      if (row.base >= 0 && co < g.Co) va = A(Num<T>::load(dy[r * g.Co + co]));
      if (kval[e4]) {
        const int64_t pos = tap_pos<false>(g, row, ka[e4], kb[e4], kc[e4]);
        if (pos >= 0) vb = A(Num<T>::load(x[pos * g.Ci + kcin[e4]]));
      }
      As[lr][lc + e4] = va;
      Bs[lr][lc + e4] = vb;
    }
    __syncthreads();
    mac_tile(acc, As, Bs, tx, ty);
    __syncthreads();
  }
  A* p = part + int64_t(blockIdx.z) * g.Co * K;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int co = co0 + ty + 16 * i;
    if (co >= g.Co) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = kb0 + tx + 16 * j;
      if (k < K) p[int64_t(co) * K + k] = acc[i][j];
    }
  }
}

template <class T>
__global__ void transpose_weight_kernel(Geo g, const T* __restrict__ w, T* __restrict__ wt) {
  // wt index = (c * taps + tap) * Co + co; w index = (co * taps + tap) * Ci + c.
  const int64_t n = int64_t(g.Co) * g.taps * g.Ci;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int co = int(i % g.Co);
    const int64_t rest = i / g.Co;
    const int tap = int(rest % g.taps);
    const int c = int(rest / g.taps);
    wt[i] = w[(int64_t(co) * g.taps + tap) * g.Ci + c];
  }
}

// part[z][co] = sum of dy[r, co] over the positions of chunk z. Block: 32
// channels x 8 position lanes; the 8 lane sums are combined in a fixed order.
template <class T, class A>
__global__ void bias_partials_kernel(Geo g, const T* __restrict__ dy, A* __restrict__ part, int64_t chunk) {
  __shared__ A s[8][33];
  const int cl = threadIdx.x % 32, rl = threadIdx.x / 32;
  const int co = blockIdx.x * 32 + cl;
  const int64_t R = g.out_pos();
  const int64_t r0 = int64_t(blockIdx.y) * chunk, r1 = std::min<int64_t>(R, r0 + chunk);
  A sum = A(0);
  if (co < g.Co)
    for (int64_t r = r0 + rl; r < r1; r += 8) sum += A(Num<T>::load(dy[r * g.Co + co]));
  s[rl][cl] = sum;
  __syncthreads();
  if (rl == 0 && co < g.Co) {
    A tot = A(0);
    for (int i = 0; i < 8; ++i) tot += s[i][cl];
    part[int64_t(blockIdx.y) * g.Co + co] = tot;
  }
}

template <class A, class O>
__global__ void finalize_kernel(const A* __restrict__ part, int splits, int64_t n, O* __restrict__ out,
                                bool accumulate) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    A v = accumulate ? A(Num<O>::load(out[i])) : A(0);
    for (int z = 0; z < splits; ++z) v += part[int64_t(z) * n + i];
    out[i] = Num<O>::store(v);
  }
}

}  // namespace

template <class T>
void launch_generic_fwd_dgrad(bool dgrad, const Geo& g, const T* a, const T* b, T* out, const Epilogue& e,
                              cudaStream_t st) {
  const int64_t rows = dgrad ? g.in_pos() : g.out_pos();
  const int cols = dgrad ? g.Ci : g.Co;
  const dim3 grid(unsigned((rows + GBM - 1) / GBM), unsigned((cols + GBN - 1) / GBN));
  DS_CHECK(grid.y <= 65535, "conv3d (CUDA): too many output channels for the generic kernel: ", cols);
  if (dgrad)
    generic_fwd_dgrad_kernel<T, true><<<grid, GT, 0, st>>>(g, a, b, out, e);
  else
    generic_fwd_dgrad_kernel<T, false><<<grid, GT, 0, st>>>(g, a, b, out, e);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T, class A>
void launch_generic_wgrad(const Geo& g, const T* x, const T* dy, A* part, int splits, cudaStream_t st) {
  const int K = g.taps * g.Ci;
  const int64_t steps = (g.out_pos() + GBK - 1) / GBK;
  const int64_t per = (steps + splits - 1) / splits;
  const dim3 grid(unsigned((K + GBN - 1) / GBN), unsigned((g.Co + GBM - 1) / GBM), unsigned(splits));
  DS_CHECK(grid.y <= 65535 && grid.z <= 65535, "conv3d (CUDA): grid too large for the generic grad-weight kernel");
  generic_wgrad_kernel<T, A><<<grid, GT, 0, st>>>(g, x, dy, part, per);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T>
void launch_transpose_weight(const Geo& g, const T* w, T* wt, cudaStream_t st) {
  const int64_t n = int64_t(g.Co) * g.taps * g.Ci;
  transpose_weight_kernel<T><<<grid_for(n), kThreads, 0, st>>>(g, w, wt);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T, class A>
void launch_bias_partials(const Geo& g, const T* dy, A* part, int splits, cudaStream_t st) {
  const int64_t R = g.out_pos();
  const int64_t chunk = (R + splits - 1) / splits;
  const dim3 grid(unsigned((g.Co + 31) / 32), unsigned(splits));
  bias_partials_kernel<T, A><<<grid, 256, 0, st>>>(g, dy, part, chunk);
  DS_CUDA_LAUNCH_CHECK();
}

template <class A, class O>
void launch_finalize(const A* part, int splits, int64_t n, O* out, bool accumulate, cudaStream_t st) {
  finalize_kernel<A, O><<<grid_for(n), kThreads, 0, st>>>(part, splits, n, out, accumulate);
  DS_CUDA_LAUNCH_CHECK();
}

int wgrad_splits(int64_t tiles_mn, int64_t reduction_steps, int64_t part_elems_per_split, int sms) {
  // Split count s minimising the run time relative to one split, waves(s) / s,
  // where waves(s) = ceil(tiles * s / slots) with slots = 2 blocks per SM: full
  // waves, no idle SMs in the last one. Ties go to the smaller s. Bounded by
  // the reduction length (one step per split at least), 256 splits and 2^26
  // float32 partial elements (256 MiB).
  const int64_t slots = 2 * int64_t(std::max(1, sms));
  const int64_t tiles = std::max<int64_t>(1, tiles_mn);
  int64_t cap = std::min<int64_t>(256, std::max<int64_t>(1, reduction_steps));
  cap = std::min<int64_t>(cap, std::max<int64_t>(1, (int64_t(1) << 26) / std::max<int64_t>(1, part_elems_per_split)));
  int64_t best_s = 1;
  double best = 1e30;
  for (int64_t sp = 1; sp <= cap; ++sp) {
    const double cost = double((tiles * sp + slots - 1) / slots) / double(sp);
    if (cost < best * (1 - 1e-9)) {
      best = cost;
      best_s = sp;
    }
  }
  return int(best_s);
}

#define DS_CONV_GENERIC_INST(T, A)                                                                              \
  template void launch_generic_fwd_dgrad<T>(bool, const Geo&, const T*, const T*, T*, const Epilogue&,       \
                                            cudaStream_t);                                                   \
  template void launch_generic_wgrad<T, A>(const Geo&, const T*, const T*, A*, int, cudaStream_t);           \
  template void launch_transpose_weight<T>(const Geo&, const T*, T*, cudaStream_t);                          \
  template void launch_bias_partials<T, A>(const Geo&, const T*, A*, int, cudaStream_t);                     \
  template void launch_finalize<A, T>(const A*, int, int64_t, T*, bool, cudaStream_t);
DS_CONV_GENERIC_INST(float, float)
DS_CONV_GENERIC_INST(double, double)
DS_CONV_GENERIC_INST(__half, float)
DS_CONV_GENERIC_INST(__nv_bfloat16, float)
#undef DS_CONV_GENERIC_INST

}  // namespace ds::convcuda
