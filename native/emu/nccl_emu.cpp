// NCCL stand-in for the CUDA emulator: the eight entry points
// native/dist/nccl_backend.cpp loads with dlopen, for ranks that are threads
// (or one thread) of one process. Emulated device memory is host memory, so a
// collective is the last arriving rank reading every rank's buffers and
// writing every rank's results. Built as libnccl_emu.so in emulator builds;
// point DETSEG3D_NCCL_PATH at it. Not a transport: never for real training.
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace {

constexpr int kIdBytes = 128;
struct UniqueId {
  char internal[kIdBytes];
};

enum DataType : int { Int8 = 0, Uint8 = 1, Int32 = 2, Uint32 = 3, Int64 = 4, Uint64 = 5, Float16 = 6, Float32 = 7, Float64 = 8, Bfloat16 = 9 };
enum RedOp : int { Sum = 0, Prod = 1, Max = 2, Min = 3, Avg = 4 };
enum Result : int { Success = 0, InvalidArgument = 4, InvalidUsage = 5 };

size_t type_size(int t) {
  switch (t) {
    case Int8: case Uint8: return 1;
    case Float16: case Bfloat16: return 2;
    case Int32: case Uint32: case Float32: return 4;
    case Int64: case Uint64: case Float64: return 8;
  }
  return 0;
}

double load(const void* p, size_t i, int t) {
  switch (t) {
    case Int8: return static_cast<const int8_t*>(p)[i];
    case Uint8: return static_cast<const uint8_t*>(p)[i];
    case Int32: return static_cast<const int32_t*>(p)[i];
    case Uint32: return static_cast<const uint32_t*>(p)[i];
    case Int64: return double(static_cast<const int64_t*>(p)[i]);
    case Uint64: return double(static_cast<const uint64_t*>(p)[i]);
    case Float16: return ds::half_to_float(static_cast<const uint16_t*>(p)[i]);
    case Bfloat16: return ds::bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case Float32: return static_cast<const float*>(p)[i];
    case Float64: return static_cast<const double*>(p)[i];
  }
  return 0;
}
void store(void* p, size_t i, int t, double v) {
  switch (t) {
    case Int8: static_cast<int8_t*>(p)[i] = int8_t(v); break;
    case Uint8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
    case Int32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case Uint32: static_cast<uint32_t*>(p)[i] = uint32_t(v); break;
    case Int64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case Uint64: static_cast<uint64_t*>(p)[i] = uint64_t(v); break;
    case Float16: static_cast<uint16_t*>(p)[i] = ds::float_to_half(float(v)); break;
    case Bfloat16: static_cast<uint16_t*>(p)[i] = ds::float_to_bf16(float(v)); break;
    case Float32: static_cast<float*>(p)[i] = float(v); break;
    case Float64: static_cast<double*>(p)[i] = v; break;
  }
}

struct Call {
  const void* send;
  void* recv;
};

// The ranks of one communicator. Collectives are numbered per rank; call k of
// every rank meets at slot k.
struct Group {
  int size = 0;
  int joined = 0;
  std::mutex mu;
  std::condition_variable cv;
  long done = 0;              // collectives completed
  std::vector<Call> pending;  // this collective's buffers, by rank
  int arrived = 0;
};

std::mutex g_mu;
std::map<std::string, std::shared_ptr<Group>> g_groups;

struct Comm {
  std::shared_ptr<Group> g;
  int rank;
  long calls = 0;
};

// Runs `apply` (given every rank's buffers) once all ranks arrived.
template <class F>
int collective(Comm* c, const void* send, void* recv, F apply) {
  if (!c) return InvalidArgument;
  Group& g = *c->g;
  std::unique_lock<std::mutex> lk(g.mu);
  const long my = c->calls++;
  g.cv.wait(lk, [&] { return g.done == my; });  // the previous collective finished everywhere
  g.pending[size_t(c->rank)] = {send, recv};
  if (++g.arrived == g.size) {
    apply(g.pending);
    g.arrived = 0;
    g.done++;
    g.cv.notify_all();
  } else {
    g.cv.wait(lk, [&] { return g.done > my; });
  }
  return Success;
}

}  // namespace

extern "C" {

int ncclGetVersion(int* v) {
  *v = 22000;  // 2.20: has ncclAvg
  return Success;
}

int ncclGetUniqueId(UniqueId* id) {
  static std::mutex mu;
  static uint64_t counter = 0;
  std::lock_guard<std::mutex> lk(mu);
  std::memset(id->internal, 0, kIdBytes);
  const uint64_t n = ++counter;
  std::snprintf(id->internal, kIdBytes, "detseg3d-nccl-emu-%llu", (unsigned long long)n);
  return Success;
}

int ncclCommInitRank(Comm** comm, int nranks, UniqueId id, int rank) {
  if (nranks < 1 || rank < 0 || rank >= nranks) return InvalidArgument;
  std::shared_ptr<Group> g;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto& slot = g_groups[std::string(id.internal, strnlen(id.internal, kIdBytes))];
    if (!slot) {
      slot = std::make_shared<Group>();
      slot->size = nranks;
      slot->pending.resize(size_t(nranks));
    }
    g = slot;
  }
  if (g->size != nranks) return InvalidUsage;
  std::unique_lock<std::mutex> lk(g->mu);
  g->joined++;
  g->cv.notify_all();
  g->cv.wait(lk, [&] { return g->joined == g->size; });
  *comm = new Comm{g, rank};
  return Success;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int dt, int op, Comm* comm, void*) {
  if (!type_size(dt) || op < Sum || op > Avg) return InvalidArgument;
  return collective(comm, send, recv, [&](std::vector<Call>& calls) {
    std::vector<double> acc(count);
    for (size_t i = 0; i < count; ++i) {
      double a = load(calls[0].send, i, dt);
      for (size_t r = 1; r < calls.size(); ++r) {
        const double v = load(calls[r].send, i, dt);
        if (op == Sum || op == Avg) a += v;
        else if (op == Prod) a *= v;
        else if (op == Max) a = v > a ? v : a;
        else a = v < a ? v : a;
      }
      acc[i] = op == Avg ? a / double(calls.size()) : a;
    }
    for (auto& c : calls)
      for (size_t i = 0; i < count; ++i) store(c.recv, i, dt, acc[i]);
  });
}

int ncclBroadcast(const void* send, void* recv, size_t count, int dt, int root, Comm* comm, void*) {
  if (!type_size(dt) || !comm || root < 0 || root >= comm->g->size) return InvalidArgument;
  const size_t bytes = count * type_size(dt);
  return collective(comm, send, recv, [&](std::vector<Call>& calls) {
    std::vector<unsigned char> src(static_cast<const unsigned char*>(calls[size_t(root)].send),
                                   static_cast<const unsigned char*>(calls[size_t(root)].send) + bytes);
    for (auto& c : calls) std::memcpy(c.recv, src.data(), bytes);
  });
}

int ncclAllGather(const void* send, void* recv, size_t count, int dt, Comm* comm, void*) {
  if (!type_size(dt)) return InvalidArgument;
  const size_t bytes = count * type_size(dt);
  return collective(comm, send, recv, [&](std::vector<Call>& calls) {
    std::vector<unsigned char> all(bytes * calls.size());
    for (size_t r = 0; r < calls.size(); ++r) std::memcpy(all.data() + r * bytes, calls[r].send, bytes);
    for (auto& c : calls) std::memcpy(c.recv, all.data(), all.size());
  });
}

int ncclCommDestroy(Comm* comm) {
  delete comm;
  return Success;
}

const char* ncclGetErrorString(int r) {
  switch (r) {
    case Success: return "no error";
    case InvalidArgument: return "invalid argument (NCCL emulator)";
    case InvalidUsage: return "invalid usage (NCCL emulator)";
  }
  return "unknown error (NCCL emulator)";
}

}  // extern "C"
