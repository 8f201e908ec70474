// Winograd F(2,3) x F(2,3) x F(2,3) convolution for the network's dominant
// layers (float32, 3x3x3, stride 1, dilation 1, >= 64 channels in and out).
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

// Upper bound on the floats of one chunk's V (or M): 2 Mi (8 MiB; 128 tiles
// at 256 channels). Measured at 24^3 256->256: 1/2/4/8 Mi floats -> 78/70/72/78 ms
// (bigger chunks fall out of cache between the transforms and the GEMMs).
constexpr int64_t kChunkFloats = int64_t(1) << 21;

// out = corr(in, U) over the tile geometry g. U holds 64 matrices stored
// [g.Co x g.C] (u_trans: the forward's [Cout][Cin]) or [g.C x g.Co] (grad input's [Cout][Cin]).
void run_tiles(const Kernels& k, const TileGeo& g, const float* in, const float* U, bool u_trans, const float* bias,
               float* out, bool acc) {
  const int64_t P = g.N * g.T[0] * g.T[1] * g.T[2];
  const int64_t Pb = std::max<int64_t>(1, std::min<int64_t>(P, kChunkFloats / (64 * std::max(g.C, g.Co))));
  gemm::ScratchBlock vbuf, mbuf;
  float* V = vbuf.get<float>(size_t(64 * Pb * g.C));
  float* M = mbuf.get<float>(size_t(64 * Pb * g.Co));
  // With several chunks, each frequency's U is packed for the GEMM once and
  // read in place by every chunk (re-packing it per chunk cost ~5 % of a step).
  const bool cache_u = P > Pb;
  const int64_t ustride = gemm::CachedMatrixB<float>::packed_floats(g.C, g.Co);
  gemm::ScratchBlock ubuf;
  std::vector<std::unique_ptr<gemm::CachedMatrixB<float>>> ub;
  if (cache_u) {
    float* up = ubuf.get<float>(size_t(64 * ustride));
    for (int64_t xi = 0; xi < 64; ++xi)
      ub.push_back(std::make_unique<gemm::CachedMatrixB<float>>(U + xi * g.C * g.Co, u_trans ? g.C : g.Co, u_trans,
                                                                 g.C, g.Co, up + xi * ustride));
  }
  for (int64_t pb = 0; pb < P; pb += Pb) {
    const int64_t nb = std::min(Pb, P - pb);
    parallel_for(pb, pb + nb, 4, [&](int64_t p0, int64_t p1) { k.input(g, in, pb, p0, p1, nb * g.C, V); });
    // One thread per frequency: each GEMM runs serially on its thread (no
    // synchronisation per product, and the result is independent of the thread count).
    parallel_for(0, 64, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi) {
        if (cache_u) {
          gemm::MatrixA<float> a(V + xi * nb * g.C, g.C);
          gemm::gemm<float>(nb, g.Co, g.C, a, *ub[size_t(xi)], M + xi * nb * g.Co, g.Co, false);
        } else {
          gemm::gemm_matrix<float>(false, u_trans, nb, g.Co, g.C, V + xi * nb * g.C, g.C, U + xi * g.C * g.Co,
                                   u_trans ? g.C : g.Co, M + xi * nb * g.Co, g.Co, false);
        }
      }
    });
    parallel_for(pb, pb + nb, 4,
                 [&](int64_t p0, int64_t p1) { k.output(g, M, pb, p0, p1, nb * g.Co, bias, out, acc); });
  }
}

TileGeo tile_geo(int64_t N, const int64_t* D, int64_t C, const int64_t* O, int64_t Co, const int64_t* pad) {
  TileGeo g;
  g.N = N;
  g.C = C;
  g.Co = Co;
  for (int i = 0; i < 3; ++i) {
    g.D[i] = D[i];
    g.O[i] = O[i];
    g.pad[i] = pad[i];
    g.T[i] = (O[i] + 1) / 2;
  }
  return g;
}

// 64 transformed weight matrices U[xi][Cout][Cin] (see Kernels::weight); rows of w in parallel.
void transform_weights(const Kernels& k, const Problem& pr, const float* w, bool flip, float* U) {
  parallel_for(0, pr.Co, 8, [&](int64_t c0, int64_t c1) { k.weight(w, pr.Co, pr.Ci, flip, c0, c1, U); });
}

}  // namespace

bool use(Pass pass, const Problem& pr) {
  if (!shape_ok(pr) || !kernels()) return false;
  const Mode m = env_mode();
  if (m == Mode::Off) return false;
  if (m == Mode::Force) return true;
  // Automatic: only where measured faster than the GEMM path (see the header).
  const int64_t* S = pass == Pass::GradInput ? pr.D : pr.O;  // grad input's outputs are input positions
  const int64_t positions = pr.N * S[0] * S[1] * S[2];
  return positions * std::min(pr.Ci, pr.Co) >= kMinWork;
}

void forward(const Problem& pr, const float* x, const float* w, const float* bias, float* y, bool acc) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::forward: unsupported problem (internal dispatch error)");
  gemm::ScratchBlock ubuf;
  float* U = ubuf.get<float>(size_t(64 * pr.Ci * pr.Co));
  transform_weights(*k, pr, w, /*flip=*/false, U);
  run_tiles(*k, tile_geo(pr.N, pr.D, pr.Ci, pr.O, pr.Co, pr.pad), x, U, /*u_trans=*/true, bias, y, acc);
}

void grad_input(const Problem& pr, const float* w, const float* dy, float* dx, bool acc) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::grad_input: unsupported problem (internal dispatch error)");
  gemm::ScratchBlock ubuf;
  float* U = ubuf.get<float>(size_t(64 * pr.Ci * pr.Co));
  transform_weights(*k, pr, w, /*flip=*/true, U);
  const int64_t pad2[3] = {2 - pr.pad[0], 2 - pr.pad[1], 2 - pr.pad[2]};
  run_tiles(*k, tile_geo(pr.N, pr.O, pr.Co, pr.D, pr.Ci, pad2), dy, U, /*u_trans=*/false, nullptr, dx, acc);
}

void grad_weight(const Problem& pr, const float* x, const float* dy, float* dw, bool acc) {
  const Kernels* k = kernels();
  DS_CHECK(k && shape_ok(pr), "winograd::grad_weight: unsupported problem (internal dispatch error)");
  // dU[xi][co][ci] = sum over tiles p of (A dy_p A^T)[xi][co] * (B^T x_p B)[xi][ci]; dw = G^T dU G.
  const TileGeo g = tile_geo(pr.N, pr.D, pr.Ci, pr.O, pr.Co, pr.pad);
  const int64_t P = g.N * g.T[0] * g.T[1] * g.T[2];
  const int64_t Pb = std::max<int64_t>(1, std::min<int64_t>(P, kChunkFloats / (64 * std::max(g.C, g.Co))));
  gemm::ScratchBlock vbuf, mbuf, ubuf;
  float* V = vbuf.get<float>(size_t(64 * Pb * g.C));
  float* Mt = mbuf.get<float>(size_t(64 * Pb * g.Co));
  float* dU = ubuf.get<float>(size_t(64 * g.C * g.Co));
  for (int64_t pb = 0; pb < P; pb += Pb) {
    const int64_t nb = std::min(Pb, P - pb);
    parallel_for(pb, pb + nb, 4, [&](int64_t p0, int64_t p1) {
      k->input(g, x, pb, p0, p1, nb * g.C, V);
      k->output_adjoint(g, dy, pb, p0, p1, nb * g.Co, Mt);
    });
    // dU[xi] [Co x Ci] (+)= Mt[xi]^T [Co x nb] . V[xi] [nb x Ci], one thread per frequency,
    // chunks in order: the sum is the same for any thread count.
    parallel_for(0, 64, 1, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi)
        gemm::gemm_matrix<float>(true, false, g.Co, g.C, nb, Mt + xi * nb * g.Co, g.Co, V + xi * nb * g.C, g.C,
                                 dU + xi * g.C * g.Co, g.C, /*accumulate=*/pb > 0);
    });
  }
  parallel_for(0, pr.Co, 8, [&](int64_t c0, int64_t c1) { k->weight_adjoint(dU, pr.Co, pr.Ci, c0, c1, dw, acc); });
}

}  // namespace ds::winograd
