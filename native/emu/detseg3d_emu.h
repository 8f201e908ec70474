// CUDA emulator, device side: what the kernels of the core see when the
// library is built with -DDETSEG3D_CUDA_EMU=ON (see native/emu/README.md).
//
// Every kernel launch runs on the calling CPU thread: blocks one after the
// other, each CUDA thread of a block as a fiber with its own stack, switched
// at __syncthreads and at warp-collective operations (shuffles, ldmatrix,
// mma.sync). Shared memory is one arena per process (blocks never overlap in
// time), `__shared__` arrays are static. The point is to execute the real
// kernel source on a machine without a GPU and check its results against the
// CPU reference; it says nothing about speed, and it cannot see races that
// need real concurrency or memory-model effects (see the README).
#pragma once
#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef DETSEG3D_CUDA_EMU
#define DETSEG3D_CUDA_EMU 1
#endif

struct uint3 {
  unsigned x, y, z;
};
// Vector types (CUDA aligns them to their size).
struct __attribute__((aligned(8))) float2 {
  float x, y;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct __attribute__((aligned(8))) int2 {
  int x, y;
};
struct __attribute__((aligned(16))) int4 {
  int x, y, z, w;
};
struct __attribute__((aligned(16))) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Keywords: device code is ordinary C++ here.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __constant__ static
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __CUDACC_EMU__ 1

namespace detseg3d_emu {

// State of the CUDA thread that is running (valid inside a kernel only).
struct ThreadState {
  uint3 tid;
  uint3 bid;
  dim3 bdim;
  dim3 gdim;
  int linear;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
};
extern thread_local ThreadState* t_cur;
inline ThreadState& cur() { return *t_cur; }

void syncthreads();
int syncthreads_or(int pred);
int syncthreads_count(int pred);
// Warp collective: every lane of the calling thread's warp deposits `bytes`
// bytes; once all 32 lanes have arrived each gets the 32 deposits as one
// array (lane l at l * bytes), valid until its next warp collective. A warp
// with exited or diverged lanes is reported as an error.
const void* warp_exchange(const void* mine, size_t bytes);
template <class T>
const T* warp_exchange(const T& mine) {
  return static_cast<const T*>(warp_exchange(&mine, sizeof(T)));
}
inline int lane_id() { return cur().linear & 31; }

[[noreturn]] void trap(const char* what);

// Shared-memory arena (dynamic shared memory and the 32-bit shared-space
// addresses the PTX helpers use).
unsigned char* dynamic_shared();
unsigned shared_address(const void* p);
unsigned char* shared_pointer(unsigned addr, size_t bytes);

// cp.async: 16-byte asynchronous global -> shared copies, grouped per thread.
void cp_async16(unsigned dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait(int pending_groups);

// ldmatrix .m8n8 .b16: x1/x2/x4, optionally transposed.
void ldmatrix(unsigned* regs, int count, unsigned addr, bool trans);
// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 (d += a*b).
void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1, bool bf16);

// ---- launches ----
struct Launch {
  const char* name;
  dim3 grid, block;
  size_t smem;
  void* stream;
  Launch(const char* n, dim3 g, dim3 b, size_t s = 0, void* st = nullptr)
      : name(n), grid(g), block(b), smem(s), stream(st) {}
  template <class... P>
  struct Bound;
  template <class... P>
  Bound<P...> kernel(void (*f)(P...)) const {
    return Bound<P...>{*this, f};
  }
};

// Runs body() once per CUDA thread of the grid (see the header comment);
// validates the configuration first and records launch errors for
// cudaGetLastError like the CUDA runtime does.
struct Body {
  virtual void run() = 0;
  virtual ~Body() = default;
};
void run_grid(const Launch& l, const void* fn, Body& body);

template <class... P>
struct Launch::Bound {
  Launch l;
  void (*f)(P...);
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    struct B final : Body {
      void (*f)(P...);
      std::tuple<std::decay_t<P>...> args;
      B(void (*fn)(P...), A&&... x) : f(fn), args(std::forward<A>(x)...) {}
      void run() override { std::apply(f, args); }  // each thread gets its own copies of the parameters
    } body(f, std::forward<A>(a)...);
    run_grid(l, reinterpret_cast<const void*>(f), body);
  }
};

}  // namespace detseg3d_emu

#define threadIdx (::detseg3d_emu::cur().tid)
#define blockIdx (::detseg3d_emu::cur().bid)
#define blockDim (::detseg3d_emu::cur().bdim)
#define gridDim (::detseg3d_emu::cur().gdim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::detseg3d_emu::syncthreads(); }
inline int __syncthreads_or(int p) { return ::detseg3d_emu::syncthreads_or(p); }
inline int __syncthreads_count(int p) { return ::detseg3d_emu::syncthreads_count(p); }
inline void __syncwarp(unsigned = 0xffffffffu) {
  ::detseg3d_emu::warp_exchange(char(0));
}
[[noreturn]] inline void __trap() { ::detseg3d_emu::trap("__trap()"); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  static_assert(std::is_trivially_copyable<T>::value, "shuffle of a non-trivial type");
  if (mask != 0xffffffffu) ::detseg3d_emu::trap("__shfl_down_sync: only the full-warp mask is emulated");
  const T* all = ::detseg3d_emu::warp_exchange(v);
  const int lane = ::detseg3d_emu::lane_id();
  const int seg = lane / width * width;
  const int src = lane + int(delta);
  return src < seg + width ? all[src] : v;
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  if (mask != 0xffffffffu) ::detseg3d_emu::trap("__shfl_xor_sync: only the full-warp mask is emulated");
  const T* all = ::detseg3d_emu::warp_exchange(v);
  const int lane = ::detseg3d_emu::lane_id();
  const int src = lane ^ lane_mask;
  return src / width == lane / width ? all[src] : v;
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  if (mask != 0xffffffffu) ::detseg3d_emu::trap("__shfl_sync: only the full-warp mask is emulated");
  const T* all = ::detseg3d_emu::warp_exchange(v);
  const int lane = ::detseg3d_emu::lane_id();
  return all[lane / width * width + src_lane % width];
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  if (mask != 0xffffffffu) ::detseg3d_emu::trap("__ballot_sync: only the full-warp mask is emulated");
  const int* all = ::detseg3d_emu::warp_exchange(int(pred != 0));
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= unsigned(all[i]) << i;
  return r;
}

// Atomics: one kernel runs at a time on one CPU thread, so plain
// read-modify-write is atomic here.
template <class T>
inline T atomicAdd(T* p, T v) {
  T o = *p;
  *p = o + v;
  return o;
}
template <class T>
inline T atomicMax(T* p, T v) {
  T o = *p;
  if (v > o) *p = v;
  return o;
}
template <class T>
inline T atomicMin(T* p, T v) {
  T o = *p;
  if (v < o) *p = v;
  return o;
}
template <class T>
inline T atomicExch(T* p, T v) {
  T o = *p;
  *p = v;
  return o;
}
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
  T o = *p;
  if (o == cmp) *p = v;
  return o;
}
template <class T>
inline T atomicOr(T* p, T v) {
  T o = *p;
  *p = o | v;
  return o;
}

// Arithmetic intrinsics with the rounding the names promise (the emulator
// sources are compiled with -ffp-contract=off, so nothing fuses).
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline int __float_as_int(float f) { return int(__float_as_uint(f)); }
inline float __int_as_float(int i) { return __uint_as_float(unsigned(i)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline size_t __cvta_generic_to_shared(const void* p) { return ::detseg3d_emu::shared_address(p); }

// CUDA's global min/max overloads accept mixed integer types.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(a) : C(b);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(b) : C(a);
}
