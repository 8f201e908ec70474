// Tensor-core grad weight for conv3d (16-bit in, float32 accumulate):
//   dW[co, k] = sum_r dY[r, co] X(r, k)   (r: output positions, k = tap*Cin + c)
// split over r ("split-K"): block (k tile, co tile, split z) reduces its range
// of positions into part[z][co][k] (float32), and launch_finalize sums the
// splits in a fixed order (deterministic) into the gradient (16-bit or
// float32 master, with accumulate).
//
// Shared tiles are position-major ([BK positions][tile + 8]), exactly as the
// tensors are stored (channels contiguous), so cp.async copies 16-byte chunks
// and the fragments come from ldmatrix.trans. Row pitch (tile + 8) * 2 bytes
// is 4 words mod 32, so the 8 rows of an ldmatrix phase hit distinct banks.
// Requirements (checked by the caller): Cin % 8 == 0 and Cout % 8 == 0, sm_80+.
#include "ops/conv3d_cuda_common.cuh"

namespace ds::convcuda {
namespace {
using namespace ds::cuda;

constexpr int BK = 32;  // positions per pipeline stage

template <int BM, int BN, int WM, int WN, int STAGES>
struct WgShape {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int kWTM = BM / WM, kWTN = BN / WN;
  static constexpr int kMI = kWTM / 16, kNI = kWTN / 8;
  static constexpr int kLA = BM + 8, kLB = BN + 8;
  static constexpr int kCA = BK * BM / 8 / kThreads, kCB = BK * BN / 8 / kThreads;
  static constexpr int kSmem = STAGES * BK * (kLA + kLB) * 2;
  static_assert(kWTM % 16 == 0 && kWTN % 16 == 0, "warp tile must be a multiple of 16x16");
  static_assert((BK * BM / 8) % kThreads == 0 && (BK * BN / 8) % kThreads == 0, "chunk split");
};

// Output position (n, o0, o1, o2) that advances by a fixed step (divisions only on wrap).
struct PosState {
  int n, o[3];
  __device__ __forceinline__ void set(const Geo& g, int p) {
    o[2] = p % g.O[2];
    p /= g.O[2];
    o[1] = p % g.O[1];
    p /= g.O[1];
    o[0] = p % g.O[0];
    n = p / g.O[0];
  }
  __device__ __forceinline__ void advance(const Geo& g, int step) {
    o[2] += step;
    if (o[2] < g.O[2]) return;
    int q = o[2] / g.O[2];
    o[2] -= q * g.O[2];
    o[1] += q;
    if (o[1] < g.O[1]) return;
    q = o[1] / g.O[1];
    o[1] -= q * g.O[1];
    o[0] += q;
    if (o[0] < g.O[0]) return;
    q = o[0] / g.O[0];
    o[0] -= q * g.O[0];
    n += q;
  }
};

template <class T, int BM, int BN, int WM, int WN, int STAGES, bool kPw>
__global__ void __launch_bounds__(WM* WN * 32) tc_wgrad_kernel(Geo g, const T* __restrict__ x,
                                                               const T* __restrict__ dy, float* __restrict__ part,
                                                               int steps_per_split) {
#if DS_CUDA_TC_CODE
  using S = WgShape<BM, BN, WM, WN, STAGES>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* As = reinterpret_cast<T*>(smem_raw);  // [STAGES][BK][kLA]  dy: positions x co
  T* Bs = As + STAGES * BK * S::kLA;       // [STAGES][BK][kLB]  X:  positions x k
  const int K = g.taps * g.Ci;
  const int R = int(g.out_pos());
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const int k0 = blockIdx.x * BN, co0 = blockIdx.y * BM;
  const int r_begin = int(min(int64_t(blockIdx.z) * steps_per_split * BK, int64_t(R)));
  const int r_end = int(min(int64_t(r_begin) + int64_t(steps_per_split) * BK, int64_t(R)));
  const int KT = (r_end - r_begin + BK - 1) / BK;

  // B loader: chunk id = tid + i * threads -> (row id / (BN/8), column chunk id % (BN/8)).
  // The column (k, hence tap and channel) is fixed; the row advances by BK per stage.
  int koff[S::kCB][3], kcin[S::kCB], prow[S::kCB];
  bool kval[S::kCB];
  PosState ps[S::kCB];
#pragma unroll
  for (int i = 0; i < S::kCB; ++i) {
    const int id = tid + i * S::kThreads;
    const int k = k0 + (id % (BN / 8)) * 8;
    kval[i] = k < K;
    const int tap = kval[i] ? k / g.Ci : 0;
    kcin[i] = kval[i] ? k - tap * g.Ci : 0;
    int a, b, c;
    split_tap(g, tap, a, b, c);
    koff[i][0] = a * g.d[0] - g.p[0];
    koff[i][1] = b * g.d[1] - g.p[1];
    koff[i][2] = c * g.d[2] - g.p[2];
    prow[i] = r_begin + id / (BN / 8);
    ps[i].set(g, min(prow[i], R - 1));
  }

  auto load_tile = [&](int stage, int kt) {
    T* as = As + stage * BK * S::kLA;
    T* bs = Bs + stage * BK * S::kLB;
#pragma unroll
    for (int i = 0; i < S::kCA; ++i) {
      const int id = tid + i * S::kThreads, r = id / (BM / 8), q = id % (BM / 8);
      const int pos = r_begin + kt * BK + r, co = co0 + q * 8;
      const bool ok = pos < r_end && co < g.Co;
      cp_async16(smem_addr(as + r * S::kLA + q * 8), ok ? dy + int64_t(pos) * g.Co + co : dy, ok);
    }
#pragma unroll
    for (int i = 0; i < S::kCB; ++i) {
      const int id = tid + i * S::kThreads, r = id / (BN / 8), q = id % (BN / 8);
      bool ok = kval[i] && prow[i] < r_end;
      const T* src = x;
      if (ok) {
        if (kPw) {
          src = x + int64_t(prow[i]) * g.Ci + kcin[i];  // one tap: k == channel
        } else {
          const int i0 = ps[i].o[0] * g.s[0] + koff[i][0];
          const int i1 = ps[i].o[1] * g.s[1] + koff[i][1];
          const int i2 = ps[i].o[2] * g.s[2] + koff[i][2];
          ok = i0 >= 0 && i0 < g.D[0] && i1 >= 0 && i1 < g.D[1] && i2 >= 0 && i2 < g.D[2];
          if (ok) src = x + (((int64_t(ps[i].n) * g.D[0] + i0) * g.D[1] + i1) * g.D[2] + i2) * g.Ci + kcin[i];
        }
      }
      cp_async16(smem_addr(bs + r * S::kLB + q * 8), src, ok);
      // Next stage of this chunk: BK positions further.
      prow[i] += BK;
      if (!kPw && prow[i] < r_end) ps[i].advance(g, BK);
    }
  };

  float acc[S::kMI][S::kNI][4];
  zero_frags(acc);

  // Tiles are loaded strictly in order 0, 1, 2, ... (the B loader state advances per call).
  cp_async_prologue<STAGES>(KT, load_tile);
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int nk = kt + STAGES - 1;
    if (nk < KT) load_tile(nk % STAGES, nk);
    cp_async_commit();
    const T* as = As + (kt % STAGES) * BK * S::kLA;
    const T* bs = Bs + (kt % STAGES) * BK * S::kLB;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      unsigned af[S::kMI][4], bfr[S::kNI][2];
      const int mi = lane >> 3;
#pragma unroll
      for (int i = 0; i < S::kMI; ++i) {
        // matrices: (co 0-7, r 0-7), (co 8-15, r 0-7), (co 0-7, r 8-15), (co 8-15, r 8-15)
        const int r = ks * 16 + (lane & 7) + (mi >> 1) * 8;
        const int c = wm * S::kWTM + i * 16 + (mi & 1) * 8;
        ldsm_x4_t(af[i], smem_addr(as + r * S::kLA + c));
      }
#pragma unroll
      for (int j2 = 0; j2 < S::kNI / 2; ++j2) {
        // matrices: (r 0-7, n 0-7), (r 8-15, n 0-7), (r 0-7, n 8-15), (r 8-15, n 8-15)
        const int r = ks * 16 + (lane & 7) + (mi & 1) * 8;
        const int c = wn * S::kWTN + j2 * 16 + (mi >> 1) * 8;
        unsigned t4[4];
        ldsm_x4_t(t4, smem_addr(bs + r * S::kLB + c));
        split_b_x4(bfr, j2, t4);
      }
      mma_tile<T>(acc, af, bfr);
    }
  }
  cp_async_wait<0>();

  float* p = part + int64_t(blockIdx.z) * g.Co * K;
#pragma unroll
  for (int i = 0; i < S::kMI; ++i)
#pragma unroll
    for (int j = 0; j < S::kNI; ++j) {
      const int k = k0 + wn * S::kWTN + j * 8 + 2 * (lane & 3);  // even; K % 8 == 0, so k + 1 < K when k < K
      if (k >= K) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int co = co0 + wm * S::kWTM + i * 16 + (lane >> 2) + 8 * h;
        if (co < g.Co)
          *reinterpret_cast<float2*>(p + int64_t(co) * K + k) = make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
      }
    }
#else
  __trap();
#endif
}

template <class T, int BM, int BN, int WM, int WN, int STAGES>
int launch_wg(bool pw, const Geo& g, const T* x, const T* dy, float* part, int splits, cudaStream_t st) {
  using S = WgShape<BM, BN, WM, WN, STAGES>;
  auto kernel =
      pw ? tc_wgrad_kernel<T, BM, BN, WM, WN, STAGES, true> : tc_wgrad_kernel<T, BM, BN, WM, WN, STAGES, false>;
  DS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmem));
  const int K = g.taps * g.Ci;
  const int64_t steps = (g.out_pos() + BK - 1) / BK;
  const int per = int((steps + splits - 1) / splits);
  const dim3 grid(unsigned((K + BN - 1) / BN), unsigned((g.Co + BM - 1) / BM), unsigned(splits));
  DS_CHECK(grid.y <= 65535 && grid.z <= 65535, "conv3d (CUDA): grad-weight grid too large");
  kernel<<<grid, S::kThreads, S::kSmem, st>>>(g, x, dy, part, per);
  DS_CUDA_LAUNCH_CHECK();
  return splits;
}

}  // namespace

template <class T>
int launch_tc_wgrad(int cfg, bool pointwise, const Geo& g, const T* x, const T* dy, float* part, int splits,
                    cudaStream_t st) {
  switch (cfg) {
    case 0: return launch_wg<T, 128, 128, 2, 4, 4>(pointwise, g, x, dy, part, splits, st);
    case 1: return launch_wg<T, 128, 64, 4, 2, 4>(pointwise, g, x, dy, part, splits, st);
    case 2: return launch_wg<T, 64, 128, 2, 4, 4>(pointwise, g, x, dy, part, splits, st);
    case 3: return launch_wg<T, 64, 64, 2, 2, 4>(pointwise, g, x, dy, part, splits, st);
    default: DS_FAIL("internal: conv3d grad-weight config ", cfg, " does not exist");
  }
}

template int launch_tc_wgrad<__half>(int, bool, const Geo&, const __half*, const __half*, float*, int, cudaStream_t);
template int launch_tc_wgrad<__nv_bfloat16>(int, bool, const Geo&, const __nv_bfloat16*, const __nv_bfloat16*,
                                            float*, int, cudaStream_t);

}  // namespace ds::convcuda
