// Faster SIMT implicit GEMMs ("simt128"): the float32 / float64 path and the
// 16-bit path for shapes the tensor-core kernels cannot take (channel counts
// not a multiple of 8). Same GEMM views and predicated scalar loads as the
// generic kernels (conv3d_cuda_generic.cu, kept as the simplest reference),
// but 128x128 block tiles with 8x8 outputs per thread (twice the FMAs per
// shared-memory load) and no divisions in the k loop: every thread walks its
// 8 consecutive k of a slice with a (channel, tap) counter.
//
// Block: 256 threads as 16 x 16 (tx: columns, ty: rows); thread (tx, ty)
// owns rows ty*8 + i and columns tx*8 + j. Shared tiles [16][128 + 4] in the
// accumulation type A; the +4 pad keeps rows 16-byte aligned (vector loads)
// and limits the transposing stores of the loader to 2-way bank conflicts.
#include <algorithm>

#include "ops/conv3d_cuda_common.cuh"

namespace ds::convcuda {
namespace {
using namespace ds::cuda;

constexpr int SB = 128, SK = 16, SP = SB + 4, ST = 256;

// (channel, tap) counter over k = tap * C + channel.
struct KWalk {
  int ch, a, b, c;
  __device__ __forceinline__ void next_tap(const Geo& g) {
    if (++c == g.K[2]) {
      c = 0;
      if (++b == g.K[1]) {
        b = 0;
        ++a;
      }
    }
  }
  __device__ __forceinline__ void add(const Geo& g, int C, int delta) {
    ch += delta;
    while (ch >= C) {
      ch -= C;
      next_tap(g);
    }
  }
};

// The 8x8 outer-product micro-kernel of both SIMT kernels: thread (ty, tx)
// accumulates rows ty*8.. of As times columns tx*8.. of Bs over one SK step.
template <class A>
__device__ __forceinline__ void zero_tile(A (&acc)[8][8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = A(0);
}
template <class A>
__device__ __forceinline__ void tile_fma(const A (&As)[SK][SP], const A (&Bs)[SK][SP], int ty, int tx,
                                         A (&acc)[8][8]) {
#pragma unroll 4
  for (int kk = 0; kk < SK; ++kk) {
    A av[8], bv[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) av[i] = As[kk][ty * 8 + i];
#pragma unroll
    for (int j = 0; j < 8; ++j) bv[j] = Bs[kk][tx * 8 + j];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] += av[i] * bv[j];
  }
}

// out[rows, cols] = A(rows, K) B(cols, K)^T; forward (A = x, B = w) or grad input (A = dy, B = WT).
template <class T, bool kDgrad>
__global__ void __launch_bounds__(ST) simt_fwd_dgrad_kernel(Geo g, const T* __restrict__ a, const T* __restrict__ b,
                                                            T* __restrict__ out, Epilogue e) {
  using A = acc_t<T>;
  __shared__ __align__(16) A As[SK][SP];  // [k][row]
  __shared__ __align__(16) A Bs[SK][SP];  // [k][col]
  const int Cg = kDgrad ? g.Co : g.Ci;
  const int cols = kDgrad ? g.Ci : g.Co;
  const int64_t rows = kDgrad ? g.in_pos() : g.out_pos();
  const int K = g.taps * Cg;
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int ntn = (cols + SB - 1) / SB;
  const int64_t m0 = int64_t(blockIdx.x / ntn) * SB;
  const int n0 = int(blockIdx.x % ntn) * SB;
  // Loader: row lr = t / 2 of both tiles, k = k0 + lk + e for e < 8.
  const int lr = t / 2, lk = (t % 2) * 8;
  const Row row = make_row<kDgrad>(g, m0 + lr, rows);
  const int bn = n0 + lr;
  KWalk kw{lk, 0, 0, 0};
  kw.add(g, Cg, 0);
  A acc[8][8];
  zero_tile(acc);
  for (int k0 = 0; k0 < K; k0 += SK) {
    KWalk w = kw;
#pragma unroll
    for (int e8 = 0; e8 < 8; ++e8) {
      const int k = k0 + lk + e8;
      A va = A(0), vb = A(0);
      if (k < K) {
        const int64_t pos = tap_pos<kDgrad>(g, row, w.a, w.b, w.c);
        if (pos >= 0) va = A(Num<T>::load(a[pos * Cg + w.ch]));
        if (bn < cols) vb = A(Num<T>::load(b[int64_t(bn) * K + k]));
      }
      As[lk + e8][lr] = va;
      Bs[lk + e8][lr] = vb;
      if (e8 < 7) w.add(g, Cg, 1);
    }
    kw.add(g, Cg, SK);
    __syncthreads();
    tile_fma(As, Bs, ty, tx, acc);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + ty * 8 + i;
    if (m >= rows) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int n = n0 + tx * 8 + j;
      if (n < cols) epilogue_store(out, m * cols + n, n, acc[i][j], e);
    }
  }
}

// part[z][co, k] = sum over the output positions r of split z of dy[r, co] X(r, k);
// tile 128 co x 128 k, 16 positions per step.
template <class T, class A>
__global__ void __launch_bounds__(ST) simt_wgrad_kernel(Geo g, const T* __restrict__ x, const T* __restrict__ dy,
                                                        A* __restrict__ part, int64_t steps_per_split) {
  __shared__ __align__(16) A As[SK][SP];  // [r][co]
  __shared__ __align__(16) A Bs[SK][SP];  // [r][k]
  const int K = g.taps * g.Ci;
  const int64_t R = g.out_pos();
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int kb0 = blockIdx.x * SB, co0 = blockIdx.y * SB;
  const int64_t r_begin = std::min<int64_t>(int64_t(blockIdx.z) * steps_per_split * SK, R);
  const int64_t r_end = std::min<int64_t>(R, r_begin + steps_per_split * SK);
  // Loader: position lr = t / 16 of the step, columns lc + e for e < 8.
  const int lr = t / 16, lc = (t % 16) * 8;
  KWalk k_start{kb0 + lc, 0, 0, 0};
  k_start.add(g, g.Ci, 0);
  A acc[8][8];
  zero_tile(acc);
  for (int64_t r0 = r_begin; r0 < r_end; r0 += SK) {
    const int64_t r = r0 + lr;
    const Row row = make_row<false>(g, r, r_end);
    KWalk w = k_start;
#pragma unroll
    for (int e8 = 0; e8 < 8; ++e8) {
      const int co = co0 + lc + e8, k = kb0 + lc + e8;
      A va = A(0), vb = A(0);
      if (row.base >= 0 && co < g.Co) va = A(Num<T>::load(dy[r * g.Co + co]));
      if (k < K) {
        const int64_t pos = tap_pos<false>(g, row, w.a, w.b, w.c);
        if (pos >= 0) vb = A(Num<T>::load(x[pos * g.Ci + w.ch]));
      }
      As[lr][lc + e8] = va;
      Bs[lr][lc + e8] = vb;
      if (e8 < 7) w.add(g, g.Ci, 1);
    }
    __syncthreads();
    tile_fma(As, Bs, ty, tx, acc);
    __syncthreads();
  }
  A* p = part + int64_t(blockIdx.z) * g.Co * K;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int co = co0 + ty * 8 + i;
    if (co >= g.Co) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int k = kb0 + tx * 8 + j;
      if (k < K) p[int64_t(co) * K + k] = acc[i][j];
    }
  }
}

}  // namespace

template <class T>
void launch_simt_fwd_dgrad(bool dgrad, const Geo& g, const T* a, const T* b, T* out, const Epilogue& e,
                           cudaStream_t st) {
  const int64_t rows = dgrad ? g.in_pos() : g.out_pos();
  const int cols = dgrad ? g.Ci : g.Co;
  const int64_t blocks = ((rows + SB - 1) / SB) * ((cols + SB - 1) / SB);
  DS_CHECK(blocks < (int64_t(1) << 31), "conv3d (CUDA): problem too large for one launch (", blocks, " tiles)");
  if (dgrad)
    simt_fwd_dgrad_kernel<T, true><<<unsigned(blocks), ST, 0, st>>>(g, a, b, out, e);
  else
    simt_fwd_dgrad_kernel<T, false><<<unsigned(blocks), ST, 0, st>>>(g, a, b, out, e);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T, class A>
void launch_simt_wgrad(const Geo& g, const T* x, const T* dy, A* part, int splits, cudaStream_t st) {
  const int K = g.taps * g.Ci;
  const int64_t steps = (g.out_pos() + SK - 1) / SK;
  const int64_t per = (steps + splits - 1) / splits;
  const dim3 grid(unsigned((K + SB - 1) / SB), unsigned((g.Co + SB - 1) / SB), unsigned(splits));
  DS_CHECK(grid.y <= 65535 && grid.z <= 65535, "conv3d (CUDA): grid too large for the SIMT grad-weight kernel");
  simt_wgrad_kernel<T, A><<<grid, ST, 0, st>>>(g, x, dy, part, per);
  DS_CUDA_LAUNCH_CHECK();
}

#define DS_CONV_SIMT_INST(T, A)                                                                                     \
  template void launch_simt_fwd_dgrad<T>(bool, const Geo&, const T*, const T*, T*, const Epilogue&, cudaStream_t); \
  template void launch_simt_wgrad<T, A>(const Geo&, const T*, const T*, A*, int, cudaStream_t);
DS_CONV_SIMT_INST(float, float)
DS_CONV_SIMT_INST(double, double)
DS_CONV_SIMT_INST(__half, float)
DS_CONV_SIMT_INST(__nv_bfloat16, float)
#undef DS_CONV_SIMT_INST

}  // namespace ds::convcuda
