// Conv3dWeightReuse (ops/conv3d.h): Winograd convolutions that share one
// weight set inside the scope give results bit-identical to calls without it
// (same tile shape forced on both sides), for forward (with bias) and grad
// input, F(2,3) and mixed tiles, several input sizes in one scope (the
// pyramid levels of a head); and in automatic mode a small problem after a
// large one takes the large one's cached mixed-tile weights, staying within
// float32 rounding of the GEMM path.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "ops/conv3d.h"
#include "tests/conv3d_test_util.h"
#include "tests/harness.h"

namespace {

using Env = ds_test::ScopedEnv;
const auto rnd = ds_test::random_f32;

bool same_bits(const ds::Tensor& a, const ds::Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data<float>(), b.data<float>(), size_t(a.numel()) * 4) == 0;
}

double rel_diff(const ds::Tensor& a, const ds::Tensor& b) {
  double m = 1e-30, d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    m = std::max(m, double(std::fabs(b.data<float>()[i])));
    d = std::max(d, std::fabs(double(a.data<float>()[i]) - double(b.data<float>()[i])));
  }
  return d / m;
}

bool winograd_available() { return ds::simd_level() == ds::SimdLevel::AVX2 || ds::simd_level() == ds::SimdLevel::AVX512; }

}  // namespace

DS_TEST(conv3d_weight_reuse_bit_identical) {
  if (!winograd_available()) DS_SKIP("no AVX2 / AVX-512: no Winograd path");
  const int64_t C = 64;
  ds::Conv3dParams p;
  p.padding = {1, 1, 1};
  const ds::Tensor w = rnd({C, 3, 3, 3, C}, 1), b = rnd({C}, 2);
  // Three "levels"; the first spans several tile chunks (cached packing), the others one.
  const std::vector<ds::Shape> shapes = {{1, 6, 16, 18, C}, {1, 3, 8, 9, C}, {1, 2, 4, 5, C}};
  for (const char* tile : {"2", "4"}) {
    Env force("DETSEG3D_WINOGRAD", "1"), t("DETSEG3D_WINOGRAD_TILE", tile), r("DETSEG3D_WINOGRAD_REUSE", nullptr);
    std::vector<ds::Tensor> xs, dys, y0, dx0;
    for (size_t l = 0; l < shapes.size(); ++l) {
      xs.push_back(rnd(shapes[l], 10 + unsigned(l)));
      dys.push_back(rnd(shapes[l], 20 + unsigned(l)));
      y0.push_back(ds::conv3d_forward(xs[l], w, b, p));
      dx0.push_back(ds::conv3d_backward(xs[l], w, dys[l], p, true, false, false).grad_input);
    }
    ds::Conv3dWeightReuse reuse;
    for (int rep = 0; rep < 2; ++rep)  // the second round reads only cached weights
      for (size_t l = 0; l < shapes.size(); ++l) {
        DS_EXPECT(same_bits(ds::conv3d_forward(xs[l], w, b, p), y0[l]), "forward, tile ", tile, ", level ", l);
        DS_EXPECT(same_bits(ds::conv3d_backward(xs[l], w, dys[l], p, true, false, false).grad_input, dx0[l]),
                  "grad input, tile ", tile, ", level ", l);
      }
  }
}

DS_TEST(conv3d_weight_reuse_small_level_takes_cached_tiles) {
  if (!winograd_available()) DS_SKIP("no AVX2 / AVX-512: no Winograd path");
  const int64_t C = 128;
  ds::Conv3dParams p;
  p.padding = {1, 1, 1};
  const ds::Tensor w = rnd({C, 3, 3, 3, C}, 3);
  const ds::Tensor big = rnd({1, 4, 16, 16, C}, 4), small = rnd({1, 4, 6, 7, C}, 5), dsmall = rnd({1, 4, 6, 7, C}, 6);
  Env a("DETSEG3D_WINOGRAD", nullptr), t("DETSEG3D_WINOGRAD_TILE", nullptr), r("DETSEG3D_WINOGRAD_REUSE", nullptr);
  ds::Tensor y_gemm, dx_gemm, y_f4, dx_f4;
  {
    Env off("DETSEG3D_WINOGRAD", "0");
    y_gemm = ds::conv3d_forward(small, w, ds::Tensor(), p);
    dx_gemm = ds::conv3d_backward(small, w, dsmall, p, true, false, false).grad_input;
  }
  {
    Env on("DETSEG3D_WINOGRAD", "1"), f4("DETSEG3D_WINOGRAD_TILE", "4");
    y_f4 = ds::conv3d_forward(small, w, ds::Tensor(), p);
    dx_f4 = ds::conv3d_backward(small, w, dsmall, p, true, false, false).grad_input;
  }
  // Without a scope the small problem runs on the GEMM path.
  DS_EXPECT(same_bits(ds::conv3d_forward(small, w, ds::Tensor(), p), y_gemm), "automatic mode without reuse");
  ds::Conv3dWeightReuse reuse;
  ds::conv3d_forward(big, w, ds::Tensor(), p);  // 16 x 16 output planes: mixed tiles, cached
  ds::conv3d_backward(big, w, big, p, true, false, false);
  const ds::Tensor y = ds::conv3d_forward(small, w, ds::Tensor(), p);
  const ds::Tensor dx = ds::conv3d_backward(small, w, dsmall, p, true, false, false).grad_input;
  DS_EXPECT(same_bits(y, y_f4), "forward of the small level should use the cached mixed tiles");
  DS_EXPECT(same_bits(dx, dx_f4), "grad input of the small level should use the cached mixed tiles");
  DS_EXPECT(rel_diff(y, y_gemm) < 2e-5, "forward vs GEMM path: ", rel_diff(y, y_gemm));
  DS_EXPECT(rel_diff(dx, dx_gemm) < 2e-5, "grad input vs GEMM path: ", rel_diff(dx, dx_gemm));
}
