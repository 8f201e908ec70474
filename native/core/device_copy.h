// Moving tensors between devices. Plain C++ on top of core/cuda_runtime.h,
// so it compiles in every build (without CUDA, only cpu -> cpu works and
// anything else throws ds::Error saying the build has no CUDA).
#pragma once
#include "core/tensor.h"

namespace ds {

// The tensor on `dev`: the same tensor when it is already there, otherwise a
// copy (host <-> device through pinned staging buffers for large tensors;
// between two GPUs through the host). The call returns when the copy is
// complete as far as the host is concerned (a device result is ordered on the
// device's compute stream before any later op).
Tensor to_device(const Tensor& t, Device dev);

// dst <- src for tensors of the same shape and dtype on any devices.
void copy_tensor(const Tensor& src, Tensor& dst);

// Parses "cpu", "cuda", "cuda:N" (throws ds::Error otherwise). "cuda" is cuda:0.
Device device_from_name(const std::string& name);

}  // namespace ds
