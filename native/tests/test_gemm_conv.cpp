// GEMM and conv3d checks against naive loops, on every SIMD level the CPU
// supports and with 1 and 2 threads (the vitest suite covers the public API;
// these run without Node).
#include <cmath>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "ops/conv3d.h"
#include "ops/gemm.h"
#include "tests/harness.h"

namespace {

std::vector<ds::SimdLevel> levels() {
  std::vector<ds::SimdLevel> l;
  for (int i = 0; i <= int(ds::cpu_simd_support()); ++i) l.push_back(ds::SimdLevel(i));
  return l;
}

struct Restore {
  ds::SimdLevel simd = ds::simd_level();
  int threads = ds::num_threads();
  ~Restore() {
    ds::set_simd_level(simd);
    ds::set_num_threads(threads);
  }
};

template <class T>
std::vector<T> random_vec(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(g));
  return v;
}

template <class T>
void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, bool acc, double tol) {
  const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
  auto a = random_vec<T>(size_t((ta ? K : M) * lda), 1);
  auto b = random_vec<T>(size_t((tb ? N : K) * ldb), 2);
  auto c = random_vec<T>(size_t(M * ldc), 3);
  std::vector<T> c0 = c;
  ds::gemm::gemm_matrix<T>(ta, tb, M, N, K, a.data(), lda, b.data(), ldb, c.data(), ldc, acc);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      if (j >= N) {  // padding columns must be untouched
        DS_EXPECT(c[size_t(i * ldc + j)] == c0[size_t(i * ldc + j)], "gemm wrote outside C at (", i, ", ", j, ")");
        continue;
      }
      double s = acc ? double(c0[size_t(i * ldc + j)]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = ta ? a[size_t(k * lda + i)] : a[size_t(i * lda + k)];
        const double bv = tb ? b[size_t(j * ldb + k)] : b[size_t(k * ldb + j)];
        s += av * bv;
      }
      const double err = std::fabs(double(c[size_t(i * ldc + j)]) - s);
      DS_EXPECT(err <= tol * (1 + std::sqrt(double(K))), "gemm ", M, "x", N, "x", K, " ta=", ta, " tb=", tb,
                " acc=", acc, " simd=", ds::simd_name(ds::simd_level()), " threads=", ds::num_threads(), ": C(", i,
                ", ", j, ") = ", c[size_t(i * ldc + j)], ", expected ", s);
    }
}

}  // namespace

DS_TEST(gemm_matches_naive_all_paths) {
  Restore restore;
  // Includes a K-split case (few C tiles, long K) and an M > MC case.
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 65, 17}, {200, 70, 300}, {9, 300, 600}, {513, 40, 37},
                              {16, 30, 2000}};
  for (ds::SimdLevel lvl : levels()) {
    ds::set_simd_level(lvl);
    for (int threads : {1, 2}) {
      ds::set_num_threads(threads);
      for (auto& s : sizes)
        for (int t = 0; t < 4; ++t) {
          check_gemm<float>(t & 1, t & 2, s[0], s[1], s[2], t == 3, 2e-6);
          if (lvl == ds::SimdLevel::Scalar) check_gemm<double>(t & 1, t & 2, s[0], s[1], s[2], t == 1, 1e-13);
        }
    }
  }
}

DS_TEST(gemm_large_b_streaming_path) {
  // Packed B larger than the 6 MiB "B-resident" budget: the jc -> pc -> ic loop order.
  Restore restore;
  for (int threads : {1, 2}) {
    ds::set_num_threads(threads);
    check_gemm<float>(false, true, 24, 1100, 1500, false, 2e-6);
  }
}

DS_TEST(pack_rows_transposed_matches_scalar) {
  Restore restore;
  auto src = random_vec<float>(32 * 70, 4);
  for (int w : {4, 6, 8, 16, 32})
    for (int64_t kc : {1, 15, 16, 17, 70}) {
      std::vector<const float*> rows;
      for (int i = 0; i < w; ++i) rows.push_back(src.data() + i * 70);
      for (ds::SimdLevel lvl : levels()) {
        ds::set_simd_level(lvl);
        std::vector<float> dst(size_t(w * kc), -1.f);
        ds::gemm::pack_rows_transposed(dst.data(), rows.data(), kc, w);
        for (int64_t k = 0; k < kc; ++k)
          for (int i = 0; i < w; ++i)
            DS_EXPECT(dst[size_t(k * w + i)] == rows[size_t(i)][k], "pack w=", w, " kc=", kc, " simd ",
                      ds::simd_name(lvl), " at k=", k, " i=", i);
      }
    }
}

DS_TEST(conv3d_forward_matches_direct_loops) {
  Restore restore;
  struct C { int64_t n, d[3], ci, co, k[3], s[3], p[3], dil[3]; };
  const C cases[] = {{2, {5, 6, 7}, 3, 5, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}},
                     {1, {6, 9, 10}, 1, 9, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, {1, 1, 1}},
                     {1, {7, 8, 9}, 20, 33, {1, 3, 2}, {2, 1, 3}, {0, 1, 1}, {1, 2, 1}}};
  for (const C& c : cases) {
    ds::Tensor x = ds::Tensor::empty({c.n, c.d[0], c.d[1], c.d[2], c.ci}, ds::DType::Float32);
    ds::Tensor w = ds::Tensor::empty({c.co, c.k[0], c.k[1], c.k[2], c.ci}, ds::DType::Float32);
    auto xv = random_vec<float>(size_t(x.numel()), 5), wv = random_vec<float>(size_t(w.numel()), 6);
    std::copy(xv.begin(), xv.end(), x.data<float>());
    std::copy(wv.begin(), wv.end(), w.data<float>());
    ds::Conv3dParams p;
    for (int i = 0; i < 3; ++i) p.stride[i] = c.s[i], p.padding[i] = c.p[i], p.dilation[i] = c.dil[i];
    for (ds::SimdLevel lvl : levels()) {
      ds::set_simd_level(lvl);
      ds::Tensor y = ds::conv3d_forward(x, w, ds::Tensor(), p);
      const auto o = ds::conv3d_output_size(x, w, p);
      const float* yp = y.data<float>();
      for (int64_t n = 0; n < c.n; ++n)
        for (int64_t a = 0; a < o[0]; ++a)
          for (int64_t b = 0; b < o[1]; ++b)
            for (int64_t e = 0; e < o[2]; ++e)
              for (int64_t co = 0; co < c.co; ++co) {
                double s = 0;
                for (int64_t u = 0; u < c.k[0]; ++u)
                  for (int64_t v = 0; v < c.k[1]; ++v)
                    for (int64_t q = 0; q < c.k[2]; ++q) {
                      const int64_t i1 = a * c.s[0] - c.p[0] + u * c.dil[0], i2 = b * c.s[1] - c.p[1] + v * c.dil[1],
                                    i3 = e * c.s[2] - c.p[2] + q * c.dil[2];
                      if (i1 < 0 || i1 >= c.d[0] || i2 < 0 || i2 >= c.d[1] || i3 < 0 || i3 >= c.d[2]) continue;
                      for (int64_t ci = 0; ci < c.ci; ++ci)
                        s += double(xv[size_t((((n * c.d[0] + i1) * c.d[1] + i2) * c.d[2] + i3) * c.ci + ci)]) *
                             double(wv[size_t((((co * c.k[0] + u) * c.k[1] + v) * c.k[2] + q) * c.ci + ci)]);
                    }
                const double got = yp[(((n * o[0] + a) * o[1] + b) * o[2] + e) * c.co + co];
                DS_EXPECT(std::fabs(got - s) < 1e-4, "conv3d forward at co=", co, ": ", got, " vs ", s, " simd ",
                          ds::simd_name(lvl));
              }
    }
  }
}

DS_TEST(conv3d_into_and_accumulate) {
  // *_into with accumulate adds exactly the freshly computed result, on every
  // code path: implicit im2col, pointwise, stride phases, few-channel col2im.
  struct C { int64_t ci, co, k, s, p; };
  const C cases[] = {{5, 7, 3, 1, 1}, {6, 9, 1, 1, 0}, {9, 4, 3, 2, 1}, {2, 5, 3, 2, 1}};
  for (const C& c : cases) {
    auto make = [](ds::Shape s, unsigned seed) {
      ds::Tensor t = ds::Tensor::empty(s, ds::DType::Float64);
      auto v = random_vec<double>(size_t(t.numel()), seed);
      std::copy(v.begin(), v.end(), t.data<double>());
      return t;
    };
    ds::Tensor x = make({2, 5, 6, 7, c.ci}, 1), w = make({c.co, c.k, c.k, c.k, c.ci}, 2), b = make({c.co}, 3);
    ds::Conv3dParams p;
    p.stride = {c.s, c.s, c.s};
    p.padding = {c.p, c.p, c.p};
    ds::Tensor y = ds::conv3d_forward(x, w, b, p);
    ds::Tensor y2 = make(y.shape(), 4), y2_0 = y2.clone();
    ds::conv3d_forward_into(x, w, b, p, y2, true);
    for (int64_t i = 0; i < y.numel(); ++i)
      DS_EXPECT(std::fabs(y2.data<double>()[i] - y2_0.data<double>()[i] - y.data<double>()[i]) < 1e-12,
                "forward accumulate, case ci=", c.ci, " k=", c.k, " s=", c.s);
    ds::Tensor dy = make(y.shape(), 5);
    ds::Conv3dGrads g = ds::conv3d_backward(x, w, dy, p, true, true, true);
    ds::Conv3dGrads acc{make(x.shape(), 6), make(w.shape(), 7), make({c.co}, 8)};
    ds::Conv3dGrads acc0{acc.grad_input.clone(), acc.grad_weight.clone(), acc.grad_bias.clone()};
    ds::conv3d_backward_into(x, w, dy, p, acc, true);
    const std::pair<ds::Tensor*, std::pair<ds::Tensor*, ds::Tensor*>> trip[] = {
        {&g.grad_input, {&acc.grad_input, &acc0.grad_input}},
        {&g.grad_weight, {&acc.grad_weight, &acc0.grad_weight}},
        {&g.grad_bias, {&acc.grad_bias, &acc0.grad_bias}}};
    for (auto& t : trip)
      for (int64_t i = 0; i < t.first->numel(); ++i)
        DS_EXPECT(std::fabs(t.second.first->data<double>()[i] - t.second.second->data<double>()[i] -
                            t.first->data<double>()[i]) < 1e-12,
                  "backward accumulate, case ci=", c.ci, " k=", c.k, " s=", c.s, " element ", i);
    ds::Tensor wrong = ds::Tensor::empty({1}, ds::DType::Float64);
    bool threw = false;
    try {
      ds::conv3d_forward_into(x, w, b, p, wrong, false);
    } catch (const ds::Error& e) {
      threw = std::string(e.what()).find("conv3d output must be") != std::string::npos;
    }
    DS_EXPECT(threw, "forward_into must reject an output of the wrong shape");
  }
}
