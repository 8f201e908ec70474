// GEMM driver (blocking, threading), portable micro-kernels and the explicit
// matrix packers. See gemm.h for the structure.
//
// Blocking: KC = 256 (an 8x256 A panel is 8 KiB and a 256x32 B panel 32 KiB:
// together they fit the 48 KiB L1), MC = 192 rows (a 192x256 A block is 192
// KiB, in the 2 MiB L2), NC = 768 (the 256x768 B block, 768 KiB, and a
// 192x768 C tile, 576 KiB, stay in L2 next to the A block: NC = 3072 made
// the weight gradient of 256->256 layers ~15% slower). When the packed B for a
// thread's column range and the whole K is small (<= 6 MiB: the weights of
// every conv layer but 3x3x3 256->256) B is packed once and the loop order
// becomes ic -> pc, so each C tile stays in cache for the whole reduction.
// Threads: a 2-D grid of C tiles minimising compute + packing per thread, or
// a split of K with a final reduction when C has fewer than 2 tiles per thread.
// Measured on the development machine (2-core AVX-512 VM, shared): large
// GEMMs at 65-70% of the FMA-loop peak; 3x3x3 256->256 convolutions at 70-72%
// (forward, grad input) and 64% (grad weight) per CPU-second, where the
// kernel alone reaches 83%; see benchmarks/conv3d.js. Tried without gain:
// other MC/KC/NC (96..384 / 128..512 / 256..3072), B packed once and shared
// by the threads (slower: the B block then comes from L3, not from the L2 of
// the thread that packed it).
#include "ops/gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/gemm_kernels.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ds::gemm {
namespace {

// ---- portable micro-kernel (float and double) --------------------------------
template <class T, int MR, int NR>
void micro_portable(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int m, int n, bool acc) {
  T r[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i * kc + k];
      for (int j = 0; j < NR; ++j) r[i][j] += ai * b[j];
    }
    b += NR;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + r[i][j] : r[i][j];
}

// ---- per-thread packing buffers (grow only; threads of the pool persist) ----
struct Buffer {
  void* p = nullptr;
  size_t bytes = 0;
  ~Buffer() { std::free(p); }
  template <class T>
  T* get(size_t count) {
    size_t need = (count * sizeof(T) + 63) / 64 * 64;
    if (need > bytes) {
      std::free(p);
      p = std::aligned_alloc(64, need);
      DS_CHECK(p != nullptr, "gemm: out of memory allocating a ", need, "-byte packing buffer");
      bytes = need;
    }
    return static_cast<T*>(p);
  }
};
thread_local Buffer t_abuf, t_bbuf, t_partial, t_arows;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

template <class T>
const T* zero_row(int64_t n) {
  thread_local std::vector<T> z;
  if (int64_t(z.size()) < n) z.assign(size_t(n), T(0));
  return z.data();
}

// ---- scratch blocks -------------------------------------------------------------
namespace {
struct ScratchCache {
  std::mutex mu;
  std::vector<std::pair<void*, size_t>> free;  // idle blocks
};
ScratchCache& scratch_cache() {
  static ScratchCache* c = new ScratchCache;  // never destroyed: safe during thread teardown at exit
  return *c;
}
}  // namespace

void ScratchBlock::acquire(size_t bytes) {
  release();
  bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  ScratchCache& c = scratch_cache();
  void* drop = nullptr;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    // Smallest idle block that fits; otherwise the largest idle block is too
    // small for this caller and is replaced, so the count of blocks stays put.
    size_t best = c.free.size(), largest = c.free.size();
    for (size_t i = 0; i < c.free.size(); ++i) {
      if (c.free[i].second >= bytes && (best == c.free.size() || c.free[i].second < c.free[best].second)) best = i;
      if (largest == c.free.size() || c.free[i].second > c.free[largest].second) largest = i;
    }
    const size_t pick = best < c.free.size() ? best : largest;
    if (pick < c.free.size()) {
      if (best < c.free.size()) {
        p_ = c.free[pick].first;
        bytes_ = c.free[pick].second;
      } else {
        drop = c.free[pick].first;
      }
      c.free.erase(c.free.begin() + std::ptrdiff_t(pick));
    }
  }
  std::free(drop);
  if (!p_) {
    // Blocks of several MiB (the Winograd transforms' V, M and weights) are
    // read and written as 64-144 interleaved streams, one 4 KiB page each:
    // on 4 KiB pages nearly every access misses the L1 TLB. They are 2 MiB
    // aligned and, on Linux, marked for transparent huge pages (which this
    // kernel setting only gives to regions that ask: THP "madvise" mode).
    // Measured (loaded 2-core VM, CPU time): 3x3x3 256->256 24^3 Winograd
    // layers 8-10% faster; the 96x96x48 training step ~9% less CPU.
    constexpr size_t kHuge = size_t(2) << 20;
    const bool huge = bytes >= 2 * kHuge;
    if (huge) bytes = (bytes + kHuge - 1) / kHuge * kHuge;
    p_ = std::aligned_alloc(huge ? kHuge : 64, bytes);
    DS_CHECK(p_ != nullptr, "conv3d: out of host memory allocating a ", bytes, "-byte temporary buffer");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(p_, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
    bytes_ = bytes;
  }
}

void ScratchBlock::release() {
  if (!p_) return;
  ScratchCache& c = scratch_cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.free.emplace_back(p_, bytes_);
  }
  p_ = nullptr;
  bytes_ = 0;
}

// ---- kernel selection -------------------------------------------------------
template <>
MicroKernel<float> micro_kernel<float>() {
#if defined(DETSEG3D_HAVE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::AVX512:
      return {detail::kMrAvx512, detail::kNrAvx512, detail::micro_avx512_f32, detail::micro_avx512_f32_rows,
              "avx512 8x32"};
    case SimdLevel::AVX2: return {detail::kMrAvx2, detail::kNrAvx2, detail::micro_avx2_f32, nullptr, "avx2 6x16"};
    default: break;
  }
#endif
  return {4, 8, micro_portable<float, 4, 8>, nullptr, "portable 4x8"};
}

template <>
MicroKernel<double> micro_kernel<double>() {
  return {4, 8, micro_portable<double, 4, 8>, nullptr, "portable 4x8 (f64)"};
}

// ---- pack helpers -----------------------------------------------------------
namespace {
template <class T, int W>
void prt_fixed(T* dst, const T* const* rows, int64_t kc) {
  const T* r[W];
  for (int i = 0; i < W; ++i) r[i] = rows[i];
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4)
    for (int kk = 0; kk < 4; ++kk)
      for (int i = 0; i < W; ++i) dst[(k + kk) * W + i] = r[i][k + kk];
  for (; k < kc; ++k)
    for (int i = 0; i < W; ++i) dst[k * W + i] = r[i][k];
}
}  // namespace

template <class T>
void pack_rows_transposed(T* dst, const T* const* rows, int64_t kc, int w) {
#if defined(DETSEG3D_HAVE_X86_SIMD)
  if constexpr (std::is_same_v<T, float>) {
    if ((w == 8 || w == 16 || w == 32) && kc >= 16 && simd_level() == SimdLevel::AVX512) {
      detail::pack_rows_transposed_avx512(dst, rows, kc, w);
      return;
    }
  }
#endif
  switch (w) {
    case 4: prt_fixed<T, 4>(dst, rows, kc); return;
    case 6: prt_fixed<T, 6>(dst, rows, kc); return;
    case 8: prt_fixed<T, 8>(dst, rows, kc); return;
    case 16: prt_fixed<T, 16>(dst, rows, kc); return;
    case 32: prt_fixed<T, 32>(dst, rows, kc); return;
    default:
      for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < w; ++i) dst[k * w + i] = rows[i][k];
  }
}

// Packs `count` (<= w) strided rows (row r at base + r*ld, kc contiguous values) transposed.
template <class T>
static void pack_strided_rows(T* dst, const T* base, int64_t ld, int count, int64_t kc, int w) {
  const T* rows[64];
  const T* z = zero_row<T>(kc);
  for (int i = 0; i < w; ++i) rows[i] = i < count ? base + i * ld : z;
  pack_rows_transposed(dst, rows, kc, w);
}

// Copies `count` (<= w) contiguous values per k (row k at base + k*ld), zero-padding to w.
template <class T>
static void pack_contiguous(T* dst, const T* base, int64_t ld, int count, int64_t kc, int w) {
  if (count == w) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * w, base + k * ld, sizeof(T) * size_t(w));
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * w;
      const T* s = base + k * ld;
      for (int i = 0; i < count; ++i) d[i] = s[i];
      for (int i = count; i < w; ++i) d[i] = T(0);
    }
  }
}

template <class T>
void MatrixA<T>::pack(T* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr) const {
  for (int64_t p = 0; p * mr < mc; ++p) {
    const int cnt = int(std::min<int64_t>(mr, mc - p * mr));
    const int64_t i = i0 + p * mr;
    T* d = dst + p * mr * kc;
    if (trans) {  // row r of the panel is column (i + r) of the stored matrix
#if defined(DETSEG3D_HAVE_X86_SIMD)
      if constexpr (std::is_same_v<T, float>) {
        if (mr == 8 && cnt == 8 && simd_level() == SimdLevel::AVX512) {
          detail::pack_a_trans8_avx512(d, a + k0 * lda + i, lda, kc);
          continue;
        }
      }
#endif
      for (int r = 0; r < cnt; ++r) {
        const T* src = a + k0 * lda + i + r;
        T* dr = d + r * kc;
        for (int64_t k = 0; k < kc; ++k) dr[k] = src[k * lda];
      }
    } else {
      for (int r = 0; r < cnt; ++r) std::memcpy(d + r * kc, a + (i + r) * lda + k0, sizeof(T) * size_t(kc));
    }
    if (cnt < mr) std::fill(d + cnt * kc, d + mr * kc, T(0));
  }
}

template <class T>
bool MatrixA<T>::rows(const T** rows, int64_t i0, int m, int64_t k0, int64_t kc, int mr) const {
  if (trans) return false;
  const T* zeros = zero_row<T>(kc);
  for (int i = 0; i < mr; ++i) rows[i] = i < m ? a + (i0 + i) * lda + k0 : zeros;
  return true;
}

template <class T>
void MatrixB<T>::pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const {
  for (int64_t q = 0; q * nr < nc; ++q) {
    const int cnt = int(std::min<int64_t>(nr, nc - q * nr));
    const int64_t j = j0 + q * nr;
    T* d = dst + q * nr * kc;
    if (trans)
      pack_strided_rows(d, b + j * ldb + k0, ldb, cnt, kc, nr);
    else
      pack_contiguous(d, b + k0 * ldb + j, ldb, cnt, kc, nr);
  }
}

template <class T>
const T* CachedMatrixB<T>::packed(int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const {
  if (32 % nr != 0) return nullptr;  // storage is sized for panel widths dividing 32
  std::lock_guard<std::mutex> lk(mu_);
  if (nr_ == 0) {
    if (k0 != 0 || kc <= 0) return nullptr;  // the first K block tells the blocking
    const int64_t npad = (N_ + nr - 1) / nr * nr;
    for (int64_t pc = 0; pc < K_; pc += kc) src_.pack(buf_ + pc * npad, 0, N_, pc, std::min(kc, K_ - pc), nr);
    nr_ = nr;
    kb_ = kc;
  }
  if (nr != nr_ || k0 % kb_ != 0 || kc != std::min(kb_, K_ - k0) || j0 % nr != 0 || j0 + nc > N_ ||
      (j0 + nc != N_ && nc % nr != 0))
    return nullptr;
  const int64_t npad = (N_ + nr - 1) / nr * nr;
  return buf_ + k0 * npad + j0 * kc;
}

// ---- driver -------------------------------------------------------------------
namespace {

template <class T>
struct Ctx {
  int64_t M, N, K;
  const PackA<T>* a;
  const PackB<T>* b;
  MicroKernel<T> uk;
  int64_t mc, kc, nc;
};

// Computes C[m0:m1, n0:n1] (+)= A[m0:m1, k0:k1] · B[k0:k1, n0:n1] on the calling thread.
template <class T>
void gemm_tile(const Ctx<T>& x, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, T* c,
               int64_t ldc, bool acc) {
  if (m1 <= m0 || n1 <= n0) return;
  const int mr = x.uk.mr, nr = x.uk.nr;
  if (k1 <= k0) {
    if (!acc)
      for (int64_t i = m0; i < m1; ++i) std::fill(c + i * ldc + n0, c + i * ldc + n1, T(0));
    return;
  }
  const int64_t ncols = n1 - n0, npanels = ceil_div(ncols, nr);
  const int64_t kblocks = ceil_div(k1 - k0, x.kc);
  T* abuf = t_abuf.get<T>(size_t(x.mc + mr) * size_t(x.kc));
  // With a row-pointer kernel, A panels that PackA::rows can point at in
  // place are not packed (only the others are, into their slot of abuf).
  const T** arows = x.uk.rows_fn ? t_arows.get<const T*>(size_t(x.mc + mr)) : nullptr;
  auto pack_a = [&](int64_t ic, int64_t mc, int64_t pc, int64_t kc) {
    if (!arows) {
      x.a->pack(abuf, ic, mc, pc, kc, mr);
      return;
    }
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int m = int(std::min<int64_t>(mr, mc - ir));
      const T** r = arows + ir;
      if (x.a->rows(r, ic + ir, m, pc, kc, mr)) continue;
      T* dst = abuf + ir * kc;
      x.a->pack(dst, ic + ir, m, pc, kc, mr);
      for (int i = 0; i < mr; ++i) r[i] = dst + i * kc;
    }
  };
  auto macro = [&](const T* ap, const T* bp, int64_t ic, int64_t mc, int64_t jc, int64_t nc, int64_t kc, bool a) {
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int n = int(std::min<int64_t>(nr, nc - jr));
      const T* bpan = bp + (jr / nr) * nr * kc;
      for (int64_t ir = 0; ir < mc; ir += mr) {
        const int m = int(std::min<int64_t>(mr, mc - ir));
        T* ct = c + (ic + ir) * ldc + jc + jr;
        if (arows)
          x.uk.rows_fn(kc, arows + ir, bpan, ct, ldc, m, n, a);
        else
          x.uk.fn(kc, ap + (ir / mr) * mr * kc, bpan, ct, ldc, m, n, a);
      }
    }
  };
  const size_t bfull = size_t(npanels) * size_t(nr) * size_t(k1 - k0);
  if (bfull * sizeof(T) <= (size_t(6) << 20)) {
    // B-resident order: pack B[k0:k1, n0:n1] once, then ic -> pc.
    // B blocks packed in advance by the PackB (CachedMatrixB) are read in place.
    constexpr int64_t kMaxPre = 64;
    const T* bblk[kMaxPre];
    bool pre = kblocks <= kMaxPre;
    for (int64_t pb = 0; pre && pb < kblocks; ++pb) {
      const int64_t pc = k0 + pb * x.kc, kc = std::min(x.kc, k1 - pc);
      bblk[pb] = x.b->packed(n0, ncols, pc, kc, nr);
      pre = bblk[pb] != nullptr;
    }
    T* bbuf = pre ? nullptr : t_bbuf.get<T>(bfull);
    for (int64_t pb = 0; !pre && pb < kblocks; ++pb) {
      const int64_t pc = k0 + pb * x.kc, kc = std::min(x.kc, k1 - pc);
      x.b->pack(bbuf + size_t(pb * x.kc) * size_t(npanels * nr), n0, ncols, pc, kc, nr);
    }
    auto bblock = [&](int64_t pb) { return pre ? bblk[pb] : bbuf + size_t(pb * x.kc) * size_t(npanels * nr); };
    for (int64_t ic = m0; ic < m1; ic += x.mc) {
      const int64_t mc = std::min(x.mc, m1 - ic);
      for (int64_t pb = 0; pb < kblocks; ++pb) {
        const int64_t pc = k0 + pb * x.kc, kc = std::min(x.kc, k1 - pc);
        pack_a(ic, mc, pc, kc);
        macro(abuf, bblock(pb), ic, mc, n0, ncols, kc, acc || pb > 0);
      }
    }
    return;
  }
  T* bbuf = t_bbuf.get<T>(size_t(ceil_div(x.nc, nr) * nr) * size_t(x.kc));
  for (int64_t jc = n0; jc < n1; jc += x.nc) {
    const int64_t nc = std::min(x.nc, n1 - jc);
    for (int64_t pc = k0; pc < k1; pc += x.kc) {
      const int64_t kc = std::min(x.kc, k1 - pc);
      x.b->pack(bbuf, jc, nc, pc, kc, nr);
      for (int64_t ic = m0; ic < m1; ic += x.mc) {
        const int64_t mc = std::min(x.mc, m1 - ic);
        pack_a(ic, mc, pc, kc);
        macro(abuf, bbuf, ic, mc, jc, nc, kc, acc || pc > k0);
      }
    }
  }
}

// Splits `units` into `parts` near-equal contiguous ranges; returns range `i`.
inline void split(int64_t units, int parts, int i, int64_t* b, int64_t* e) {
  *b = units * i / parts;
  *e = units * (i + 1) / parts;
}

}  // namespace

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const PackA<T>& a, const PackB<T>& b, T* c, int64_t ldc, bool accumulate,
          Blocking blk) {
  DS_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  Ctx<T> x{M, N, K, &a, &b, micro_kernel<T>(), 0, 0, 0};
  const int mr = x.uk.mr, nr = x.uk.nr;
  x.kc = blk.kc > 0 ? blk.kc : 256;
  x.mc = std::max<int64_t>(mr, (blk.mc > 0 ? blk.mc : 192) / mr * mr);
  x.nc = std::max<int64_t>(nr, (blk.nc > 0 ? blk.nc : 768) / nr * nr);
  const int nt = in_parallel_region() ? 1 : std::max(1, num_threads());
  const int64_t mp = ceil_div(M, mr), np = ceil_div(N, nr);
  if (nt == 1 || (M * N * std::max<int64_t>(K, 1) < 32 * 32 * 64)) {
    gemm_tile(x, 0, M, 0, N, 0, K, c, ldc, accumulate);
    return;
  }
  // Few C tiles but a long reduction: split K, reduce per-thread partial sums.
  const int64_t kblocks = ceil_div(K, x.kc);
  if (mp * np < 2 * int64_t(nt) && kblocks >= 2) {
    const int nk = int(std::min<int64_t>(nt, kblocks));
    T* partial = t_partial.get<T>(size_t(nk - 1) * size_t(M) * size_t(N));
    parallel_run(nk, [&](int tid, int n) {
      int64_t kb, ke;
      split(kblocks, n, tid, &kb, &ke);
      const int64_t k0 = kb * x.kc, k1 = std::min(K, ke * x.kc);
      if (tid == 0)
        gemm_tile(x, 0, M, 0, N, k0, k1, c, ldc, accumulate);
      else
        gemm_tile(x, 0, M, 0, N, k0, k1, partial + size_t(tid - 1) * size_t(M * N), N, false);
    });
    parallel_for(0, M, std::max<int64_t>(1, 4096 / N), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int t = 0; t < nk - 1; ++t) {
          const T* p = partial + size_t(t) * size_t(M * N) + size_t(i * N);
          T* ci = c + i * ldc;
          for (int64_t j = 0; j < N; ++j) ci[j] += p[j];
        }
    });
    return;
  }
  // 2-D grid of C tiles: minimise per-thread compute plus packing (a packed
  // element costs about as much as 16 multiply-adds).
  int best_tm = 1;
  double best = 1e300;
  for (int tm = 1; tm <= nt; ++tm) {
    if (nt % tm) continue;
    const int tn = nt / tm;
    const double rm = double(ceil_div(mp, tm) * mr), rn = double(ceil_div(np, tn) * nr);
    const double cost = rm * rn + 16.0 * (rm + rn);
    if (cost < best) best = cost, best_tm = tm;
  }
  const int tm = best_tm, tn = nt / tm;
  parallel_run(nt, [&](int tid, int) {
    int64_t pb, pe, qb, qe;
    split(mp, tm, tid % tm, &pb, &pe);
    split(np, tn, tid / tm, &qb, &qe);
    gemm_tile(x, pb * mr, std::min(M, pe * mr), qb * nr, std::min(N, qe * nr), 0, K, c, ldc, accumulate);
  });
}

template <class T>
void gemm_matrix(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* a, int64_t lda, const T* b,
                 int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  MatrixA<T> pa(a, lda, trans_a);
  MatrixB<T> pb(b, ldb, trans_b);
  gemm<T>(M, N, K, pa, pb, c, ldc, accumulate);
}

double peak_gflops(int threads, double seconds) {
  threads = std::max(1, std::min(threads, num_threads()));
  const SimdLevel lvl = simd_level();
  auto loop = [lvl](int64_t iters) -> double {
#if defined(DETSEG3D_HAVE_X86_SIMD)
    if (lvl == SimdLevel::AVX512) return detail::fma_loop_avx512(iters);
    if (lvl == SimdLevel::AVX2) return detail::fma_loop_avx2(iters);
#endif
    // Portable: 8 independent scalar chains.
    float acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int64_t i = 0; i < iters; ++i)
      for (int j = 0; j < 8; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
    volatile float sink = acc[0] + acc[7];
    (void)sink;
    return double(iters) * 16;
  };
  using clk = std::chrono::steady_clock;
  loop(200000);  // warm up (frequency ramp)
  const auto t0 = clk::now();
  double flops0 = loop(1000000);
  const double dt0 = std::chrono::duration<double>(clk::now() - t0).count();
  const int64_t iters = std::max<int64_t>(100000, int64_t(1000000 * seconds / std::max(dt0, 1e-6)));
  (void)flops0;
  std::vector<double> flops(size_t(threads), 0.0);
  const auto t1 = clk::now();
  parallel_run(threads, [&](int tid, int) { flops[size_t(tid)] = loop(iters); });
  const double dt = std::chrono::duration<double>(clk::now() - t1).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / dt / 1e9;
}

#define DS_GEMM_INSTANTIATE(T)                                                                                   \
  template void pack_rows_transposed<T>(T*, const T* const*, int64_t, int);                                     \
  template const T* zero_row<T>(int64_t);                                                                        \
  template struct MatrixA<T>;                                                                                    \
  template struct MatrixB<T>;                                                                                    \
  template struct CachedMatrixB<T>;                                                                              \
  template void gemm<T>(int64_t, int64_t, int64_t, const PackA<T>&, const PackB<T>&, T*, int64_t, bool, Blocking); \
  template void gemm_matrix<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*,    \
                               int64_t, bool);
DS_GEMM_INSTANTIATE(float)
DS_GEMM_INSTANTIATE(double)

}  // namespace ds::gemm
