#include "dist/backend.h"

#include "core/error.h"

#include <algorithm>
#include <chrono>

namespace ds::dist {

ReduceOp reduce_op_from_name(const std::string& n) {
  if (n == "sum") return ReduceOp::Sum;
  if (n == "avg" || n == "mean") return ReduceOp::Avg;
  if (n == "max") return ReduceOp::Max;
  if (n == "min") return ReduceOp::Min;
  DS_FAIL("unknown reduction '", n, "': use 'sum', 'avg', 'max' or 'min'");
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

double Backend::time_all_reduce(size_t count, int iters) {
  DS_CHECK(iters >= 1, "time_all_reduce: iters must be >= 1");
  std::vector<float> buf(std::max<size_t>(count, 1), 1.0f);
  all_reduce(buf.data(), count, DType::Float32, ReduceOp::Sum, 7);  // warm-up
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    barrier(8);
    auto t0 = std::chrono::steady_clock::now();
    all_reduce(buf.data(), count, DType::Float32, ReduceOp::Sum, 7);
    synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

namespace {
[[noreturn]] void no_device_collectives(const Backend& b) {
  DS_FAIL("process group '", b.name(), "' cannot reduce GPU memory: gradients on a CUDA device need backend 'nccl' "
          "(train --device cuda chooses it), or move the model to the CPU for backend 'gloo'");
}
}  // namespace

void Backend::device_ready(int) { no_device_collectives(*this); }
void Backend::all_reduce_device(int, void*, size_t, DType, ReduceOp) { no_device_collectives(*this); }
void Backend::device_wait(int) { no_device_collectives(*this); }

namespace {
class SingleProcess final : public Backend {
 public:
  const char* name() const override { return "single"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool host_memory() const override { return true; }
  void all_reduce(void*, size_t, DType dtype, ReduceOp op, uint32_t, bool device_ptr) override {
    DS_CHECK(!device_ptr, "the single-process group works on CPU memory only");
    if (op == ReduceOp::Avg)
      DS_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "allReduce 'avg' needs float32 or float64 data, got ",
               dtype_name(dtype), "; use 'sum' for integers");
  }
  void broadcast(void*, size_t, int root, uint32_t, bool) override {
    DS_CHECK(root == 0, "broadcast root ", root, " is not a rank of this group of 1");
  }
  std::vector<std::vector<uint8_t>> all_gather_bytes(const std::vector<uint8_t>& in, uint32_t) override { return {in}; }
  void barrier(uint32_t) override {}
};
}  // namespace

std::shared_ptr<Backend> make_single_process_backend() { return std::make_shared<SingleProcess>(); }

std::string collective_error(const Backend& b, const char* op, const std::string& why) {
  return detail::concat(b.name(), " ", op, " failed on rank ", b.rank(), " of ", b.size(), ": ", why,
                        ". Another rank has probably exited, hung or issued a different collective "
                        "(every rank must call the same collectives in the same order); check the other "
                        "ranks' output.");
}

}  // namespace ds::dist
