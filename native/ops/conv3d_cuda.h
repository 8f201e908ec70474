// conv3d on CUDA tensors (channels-last, see ops/conv3d.h for the layout and
// the output-size rule). The CPU entry points in conv3d.cpp dispatch here
// when the input lives on a GPU; these functions can also be called directly
// for the fused forms. Implemented in conv3d_cuda*.cu; in builds without CUDA
// conv3d_cuda_nocuda.cpp provides stubs that throw.
//
// dtypes: x, w and grad_out share one of float16, bfloat16 (tensor cores,
// float32 accumulation), float32 (SIMT kernels, full float32 products and
// float32 accumulation: no TF32) or float64 (SIMT, float64 throughout), all
// on one device. bias is float32 or x's dtype. Work is enqueued on the
// device's compute stream (ds::cuda::stream) without host synchronisation,
// except that the first call for a new (shape, dtype, pass) times the
// eligible kernels once (autotuner, see below) and synchronises then.
//
// Mixed precision: conv3d_backward_cuda_into accepts float32 grad_weight /
// grad_bias for 16-bit x (the trainer's float32 master gradients); the
// reduction then never rounds to 16 bits. The allocating conv3d_backward_cuda
// returns grad_weight / grad_bias in x's dtype.
//
// Kernel selection (per pass): 16-bit with Cin % 8 == 0 (forward), Cout % 8 == 0
// (grad input), both (grad weight): implicit-GEMM tensor-core kernels
// (mma.sync m16n8k16, cp.async pipelines), 1x1x1 stride-1 unpadded layers as
// plain GEMMs, grad input of strided layers as one GEMM per stride phase (only
// the taps that reach each phase); 16-bit with Cin == 1 and at most 352 taps
// (the 7x7x7 stem): dedicated forward / grad-weight kernels (the forward needs
// 139 KiB of shared memory: sm_80 / sm_90, not sm_86 / sm_89, where the SIMT
// path takes over); everything else (float32, float64,
// odd channel counts): a SIMT implicit GEMM with predicated scalar loads (any
// stride, padding, dilation, channel count; "simt128"), with the simplest
// 64x64-tile SIMT kernels ("generic") kept as a reference fallback that is only
// used when forced. Among eligible kernels the autotuner times each once per
// (shape, dtype, pass, device) and caches the fastest. DETSEG3D_CONV_CUDA_ALGO=<name>
// (read per call) forces a candidate when it is eligible (names: see
// conv3d_cuda_candidates); an ineligible name is ignored.
#pragma once
#include <string>
#include <vector>

#include "ops/conv3d.h"

namespace ds {

Tensor conv3d_forward_cuda(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p);
// y = relu?( (accumulate ? y : 0) + conv(x, w) + bias ). y: [N, O1, O2, O3, Cout] of x's dtype.
void conv3d_forward_cuda_into(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p, Tensor& y,
                              bool accumulate = false, bool relu = false);
Conv3dGrads conv3d_backward_cuda(const Tensor& x, const Tensor& w, const Tensor& grad_out, const Conv3dParams& p,
                                 bool need_input = true, bool need_weight = true, bool need_bias = false);
// Fills the defined members of grads (grad_input like x; grad_weight like w in
// x's dtype or float32; grad_bias [Cout] in x's dtype or float32); with
// accumulate, adds to their contents.
void conv3d_backward_cuda_into(const Tensor& x, const Tensor& w, const Tensor& grad_out, const Conv3dParams& p,
                               Conv3dGrads& grads, bool accumulate = false);

// Autotuner introspection (tests, benchmarks).
enum class Conv3dPass { Forward = 0, GradInput = 1, GradWeight = 2 };
// Names of the kernels eligible for this problem and pass, e.g. "tc128x128",
// "gemm128x64", "stem", "simt128", "generic" (always last). The same forced
// name applies to every pass where it is eligible. The 16-byte alignment test
// uses x and w here; the real selection uses x and w (forward), x and grad_out
// (grad weight), grad_out (grad input): this assumes grad_out is aligned like x.
std::vector<std::string> conv3d_cuda_candidates(const Tensor& x, const Tensor& w, const Conv3dParams& p,
                                                Conv3dPass pass);
// Forces one candidate for every later call (process-wide) until cleared with
// "" (takes precedence over DETSEG3D_CONV_CUDA_ALGO; ignored where ineligible).
void conv3d_cuda_force_algo(const std::string& name);
// The kernel the last call of `pass` used (for tests and benchmark tables).
std::string conv3d_cuda_last_algo(Conv3dPass pass);

}  // namespace ds
