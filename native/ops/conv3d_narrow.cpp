// Few-output-channel convolutions; see conv3d_narrow.h.
#include "ops/conv3d_narrow.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/thread_pool.h"
#include "ops/gemm.h"

namespace ds::conv_narrow {

namespace {

int64_t taps_of(const Geo& g) { return g.K[0] * g.K[1] * g.K[2]; }

// Upper bound on the elements of one chunk's P (or Q): 8 Mi (32 MiB of
// float32; the heads' 24^3 level at Cout = 18 needs 6.7 Mi, one chunk).
// DETSEG3D_CONV_NARROW_CHUNK (elements, read per call) overrides it (tests
// use it to exercise the chunking on small problems).
int64_t chunk_elems() {
  const char* e = std::getenv("DETSEG3D_CONV_NARROW_CHUNK");
  const long long v = e ? std::atoll(e) : 0;
  return v > 0 ? int64_t(v) : int64_t(1) << 23;
}

// Planes of input per chunk (at least one).
int64_t chunk_planes(const Geo& g) {
  const int64_t per_plane = g.D[1] * g.D[2] * taps_of(g) * g.Co;
  return std::max<int64_t>(1, std::min<int64_t>(g.D[0], chunk_elems() / std::max<int64_t>(1, per_plane)));
}

}  // namespace

bool use(char pass, const Geo& g) {
  const char* e = std::getenv("DETSEG3D_CONV_NARROW");
  if (e && std::strcmp(e, "0") == 0) return false;
  const int64_t taps = taps_of(g);
  if (taps < 8 || g.Ci < 32) return false;
  // Measured at 256 channels in (2-core AVX-512 VM, ms, GEMM path -> this):
  // 24^3 Cout 3: forward 22 -> 4.2, grad weight 14 -> 4.1; Cout 18: 22 -> 18,
  // 24 -> 16.7; 12^3 Cout 3: 2.8 -> 0.7, 2.1 -> 0.7. Same pass set either way.
  (void)pass;
  return g.Co <= 24;
}

template <class T>
void forward(const Geo& g, const T* x, const T* w, const T* bias, T* y, bool acc) {
  const int64_t taps = taps_of(g), NT = taps * g.Co;
  const int64_t plane_in = g.D[1] * g.D[2], plane_out = g.O[1] * g.O[2];
  // Wr[(tap, co), ci] = w[co, tap, ci]: the GEMM's B (read transposed).
  gemm::ScratchBlock wr_buf, p_buf;
  T* wr = wr_buf.get<T>(size_t(NT * g.Ci));
  for (int64_t co = 0; co < g.Co; ++co)
    for (int64_t t = 0; t < taps; ++t)
      std::copy_n(w + (co * taps + t) * g.Ci, g.Ci, wr + (t * g.Co + co) * g.Ci);
  const int64_t cp = chunk_planes(g);
  // Output planes whose inputs lie in input planes [i0, i0 + span): o1 in
  // [o_lo, o_hi) with o1 - pad >= i0 and o1 - pad + (K1-1)*dil < i0 + span.
  const int64_t reach = (g.K[0] - 1) * g.dil[0];
  const int64_t step = std::max<int64_t>(1, cp - reach);  // output planes per chunk
  T* P = p_buf.get<T>(size_t(std::min<int64_t>(step + reach, g.D[0]) * plane_in * NT));
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o_lo = 0; o_lo < g.O[0]; o_lo += step) {
      const int64_t o_hi = std::min(g.O[0], o_lo + step);
      const int64_t i0 = std::max<int64_t>(0, o_lo - g.pad[0]);
      const int64_t i1 = std::min<int64_t>(g.D[0], o_hi - 1 - g.pad[0] + reach + 1);
      if (i1 <= i0) {  // every tap reads padding: y = bias
        for (int64_t o = o_lo; o < o_hi; ++o)
          for (int64_t r = 0; r < plane_out; ++r) {
            T* yr = y + ((n * g.O[0] + o) * plane_out + r) * g.Co;
            for (int64_t c = 0; c < g.Co; ++c) yr[c] = (acc ? yr[c] : T(0)) + (bias ? bias[c] : T(0));
          }
        continue;
      }
      const T* xs = x + (n * g.D[0] + i0) * plane_in * g.Ci;
      gemm::gemm_matrix<T>(false, true, (i1 - i0) * plane_in, NT, g.Ci, xs, g.Ci, wr, g.Ci, P, NT, false);
      parallel_for(o_lo * g.O[1], o_hi * g.O[1], 4, [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l) {  // output line (o1, o2)
          const int64_t o1 = l / g.O[1], o2 = l % g.O[1];
          for (int64_t o3 = 0; o3 < g.O[2]; ++o3) {
            T* yr = y + ((n * g.O[0] + o1) * plane_out + o2 * g.O[2] + o3) * g.Co;
            // Same order as the GEMM path: (y +) bias first, then the taps in weight order.
            for (int64_t c = 0; c < g.Co; ++c) yr[c] = acc ? (bias ? yr[c] + bias[c] : yr[c]) : (bias ? bias[c] : T(0));
            for (int64_t a = 0; a < g.K[0]; ++a) {
              const int64_t j1 = o1 - g.pad[0] + a * g.dil[0];
              if (j1 < 0 || j1 >= g.D[0]) continue;
              for (int64_t b = 0; b < g.K[1]; ++b) {
                const int64_t j2 = o2 - g.pad[1] + b * g.dil[1];
                if (j2 < 0 || j2 >= g.D[1]) continue;
                for (int64_t c3 = 0; c3 < g.K[2]; ++c3) {
                  const int64_t j3 = o3 - g.pad[2] + c3 * g.dil[2];
                  if (j3 < 0 || j3 >= g.D[2]) continue;
                  const int64_t t = (a * g.K[1] + b) * g.K[2] + c3;
                  const T* pr = P + (((j1 - i0) * g.D[1] + j2) * g.D[2] + j3) * NT + t * g.Co;
                  for (int64_t c = 0; c < g.Co; ++c) yr[c] += pr[c];
                }
              }
            }
          }
        }
      });
    }
}

template <class T>
void grad_weight(const Geo& g, const T* x, const T* dy, T* dw, bool acc) {
  const int64_t taps = taps_of(g), NT = taps * g.Co;
  const int64_t plane_in = g.D[1] * g.D[2], plane_out = g.O[1] * g.O[2];
  const int64_t cp = chunk_planes(g);
  gemm::ScratchBlock q_buf, d_buf;
  T* Q = q_buf.get<T>(size_t(cp * plane_in * NT));
  T* dwt = d_buf.get<T>(size_t(NT * g.Ci));  // dWt[(tap, co), ci]
  bool first = true;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t i0 = 0; i0 < g.D[0]; i0 += cp) {
      const int64_t np = std::min(cp, g.D[0] - i0), L = np * plane_in;  // Q is [NT, L]
      parallel_for(0, NT * np, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t row = r / np, pl = r % np, t = row / g.Co, co = row % g.Co;
          const int64_t a = t / (g.K[1] * g.K[2]), b = (t / g.K[2]) % g.K[1], c3 = t % g.K[2];
          const int64_t o1 = i0 + pl + g.pad[0] - a * g.dil[0];
          T* q = Q + row * L + pl * plane_in;
          if (o1 < 0 || o1 >= g.O[0]) {
            std::fill(q, q + plane_in, T(0));
            continue;
          }
          const T* src = dy + (n * g.O[0] + o1) * plane_out * g.Co + co;
          for (int64_t j2 = 0; j2 < g.D[1]; ++j2) {
            const int64_t o2 = j2 + g.pad[1] - b * g.dil[1];
            T* qr = q + j2 * g.D[2];
            if (o2 < 0 || o2 >= g.O[1]) {
              std::fill(qr, qr + g.D[2], T(0));
              continue;
            }
            const T* s2 = src + o2 * g.O[2] * g.Co;
            const int64_t sh = g.pad[2] - c3 * g.dil[2];  // o3 = j3 + sh
            for (int64_t j3 = 0; j3 < g.D[2]; ++j3) {
              const int64_t o3 = j3 + sh;
              qr[j3] = (o3 >= 0 && o3 < g.O[2]) ? s2[o3 * g.Co] : T(0);
            }
          }
        }
      });
      const T* xs = x + (n * g.D[0] + i0) * plane_in * g.Ci;
      gemm::gemm_matrix<T>(false, false, NT, g.Ci, L, Q, L, xs, g.Ci, dwt, g.Ci, !first);
      first = false;
    }
  parallel_for(0, g.Co, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co)
      for (int64_t t = 0; t < taps; ++t) {
        const T* s = dwt + (t * g.Co + co) * g.Ci;
        T* d = dw + (co * taps + t) * g.Ci;
        if (acc)
          for (int64_t c = 0; c < g.Ci; ++c) d[c] += s[c];
        else
          std::copy_n(s, g.Ci, d);
      }
  });
}

template void forward<float>(const Geo&, const float*, const float*, const float*, float*, bool);
template void forward<double>(const Geo&, const double*, const double*, const double*, double*, bool);
template void grad_weight<float>(const Geo&, const float*, const float*, float*, bool);
template void grad_weight<double>(const Geo&, const double*, const double*, double*, bool);

}  // namespace ds::conv_narrow
