// Winograd F(2,3) and mixed F(2,3)xF(4,3)xF(4,3) transforms compiled for AVX-512 (16 floats per vector); see
// conv3d_winograd_tx.h and conv3d_winograd_f4_tx.h. Called only when simd_level() is AVX512.
#if defined(DETSEG3D_HAVE_X86_SIMD)
#define WINO_NS avx512
#define WINO_LANES 16
#define WINO_TABLE kernels_avx512
#include "ops/conv3d_winograd_tx.h"
#define WINO_TABLE_F4 kernels_f4_avx512
#include "ops/conv3d_winograd_f4_tx.h"
#endif
