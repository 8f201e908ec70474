// Winograd F(2,3) transforms compiled for AVX-512 (16 floats per vector); see
// conv3d_winograd_tx.h. Called only when simd_level() is AVX512.
#if defined(DETSEG3D_HAVE_X86_SIMD)
#define WINO_NS avx512
#define WINO_LANES 16
#define WINO_TABLE kernels_avx512
#include "ops/conv3d_winograd_tx.h"
#endif
