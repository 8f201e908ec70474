// Single-input-channel conv3d on tensor cores (the 7x7x7 stem, Cin = 1), 16-bit in,
// float32 accumulate. K = taps (343 for the stem) is small and not a multiple of
// 16, and 16-byte copies of one-channel rows are impossible, so instead of the
// cp.async pipeline both kernels build the implicit im2col tile directly in
// shared memory (2-element gathers through L1: neighbouring k are neighbouring
// input voxels along D3, so a warp's reads are nearly contiguous), zero-padded
// to a multiple of 16 (forward) or to kKP = 352 (grad weight), then run
// mma.sync m16n8k16 over it. Any stride / padding / dilation; taps <= 352.
//
//   forward:     block = 128 output positions x 64 output channels, the weight
//                tile [64][K] staged once per block, grid-stride over position tiles.
//   grad weight: block = (position range z, 64 output channels), 32 positions per
//                step, all K columns at once (acc 64 x 352 per block), float32
//                partials part[z][co][tap] summed by launch_finalize (deterministic).
// Shared pitch: 360 elements (720 bytes, 20 words mod 32 per row) keeps the 8
// row addresses of every ldmatrix phase on distinct banks; 72 for the dy tile.
#include <algorithm>

#include "ops/conv3d_cuda_common.cuh"

namespace ds::convcuda {
namespace {
using namespace ds::cuda;

constexpr int kKP = kStemMaxK;       // 352 = 22 * 16 = 11 * 32
constexpr int kLK = kKP + 8;         // 360
constexpr int kFBM = 128, kBN = 64;  // forward tile
constexpr int kWBR = 32, kLD = kBN + 8;
constexpr int kFwdSmem = (kFBM + kBN) * kLK * 2 + kKP * 3 * 4;
static_assert(kFwdSmem == kStemFwdSmem, "stem forward shared memory");
constexpr int kWgSmem = (kWBR * kLK + kWBR * kLD) * 2 + kKP * 3 * 4;

template <class T>
__device__ __forceinline__ T zero_val() {
  return Num<T>::store(0.f);
}

// Tap offsets toff[k] = (a*d0 - p0, b*d1 - p1, c*d2 - p2) for k < taps.
__device__ __forceinline__ void build_tap_table(const Geo& g, int* toff) {
  for (int k = threadIdx.x; k < g.taps; k += blockDim.x) {
    int a, b, c;
    split_tap(g, k, a, b, c);
    toff[3 * k] = a * g.d[0] - g.p[0];
    toff[3 * k + 1] = b * g.d[1] - g.p[1];
    toff[3 * k + 2] = c * g.d[2] - g.p[2];
  }
}

// Fills rows [0, nrows) of an im2col tile (pitch kLK, columns [0, kp)) for the
// output positions pos0 + row (< R); one warp per row, lanes over column pairs.
template <class T>
__device__ __forceinline__ void build_im2col(const Geo& g, const T* __restrict__ x, const int* toff, T* tile,
                                             int nrows, int64_t pos0, int64_t R, int kp) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const T z = zero_val<T>();
  for (int r = warp; r < nrows; r += nw) {
    const int64_t pos = pos0 + r;
    T* dst = tile + r * kLK;
    if (pos >= R) {
      for (int k = lane * 2; k < kp; k += 64) {
        dst[k] = z;
        dst[k + 1] = z;
      }
      continue;
    }
    int64_t t = pos;
    const int o2 = int(t % g.O[2]);
    t /= g.O[2];
    const int o1 = int(t % g.O[1]);
    t /= g.O[1];
    const int o0 = int(t % g.O[0]);
    const int64_t n = t / g.O[0];
    const int b0 = o0 * g.s[0], b1 = o1 * g.s[1], b2 = o2 * g.s[2];
    const T* xn = x + n * g.D[0] * g.D[1] * g.D[2];
    for (int k = lane * 2; k < kp; k += 64) {
      T v[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        v[h] = z;
        const int kk = k + h;
        if (kk < g.taps) {
          const int i0 = b0 + toff[3 * kk], i1 = b1 + toff[3 * kk + 1], i2 = b2 + toff[3 * kk + 2];
          if (i0 >= 0 && i0 < g.D[0] && i1 >= 0 && i1 < g.D[1] && i2 >= 0 && i2 < g.D[2])
            v[h] = xn[(int64_t(i0) * g.D[1] + i1) * g.D[2] + i2];
        }
      }
      dst[k] = v[0];
      dst[k + 1] = v[1];
    }
  }
}

// y[pos, co] for 128 positions x 64 channels per tile. Warps: 4 (positions) x 2 (channels), 32x32 each.
template <class T>
__global__ void __launch_bounds__(256) stem_fwd_kernel(Geo g, const T* __restrict__ x, const T* __restrict__ w,
                                                       T* __restrict__ y, Epilogue e) {
#if DS_CUDA_TC_CODE
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* As = reinterpret_cast<T*>(smem_raw);  // [kFBM][kLK]
  T* Bs = As + kFBM * kLK;                 // [kBN][kLK]
  int* toff = reinterpret_cast<int*>(Bs + kBN * kLK);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;
  const int kp = (g.taps + 15) / 16 * 16;
  const int co0 = blockIdx.y * kBN;
  const int64_t R = g.out_pos();
  const T z = zero_val<T>();
  build_tap_table(g, toff);
  for (int i = tid; i < kBN * kp; i += blockDim.x) {
    const int r = i / kp, k = i - r * kp, co = co0 + r;
    Bs[r * kLK + k] = (co < g.Co && k < g.taps) ? w[int64_t(co) * g.taps + k] : z;
  }
  const int64_t tiles = (R + kFBM - 1) / kFBM;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    __syncthreads();  // tap table / weights ready; previous tile's fragments consumed
    build_im2col(g, x, toff, As, kFBM, tile * kFBM, R, kp);
    __syncthreads();
    float acc[2][4][4];
    zero_frags(acc);
    for (int ks = 0; ks < kp / 16; ++ks) {
      unsigned af[2][4], bfr[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
        ldsm_x4(af[i], smem_addr(As + (wm * 32 + i * 16 + (lane & 15)) * kLK + ks * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int j2 = 0; j2 < 2; ++j2) {
        unsigned t4[4];
        ldsm_x4(t4, smem_addr(Bs + (wn * 32 + j2 * 16 + (lane & 7) + (lane >> 4) * 8) * kLK + ks * 16 +
                              ((lane >> 3) & 1) * 8));
        split_b_x4(bfr, j2, t4);
      }
      mma_tile<T>(acc, af, bfr);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        store_frag(y, acc[i][j], tile * kFBM + wm * 32 + i * 16, co0 + wn * 32 + j * 8, R, g.Co, e);
  }
#else
  __trap();
#endif
}

// part[z][co][tap] over the positions of split z. Warps: 2 (channels, 32 each) x 4 (taps, 88 = 11 n-tiles each).
template <class T>
__global__ void __launch_bounds__(256) stem_wgrad_kernel(Geo g, const T* __restrict__ x, const T* __restrict__ dy,
                                                         float* __restrict__ part, int64_t per_split) {
#if DS_CUDA_TC_CODE
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* Xs = reinterpret_cast<T*>(smem_raw);  // [kWBR][kLK]  positions x taps
  T* Ds = Xs + kWBR * kLK;                 // [kWBR][kLD]  positions x channels
  int* toff = reinterpret_cast<int*>(Ds + kWBR * kLD);
  constexpr int NI = kKP / 4 / 8;  // 11
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int co0 = blockIdx.y * kBN;
  const int64_t R = g.out_pos();
  const int64_t r_begin = std::min<int64_t>(int64_t(blockIdx.x) * per_split, R);
  const int64_t r_end = std::min<int64_t>(r_begin + per_split, R);
  const T z = zero_val<T>();
  build_tap_table(g, toff);
  float acc[2][NI][4];
  zero_frags(acc);
  for (int64_t r0 = r_begin; r0 < r_end; r0 += kWBR) {
    __syncthreads();  // tap table ready; previous step's tiles consumed
    build_im2col(g, x, toff, Xs, kWBR, r0, r_end, kKP);
    for (int i = tid; i < kWBR * kBN; i += blockDim.x) {
      const int r = i / kBN, c = i - r * kBN, co = co0 + c;
      const int64_t pos = r0 + r;
      Ds[r * kLD + c] = (pos < r_end && co < g.Co) ? dy[pos * g.Co + co] : z;
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kWBR / 16; ++ks) {
      const int mi = lane >> 3;
      unsigned af[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        // matrices (co 0-7, r 0-7), (co 8-15, r 0-7), (co 0-7, r 8-15), (co 8-15, r 8-15)
        const int r = ks * 16 + (lane & 7) + (mi >> 1) * 8;
        ldsm_x4_t(af[i], smem_addr(Ds + r * kLD + wm * 32 + i * 16 + (mi & 1) * 8));
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        // matrices (r 0-7, n 0-7), (r 8-15, n 0-7); lanes 16-31 repeat valid addresses
        const int r = ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        unsigned b0, b1;
        ldsm_x2_t(b0, b1, smem_addr(Xs + r * kLK + wn * (NI * 8) + j * 8));
#pragma unroll
        for (int i = 0; i < 2; ++i) mma16816<T>(acc[i][j], af[i], b0, b1);
      }
    }
  }
  float* p = part + int64_t(blockIdx.x) * g.Co * g.taps;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const int co = co0 + wm * 32 + i * 16 + (lane >> 2) + 8 * (v >> 1);
        const int k = wn * (NI * 8) + j * 8 + 2 * (lane & 3) + (v & 1);
        if (co < g.Co && k < g.taps) p[int64_t(co) * g.taps + k] = acc[i][j][v];
      }
#else
  __trap();
#endif
}

int sm_count(cudaStream_t) {
  int dev = 0, sms = 0;
  DS_CUDA_CHECK(cudaGetDevice(&dev));
  DS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

}  // namespace

template <class T>
void launch_stem_fwd(const Geo& g, const T* x, const T* w, T* y, const Epilogue& e, cudaStream_t st) {
  DS_CHECK(g.Ci == 1 && g.taps <= kKP, "internal: stem kernel needs Cin == 1 and <= ", kKP, " taps");
  DS_CUDA_CHECK(cudaFuncSetAttribute(stem_fwd_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, kFwdSmem));
  const int64_t tiles = (g.out_pos() + kFBM - 1) / kFBM;
  const dim3 grid(unsigned(std::min<int64_t>(tiles, sm_count(st))), unsigned((g.Co + kBN - 1) / kBN));
  DS_CHECK(grid.y <= 65535, "conv3d (CUDA): too many output channels for the stem kernel: ", g.Co);
  stem_fwd_kernel<T><<<grid, 256, kFwdSmem, st>>>(g, x, w, y, e);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T>
void launch_stem_wgrad(const Geo& g, const T* x, const T* dy, float* part, int splits, cudaStream_t st) {
  DS_CHECK(g.Ci == 1 && g.taps <= kKP, "internal: stem kernel needs Cin == 1 and <= ", kKP, " taps");
  DS_CUDA_CHECK(cudaFuncSetAttribute(stem_wgrad_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgSmem));
  const int64_t R = g.out_pos();
  // Positions per split: a multiple of the 32-position step.
  const int64_t per = ((R + splits - 1) / splits + kWBR - 1) / kWBR * kWBR;
  const dim3 grid(unsigned(splits), unsigned((g.Co + kBN - 1) / kBN));
  DS_CHECK(grid.y <= 65535, "conv3d (CUDA): too many output channels for the stem kernel: ", g.Co);
  stem_wgrad_kernel<T><<<grid, 256, kWgSmem, st>>>(g, x, dy, part, per);
  DS_CUDA_LAUNCH_CHECK();
}

template void launch_stem_fwd<__half>(const Geo&, const __half*, const __half*, __half*, const Epilogue&, cudaStream_t);
template void launch_stem_fwd<__nv_bfloat16>(const Geo&, const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*,
                                             const Epilogue&, cudaStream_t);
template void launch_stem_wgrad<__half>(const Geo&, const __half*, const __half*, float*, int, cudaStream_t);
template void launch_stem_wgrad<__nv_bfloat16>(const Geo&, const __nv_bfloat16*, const __nv_bfloat16*, float*, int,
                                               cudaStream_t);

}  // namespace ds::convcuda
