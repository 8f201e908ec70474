// Internal (conv3d.cpp dispatches here): stride-1 convolutions with few output
// channels (the RetinaNet heads' final 3x3x3 256 -> A*classes / A*6 convs).
// The im2col GEMM would pack taps*Cin values per output row for only Cout
// columns (packing dominates at Cout = 3); instead:
//   forward      P[m, (tap, co)] = X[m, :] . W[co, tap, :]          one GEMM, N = taps*Cout
//                y[o, co] = bias[co] + sum over taps of P[o - pad + tap*dil, (tap, co)]
//   grad weight  Q[(tap, co), m] = dY[m + pad - tap*dil, co]        (zero outside)
//                dW[co, tap, :] = sum_m Q[(tap, co), m] X[m, :]     one GEMM, M = taps*Cout
// X is read once instead of taps times. The P / Q buffers are bounded by
// chunking over input planes (D1).
#pragma once
#include <cstdint>

namespace ds::conv_narrow {

struct Geo {
  int64_t N, D[3], Ci, Co, K[3], O[3], pad[3], dil[3];
};

// Whether this stride-1 problem should take the narrow path (pass 'f' forward, 'w' grad weight).
bool use(char pass, const Geo& g);

template <class T>
void forward(const Geo& g, const T* x, const T* w, const T* bias, T* y, bool acc);
template <class T>
void grad_weight(const Geo& g, const T* x, const T* dy, T* dw, bool acc);

}  // namespace ds::conv_narrow
