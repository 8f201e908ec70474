// Winograd convolution for the network's dominant layers (float32, 3x3x3,
// stride 1, dilation 1, >= 64 channels in and out), with two tile shapes:
// F(2,3)^3 (described first) and the mixed F(2,3) x F(4,3) x F(4,3) (below).
//
// Design. The output is cut into 2x2x2 tiles; tile t reads the 4x4x4 input
// window starting at 2t - pad (reads outside the input are zeros, so any
// padding <= 2 and odd sizes work; outputs past O are not written). In the
// transformed domain a tile's 2x2x2 x Cout outputs come from 64 independent
// element-wise products summed over channels, so with the tiles as rows:
//   V[xi] = (B^T d B)[xi]  [tiles x Cin]     input transform (per tile, channel vectors)
//   U[xi] = (G g G^T)[xi]  [Cin x Cout]      weight transform (recomputed every call)
//   M[xi] = V[xi] . U[xi]  [tiles x Cout]    64 GEMMs on the existing gemm::gemm_matrix
//   y     = A^T m A (+ bias, or += y)        output transform, masked to O
// with the standard F(2,3) matrices
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]
// applied separably along the three axes. The 64 GEMMs do 64 Cin Cout
// multiply-adds per tile of 8 outputs instead of 27 * 8 Cin Cout: 3.375x fewer.
// Tiles are processed in chunks of at most 128 (at 256 channels) so that V and
// M stay at 8 MiB each (gemm::ScratchBlock, no page faults per call); within a
// chunk each thread runs whole GEMMs for its share of the 64 frequencies.
// Grad input (stride 1) is the same correlation on dy with padding 2 - pad and
// the weights mirrored in space and transposed ([Cin, k, Cout]); the weight
// transform reads them that way directly. Grad weight is the adjoint:
//   dU[xi] = sum over tiles of (A dy_t A^T)[xi]^T . (B^T x_t B)[xi]   [Cout x Cin]
//   dW     = G^T dU G                                                  (per co, ci)
// i.e. 64 GEMMs reducing over tiles, accumulated chunk by chunk.
// Transforms are vectorised over channels (channels-last) in
// conv3d_winograd_tx.h, compiled per ISA. Every output element is produced by
// one thread in a fixed order, and each frequency's GEMM runs serially on one
// thread, so results are bit-identical for any thread count.
//
// Accuracy (float32 inputs in [-1, 1], max |error| / max |float64 reference|,
// AVX-512, 2 threads; GEMM path in brackets):
//   256->256, 8^3 pad 1:   forward 6.0e-7 (3.7e-7), grad input 7.2e-7 (3.2e-7), grad weight 4.9e-7 (5.7e-7)
//   256->256, 7x6x5 pad 0: forward 5.6e-7 (3.3e-7), grad input 7.2e-7 (3.5e-7), grad weight 3.1e-7 (3.7e-7)
// i.e. up to ~2x the GEMM path's rounding error, far inside the suite's 2e-5.
// Speed (2-core AVX-512 VM, 2 threads, best of 3, ms, GEMM path / Winograd; 3x3x3 s1 p1):
//   256->256   8^3:  fwd 5.9/4.9   dx 5.8/4.3   dw 7.8/5.5
//   256->256  12^3:  fwd 18.4/10.3 dx 18.9/10.5 dw 21.5/11.9
//   256->256  16^3:  fwd 42.2/21.6 dx 42.4/21.5 dw 47.3/25.9    (~1.9-2.0x)
//   256->256  24^3:  fwd 139/66    dx 141/66    dw 151/78       (~1.9-2.1x)
//   256->256   6^3:  fwd 2.9/3.4   dx 2.9/3.1                   (loses: below the threshold)
//   64->64    16^3:  fwd 3.3/2.5   dx 3.3/2.4   dw 3.7/3.0;  8^3: ~1.0x (below the threshold)
//   128->128  16^3:  fwd 11.9/7.6  dx 12.1/7.1  dw 12.9/9.5
//   AVX2 level, 256->256 16^3: fwd 78/38 dx 79/39 dw 91/42
// (npm run bench -- winograd reproduces these.) At 24^3 the GEMMs run at
// ~300 GFLOP/s (70% of peak; the kernel's own ceiling on a 128 x 256 x 256
// product in cache is ~75%) and take ~70% of the time; the transforms take
// the rest (memory-bound: per channel a tile has 64 values in V and in M for
// 8 positions of x and y). Tried and dropped (no measurable gain): computing
// V inside the GEMM's A packing (8 signed loads per value, no V buffer), and a
// tile-major V/M layout. Training step of the seed network (npm run bench --
// train-step, same session, GEMM path -> Winograd): 64x64x32 1.72-1.83 ->
// 1.11-1.16 s, 96x96x48 5.73-5.75 -> 3.43-3.47 s.
//
// Mixed tiles F(2,3) x F(4,3) x F(4,3) (conv3d_winograd_f4_tx.h): 2 x 4 x 4
// outputs per tile from a 4 x 6 x 6 window, 144 frequencies, i.e. 4.5
// multiplies per output and channel pair instead of 8; the same chunked
// transform / 144 GEMMs / inverse-transform structure (grad weight too).
// Used automatically when the pass's output spans >= 16 positions along D2
// and D3 (the detector's 24^3 level at 96x96x48 and 16^3 at 64x64x32), F(2,3)
// tiles below; DETSEG3D_WINOGRAD_TILE=2 / 4 forces one shape. F(4,3) on all
// three axes would need 3.4 multiplies but its float32 error (1-5e-5 relative
// at 256 channels, 30-100x the GEMM path) was too large; on two axes, with the
// points 0, -1, 1, 1/2, -2, inf, the error is (same measure as above):
//   256->256 8^3 pad 1:   forward 4.5e-6, grad input 4.8e-6, grad weight 1.1e-6
//   256->256 7x6x5 pad 0: forward 3.3e-6, grad input 3.9e-6, grad weight 1.5e-6
//   128->128 6x13x11:     forward 4.0e-6, grad input 3.2e-6, grad weight 2.3e-6
// ~7x the F(2,3) tiles' and ~10-13x the GEMM path's, 4x inside the suite's 2e-5.
// Speed (CPU ms for both threads, AVX-512, pad 1, F(2,3) -> mixed tiles, same
// process; the shared 2-core VM was loaded (load 3-8), ratios varied by ~0.1):
//   256->256 24^3: fwd 176/152 (1.1-1.4x)  dx 176/150 (1.1-1.4x)  dw 163/130 (1.25-1.45x)
//   256->256 16^3: fwd 59/56 (1.05x)  dx 61/57 (1.08x)  dw 58/47 (1.23x)
//   256->256 12^3: 0.9-1.0x;  8^3: 0.5-0.7x (too few tiles per GEMM; not used there)
//   64->64   24^3: fwd 1.39x  dx 1.35x  dw 1.27x
// The weight transform runs per group of 36 frequencies (same first index),
// each group packed for the GEMMs at once, so scratch holds a quarter of U
// (9.4 MB at 256 channels) next to the packed copy (38 MB). Tried: a full U
// packed lazily by the GEMM threads (as F(2,3) does) was within noise (~3%)
// of this and needed 28 MB more; writing the transforms straight into the
// packed layout was ~15% slower (scattered stores into 38 MB); 2x larger grad
// weight chunks ran ~10% faster but cost 16-30 MB of scratch.
// Training step of the seed network (benchmarks/train-step.js's model, CPU
// seconds of both threads per step, loaded VM (load 3-6), previous code ->
// mixed tiles, alternating runs): 96x96x48 7.0-7.5 -> 6.1-6.6 (-8 to -16%),
// and with the scratch blocks on huge pages too (gemm.cpp) 7.5-8.1 -> 5.8-6.5
// (-20 to -22%); 64x64x32 2.42-2.47 -> 2.17-2.22 (-8 to -12%). Peak RSS
// 905 -> 920 MB and 514 -> 535 MB.
//
// Weight reuse (WeightCache, conv3d.h's Conv3dWeightReuse scope; the RetinaNet
// heads run each tower conv on 3 pyramid levels): the transformed, packed
// weights of a (weight, tile shape, pass) are kept for the scope, so they are
// computed once per layer and pass instead of once per level (bit-identical
// results for the same tile shape). The weight transform alone costs ~7 ms
// for the mixed tiles and ~2 ms for F(2,3) at 256 channels (forced Winograd
// on a 2^3 input). Inside a scope a smaller level whose weights are cached as
// mixed tiles takes them too (and the size threshold drops to 2^14), e.g. at
// 96x96x48 the 12^3 and 6^3 levels: fwd 13.1 ms (F(2,3)) / 3.3 ms (GEMM) ->
// ~6 / ~1 ms with the mixed tiles minus the transform. Their rounding is then
// the mixed tiles' (see above; within the suite's 2e-5). Training step
// 96x96x48 (2 threads, alternating runs, with conv3d_narrow.h's path):
// 2.99-3.26 s -> 2.83-3.13 s, paired median -0.13 s (~4 %).
#include "ops/conv3d_winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/conv3d_winograd_kernels.h"
#include "ops/gemm.h"

namespace ds::winograd {

namespace {

using detail::Kernels;
using detail::KernelsF4;
using detail::TileGeo;

enum class Mode { Off, Auto, Force };

Mode env_mode() {
  const char* e = std::getenv("DETSEG3D_WINOGRAD");
  if (!e) return Mode::Auto;
  if (std::strcmp(e, "0") == 0) return Mode::Off;
  if (std::strcmp(e, "1") == 0) return Mode::Force;
  return Mode::Auto;
}

const Kernels* kernels() {
#if defined(DETSEG3D_HAVE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::AVX512:
      return &detail::kernels_avx512();
    case SimdLevel::AVX2:
      return &detail::kernels_avx2();
    default:
      return nullptr;
  }
#else
  return nullptr;
#endif
}

bool shape_ok(const Problem& pr) {
  for (int i = 0; i < 3; ++i)
    if (pr.K[i] != 3 || pr.stride[i] != 1 || pr.dilation[i] != 1 || pr.pad[i] < 0 || pr.pad[i] > 2) return false;
  return pr.Ci >= 64 && pr.Co >= 64;
}

// Automatic mode: the pass's output positions x min(Cin, Cout) must reach this
// (measured crossover: 256 channels win from 8^3 positions on, lose at 6^3;
// 64 channels break even at 8^3 and win from 16^3 on).
constexpr int64_t kMinWork = int64_t(1) << 17;
// With the transformed weights shared by several problems (a WeightCache):
// the per-call weight transform (~2 ms for F(2,3) at 256 channels) is paid
// once, and 256 channels win from 4^3 positions on (see the header).
constexpr int64_t kMinWorkCached = int64_t(1) << 14;

// Upper bound on the floats of one chunk's V (or M): 2 Mi (8 MiB; 128 tiles
// at 256 channels). Measured at 24^3 256->256: 1/2/4/8 Mi floats -> 78/70/72/78 ms
// (bigger chunks fall out of cache between the transforms and the GEMMs).
constexpr int64_t kChunkFloats = int64_t(1) << 21;

// Padding between the frequency planes of V and M (floats). A plane is
// nb * C floats, at 256 channels a multiple of 4 KiB, so without padding the
// 64-144 loads or stores of one tile's transform (one per plane, same offset)
// all fall into one L1 set and evict each other; one 64-byte line of padding
// spreads them over the sets. Measured: 24^3 256->256 layers 0-10% less CPU
// (noisy, loaded VM; never slower).
constexpr int64_t kPlanePad = 16;

// The transform kernels of one tile shape: F(2,3)^3 (nf = 64, tile 2x2x2) or
// the mixed F(2,3) x F(4,3)^2 (nf = 144, tile 2x4x4). The F(2,3) weight
// transform computes all 64 frequencies at once (weight); the mixed one a
// group of 36 at a time (weight_group, group i0 < 4: frequencies 36 i0 + j).
struct TileKernels {
  int64_t nf;        // frequencies per tile
  int64_t tile[3];   // outputs per tile along each axis
  decltype(Kernels::input) input;
  decltype(Kernels::output) output;
  decltype(Kernels::weight) weight;              // null for the mixed tiles
  decltype(KernelsF4::weight) weight_group;      // null for F(2,3)
  decltype(Kernels::output_adjoint) output_adjoint;
  decltype(Kernels::weight_adjoint) weight_adjoint;
};

TileKernels f2_kernels(const Kernels& k) {
  return {64, {2, 2, 2}, k.input, k.output, k.weight, nullptr, k.output_adjoint, k.weight_adjoint};
}

// Mixed tiles: 144 frequencies, chunks of the same floats as F(2,3) (56 tiles
// at 256 channels; measured at 24^3 256->256: 0.5x / 1x / 2x that chunk ran at
// the same speed within noise for forward and grad input, grad weight ~10%
// faster with 2x, but 2x needs 16-30 MB more scratch).
const KernelsF4* kernels_f4() {
#if defined(DETSEG3D_HAVE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::AVX512:
      return &detail::kernels_f4_avx512();
    case SimdLevel::AVX2:
      return &detail::kernels_f4_avx2();
    default:
      return nullptr;
  }
#else
  return nullptr;
#endif
}

TileKernels f4_kernels(const KernelsF4& k) {
  return {144, {2, 4, 4}, k.input, k.output, nullptr, k.weight, k.output_adjoint, k.weight_adjoint};
}

// gemm.cpp's default K block (gemm::gemm's Blocking{}.kc): eagerly packed
// weights are packed in that blocking, the one the GEMMs below ask for.
constexpr int64_t kGemmKC = 256;

// The B operands of the per-frequency GEMMs ([K x N] = [g.C x g.Co]) for
// weights w [Co, 3, 3, 3, Ci]: the forward's B[k = ci][j = co] (u_trans) or
// grad input's B[k = co][j = ci] from the flipped taps (flip).
//  - F(2,3): all 64 U[xi][co][ci] in `ubuf`; with one chunk of tiles the
//    GEMMs pack from U as usual, with several each U is packed once, by the
//    thread of its first GEMM (CachedMatrixB), and read in place afterwards
//    (re-packing it per chunk cost ~5 % of a step).
//  - mixed tiles: U is computed 36 frequencies at a time into `ubuf` and
//    each group is packed at once, so only a quarter of U (9.4 MB at 256
//    channels) exists next to the packed copy (38 MB).
// A frequency's eagerly packed weights (mixed tiles): serves the packed block
// the GEMM asks for; the source U has been overwritten by then, so a request
// in any other blocking is an internal error, reported rather than computed
// from stale data.
struct PrepackedB final : gemm::PackB<float> {
  std::unique_ptr<gemm::CachedMatrixB<float>> c;
  explicit PrepackedB(std::unique_ptr<gemm::CachedMatrixB<float>> c_) : c(std::move(c_)) {}
  const float* packed(int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override {
    return c->packed(j0, nc, k0, kc, nr);
  }
  void pack(float*, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override {
    DS_FAIL("winograd: the GEMM asked for transformed weights in an unexpected blocking (columns ", j0, "+", nc,
            ", rows ", k0, "+", kc, ", panel ", nr, "); internal error, please report it");
  }
};

struct WeightOperands {
  gemm::ScratchBlock ubuf, pbuf;
  std::vector<std::unique_ptr<gemm::PackB<float>>> b;
};

void prepare_weights(const TileKernels& tk, const Problem& pr, const float* w, bool u_trans, bool several_chunks,
                     WeightOperands& ops) {
  const int64_t K = u_trans ? pr.Ci : pr.Co, N = u_trans ? pr.Co : pr.Ci;
  const int64_t plane = pr.Ci * pr.Co, ldb = pr.Ci;  // U[xi][co][ci]: row stride Ci either way
  const bool flip = !u_trans;
  if (tk.weight) {  // F(2,3)
    float* U = ops.ubuf.get<float>(size_t(tk.nf * plane));
    parallel_for(0, pr.Co, 8, [&](int64_t c0, int64_t c1) { tk.weight(w, pr.Co, pr.Ci, flip, c0, c1, U); });
    if (!several_chunks) {
      for (int64_t xi = 0; xi < tk.nf; ++xi)
        ops.b.push_back(std::make_unique<gemm::MatrixB<float>>(U + xi * plane, ldb, u_trans));
      return;
    }
    const int64_t ustride = gemm::CachedMatrixB<float>::packed_floats(K, N);
    float* up = ops.pbuf.get<float>(size_t(tk.nf * ustride));
    for (int64_t xi = 0; xi < tk.nf; ++xi)
      ops.b.push_back(std::make_unique<gemm::CachedMatrixB<float>>(U + xi * plane, ldb, u_trans, K, N, up + xi * ustride));
    return;
  }
  constexpr int64_t kGroup = 36;
  const int nr = gemm::micro_kernel<float>().nr;
  const int64_t ustride = gemm::CachedMatrixB<float>::packed_floats(K, N);
  float* U = ops.ubuf.get<float>(size_t(kGroup * plane));
  float* up = ops.pbuf.get<float>(size_t(tk.nf * ustride));
  for (int i0 = 0; i0 * kGroup < tk.nf; ++i0) {
    parallel_for(0, pr.Co, 8,
                 [&](int64_t c0, int64_t c1) { tk.weight_group(w, pr.Co, pr.Ci, flip, c0, c1, i0, U); });
    std::vector<std::unique_ptr<gemm::CachedMatrixB<float>>> grp;
    for (int64_t j = 0; j < kGroup; ++j)
      grp.push_back(std::make_unique<gemm::CachedMatrixB<float>>(U + j * plane, ldb, u_trans, K, N,
                                                                  up + (i0 * kGroup + j) * ustride));
    // Pack now, while this group's U exists: packed() packs on its first call.
    // The GEMMs ask for exactly this blocking (kc = kGemmKC, nr, all of N from
    // column 0); PrepackedB turns any other request into an error.
    parallel_for(0, kGroup, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j)
        DS_CHECK(grp[size_t(j)]->packed(0, N, 0, std::min(kGemmKC, K), nr) != nullptr,
                 "winograd: packing the transformed weights failed (internal error)");
    });
    for (auto& c : grp) ops.b.push_back(std::make_unique<PrepackedB>(std::move(c)));
  }
}

}  // namespace

struct WeightCache::Entry {
  const float* w;
  int64_t Ci, Co, nf;
  bool u_trans;
  WeightOperands ops;
};
WeightCache::WeightCache() = default;
WeightCache::~WeightCache() = default;

namespace {

// The cache entry of weights w for this problem's channels, nf frequencies and pass (u_trans), or null.
WeightCache::Entry* find_entry(const WeightCache* cache, const Problem& pr, const float* w, int64_t nf, bool u_trans) {
  if (!cache) return nullptr;
  for (auto& e : cache->entries)
    if (e->w == w && e->Ci == pr.Ci && e->Co == pr.Co && e->nf == nf && e->u_trans == u_trans) return e.get();
  return nullptr;
}

// The weight operands of a pass: computed into `local` without a cache; with
// one, looked up or computed into a new entry. Cached F(2,3) weights are
// always packed once (CachedMatrixB): packing is a copy in the blocking the
// GEMM asks for, so the products are the same as from a per-call MatrixB.
const WeightOperands& weights_for(const TileKernels& tk, const Problem& pr, const float* w, bool u_trans,
                                  bool several, WeightCache* cache, WeightOperands& local) {
  if (!cache) {
    prepare_weights(tk, pr, w, u_trans, several, local);
    return local;
  }
  if (WeightCache::Entry* hit = find_entry(cache, pr, w, tk.nf, u_trans)) return hit->ops;
  auto e = std::make_unique<WeightCache::Entry>();
  e->w = w;
  e->Ci = pr.Ci;
  e->Co = pr.Co;
  e->nf = tk.nf;
  e->u_trans = u_trans;
  prepare_weights(tk, pr, w, u_trans, /*several_chunks=*/true, e->ops);
  cache->entries.push_back(std::move(e));
  return cache->entries.back()->ops;
}

// Tiles of g in all, and per chunk: a chunk's V and M hold at most kChunkFloats floats (at least one tile).
int64_t tile_count(const TileGeo& g) { return g.N * g.T[0] * g.T[1] * g.T[2]; }
int64_t chunk_tiles(const TileKernels& k, const TileGeo& g) {
  return std::max<int64_t>(1, std::min<int64_t>(tile_count(g), kChunkFloats / (k.nf * std::max(g.C, g.Co))));
}

// out = corr(in, U) over the tile geometry g with B[xi] the frequencies' weight operands ([g.C x g.Co]).
void run_tiles(const TileKernels& k, const TileGeo& g, const float* in, const WeightOperands& B, const float* bias,
               float* out, bool acc) {
  const int64_t NF = k.nf;
  const int64_t P = tile_count(g), Pb = chunk_tiles(k, g);
  gemm::ScratchBlock vbuf, mbuf;
  float* V = vbuf.get<float>(size_t(NF * (Pb * g.C + kPlanePad)));
  float* M = mbuf.get<float>(size_t(NF * (Pb * g.Co + kPlanePad)));
  for (int64_t pb = 0; pb < P; pb += Pb) {
    const int64_t nb = std::min(Pb, P - pb);
    const int64_t vs = nb * g.C + kPlanePad, ms = nb * g.Co + kPlanePad;  // frequency plane strides
    parallel_for(pb, pb + nb, 4, [&](int64_t p0, int64_t p1) { k.input(g, in, pb, p0, p1, vs, V); });
    // One thread per frequency: each GEMM runs serially on its thread (no
    // synchronisation per product, and the result is independent of the thread count).
    parallel_for(0, NF, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi) {
        gemm::MatrixA<float> a(V + xi * vs, g.C);
        gemm::gemm<float>(nb, g.Co, g.C, a, *B.b[size_t(xi)], M + xi * ms, g.Co, false);
      }
    });
    parallel_for(pb, pb + nb, 4,
                 [&](int64_t p0, int64_t p1) { k.output(g, M, pb, p0, p1, ms, bias, out, acc); });
  }
}

// Whether run_tiles will process g in more than one chunk.
bool several_chunks(const TileKernels& k, const TileGeo& g) { return tile_count(g) > chunk_tiles(k, g); }

TileGeo tile_geo(int64_t N, const int64_t* D, int64_t C, const int64_t* O, int64_t Co, const int64_t* pad,
                 const int64_t* tile) {
  TileGeo g;
  g.N = N;
  g.C = C;
  g.Co = Co;
  for (int i = 0; i < 3; ++i) {
    g.D[i] = D[i];
    g.O[i] = O[i];
    g.pad[i] = pad[i];
    g.T[i] = (O[i] + tile[i] - 1) / tile[i];
  }
  return g;
}

// Tile shape of a pass. Environment DETSEG3D_WINOGRAD_TILE (read per call):
// "2" always F(2,3)^3, "4" the mixed F(2,3) x F(4,3)^2 whenever Winograd runs,
// unset or anything else: automatic, i.e. the mixed tiles when the pass's
// output spans at least kF4MinExtent positions along D2 and D3 (below that the
// per-call weight transform of 144 frequencies and the partial 4-wide tiles
// cost more than the smaller GEMMs save; see the header comment).
constexpr int64_t kF4MinExtent = 16;

// With a WeightCache, a smaller problem whose weights are already cached as
// mixed tiles (an earlier, larger pyramid level) takes the mixed tiles too:
// its weight transform is free, and 144 small GEMMs then beat both the F(2,3)
// tiles (which would need their own transform) and the GEMM path.
bool f4_cached(const WeightCache* cache, const Problem& pr, const float* w, bool u_trans) {
  return find_entry(cache, pr, w, 144, u_trans) != nullptr;
}

TileKernels pick_tiles(const Kernels& k, const int64_t* out_extent, bool prefer_f4 = false) {
  const KernelsF4* k4 = kernels_f4();
  const char* e = std::getenv("DETSEG3D_WINOGRAD_TILE");
  bool f4 = prefer_f4 || (out_extent[1] >= kF4MinExtent && out_extent[2] >= kF4MinExtent);
  if (e && std::strcmp(e, "2") == 0) f4 = false;
  if (e && std::strcmp(e, "4") == 0) f4 = true;
  return f4 && k4 ? f4_kernels(*k4) : f2_kernels(k);
}

}  // namespace

bool use(Pass pass, const Problem& pr, bool weights_cached) {
  if (!shape_ok(pr) || !kernels()) return false;
  const Mode m = env_mode();
  if (m == Mode::Off) return false;
  if (m == Mode::Force) return true;
  // Automatic: only where measured faster than the GEMM path (see the header).
  const int64_t* S = pass == Pass::GradInput ? pr.D : pr.O;  // grad input's outputs are input positions
  const int64_t positions = pr.N * S[0] * S[1] * S[2];
  return positions * std::min(pr.Ci, pr.Co) >= (weights_cached ? kMinWorkCached : kMinWork);
}

void forward(const Problem& pr, const float* x, const float* w, const float* bias, float* y, bool acc,
             WeightCache* cache) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::forward: unsupported problem (internal dispatch error)");
  const TileKernels tk = pick_tiles(*k, pr.O, f4_cached(cache, pr, w, true));
  const TileGeo g = tile_geo(pr.N, pr.D, pr.Ci, pr.O, pr.Co, pr.pad, tk.tile);
  WeightOperands local;
  const WeightOperands& B = weights_for(tk, pr, w, /*u_trans=*/true, several_chunks(tk, g), cache, local);
  run_tiles(tk, g, x, B, bias, y, acc);
}

void grad_input(const Problem& pr, const float* w, const float* dy, float* dx, bool acc, WeightCache* cache) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::grad_input: unsupported problem (internal dispatch error)");
  const TileKernels tk = pick_tiles(*k, pr.D, f4_cached(cache, pr, w, false));
  const int64_t pad2[3] = {2 - pr.pad[0], 2 - pr.pad[1], 2 - pr.pad[2]};
  const TileGeo g = tile_geo(pr.N, pr.O, pr.Co, pr.D, pr.Ci, pad2, tk.tile);
  WeightOperands local;
  const WeightOperands& B = weights_for(tk, pr, w, /*u_trans=*/false, several_chunks(tk, g), cache, local);
  run_tiles(tk, g, dy, B, nullptr, dx, acc);
}

void grad_weight(const Problem& pr, const float* x, const float* dy, float* dw, bool acc) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::grad_weight: unsupported problem (internal dispatch error)");
  // dU[xi][co][ci] = sum over tiles p of (A dy_p A^T)[xi][co] * (B^T x_p B)[xi][ci]; dw = G^T dU G.
  const TileKernels tk = pick_tiles(*k, pr.O);
  const int64_t NF = tk.nf;
  const TileGeo g = tile_geo(pr.N, pr.D, pr.Ci, pr.O, pr.Co, pr.pad, tk.tile);
  const int64_t P = tile_count(g), Pb = chunk_tiles(tk, g);
  gemm::ScratchBlock vbuf, mbuf, ubuf;
  float* V = vbuf.get<float>(size_t(NF * (Pb * g.C + kPlanePad)));
  float* Mt = mbuf.get<float>(size_t(NF * (Pb * g.Co + kPlanePad)));
  float* dU = ubuf.get<float>(size_t(NF * g.C * g.Co));
  for (int64_t pb = 0; pb < P; pb += Pb) {
    const int64_t nb = std::min(Pb, P - pb);
    const int64_t vs = nb * g.C + kPlanePad, ms = nb * g.Co + kPlanePad;  // frequency plane strides
    parallel_for(pb, pb + nb, 4, [&](int64_t p0, int64_t p1) {
      tk.input(g, x, pb, p0, p1, vs, V);
      tk.output_adjoint(g, dy, pb, p0, p1, ms, Mt);
    });
    // dU[xi] [Co x Ci] (+)= Mt[xi]^T [Co x nb] . V[xi] [nb x Ci], one thread per frequency,
    // chunks in order: the sum is the same for any thread count.
    parallel_for(0, NF, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi)
        gemm::gemm_matrix<float>(true, false, g.Co, g.C, nb, Mt + xi * ms, g.Co, V + xi * vs, g.C,
                                 dU + xi * g.C * g.Co, g.C, /*accumulate=*/pb > 0);
    });
  }
  parallel_for(0, pr.Co, 8, [&](int64_t c0, int64_t c1) { tk.weight_adjoint(dU, pr.Co, pr.Ci, c0, c1, dw, acc); });
}

}  // namespace ds::winograd
