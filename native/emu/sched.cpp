// CUDA emulator: kernel launches. Blocks run one after another on the calling
// thread; the threads of a block are fibers (own stacks, switched by hand on
// x86-64, by ucontext elsewhere) that give up the CPU at __syncthreads and at
// warp collectives. Threads within a block run in a seeded random order so
// that code relying on an order CUDA does not promise is likely to fail.
// The tensor-core instructions built on the warp collectives are in ptx.cpp.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "emu_internal.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
// -DDETSEG3D_EMU_ASAN=ON: AddressSanitizer follows the fiber switches, so
// out-of-bounds reads of device and shared memory abort with a stack trace.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define DS_EMU_ASAN 1
#else
#define DS_EMU_ASAN 0
#endif

namespace detseg3d_emu {

thread_local ThreadState* t_cur = nullptr;

namespace {

// ---- fibers ------------------------------------------------------------------
// Per CUDA thread (kernels keep their register arrays here; ASan frames are larger).
constexpr size_t kStack = size_t(DS_EMU_ASAN ? 1024 : 256) << 10;
constexpr size_t kGuard = 4096;
constexpr int kLaneBytes = 64;  // largest warp-collective deposit (mma: 40 bytes)

enum class St { Ready, Block, Warp, Done };

struct CpAsync {
  unsigned char* dst;
  const unsigned char* src;
  int n;  // bytes read (0 or 16); the rest of the 16 is zero-filled
  long group;
};

struct Fiber {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  unsigned char* stack = nullptr;
  ThreadState ts{};
  St st = St::Done;
  long gen = 0;  // barrier / warp generation waited for
  int pred = 0;  // __syncthreads_or/count contribution
  std::vector<CpAsync> cp;
  long committed = 0;
  void* asan_fake = nullptr;  // ASan's fake stack of this fiber while it is switched out
};

#if defined(__x86_64__)
extern "C" void ds_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl ds_emu_switch
  .type ds_emu_switch,@function
ds_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size ds_emu_switch, .-ds_emu_switch
)");
#endif

struct Grid;
// Per OS thread: the grid being run and the scheduler's context.
struct Sched {
  Grid* grid = nullptr;
  Fiber* running = nullptr;
#if defined(__x86_64__)
  void* sched_sp = nullptr;
#else
  ucontext_t sched_ctx;
#endif
  void* asan_fake = nullptr;           // the scheduler's, while a fiber runs
  const void* sched_bottom = nullptr;  // the scheduler's stack, for switches back
  size_t sched_size = 0;
};
thread_local Sched t_sched;

struct WarpState {
  int arrived = 0;
  long gen = 0;
  size_t bytes = 0;
  unsigned char buf[2][32 * kLaneBytes];  // lane l's deposit at l * bytes
  WarpScratch scratch;
};

struct Grid {
  Body* body = nullptr;
  std::vector<Fiber> fibers;
  std::vector<WarpState> warps;
  int nthreads = 0;
  int live = 0;
  int at_barrier = 0;
  long barrier_gen = 0;
  int barrier_or = 0, barrier_count = 0;
  bool exited_before_barrier = false;
  std::string error;  // first failure of the grid
  size_t smem = 0;
};

[[noreturn]] void fail(const std::string& msg) { throw KernelFault(msg); }

// ASan fiber annotations (no-ops without ASan): a switch starts on the
// source stack and finishes on the destination.
inline void asan_start(void** fake, const void* bottom, size_t size) {
#if DS_EMU_ASAN
  __sanitizer_start_switch_fiber(fake, bottom, size);
#else
  (void)fake, (void)bottom, (void)size;
#endif
}
inline void asan_finish(void* fake, const void** bottom, size_t* size) {
#if DS_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
  (void)fake, (void)bottom, (void)size;
#endif
}

// From the running fiber to the scheduler; `finished`: never resumed.
void yield_to_scheduler(bool finished = false) {
  Sched& s = t_sched;
  Fiber& f = *s.running;
  asan_start(finished ? nullptr : &f.asan_fake, s.sched_bottom, s.sched_size);
#if defined(__x86_64__)
  ds_emu_switch(&f.sp, s.sched_sp);
#else
  swapcontext(&f.ctx, &s.sched_ctx);
#endif
  asan_finish(f.asan_fake, &s.sched_bottom, &s.sched_size);
}

void run_fiber(Fiber& f) {
  Sched& s = t_sched;
  s.running = &f;
  t_cur = &f.ts;
  asan_start(&s.asan_fake, f.stack, kStack);
#if defined(__x86_64__)
  ds_emu_switch(&s.sched_sp, f.sp);
#else
  swapcontext(&s.sched_ctx, &f.ctx);
#endif
  asan_finish(s.asan_fake, nullptr, nullptr);
  s.running = nullptr;
  t_cur = nullptr;
}

void flush_cp_async(Fiber& f, long below_group);

void release_barrier(Grid& g) {
  g.barrier_gen++;
  g.barrier_or = 0;
  g.barrier_count = 0;
  for (Fiber& f : g.fibers) {
    if (f.st == St::Block) {
      g.barrier_or |= f.pred;
      g.barrier_count += f.pred;
    }
  }
  for (Fiber& f : g.fibers)
    if (f.st == St::Block) f.st = St::Ready;
  g.at_barrier = 0;
}

void fiber_main() {
  Sched& s = t_sched;
  asan_finish(nullptr, &s.sched_bottom, &s.sched_size);
  Grid& g = *s.grid;
  Fiber& f = *s.running;
  try {
    g.body->run();
    flush_cp_async(f, -1);
  } catch (const KernelFault& e) {
    if (g.error.empty()) g.error = e.what();
  } catch (const std::exception& e) {
    if (g.error.empty()) g.error = std::string("C++ exception in kernel: ") + e.what();
  } catch (...) {
    if (g.error.empty()) g.error = "unknown C++ exception in kernel";
  }
  f.st = St::Done;
  g.live--;
  if (g.at_barrier > 0) g.exited_before_barrier = true;
  if (g.live > 0 && g.at_barrier == g.live) release_barrier(g);
  yield_to_scheduler(true);
  std::abort();  // a finished fiber is never resumed
}

#if defined(__x86_64__)
extern "C" void ds_emu_fiber_entry() { fiber_main(); }
#else
void fiber_entry_uc() { fiber_main(); }
#endif

// Stacks are kept for the process's lifetime and reused by every launch.
std::vector<unsigned char*>& stack_pool() {
  static std::vector<unsigned char*> pool;
  return pool;
}
unsigned char* stack_at(size_t i) {
  auto& pool = stack_pool();
  while (pool.size() <= i) {
    void* m = mmap(nullptr, kStack + kGuard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, kGuard, PROT_NONE);  // stack overflow faults instead of corrupting a neighbour
    pool.push_back(static_cast<unsigned char*>(m));
  }
  return pool[i] + kGuard;
}

void init_fiber(Fiber& f, unsigned char* stack) {
#if DS_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(stack, kStack);  // frames a failed grid abandoned
#endif
  f.stack = stack;
  f.asan_fake = nullptr;
  f.st = St::Ready;
  f.gen = 0;
  f.pred = 0;
  f.cp.clear();
  f.committed = 0;
#if defined(__x86_64__)
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + kStack) & ~uintptr_t(15);
  uint64_t* s = reinterpret_cast<uint64_t*>(top - 72);
  const uint32_t mxcsr = 0x1f80;
  const uint16_t fcw = 0x037f;
  std::memset(s, 0, 72);
  std::memcpy(s, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(s) + 4, &fcw, 2);
  s[7] = reinterpret_cast<uint64_t>(&ds_emu_fiber_entry);  // popped by ret
  s[8] = 0;                                                // its fake return address
  f.sp = s;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_entry_uc, 0);
#endif
}

// ---- shared memory ------------------------------------------------------------
constexpr size_t kArena = size_t(256) << 10;
alignas(128) unsigned char g_arena[kArena];

std::mutex g_launch_mu;  // one grid at a time in the process
std::map<const void*, int> g_max_dyn_smem;
std::mt19937_64& rng() {
  static std::mt19937_64 r([] {
    const char* s = std::getenv("DETSEG3D_EMU_SEED");
    return s ? std::strtoull(s, nullptr, 10) : 20261127ull;
  }());
  return r;
}

Grid& grid() {
  Grid* g = t_sched.grid;
  if (!g || !t_sched.running) {
    std::fprintf(stderr, "detseg3d CUDA emulator: device function called outside a kernel\n");
    std::abort();
  }
  return *g;
}
Fiber& me() { return *t_sched.running; }

void flush_cp_async(Fiber& f, long below_group) {
  size_t keep = 0;
  for (size_t i = 0; i < f.cp.size(); ++i) {
    CpAsync& c = f.cp[i];
    if (below_group < 0 || c.group < below_group) {
      if (c.n) std::memcpy(c.dst, c.src, size_t(c.n));
      if (c.n < 16) std::memset(c.dst + c.n, 0, size_t(16 - c.n));
    } else {
      f.cp[keep++] = c;
    }
  }
  f.cp.resize(keep);
}

// DETSEG3D_EMU_PROFILE=1: emulation time per kernel, printed at exit.
struct Profile {
  std::map<std::string, std::pair<double, long>> by_kernel;  // seconds, launches
  ~Profile() {
    if (by_kernel.empty()) return;
    std::vector<std::pair<double, std::string>> rows;
    for (auto& [k, v] : by_kernel) rows.push_back({v.first, k});
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "detseg3d CUDA emulator: time per kernel (emulated, not GPU time)\n");
    for (auto& [sec, k] : rows) std::fprintf(stderr, "  %10.3f s %8ld x  %s\n", sec, by_kernel[k].second, k.c_str());
  }
};
Profile* profile() {
  static Profile* p = [] {
    const char* e = std::getenv("DETSEG3D_EMU_PROFILE");
    return e && e[0] == '1' ? new Profile() : nullptr;
  }();
  return p;
}
void print_profile_at_exit() {
  static bool once = [] { return std::atexit([] { delete profile(); }) == 0; }();
  (void)once;
}

std::string dim_str(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

}  // namespace

KernelFault::KernelFault(const std::string& m) : std::runtime_error(m) {}

// ---- device functions ---------------------------------------------------------
void syncthreads() {
  Grid& g = grid();
  Fiber& f = me();
  f.st = St::Block;
  f.gen = g.barrier_gen;
  g.at_barrier++;
  if (g.at_barrier == g.live) release_barrier(g);
  yield_to_scheduler();
}
int syncthreads_or(int pred) {
  me().pred = pred != 0;
  syncthreads();
  me().pred = 0;
  return grid().barrier_or;
}
int syncthreads_count(int pred) {
  me().pred = pred != 0;
  syncthreads();
  me().pred = 0;
  return grid().barrier_count;
}

const void* warp_exchange(const void* mine, size_t bytes) {
  Grid& g = grid();
  Fiber& f = me();
  if (bytes > size_t(kLaneBytes)) fail("warp collective payload too large for the emulator");
  const int lane = f.ts.linear & 31, wi = f.ts.linear >> 5;
  if ((wi + 1) * 32 > g.nthreads)
    fail("warp collective in a partial warp (block of " + std::to_string(g.nthreads) +
         " threads): lanes that do not exist cannot take part in a full-mask operation");
  WarpState& w = g.warps[size_t(wi)];
  if (w.arrived == 0) {
    w.bytes = bytes;
  } else if (w.bytes != bytes) {
    fail("lanes of one warp are at different warp collectives (divergence)");
  }
  const long gen = w.gen;
  std::memcpy(w.buf[gen & 1] + size_t(lane) * bytes, mine, bytes);
  f.st = St::Warp;
  f.gen = gen;
  if (++w.arrived == 32) {
    w.arrived = 0;
    w.gen++;
    for (int l = 0; l < 32; ++l) g.fibers[size_t(wi * 32 + l)].st = St::Ready;
  }
  yield_to_scheduler();
  return w.buf[gen & 1];
}

void trap(const char* what) { fail(std::string("kernel trapped: ") + what); }

unsigned char* dynamic_shared() { return g_arena; }

unsigned shared_address(const void* p) {
  auto* c = static_cast<const unsigned char*>(p);
  if (c < g_arena || c >= g_arena + kArena)
    fail("__cvta_generic_to_shared of a pointer outside dynamic shared memory (the emulator maps only the dynamic "
         "shared-memory arena)");
  return unsigned(c - g_arena);
}

unsigned char* shared_pointer(unsigned addr, size_t bytes) {
  Grid& g = grid();
  if (size_t(addr) + bytes > g.smem)
    fail("shared-memory access at byte " + std::to_string(addr) + " (+" + std::to_string(bytes) +
         ") beyond the launch's " + std::to_string(g.smem) + " bytes of dynamic shared memory");
  return g_arena + addr;
}

void cp_async16(unsigned dst, const void* src, bool valid) {
  if (dst % 16) fail("cp.async destination not 16-byte aligned");
  if (valid && reinterpret_cast<uintptr_t>(src) % 16) fail("cp.async source not 16-byte aligned");
  Fiber& f = me();
  CpAsync c{shared_pointer(dst, 16), static_cast<const unsigned char*>(src), valid ? 16 : 0, f.committed};
  f.cp.push_back(c);
  // The copy lands some time before the matching wait: either now or at the wait.
  if (rng()() & 1) flush_cp_async(f, -1);
}

void cp_async_commit() { me().committed++; }

void cp_async_wait(int pending) {
  Fiber& f = me();
  flush_cp_async(f, f.committed - pending);
}

WarpScratch& warp_scratch() {
  Grid& g = grid();
  return g.warps[size_t(me().ts.linear >> 5)].scratch;
}
long warp_generation() { return me().gen; }

cudaError_t set_max_dynamic_smem(const void* fn, int bytes) {
  const DeviceModel& m = device_model();
  if (bytes < 0 || size_t(bytes) > m.smem_optin) {
    set_last_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(bytes) +
                                              " bytes of dynamic shared memory exceed the device's opt-in limit " +
                                              std::to_string(m.smem_optin));
    return cudaErrorInvalidValue;
  }
  std::lock_guard<std::mutex> lk(g_launch_mu);
  g_max_dyn_smem[fn] = bytes;
  return cudaSuccess;
}

// ---- launch -------------------------------------------------------------------
void run_grid(const Launch& l, const void* fn, Body& body) {
  const std::string cfg = std::string(l.name) + "<<<" + dim_str(l.grid) + ", " + dim_str(l.block) + ", " +
                          std::to_string(l.smem) + ">>>";
  const uint64_t threads = uint64_t(l.block.x) * l.block.y * l.block.z;
  if (threads == 0 || threads > 1024 || l.block.x > 1024 || l.block.y > 1024 || l.block.z > 64 || l.grid.x == 0 ||
      l.grid.y == 0 || l.grid.z == 0 || l.grid.x > 2147483647u || l.grid.y > 65535 || l.grid.z > 65535) {
    set_last_error(cudaErrorInvalidConfiguration, "invalid launch configuration " + cfg);
    return;
  }
  std::unique_lock<std::mutex> lk(g_launch_mu);
  size_t limit = 48 << 10;
  auto it = g_max_dyn_smem.find(fn);
  if (it != g_max_dyn_smem.end()) limit = std::max(limit, size_t(it->second));
  if (l.smem > limit || l.smem > kArena) {
    set_last_error(cudaErrorInvalidValue, cfg + ": " + std::to_string(l.smem) +
                                              " bytes of dynamic shared memory exceed the kernel's limit of " +
                                              std::to_string(limit) + " (cudaFuncSetAttribute)");
    return;
  }
  Grid g;
  g.body = &body;
  g.nthreads = int(threads);
  g.smem = l.smem;
  g.fibers.resize(size_t(threads));
  g.warps.resize(size_t((threads + 31) / 32));
  std::vector<int> order(static_cast<size_t>(threads));
  for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);

  Sched& s = t_sched;
  Grid* prev = s.grid;
  s.grid = &g;
  const auto t0 = std::chrono::steady_clock::now();
  bool warned_exit = false;
  for (unsigned bz = 0; bz < l.grid.z && g.error.empty(); ++bz)
    for (unsigned by = 0; by < l.grid.y && g.error.empty(); ++by)
      for (unsigned bx = 0; bx < l.grid.x && g.error.empty(); ++bx) {
        // Shared memory starts as garbage (NaN bit patterns) in every block.
        std::memset(g_arena, 0xff, l.smem);
#if DS_EMU_ASAN
        ASAN_POISON_MEMORY_REGION(g_arena + l.smem, kArena - l.smem);  // beyond the launch's dynamic size
#endif
        g.live = int(threads);
        g.at_barrier = 0;
        g.barrier_gen = 0;
        g.exited_before_barrier = false;
        for (WarpState& w : g.warps) w.arrived = 0, w.gen = 0, w.scratch.gen = -1;
        for (unsigned t = 0; t < threads; ++t) {
          Fiber& f = g.fibers[t];
          init_fiber(f, stack_at(t));
          f.ts.tid = {t % l.block.x, (t / l.block.x) % l.block.y, t / (l.block.x * l.block.y)};
          f.ts.bid = {bx, by, bz};
          f.ts.bdim = l.block;
          f.ts.gdim = l.grid;
          f.ts.linear = int(t);
        }
        std::shuffle(order.begin(), order.end(), rng());
        while (g.live > 0 && g.error.empty()) {
          bool progress = false;
          for (int i : order) {
            Fiber& f = g.fibers[size_t(i)];
            if (f.st != St::Ready) continue;
            run_fiber(f);
            progress = true;
            if (!g.error.empty()) break;
          }
          if (!progress && g.error.empty()) {
            int at_warp = 0, at_block = 0;
            for (Fiber& f : g.fibers) at_warp += f.st == St::Warp, at_block += f.st == St::Block;
            g.error = "deadlock: " + std::to_string(at_block) + " threads wait at __syncthreads and " +
                      std::to_string(at_warp) + " at warp collectives whose other lanes never arrive";
          }
        }
        if (g.exited_before_barrier && !warned_exit) {
          warned_exit = true;
          std::fprintf(stderr,
                       "detseg3d CUDA emulator: warning: in %s some threads returned while others waited at "
                       "__syncthreads (undefined in CUDA)\n",
                       cfg.c_str());
        }
        if (!g.error.empty())
          g.error += " [block (" + std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) + ")]";
      }
  s.grid = prev;
  if (Profile* p = profile()) {
    print_profile_at_exit();
    auto& e = p->by_kernel[l.name];
    e.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    e.second++;
  }
#if DS_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(g_arena, kArena);
#endif
  lk.unlock();
  if (!g.error.empty()) {
    kernel_failed(cfg + ": " + g.error);
    return;
  }
  after_kernel(cfg);
}

}  // namespace detseg3d_emu
