// Self-checks of the CUDA emulator (native/emu), compiled only into builds
// with -DDETSEG3D_CUDA_EMU=ON. The emulator is what the GPU parity tests run
// on when there is no GPU, so its primitives are checked against independent
// references: the m16n8k16 product against a naive matrix product with the
// fragments filled from the PTX ISA's layout tables, ldmatrix against those
// same fragments, shuffles/ballots/barrier reductions against hand-worked
// values, cp.async zero-fill and wait groups, and every error it promises to
// report (out-of-bounds writes, deadlocks, bad launch configurations, shared
// memory limits, copies outside an allocation).
#ifdef DETSEG3D_CUDA_EMU
#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "core/cuda_runtime.h"
#include "core/dtype.h"
#include "tests/harness.h"

using namespace ds;

namespace {

using detseg3d_emu::Launch;

uint32_t pack(float lo, float hi) { return uint32_t(float_to_half(lo)) | uint32_t(float_to_half(hi)) << 16; }

// A[16][16] = (3r + c) mod 7 - 3, B[16][8] = (r + 2c) mod 5 - 2: small integers, exact in float16.
float Aval(int r, int c) { return float((3 * r + c) % 7 - 3); }
float Bval(int k, int n) { return float((k + 2 * n) % 5 - 2); }

// One warp: fragments from the PTX tables (groupID g = lane / 4, t = lane % 4):
// a0,a1 = A[g][2t, 2t+1]; a2,a3 = A[g+8][..]; a4,a5 = A[g][2t+8, 2t+9]; a6,a7 = A[g+8][2t+8..];
// b0,b1 = B[2t, 2t+1][g]; b2,b3 = B[2t+8, 2t+9][g]; c0,c1 = D[g][2t, 2t+1]; c2,c3 = D[g+8][..].
void mma_kernel(float* out) {
  const int l = int(threadIdx.x), g = l / 4, t = l % 4;
  unsigned a[4] = {pack(Aval(g, 2 * t), Aval(g, 2 * t + 1)), pack(Aval(g + 8, 2 * t), Aval(g + 8, 2 * t + 1)),
                   pack(Aval(g, 2 * t + 8), Aval(g, 2 * t + 9)), pack(Aval(g + 8, 2 * t + 8), Aval(g + 8, 2 * t + 9))};
  const unsigned b0 = pack(Bval(2 * t, g), Bval(2 * t + 1, g)), b1 = pack(Bval(2 * t + 8, g), Bval(2 * t + 9, g));
  float d[4] = {1.f, 1.f, 1.f, 1.f};  // accumulates onto C = 1
  detseg3d_emu::mma16816(d, a, b0, b1, false);
  out[(g)*8 + 2 * t] = d[0];
  out[(g)*8 + 2 * t + 1] = d[1];
  out[(g + 8) * 8 + 2 * t] = d[2];
  out[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// ldmatrix from shared memory, A row-major [16][16] and B as [k][n] = [16][8]
// halves: x4 over A's four 8x8 quadrants (rows 0-7/8-15 x cols 0-7/8-15, in
// the order a0..a3 use them), x2.trans over B's two 8x8 halves (k 0-7, 8-15).
void ldmatrix_kernel(unsigned* ok) {
  unsigned char* sm = detseg3d_emu::dynamic_shared();
  uint16_t* As = reinterpret_cast<uint16_t*>(sm);
  uint16_t* Bs = As + 256;
  const int l = int(threadIdx.x), g = l / 4, t = l % 4;
  for (int i = l; i < 256; i += 32) As[i] = float_to_half(Aval(i / 16, i % 16));
  for (int i = l; i < 128; i += 32) Bs[i] = float_to_half(Bval(i / 8, i % 8));
  __syncthreads();
  const int mat = l / 8, row = l % 8;
  const int arow = row + 8 * (mat & 1), acol = 8 * (mat >> 1);
  unsigned a[4];
  detseg3d_emu::ldmatrix(a, 4, detseg3d_emu::shared_address(As + arow * 16 + acol), false);
  unsigned b[2];
  detseg3d_emu::ldmatrix(b, 2, detseg3d_emu::shared_address(Bs + (l % 16) * 8), true);
  const unsigned want_a[4] = {pack(Aval(g, 2 * t), Aval(g, 2 * t + 1)), pack(Aval(g + 8, 2 * t), Aval(g + 8, 2 * t + 1)),
                              pack(Aval(g, 2 * t + 8), Aval(g, 2 * t + 9)),
                              pack(Aval(g + 8, 2 * t + 8), Aval(g + 8, 2 * t + 9))};
  const unsigned want_b[2] = {pack(Bval(2 * t, g), Bval(2 * t + 1, g)), pack(Bval(2 * t + 8, g), Bval(2 * t + 9, g))};
  ok[l] = a[0] == want_a[0] && a[1] == want_a[1] && a[2] == want_a[2] && a[3] == want_a[3] && b[0] == want_b[0] &&
          b[1] == want_b[1];
}

void warp_kernel(int* out) {
  const int l = int(threadIdx.x) & 31, w = int(threadIdx.x) >> 5;
  int v = l;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, unsigned(off));
  const unsigned odd = __ballot_sync(0xffffffffu, l & 1);
  const int any = __syncthreads_or(threadIdx.x == 37);
  const int count = __syncthreads_count(threadIdx.x % 3 == 0);
  if (l == 0) {
    out[4 * w] = v;
    out[4 * w + 1] = int(odd == 0xaaaaaaaau);
    out[4 * w + 2] = any;
    out[4 * w + 3] = count;
  }
}

// Reverses 256 values through a static shared array (needs the barrier).
void reverse_kernel(const float* in, float* out) {
  __shared__ float s[256];
  const int i = int(threadIdx.x);
  s[i] = in[blockIdx.x * 256 + unsigned(i)];
  __syncthreads();
  out[blockIdx.x * 256 + unsigned(i)] = s[255 - i];
}

void cp_async_kernel(const float* src, float* out) {
  unsigned char* sm = detseg3d_emu::dynamic_shared();
  const int l = int(threadIdx.x);
  for (int i = 0; i < 8; ++i) sm[16 * l + i] = 0x7f;
  // Lane l copies 4 floats (16 bytes) of src, odd lanes with src-size 0 (zero-fill).
  detseg3d_emu::cp_async16(detseg3d_emu::shared_address(sm + 16 * l), src + 4 * l, (l & 1) == 0);
  detseg3d_emu::cp_async_commit();
  detseg3d_emu::cp_async_wait(0);
  __syncthreads();
  const float* f = reinterpret_cast<const float*>(sm);
  for (int i = 0; i < 4; ++i) out[4 * l + i] = f[4 * l + i];
}

[[maybe_unused]] void oob_kernel(float* p, int n) {
  if (threadIdx.x == 0) p[n] = 1.f;  // one past the end
}
void early_exit_shuffle_kernel(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1u);
}
void noop_kernel(int*) {}

template <class T>
T* dev_alloc(size_t n) {
  void* p = nullptr;
  DS_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}
template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  DS_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

}  // namespace

DS_TEST(emu_mma_matches_naive_product) {
  float* d = dev_alloc<float>(128);
  Launch("mma_kernel", 1, 32).kernel(mma_kernel)(d);
  DS_CUDA_CHECK(cudaGetLastError());
  auto h = to_host(d, 128);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c) {
      double want = 1.0;
      for (int k = 0; k < 16; ++k) want += double(Aval(r, k)) * Bval(k, c);
      DS_EXPECT(h[size_t(r * 8 + c)] == float(want), "D[", r, "][", c, "] = ", h[size_t(r * 8 + c)], ", want ", want);
    }
  cudaFree(d);
}

DS_TEST(emu_ldmatrix_matches_fragment_tables) {
  unsigned* ok = dev_alloc<unsigned>(32);
  Launch("ldmatrix_kernel", 1, 32, 1024).kernel(ldmatrix_kernel)(ok);
  DS_CUDA_CHECK(cudaGetLastError());
  auto h = to_host(ok, 32);
  for (int l = 0; l < 32; ++l) DS_EXPECT(h[size_t(l)] == 1u, "lane ", l, " got other fragments than the PTX tables give");
  cudaFree(ok);
}

DS_TEST(emu_warp_and_block_collectives) {
  int* out = dev_alloc<int>(32);
  Launch("warp_kernel", 1, 256).kernel(warp_kernel)(out);
  DS_CUDA_CHECK(cudaGetLastError());
  auto h = to_host(out, 32);
  for (int w = 0; w < 8; ++w) {
    DS_EXPECT(h[size_t(4 * w)] == 496, "warp ", w, ": shuffle-down sum of lanes 0..31 = ", h[size_t(4 * w)]);
    DS_EXPECT(h[size_t(4 * w + 1)] == 1, "warp ", w, ": ballot of odd lanes");
    DS_EXPECT(h[size_t(4 * w + 2)] == 1, "__syncthreads_or");
    DS_EXPECT(h[size_t(4 * w + 3)] == 86, "__syncthreads_count of 0, 3, ..., 255: ", h[size_t(4 * w + 3)]);
  }
  cudaFree(out);
}

DS_TEST(emu_shared_memory_and_barrier) {
  const int blocks = 3;
  std::vector<float> in(256 * blocks);
  for (size_t i = 0; i < in.size(); ++i) in[i] = float(i);
  float* din = dev_alloc<float>(in.size());
  float* dout = dev_alloc<float>(in.size());
  DS_CUDA_CHECK(cudaMemcpy(din, in.data(), in.size() * 4, cudaMemcpyHostToDevice));
  Launch("reverse_kernel", blocks, 256).kernel(reverse_kernel)(din, dout);
  DS_CUDA_CHECK(cudaGetLastError());
  auto h = to_host(dout, in.size());
  for (int b = 0; b < blocks; ++b)
    for (int i = 0; i < 256; ++i) DS_EXPECT(h[size_t(b * 256 + i)] == float(b * 256 + 255 - i), "block ", b, " i ", i);
  cudaFree(din);
  cudaFree(dout);
}

DS_TEST(emu_cp_async_copies_and_zero_fills) {
  std::vector<float> src(128);
  for (size_t i = 0; i < src.size(); ++i) src[i] = float(i) + 0.5f;
  float* ds = dev_alloc<float>(128);
  float* dout = dev_alloc<float>(128);
  DS_CUDA_CHECK(cudaMemcpy(ds, src.data(), 512, cudaMemcpyHostToDevice));
  Launch("cp_async_kernel", 1, 32, 512).kernel(cp_async_kernel)(ds, dout);
  DS_CUDA_CHECK(cudaGetLastError());
  auto h = to_host(dout, 128);
  for (int i = 0; i < 128; ++i) {
    const float want = ((i / 4) & 1) ? 0.f : src[size_t(i)];
    DS_EXPECT(h[size_t(i)] == want, "element ", i, ": ", h[size_t(i)], ", want ", want);
  }
  cudaFree(ds);
  cudaFree(dout);
}

DS_TEST(emu_reports_what_a_gpu_would_fault_on) {
  float* p = dev_alloc<float>(10);
#if !defined(__SANITIZE_ADDRESS__)  // under ASan the write itself aborts, with its stack
  Launch("oob_kernel", 1, 32).kernel(oob_kernel)(p, 10);
  DS_EXPECT(cudaGetLastError() == cudaErrorIllegalAddress, "a write past the end must be reported");
#endif
  int* q = dev_alloc<int>(32);
  Launch("early_exit_shuffle_kernel", 1, 32).kernel(early_exit_shuffle_kernel)(q);
  DS_EXPECT(cudaGetLastError() == cudaErrorLaunchFailure, "a full-mask shuffle with an exited lane must be reported");
  Launch("noop_kernel", 1, 2048).kernel(noop_kernel)(q);
  DS_EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads per block must be refused");
  Launch("noop_kernel", dim3(1, 70000), 32).kernel(noop_kernel)(q);
  DS_EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "gridDim.y > 65535 must be refused");
  Launch("noop_kernel", 1, 32, 64 << 10).kernel(noop_kernel)(q);
  DS_EXPECT(cudaGetLastError() == cudaErrorInvalidValue, "64 KiB of dynamic shared memory needs cudaFuncSetAttribute");
  DS_CUDA_CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10));
  Launch("noop_kernel", 1, 32, 64 << 10).kernel(noop_kernel)(q);
  DS_CUDA_CHECK(cudaGetLastError());
  DS_EXPECT(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 1 << 20) ==
                cudaErrorInvalidValue,
            "more than the device's opt-in shared memory must be refused");
  cudaGetLastError();
  std::vector<float> h(11);
  DS_EXPECT(cudaMemcpy(h.data(), p, 11 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
            "a copy beyond the allocation must be refused");
  DS_EXPECT(cudaMemcpy(p, h.data(), 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
            "a device-to-host copy from host memory must be refused");
  cudaGetLastError();
  cudaFree(p);
  cudaFree(q);
}

#endif  // DETSEG3D_CUDA_EMU
