// Direct (loop) implementation: correct for every shape, parallel over output
// positions. The GEMM-based fast path replaces the hot loops.
#include "ops/conv3d.h"

#include <vector>

#include "core/thread_pool.h"

namespace ds {

std::array<int64_t, 3> conv3d_output_size(const Tensor& x, const Tensor& w, const Conv3dParams& p) {
  check_dims(x, 5, "conv3d input", "[N, D1, D2, D3, Cin]");
  check_dims(w, 5, "conv3d weight", "[Cout, k1, k2, k3, Cin]");
  DS_CHECK(x.size(4) == w.size(4), "conv3d: input has ", x.size(4), " channels but the weight expects ", w.size(4),
           " (weight ", shape_str(w.shape()), ", layout [Cout, k1, k2, k3, Cin])");
  std::array<int64_t, 3> o{};
  for (int i = 0; i < 3; ++i) {
    DS_CHECK(p.stride[i] >= 1, "conv3d: stride must be >= 1 on every axis, got ", p.stride[i], " on axis ", i);
    DS_CHECK(p.dilation[i] >= 1, "conv3d: dilation must be >= 1 on every axis, got ", p.dilation[i], " on axis ", i);
    DS_CHECK(p.padding[i] >= 0, "conv3d: padding must be >= 0 on every axis, got ", p.padding[i], " on axis ", i);
    DS_CHECK(w.size(1 + i) >= 1, "conv3d: kernel size must be >= 1 on every axis, got weight ", shape_str(w.shape()));
    DS_CHECK(x.size(1 + i) >= 1, "conv3d: input spatial size must be >= 1 on every axis, got input ",
             shape_str(x.shape()));
    int64_t span = p.dilation[i] * (w.size(1 + i) - 1) + 1;
    int64_t padded = x.size(1 + i) + 2 * p.padding[i];
    DS_CHECK(padded >= span, "conv3d: output size would be < 1 on axis ", i, ": input ", x.size(1 + i),
             " + 2*padding ", p.padding[i], " is smaller than the dilated kernel extent ", span);
    o[i] = (padded - span) / p.stride[i] + 1;
  }
  DS_CHECK(x.size(0) >= 1 && x.size(4) >= 1 && w.size(0) >= 1, "conv3d: batch and channel counts must be >= 1, got input ",
           shape_str(x.shape()), " and weight ", shape_str(w.shape()));
  return o;
}

namespace {

struct Geo {
  int64_t N, D[3], Ci, Co, K[3], O[3];
  Conv3dParams p;
};

Geo geometry(const Tensor& x, const Tensor& w, const Conv3dParams& p) {
  auto o = conv3d_output_size(x, w, p);
  Geo g;
  g.N = x.size(0);
  g.Ci = x.size(4);
  g.Co = w.size(0);
  for (int i = 0; i < 3; ++i) {
    g.D[i] = x.size(1 + i);
    g.K[i] = w.size(1 + i);
    g.O[i] = o[i];
  }
  g.p = p;
  return g;
}

template <class T>
void forward_direct(const Geo& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t rows = g.N * g.O[0] * g.O[1] * g.O[2];
  const int64_t taps = g.K[0] * g.K[1] * g.K[2];
  parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<T> acc(size_t(g.Co));
    for (int64_t r = r0; r < r1; ++r) {
      int64_t t = r;
      const int64_t o3 = t % g.O[2]; t /= g.O[2];
      const int64_t o2 = t % g.O[1]; t /= g.O[1];
      const int64_t o1 = t % g.O[0]; t /= g.O[0];
      const int64_t n = t;
      for (int64_t co = 0; co < g.Co; ++co) acc[co] = b ? b[co] : T(0);
      for (int64_t tap = 0; tap < taps; ++tap) {
        const int64_t k3 = tap % g.K[2], k2 = (tap / g.K[2]) % g.K[1], k1 = tap / (g.K[2] * g.K[1]);
        const int64_t i1 = o1 * g.p.stride[0] - g.p.padding[0] + k1 * g.p.dilation[0];
        const int64_t i2 = o2 * g.p.stride[1] - g.p.padding[1] + k2 * g.p.dilation[1];
        const int64_t i3 = o3 * g.p.stride[2] - g.p.padding[2] + k3 * g.p.dilation[2];
        if (i1 < 0 || i1 >= g.D[0] || i2 < 0 || i2 >= g.D[1] || i3 < 0 || i3 >= g.D[2]) continue;
        const T* xp = x + (((n * g.D[0] + i1) * g.D[1] + i2) * g.D[2] + i3) * g.Ci;
        for (int64_t co = 0; co < g.Co; ++co) {
          const T* wp = w + (co * taps + tap) * g.Ci;
          T s = 0;
          for (int64_t ci = 0; ci < g.Ci; ++ci) s += xp[ci] * wp[ci];
          acc[co] += s;
        }
      }
      T* yp = y + r * g.Co;
      for (int64_t co = 0; co < g.Co; ++co) yp[co] = acc[co];
    }
  });
}

template <class T>
void backward_direct(const Geo& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  const int64_t taps = g.K[0] * g.K[1] * g.K[2];
  const int64_t rows = g.N * g.O[0] * g.O[1] * g.O[2];
  auto tap_input = [&](int64_t r, int64_t tap, int64_t* n_out) -> int64_t {
    int64_t t = r;
    const int64_t o3 = t % g.O[2]; t /= g.O[2];
    const int64_t o2 = t % g.O[1]; t /= g.O[1];
    const int64_t o1 = t % g.O[0]; t /= g.O[0];
    *n_out = t;
    const int64_t k3 = tap % g.K[2], k2 = (tap / g.K[2]) % g.K[1], k1 = tap / (g.K[2] * g.K[1]);
    const int64_t i1 = o1 * g.p.stride[0] - g.p.padding[0] + k1 * g.p.dilation[0];
    const int64_t i2 = o2 * g.p.stride[1] - g.p.padding[1] + k2 * g.p.dilation[1];
    const int64_t i3 = o3 * g.p.stride[2] - g.p.padding[2] + k3 * g.p.dilation[2];
    if (i1 < 0 || i1 >= g.D[0] || i2 < 0 || i2 >= g.D[1] || i3 < 0 || i3 >= g.D[2]) return -1;
    return ((t * g.D[0] + i1) * g.D[1] + i2) * g.D[2] + i3;
  };
  if (dw) {
    // Parallel over (co, tap): each task owns one row of Cin weights.
    parallel_for(0, g.Co * taps, 1, [&](int64_t a, int64_t b) {
      for (int64_t ct = a; ct < b; ++ct) {
        const int64_t co = ct / taps, tap = ct % taps;
        T* dwp = dw + ct * g.Ci;
        for (int64_t ci = 0; ci < g.Ci; ++ci) dwp[ci] = 0;
        for (int64_t r = 0; r < rows; ++r) {
          int64_t n;
          int64_t pos = tap_input(r, tap, &n);
          if (pos < 0) continue;
          const T d = dy[r * g.Co + co];
          const T* xp = x + pos * g.Ci;
          for (int64_t ci = 0; ci < g.Ci; ++ci) dwp[ci] += d * xp[ci];
        }
      }
    });
  }
  if (db) {
    for (int64_t co = 0; co < g.Co; ++co) db[co] = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t co = 0; co < g.Co; ++co) db[co] += dy[r * g.Co + co];
  }
  if (dx) {
    // Serial over rows per batch item to avoid write races; parallel over batch items.
    const int64_t in_per_n = g.D[0] * g.D[1] * g.D[2] * g.Ci;
    const int64_t rows_per_n = g.O[0] * g.O[1] * g.O[2];
    parallel_for(0, g.N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t i = 0; i < in_per_n; ++i) dx[n * in_per_n + i] = 0;
        for (int64_t r = n * rows_per_n; r < (n + 1) * rows_per_n; ++r) {
          for (int64_t tap = 0; tap < taps; ++tap) {
            int64_t nn;
            int64_t pos = tap_input(r, tap, &nn);
            if (pos < 0) continue;
            T* dxp = dx + pos * g.Ci;
            for (int64_t co = 0; co < g.Co; ++co) {
              const T d = dy[r * g.Co + co];
              const T* wp = w + (co * taps + tap) * g.Ci;
              for (int64_t ci = 0; ci < g.Ci; ++ci) dxp[ci] += d * wp[ci];
            }
          }
        }
      }
    });
  }
}

}  // namespace

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p) {
  check_cpu(x, "conv3d input");
  check_cpu(w, "conv3d weight");
  check_float(x, "conv3d input");
  check_same_dtype(x, w, "conv3d input", "weight");
  Geo g = geometry(x, w, p);
  if (bias.defined()) {
    check_cpu(bias, "conv3d bias");
    check_same_dtype(x, bias, "conv3d input", "bias");
    DS_CHECK(bias.dim() == 1 && bias.size(0) == g.Co, "conv3d: bias must have shape [", g.Co, "], got ",
             bias.describe());
  }
  Tensor y = Tensor::empty({g.N, g.O[0], g.O[1], g.O[2], g.Co}, x.dtype());
  if (x.dtype() == DType::Float32)
    forward_direct<float>(g, x.data<float>(), w.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                          y.data<float>());
  else
    forward_direct<double>(g, x.data<double>(), w.data<double>(), bias.defined() ? bias.data<double>() : nullptr,
                           y.data<double>());
  return y;
}

Conv3dGrads conv3d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv3dParams& p,
                            bool need_input, bool need_weight, bool need_bias) {
  check_cpu(x, "conv3d input");
  check_cpu(w, "conv3d weight");
  check_cpu(dy, "conv3d output gradient");
  check_float(x, "conv3d input");
  check_same_dtype(x, w, "conv3d input", "weight");
  check_same_dtype(x, dy, "conv3d input", "output gradient");
  Geo g = geometry(x, w, p);
  Shape expect{g.N, g.O[0], g.O[1], g.O[2], g.Co};
  DS_CHECK(dy.shape() == expect, "conv3d backward: output gradient must have shape ", shape_str(expect),
           " (the forward output's shape), got ", shape_str(dy.shape()));
  Conv3dGrads r;
  if (need_input) r.grad_input = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) r.grad_weight = Tensor::empty(w.shape(), w.dtype());
  if (need_bias) r.grad_bias = Tensor::empty({g.Co}, x.dtype());
  if (x.dtype() == DType::Float32)
    backward_direct<float>(g, x.data<float>(), w.data<float>(), dy.data<float>(),
                           need_input ? r.grad_input.data<float>() : nullptr,
                           need_weight ? r.grad_weight.data<float>() : nullptr,
                           need_bias ? r.grad_bias.data<float>() : nullptr);
  else
    backward_direct<double>(g, x.data<double>(), w.data<double>(), dy.data<double>(),
                            need_input ? r.grad_input.data<double>() : nullptr,
                            need_weight ? r.grad_weight.data<double>() : nullptr,
                            need_bias ? r.grad_bias.data<double>() : nullptr);
  return r;
}

}  // namespace ds
