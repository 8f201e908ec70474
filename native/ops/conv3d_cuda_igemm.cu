// Tensor-core implicit GEMM for conv3d forward and grad input (16-bit in,
// float32 accumulate): mma.sync m16n8k16 fed by ldmatrix from shared tiles
// that a STAGES-deep cp.async pipeline fills (16-byte chunks, zero-filled
// where the implicit im2col has padding / no stride phase / tails).
//
// Requirements (checked by the caller): the gathered operand's channel count
// (Cin forward, Cout grad input) is a multiple of 8, so an 8-element chunk
// never crosses a tap and is 16-byte aligned; K = taps * channels is then a
// multiple of 8 as well, which aligns the B rows. sm_80 or newer.
//
// Shared tiles are [rows][BK + 8] 16-bit elements: the 80-byte row pitch puts
// the 8 rows an ldmatrix phase reads (16 bytes each) on 8 distinct 4-bank
// groups (row r starts at word 20r mod 32), so both the cp.async stores and
// the ldmatrix loads are bank-conflict free.
#include "ops/conv3d_cuda_common.cuh"

namespace ds::convcuda {

const TcConfig kTcConfigs[kNumTcConfigs] = {{"128x128", 128, 128}, {"128x64", 128, 64}, {"64x128", 64, 128},
                                            {"64x64", 64, 64}};

namespace {
using namespace ds::cuda;

constexpr int BK = 32, LDS = BK + 8;

template <int BM, int BN, int WM, int WN, int STAGES>
struct TcShape {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int kWTM = BM / WM, kWTN = BN / WN;
  static constexpr int kMI = kWTM / 16, kNI = kWTN / 8;
  static constexpr int kCA = BM * 4 / kThreads, kCB = BN * 4 / kThreads;  // 16-byte chunks per thread
  static constexpr int kSmem = STAGES * (BM + BN) * LDS * 2;
  // Launch bounds: the 128x128 tile asks for 2 blocks per SM (<= 128 registers,
  // 16 warps to hide latency); the smaller tiles get all the registers they want.
  static_assert(kWTM % 16 == 0 && kWTN % 16 == 0, "warp tile must be a multiple of 16x16");
  static_assert((BM * 4) % kThreads == 0 && (BN * 4) % kThreads == 0, "chunk split");
};

// out[rows, cols] = A(rows, K) * B(cols, K)^T. Forward: A = gathered x (Cg = Cin),
// B = w [Cout, K], out = y. Grad input: A = gathered dy (Cg = Cout), B = WT [Cin, K], out = dx.
// kPw: 1x1x1 stride-1 unpadded forward / grad input: A is the tensor itself, [rows, K].
// kPhase (grad input, strides > 1): rows are the input positions of one stride
// phase `ph` (see Phase), k runs over that phase's taps only, and row r of the
// GEMM is written to the input position it stands for.
template <class T, int BM, int BN, int WM, int WN, int STAGES, bool kDgrad, bool kPw, bool kPhase>
__global__ void __launch_bounds__(WM* WN * 32, (BM * BN >= 128 * 128) ? 2 : 1)
    tc_fwd_dgrad_kernel(Geo g, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, Epilogue e,
                        Phase ph) {
#if DS_CUDA_TC_CODE
  using S = TcShape<BM, BN, WM, WN, STAGES>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* As = reinterpret_cast<T*>(smem_raw);                 // [STAGES][BM][LDS]
  T* Bs = As + STAGES * BM * LDS;                         // [STAGES][BN][LDS]
  __shared__ int s_tk[3][kPhaseMaxK];  // the phase's taps per axis (kPhase)
  const int Cg = kDgrad ? g.Co : g.Ci;
  const int cols = kDgrad ? g.Ci : g.Co;
  const int64_t rows =
      kPhase ? int64_t(g.N) * ph.E[0] * ph.E[1] * ph.E[2] : (kDgrad ? g.in_pos() : g.out_pos());
  const int Kfull = g.taps * Cg;  // row length of B
  const int K = kPhase ? ph.nt[0] * ph.nt[1] * ph.nt[2] * Cg : Kfull;
  const int KT = (K + BK - 1) / BK;
  if (kPhase) {
    if (threadIdx.x < 3 * kPhaseMaxK) s_tk[threadIdx.x / kPhaseMaxK][threadIdx.x % kPhaseMaxK] =
        ph.tk[threadIdx.x / kPhaseMaxK][threadIdx.x % kPhaseMaxK];
    __syncthreads();
  }
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  // 1-D grid, column tiles fastest: the blocks sharing an A (activation) tile
  // run together, so A comes from DRAM about once; B (weights) stays in L2.
  const int ntn = (cols + BN - 1) / BN;
  const int64_t m0 = int64_t(blockIdx.x / ntn) * BM;
  const int n0 = int(blockIdx.x % ntn) * BN;

  // Per-thread loader state: chunk id = tid + i * threads -> (row id / 4, k chunk id % 4).
  Row rowA[S::kCA];
#pragma unroll
  for (int i = 0; i < S::kCA; ++i) {
    const int64_t m = m0 + ((tid + i * S::kThreads) >> 2);
    if (kPw) {
      rowA[i].base = m < rows ? int(m) : -1;
    } else if (kPhase) {
      rowA[i] = make_row_phase(g, ph, m, rows);
    } else {
      rowA[i] = make_row<kDgrad>(g, m, rows);
    }
  }

  // The k chunk of every A copy of this thread is kt*BK + (tid & 3)*8 (threads
  // is a multiple of 4), so one (tap, channel) state serves all of them; it
  // advances by BK per load_tile call, which happens for kt = 0, 1, 2, ... in
  // order, replacing per-chunk divisions by a rare carry.
  // kPhase: ka, kb, kc index the phase's tap lists instead of the kernel.
  int kch = (tid & 3) * 8, ka = 0, kb = 0, kc = 0;
  auto next_tap = [&]() {
    if (++kc == (kPhase ? ph.nt[2] : g.K[2])) {
      kc = 0;
      if (++kb == (kPhase ? ph.nt[1] : g.K[1])) {
        kb = 0;
        ++ka;
      }
    }
  };
  if (!kPw)
    while (kch >= Cg) {
      kch -= Cg;
      next_tap();
    }

  auto load_tile = [&](int stage, int kt) {
    T* as = As + stage * BM * LDS;
    T* bs = Bs + stage * BN * LDS;
#pragma unroll
    for (int i = 0; i < S::kCA; ++i) {
      const int id = tid + i * S::kThreads, r = id >> 2, q = id & 3;
      const int k = kt * BK + q * 8;
      const T* src = a;
      bool ok = false;
      if (k < K && rowA[i].base >= 0) {
        if (kPw) {
          src = a + int64_t(rowA[i].base) * Cg + k;
          ok = true;
        } else {
          const int64_t pos = kPhase ? tap_pos<true>(g, rowA[i], s_tk[0][ka], s_tk[1][kb], s_tk[2][kc])
                                     : tap_pos<kDgrad>(g, rowA[i], ka, kb, kc);
          if (pos >= 0) {
            src = a + pos * Cg + kch;
            ok = true;
          }
        }
      }
      cp_async16(smem_addr(as + r * LDS + q * 8), src, ok);
    }
#pragma unroll
    for (int i = 0; i < S::kCB; ++i) {
      const int id = tid + i * S::kThreads, r = id >> 2, q = id & 3;
      const int k = kt * BK + q * 8;
      const int n = n0 + r;
      const bool ok = k < K && n < cols;
      const T* src = b;
      if (ok) {
        // B column: k itself, or (kPhase) the tap the walk stands at.
        const int col = kPhase ? ((s_tk[0][ka] * g.K[1] + s_tk[1][kb]) * g.K[2] + s_tk[2][kc]) * Cg + kch : k;
        src = b + int64_t(n) * Kfull + col;
      }
      cp_async16(smem_addr(bs + r * LDS + q * 8), src, ok);
    }
    if (!kPw) {
      kch += BK;
      while (kch >= Cg) {
        kch -= Cg;
        next_tap();
      }
    }
  };

  float acc[S::kMI][S::kNI][4];
  zero_frags(acc);

  cp_async_prologue<STAGES>(KT, load_tile);
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();  // tile kt has landed (this thread's copies) ...
    __syncthreads();              // ... everyone's, and stage (kt-1)%STAGES is free
    const int nk = kt + STAGES - 1;
    if (nk < KT) load_tile(nk % STAGES, nk);
    cp_async_commit();
    const T* as = As + (kt % STAGES) * BM * LDS;
    const T* bs = Bs + (kt % STAGES) * BN * LDS;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      unsigned af[S::kMI][4], bfr[S::kNI][2];
#pragma unroll
      for (int i = 0; i < S::kMI; ++i) {
        const int r = wm * S::kWTM + i * 16 + (lane & 15);
        const int c = ks * 16 + (lane >> 4) * 8;
        ldsm_x4(af[i], smem_addr(as + r * LDS + c));
      }
#pragma unroll
      for (int j2 = 0; j2 < S::kNI / 2; ++j2) {
        const int r = wn * S::kWTN + j2 * 16 + (lane & 7) + (lane >> 4) * 8;
        const int c = ks * 16 + ((lane >> 3) & 1) * 8;
        unsigned t4[4];
        ldsm_x4(t4, smem_addr(bs + r * LDS + c));
        split_b_x4(bfr, j2, t4);
      }
      mma_tile<T>(acc, af, bfr);
    }
  }
  cp_async_wait<0>();

  if (kPhase) {
    // GEMM row -> the input position it stands for.
#pragma unroll
    for (int i = 0; i < S::kMI; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + wm * S::kWTM + i * 16 + (lane >> 2) + 8 * h;
        if (m >= rows) continue;
        const int64_t orow = phase_row_to_input(g, ph, int(m));
#pragma unroll
        for (int j = 0; j < S::kNI; ++j) {
          const int col = n0 + wn * S::kWTN + j * 8 + 2 * (lane & 3);
          if (col < cols) epilogue_store(out, orow * cols + col, col, acc[i][j][2 * h], e);
          if (col + 1 < cols) epilogue_store(out, orow * cols + col + 1, col + 1, acc[i][j][2 * h + 1], e);
        }
      }
  } else {
#pragma unroll
    for (int i = 0; i < S::kMI; ++i)
#pragma unroll
      for (int j = 0; j < S::kNI; ++j)
        store_frag(out, acc[i][j], m0 + wm * S::kWTM + i * 16, n0 + wn * S::kWTN + j * 8, rows, cols, e);
  }
#else
  __trap();
#endif
}

template <class T, int BM, int BN, int WM, int WN, int STAGES, bool kDgrad, bool kPw, bool kPhase>
void launch_one(const Geo& g, const T* a, const T* b, T* out, const Epilogue& e, cudaStream_t st, const Phase& ph) {
  using S = TcShape<BM, BN, WM, WN, STAGES>;
  auto kernel = tc_fwd_dgrad_kernel<T, BM, BN, WM, WN, STAGES, kDgrad, kPw, kPhase>;
  DS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmem));
  const int64_t rows =
      kPhase ? int64_t(g.N) * ph.E[0] * ph.E[1] * ph.E[2] : (kDgrad ? g.in_pos() : g.out_pos());
  const int cols = kDgrad ? g.Ci : g.Co;
  const int64_t blocks = ((rows + BM - 1) / BM) * ((cols + BN - 1) / BN);
  if (blocks == 0) return;
  DS_CHECK(blocks < (int64_t(1) << 31), "conv3d (CUDA): problem too large for one launch (", blocks, " tiles)");
  kernel<<<unsigned(blocks), S::kThreads, S::kSmem, st>>>(g, a, b, out, e, ph);
  DS_CUDA_LAUNCH_CHECK();
}

template <class T, int BM, int BN, int WM, int WN, int STAGES>
void launch_modes(bool dgrad, bool pw, const Geo& g, const T* a, const T* b, T* out, const Epilogue& e,
                  cudaStream_t st, const Phase* phase) {
  const Phase none{};
  if (phase) {
    DS_CHECK(dgrad && !pw, "internal: conv3d stride phases are for grad input only");
    launch_one<T, BM, BN, WM, WN, STAGES, true, false, true>(g, a, b, out, e, st, *phase);
  } else if (dgrad) {
    if (pw)
      launch_one<T, BM, BN, WM, WN, STAGES, true, true, false>(g, a, b, out, e, st, none);
    else
      launch_one<T, BM, BN, WM, WN, STAGES, true, false, false>(g, a, b, out, e, st, none);
  } else {
    if (pw)
      launch_one<T, BM, BN, WM, WN, STAGES, false, true, false>(g, a, b, out, e, st, none);
    else
      launch_one<T, BM, BN, WM, WN, STAGES, false, false, false>(g, a, b, out, e, st, none);
  }
}

}  // namespace

template <class T>
void launch_tc_fwd_dgrad(int cfg, bool dgrad, bool pointwise, const Geo& g, const T* a, const T* b, T* out,
                         const Epilogue& e, cudaStream_t st, const Phase* ph) {
  switch (cfg) {
    case 0: launch_modes<T, 128, 128, 2, 4, 4>(dgrad, pointwise, g, a, b, out, e, st, ph); return;
    case 1: launch_modes<T, 128, 64, 4, 2, 4>(dgrad, pointwise, g, a, b, out, e, st, ph); return;
    case 2: launch_modes<T, 64, 128, 2, 4, 4>(dgrad, pointwise, g, a, b, out, e, st, ph); return;
    case 3: launch_modes<T, 64, 64, 2, 2, 4>(dgrad, pointwise, g, a, b, out, e, st, ph); return;
    default: DS_FAIL("internal: conv3d tensor-core config ", cfg, " does not exist");
  }
}

template void launch_tc_fwd_dgrad<__half>(int, bool, bool, const Geo&, const __half*, const __half*, __half*,
                                          const Epilogue&, cudaStream_t, const Phase*);
template void launch_tc_fwd_dgrad<__nv_bfloat16>(int, bool, bool, const Geo&, const __nv_bfloat16*,
                                                 const __nv_bfloat16*, __nv_bfloat16*, const Epilogue&, cudaStream_t,
                                                 const Phase*);

}  // namespace ds::convcuda
