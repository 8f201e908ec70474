// Cache-blocked, multi-threaded GEMM with pluggable packing (BLIS structure).
//
//   C[M, N] (+)= A[M, K] · B[K, N]
//
// The operands are never read directly by the compute kernel: a PackA object
// copies an (mc x kc) block of A into MR-row micro-panels (row-major: MR rows
// of kc contiguous values; the kernel broadcasts from the MR row streams) and
// a PackB object copies a (kc x nc) block of B into NR-column micro-panels
// (for each k, NR consecutive values). Because A panels keep A's rows intact,
// packing the channels-last im2col matrix is a plain copy, not a transpose. A convolution
// supplies packers that read the implicit im2col matrix straight from the
// input tensor, so no im2col buffer is ever materialised.
//
// Loop nest per thread (jc: NC over N, pc: KC over K, ic: MC over M, then the
// MR x NR micro-kernel over the packed block). Threads own disjoint tiles of C
// (a 2-D grid chosen for balance) or, when C has too few tiles and K is long,
// disjoint slices of K with per-thread partial sums that are reduced at the end.
//
// The micro-kernel is chosen at run time from simd_level(): AVX-512 8x32,
// AVX2+FMA 6x16, portable 4x8 (float); float64 uses a portable 4x8 kernel.
// The AVX-512 kernel also comes in a row-pointer form: where a PackA can point
// at the rows of an A panel in place (PackA::rows: explicit row-major
// matrices, and im2col blocks of one tap, e.g. Cin = 256), that panel is not
// packed at all (+3-5% on 3x3x3 256->256 forward and grad input).
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace ds::gemm {

template <class T>
using MicroFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int m, int n, bool accumulate);

// C tile (m <= MR rows, n <= NR columns, row stride ldc) = / += packed A panel · packed B panel
// (A panel: MR rows of kc values; B panel: kc groups of NR values).
// The same with row i of the A panel at rows[i] (mr pointers to kc values).
template <class T>
using MicroRowsFn = void (*)(int64_t kc, const T* const* rows, const T* b, T* c, int64_t ldc, int m, int n,
                             bool accumulate);

template <class T>
struct MicroKernel {
  int mr = 0, nr = 0;
  MicroFn<T> fn = nullptr;
  MicroRowsFn<T> rows_fn = nullptr;  // optional (AVX-512 float): lets PackA::rows skip packing
  const char* name = "";
};

// The kernel the current simd_level() selects.
template <class T>
MicroKernel<T> micro_kernel();

template <class T>
struct PackA {
  virtual ~PackA() = default;
  // Rows [i0, i0+mc), columns [k0, k0+kc) -> ceil(mc/mr) panels of mr*kc values
  // (panel p at dst + p*mr*kc; element (i, k) at [i*kc + k]); rows past mc are zero.
  virtual void pack(T* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr) const = 0;
  // Optional in-place access: when rows [i0, i0+m) (m <= mr), columns [k0,
  // k0+kc) of A are each kc contiguous values in memory (or all zero), set
  // rows[0..mr) to them (rows past m may point anywhere readable, e.g. at
  // zero_row(kc)) and return true; the kernel then reads A where it lies.
  // False (the default) means "pack this panel".
  virtual bool rows(const T** rows, int64_t i0, int m, int64_t k0, int64_t kc, int mr) const {
    (void)rows, (void)i0, (void)m, (void)k0, (void)kc, (void)mr;
    return false;
  }
};

template <class T>
struct PackB {
  virtual ~PackB() = default;
  // Rows [k0, k0+kc), columns [j0, j0+nc) -> ceil(nc/nr) panels of kc*nr values
  // (panel q at dst + q*kc*nr; element (k, j) at [k*nr + j]); columns past nc are zero.
  virtual void pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const = 0;
  // Optional: the block pack() would write for these arguments, already packed
  // in memory that stays valid for the whole gemm call; null (the default)
  // means "call pack()".
  virtual const T* packed(int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const {
    (void)j0, (void)nc, (void)k0, (void)kc, (void)nr;
    return nullptr;
  }
};

// ---- packers for explicit matrices ---------------------------------------
// A[i, k] = a[i*lda + k] (row-major), or a[k*lda + i] when trans.
template <class T>
struct MatrixA final : PackA<T> {
  const T* a;
  int64_t lda;
  bool trans;
  MatrixA(const T* a_, int64_t lda_, bool trans_ = false) : a(a_), lda(lda_), trans(trans_) {}
  void pack(T* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr) const override;
  bool rows(const T** rows, int64_t i0, int m, int64_t k0, int64_t kc, int mr) const override;  // unless trans
};

// B[k, j] = b[k*ldb + j] (row-major), or b[j*ldb + k] when trans.
template <class T>
struct MatrixB final : PackB<T> {
  const T* b;
  int64_t ldb;
  bool trans;
  MatrixB(const T* b_, int64_t ldb_, bool trans_ = false) : b(b_), ldb(ldb_), trans(trans_) {}
  void pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override;
};

// A row-major B[K, N] (b[k*ldb + j], or b[j*ldb + k] when trans) that is
// packed once, on the first gemm that uses it, into caller-provided storage
// of packed_floats(K, N) elements, and read in place by every later gemm (the
// Winograd convolution multiplies the same transformed weights with many
// chunks of tiles). Calls that do not match the first call's panel width and
// K blocking fall back to packing from the source. Thread-safe.
template <class T>
struct CachedMatrixB final : PackB<T> {
  CachedMatrixB(const T* b, int64_t ldb, bool trans, int64_t K, int64_t N, T* storage)
      : src_(b, ldb, trans), K_(K), N_(N), buf_(storage) {}
  static int64_t packed_floats(int64_t K, int64_t N) { return K * ((N + 31) / 32 * 32); }
  void pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override {
    src_.pack(dst, j0, nc, k0, kc, nr);
  }
  const T* packed(int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override;

 private:
  MatrixB<T> src_;
  int64_t K_, N_;
  T* buf_;
  mutable std::mutex mu_;
  mutable int nr_ = 0;       // panel width of the packed copy (0: not packed yet)
  mutable int64_t kb_ = 0;   // K block of the packed copy
};

// ---- pack helpers shared with the convolution packers ----------------------
// dst[k*w + i] = rows[i][k] for k < kc (rows[i] points at kc values; i < w):
// the transposing copy used to pack B from a column-major source.
template <class T>
void pack_rows_transposed(T* dst, const T* const* rows, int64_t kc, int w);

// A thread-local run of at least n zeros (stand-in source for padding rows).
// The pointer stays valid until the same thread asks for a longer run.
template <class T>
const T* zero_row(int64_t n);

// Temporary memory for the convolutions' intermediates (transposed output
// gradients, folded stem inputs, phase outputs), taken from a small
// process-wide cache of blocks and returned to it on destruction. The CPU
// allocator hands blocks over 1 MiB back to the system at once, so a fresh
// multi-MiB std::vector per call costs a page fault per 4 KiB (measured: as
// much as the arithmetic of the small layers). The cache keeps at most as many
// blocks as were ever in use at the same time, so memory stays bounded however
// many threads call in turn. Contents are undefined.
class ScratchBlock {
 public:
  ScratchBlock() = default;
  ~ScratchBlock() { release(); }
  ScratchBlock(const ScratchBlock&) = delete;
  ScratchBlock& operator=(const ScratchBlock&) = delete;
  // At least `count` elements, 64-byte aligned (replaces any earlier block).
  template <class T>
  T* get(size_t count) {
    acquire(count * sizeof(T));
    return static_cast<T*>(p_);
  }

 private:
  void acquire(size_t bytes);
  void release();
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// ---- the driver ------------------------------------------------------------
struct Blocking {
  int64_t mc = 0, kc = 0, nc = 0;  // 0: defaults for the kernel
};

// C = A·B (accumulate=false) or C += A·B. Uses up to num_threads() threads
// (serial when called from inside a parallel region).
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const PackA<T>& a, const PackB<T>& b, T* c, int64_t ldc, bool accumulate,
          Blocking blk = {});

// Plain matrices: C[M,N] (+)= op(A)·op(B), op(X) = X or X^T, row-major storage.
template <class T>
void gemm_matrix(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* a, int64_t lda, const T* b,
                 int64_t ldb, T* c, int64_t ldc, bool accumulate);

// Machine ceiling for benchmarks: GFLOP/s of a loop of independent FMA chains
// at the current simd_level() on `threads` threads (float32), measured for
// roughly `seconds`.
double peak_gflops(int threads, double seconds = 0.2);

}  // namespace ds::gemm
