// The Winograd path of conv3d (float32, 3x3x3, stride 1, >= 64 channels):
// *_into with accumulate adds exactly the freshly computed result (forward
// with bias, grad input, grad weight), and a forced Winograd result matches
// the GEMM path within float32 rounding, on AVX2 and AVX-512 with 1 and 2
// threads, for both tile shapes (F(2,3)^3 and F(2,3) x F(4,3)^2). (The vitest suite checks it against a float64 reference.)
#include <cmath>
#include <string>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "ops/conv3d.h"
#include "tests/conv3d_test_util.h"
#include "tests/harness.h"

namespace {

using ds_test::random_f32;
using Env = ds_test::ScopedEnv;

double max_abs(const ds::Tensor& t) {
  double m = 1;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, double(std::fabs(t.data<float>()[i])));
  return m;
}

// max |a - b - c| / max(1, |c|) elementwise over the tensors (c = 0 when null).
double rel_diff(const ds::Tensor& a, const ds::Tensor& b, const ds::Tensor* c) {
  const double scale = max_abs(c ? *c : a);
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.data<float>()[i]) - double(b.data<float>()[i]) - (c ? double(c->data<float>()[i]) : 0.0);
    worst = std::max(worst, std::fabs(d));
  }
  return worst / scale;
}

}  // namespace

DS_TEST(conv3d_winograd_into_accumulate_and_parity) {
  const ds::SimdLevel simd0 = ds::simd_level();
  const int threads0 = ds::num_threads();
  if (ds::cpu_simd_support() < ds::SimdLevel::AVX2) return;  // the path needs AVX2 or AVX-512
  ds::Tensor x = random_f32({2, 5, 4, 7, 66}, 1), w = random_f32({72, 3, 3, 3, 66}, 2), b = random_f32({72}, 3);
  ds::Conv3dParams p;
  p.padding = {1, 0, 1};
  // Tiles "2": F(2,3)^3; "4": the mixed F(2,3) x F(4,3)^2 (float32 error up to ~10x larger, see conv3d_winograd.cpp).
  for (const char* tile : {"2", "4"})
  for (int lv = int(ds::SimdLevel::AVX2); lv <= int(ds::cpu_simd_support()); ++lv)
    for (int threads : {1, 2}) {
      Env tiles("DETSEG3D_WINOGRAD_TILE", tile);
      const double tol = tile[0] == '4' ? 1e-5 : 2e-6;
      ds::set_simd_level(ds::SimdLevel(lv));
      ds::set_num_threads(threads);
      const std::string where = std::string(ds::simd_name(ds::SimdLevel(lv))) + ", " + std::to_string(threads) +
                                " thread(s), tiles " + tile;
      ds::Tensor y_gemm, y;
      ds::Conv3dGrads g_gemm;
      {
        Env off("DETSEG3D_WINOGRAD", "0");
        y_gemm = ds::conv3d_forward(x, w, b, p);
      }
      ds::Tensor dy = random_f32(y_gemm.shape(), 4);
      {
        Env off("DETSEG3D_WINOGRAD", "0");
        g_gemm = ds::conv3d_backward(x, w, dy, p, true, true, false);
      }
      Env on("DETSEG3D_WINOGRAD", "1");
      y = ds::conv3d_forward(x, w, b, p);
      DS_EXPECT(rel_diff(y, y_gemm, nullptr) < tol, "winograd forward vs gemm path, ", where);
      ds::Conv3dGrads g = ds::conv3d_backward(x, w, dy, p, true, true, false);
      DS_EXPECT(rel_diff(g.grad_input, g_gemm.grad_input, nullptr) < tol, "winograd grad input vs gemm, ", where);
      DS_EXPECT(rel_diff(g.grad_weight, g_gemm.grad_weight, nullptr) < tol, "winograd grad weight vs gemm, ", where);
      // Accumulating variants add the fresh result to what was there.
      ds::Tensor y2 = random_f32(y.shape(), 5), y2_0 = y2.clone();
      ds::conv3d_forward_into(x, w, b, p, y2, true);
      DS_EXPECT(rel_diff(y2, y2_0, &y) < 1e-6, "winograd forward accumulate, ", where);
      ds::Conv3dGrads acc{random_f32(x.shape(), 6), random_f32(w.shape(), 7), ds::Tensor()};
      ds::Conv3dGrads acc0{acc.grad_input.clone(), acc.grad_weight.clone(), ds::Tensor()};
      ds::conv3d_backward_into(x, w, dy, p, acc, true);
      DS_EXPECT(rel_diff(acc.grad_input, acc0.grad_input, &g.grad_input) < 1e-6, "winograd grad input accumulate, ",
                where);
      DS_EXPECT(rel_diff(acc.grad_weight, acc0.grad_weight, &g.grad_weight) < 1e-6,
                "winograd grad weight accumulate, ", where);
    }
  ds::set_simd_level(simd0);
  ds::set_num_threads(threads0);
}
