// CUDA emulator internals shared by runtime.cpp (API, memory) and sched.cpp
// (launches).
#pragma once
#include <stdexcept>
#include <string>

#include "cuda_runtime.h"

namespace detseg3d_emu {

// Thrown inside a kernel (trap, bad shared-memory access, ...); ends the grid.
struct KernelFault : std::runtime_error {
  explicit KernelFault(const std::string& m);
};

// The emulated GPU (DETSEG3D_EMU_CC=9.0|8.0|8.6|8.9 picks one; default 9.0).
struct DeviceModel {
  std::string name;
  int major, minor, sms;
  size_t smem_optin;
  size_t memory;
};
const DeviceModel& device_model();

// Records an error for cudaGetLastError, with a message cudaGetErrorString shows.
void set_last_error(cudaError_t e, const std::string& message);
// A kernel failed (fault, trap, deadlock): reported on stderr and as the last error.
void kernel_failed(const std::string& message);
// After every grid: checks the guard bytes around every device allocation.
void after_kernel(const std::string& config);

// Per-warp scratch for collectives whose result one lane computes for all
// (mma): valid for the generation `gen` of the warp's collectives.
struct WarpScratch {
  long gen = -1;
  float mma[32][4];
};
WarpScratch& warp_scratch();
// The generation of the warp collective the calling thread last completed.
long warp_generation();

}  // namespace detseg3d_emu
