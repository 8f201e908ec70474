// Winograd F(2,3) and mixed F(2,3)xF(4,3)xF(4,3) transforms compiled for AVX2 + FMA (8 floats per vector); see
// conv3d_winograd_tx.h and conv3d_winograd_f4_tx.h. Called only when simd_level() is AVX2 or higher.
#if defined(DETSEG3D_HAVE_X86_SIMD)
#define WINO_NS avx2
#define WINO_LANES 8
#define WINO_TABLE kernels_avx2
#include "ops/conv3d_winograd_tx.h"
#define WINO_TABLE_F4 kernels_f4_avx2
#include "ops/conv3d_winograd_f4_tx.h"
#endif
