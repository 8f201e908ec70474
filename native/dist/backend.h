// Process-group abstraction shared by the Gloo (CPU) and NCCL (GPU) backends.
// A Backend is one process's membership in a group of `size` processes; all
// collectives are in place and must be issued by every rank in the same order
// with the same element counts (the usual MPI/NCCL contract). Calls on one
// Backend are serialised internally, so the bucketed reducer's communication
// thread and the JS thread may share it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ds::dist {

enum class ReduceOp { Sum, Avg, Max, Min };
ReduceOp reduce_op_from_name(const std::string& name);  // "sum" | "avg" | "max" | "min"
const char* reduce_op_name(ReduceOp op);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "gloo" | "nccl"
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // True when data pointers must be host memory (Gloo). The NCCL backend
  // accepts host pointers too (staged through device memory) and device
  // pointers when `device_ptr` is set.
  virtual bool host_memory() const = 0;

  // In place on `count` elements. Avg divides by size() after the sum.
  // Integer dtypes support Sum/Max/Min. `tag` keeps concurrent collectives
  // apart (Gloo); pass 0 when there is only one in flight.
  virtual void all_reduce(void* data, size_t count, DType dtype, ReduceOp op, uint32_t tag,
                          bool device_ptr = false) = 0;
  // `bytes` bytes from `root` to every rank, in place.
  virtual void broadcast(void* data, size_t bytes, int root, uint32_t tag, bool device_ptr = false) = 0;
  // Every rank contributes `in` (its own length); returns each rank's bytes.
  virtual std::vector<std::vector<uint8_t>> all_gather_bytes(const std::vector<uint8_t>& in, uint32_t tag) = 0;
  virtual void barrier(uint32_t tag) = 0;
  // Waits until every collective enqueued so far has finished (NCCL streams);
  // Gloo collectives are synchronous, so this is a no-op there.
  virtual void synchronize() {}
  // Benchmark helper: seconds per in-place float32 sum all-reduce of `count`
  // elements held in the backend's own memory (host for Gloo, device for
  // NCCL), median of `iters` timed runs after one warm-up.
  virtual double time_all_reduce(size_t count, int iters);

  // ---- stream-ordered collectives on device buffers (NCCL only) ----
  // What the gradient reducer's device buckets use; none of these blocks the
  // host. `slot` names a pair of events (the reducer uses one slot per
  // bucket; slots are created on first use):
  //   device_ready(slot)       records, on the compute stream, that the data
  //                            of `slot` is complete once the work queued
  //                            there so far has run;
  //   all_reduce_device(...)   makes the communication stream wait for that
  //                            record, reduces `data` (device memory) in
  //                            place there and records completion;
  //   device_wait(slot)        makes the compute stream wait for that
  //                            completion (later kernels see the result).
  // Every rank must call all_reduce_device in the same order with the same
  // counts, as every collective. Gloo and the single-process group do not
  // support device memory and throw.
  virtual bool device_collectives() const { return false; }
  virtual int device_index() const { return -1; }
  virtual void device_ready(int slot);
  virtual void all_reduce_device(int slot, void* data, size_t count, DType dtype, ReduceOp op);
  virtual void device_wait(int slot);
};

// The group of one process: every collective is the identity (avg divides by
// 1). Lets single-process runs share the distributed code path without Gloo.
std::shared_ptr<Backend> make_single_process_backend();

// Common error text for a failed collective: which rank, which op, why.
std::string collective_error(const Backend& b, const char* op, const std::string& why);

}  // namespace ds::dist
