// Gradient reducer with device buckets (dist/reducer.h, dist/bucket_plan.h):
//   bucket_plan_layout            hand-worked bucket grouping and offsets,
//                                 packed (CPU) and 64-element aligned (device).
//   bucket_plan_properties        random sizes: every gradient exactly once,
//                                 consecutive descending indices per bucket,
//                                 aligned, non-overlapping, within the bucket.
//   reducer_device_needs_nccl     device buckets on a group without device
//                                 collectives fail with an actionable message.
//   reducer_nccl_device_buckets   (GPU + NCCL) world size 1 through the real
//                                 NCCL path: values equal the CPU sum / mean
//                                 over the ranks, copy-back and in-place modes,
//                                 two steps, a SyncBatchNorm-style host task
//                                 in the queue, and each bucket's collective
//                                 issued before the later gradients are marked
//                                 (i.e. while backward would still run).
//   reducer_nccl_two_ranks        (2 GPUs + NCCL) two ranks as threads of this
//                                 process, one GPU each: broadcast from rank 1,
//                                 device-bucket gradients averaged across the
//                                 ranks equal the CPU mean, and the overflow
//                                 vote (max) sees one rank's flag.
//   reducer_nccl_model_hook       (GPU + NCCL) a RetinaNet on cuda:0 feeding a
//                                 device reducer from its gradient-ready hook
//                                 (as distReducerAttachModel does), float16
//                                 AMP and float32 + SyncBatchNorm through the
//                                 reducer: the reduced float32 master gradients
//                                 equal those of a backward without the hook.
// NCCL: DETSEG3D_NCCL_PATH, else the torch wheel's copy on the GPU machines
// (kNcclWheel) when present, else libnccl.so.2 from the loader path.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "dist/backend.h"
#include "dist/batchnorm_sync.h"
#include "dist/bucket_plan.h"
#include "dist/nccl_backend.h"
#include "dist/reducer.h"
#include "nn/retinanet.h"
#include "tests/harness.h"
#if defined(DETSEG3D_WITH_CUDA) && DETSEG3D_WITH_CUDA
#include "dist/dist_cuda.h"
#endif

using namespace ds;
using namespace ds::dist;
using namespace ds::testing;

namespace {

const char* kNcclWheel = "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2";

std::vector<GradSpec> f32(const std::vector<int64_t>& n) {
  std::vector<GradSpec> s;
  for (auto k : n) s.push_back({k, DType::Float32});
  return s;
}

}  // namespace

DS_TEST(bucket_plan_layout) {
  // Sizes 10, 3, 100, 5, 7 floats, buckets of 48 bytes (12 floats), walked in
  // reverse: 7 (28 B, open bucket 0) + 5 (-> 48 B, full); 100 (bucket 1, full
  // at once); 3 (bucket 2) + 10. So [[4,3],[2],[1,0]].
  BucketPlan p = plan_buckets(f32({10, 3, 100, 5, 7}), 48, 1);
  DS_EXPECT((p.members == std::vector<std::vector<int>>{{4, 3}, {2}, {1, 0}}), "members");
  // Packed: the second member starts right after the first.
  DS_EXPECT((p.offsets == std::vector<std::vector<int64_t>>{{0, 7}, {0}, {0, 3}}), "packed offsets");
  DS_EXPECT((p.numel == std::vector<int64_t>{12, 100, 13}), "packed sizes");
  DS_EXPECT((p.bucket_of == std::vector<int>{2, 2, 1, 0, 0}) && (p.slot_of == std::vector<int>{1, 0, 0, 1, 0}),
            "bucket/slot per gradient");
  // Aligned to 64 elements: second members at 64; sizes 64 + 5, 100, 64 + 10.
  BucketPlan a = plan_buckets(f32({10, 3, 100, 5, 7}), 48, kDeviceBucketAlign);
  DS_EXPECT(a.members == p.members, "alignment does not change the grouping (it counts real bytes)");
  DS_EXPECT((a.offsets == std::vector<std::vector<int64_t>>{{0, 64}, {0}, {0, 64}}), "aligned offsets");
  DS_EXPECT((a.numel == std::vector<int64_t>{69, 100, 74}), "aligned sizes");
  // A dtype change starts a new bucket even when there is room.
  BucketPlan d = plan_buckets({{2, DType::Float32}, {2, DType::Float64}, {2, DType::Float32}}, 1 << 20, 1);
  DS_EXPECT((d.members == std::vector<std::vector<int>>{{2}, {1}, {0}}), "one bucket per dtype run");
  // Empty gradients still get a slot; a bucket has at least one element.
  BucketPlan z = plan_buckets(f32({0}), 1 << 20, 64);
  DS_EXPECT(z.members.size() == 1 && z.numel[0] == 1 && z.offsets[0][0] == 0, "empty gradient");
  bool threw = false;
  try {
    plan_buckets(f32({1}), 0, 1);
  } catch (const Error&) {
    threw = true;
  }
  DS_EXPECT(threw, "bucket size 0 is rejected");
}

DS_TEST(bucket_plan_properties) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + int(rng() % 40);
    std::vector<GradSpec> g;
    for (int i = 0; i < n; ++i) g.push_back({int64_t(rng() % 5000), rng() % 7 == 0 ? DType::Float64 : DType::Float32});
    const size_t bytes = 1 + rng() % 40000;
    const int64_t align = trial % 2 ? kDeviceBucketAlign : 1;
    BucketPlan p = plan_buckets(g, bytes, align);
    std::vector<int> seen(size_t(n), 0);
    int expect_next = n - 1;  // launch order = reverse registration order
    for (size_t b = 0; b < p.members.size(); ++b) {
      DS_EXPECT(!p.members[b].empty(), "empty bucket");
      int64_t end = 0;
      size_t real_bytes = 0;
      for (size_t s = 0; s < p.members[b].size(); ++s) {
        const int i = p.members[b][s];
        DS_EXPECT(i == expect_next--, "bucket ", b, " slot ", s, " holds ", i);
        ++seen[size_t(i)];
        DS_EXPECT(g[size_t(i)].dtype == g[size_t(p.members[b][0])].dtype, "mixed dtypes in bucket ", b);
        const int64_t off = p.offsets[b][s];
        DS_EXPECT(off % align == 0 && off >= end, "offset ", off, " misaligned or overlapping (previous end ", end, ")");
        end = off + g[size_t(i)].numel;
        DS_EXPECT(p.bucket_of[size_t(i)] == int(b) && p.slot_of[size_t(i)] == int(s), "index maps");
        // Only the last member may take a bucket past the size limit.
        if (s + 1 < p.members[b].size()) DS_EXPECT(real_bytes < bytes, "bucket ", b, " kept filling past its size");
        real_bytes += size_t(g[size_t(i)].numel) * dtype_size(g[size_t(i)].dtype);
      }
      DS_EXPECT(p.numel[b] == std::max<int64_t>(end, 1), "bucket ", b, " size ", p.numel[b], " != end ", end);
    }
    for (int i = 0; i < n; ++i) DS_EXPECT(seen[size_t(i)] == 1, "gradient ", i, " placed ", seen[size_t(i)], " times");
  }
}

DS_TEST(reducer_device_needs_nccl) {
  std::vector<Tensor> grads{Tensor::zeros({4}, DType::Float32)};
  ReducerOptions o;
  o.device = Device::cuda(0);
  o.in_place = true;
  std::string msg;
  try {
    Reducer r(make_single_process_backend(), grads, o);
  } catch (const Error& e) {
    msg = e.what();
  }
  DS_EXPECT(msg.find("backend 'nccl'") != std::string::npos, "got: ", msg);
}

namespace {

// Polls `cond` for up to 20 s (the communication thread issues asynchronously).
template <class F>
bool eventually(F cond) {
  auto t0 = std::chrono::steady_clock::now();
  while (!cond()) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(20)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::vector<float> host(const Tensor& t) {
  Tensor c = to_device(t, Device::cpu());
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

// The NCCL version, or a skip saying what is missing (CUDA build, GPUs, NCCL).
std::string nccl_or_skip(int gpus) {
  if (!nccl_compiled()) DS_SKIP("CPU build (NCCL needs a CUDA build)");
  if (!cuda::available()) DS_SKIP("no GPU (", cuda::unavailable_reason(), ")");
  if (cuda::device_count() < gpus) DS_SKIP("needs ", gpus, " GPUs, this machine has ", cuda::device_count());
  const char* env = std::getenv("DETSEG3D_NCCL_PATH");
  struct stat st;
  if ((!env || !*env) && ::stat(kNcclWheel, &st) == 0) ::setenv("DETSEG3D_NCCL_PATH", kNcclWheel, 1);
  try {
    return nccl_version();
  } catch (const Error& e) {
    DS_SKIP("NCCL not found: ", e.what());
  }
}

// A one-rank NCCL group on cuda:0, or a skip saying what is missing.
std::shared_ptr<Backend> nccl_group_of_one() {
  const std::string version = nccl_or_skip(1);
  NcclOptions no;
  no.rank = 0;
  no.size = 1;
  no.device = 0;
  no.id = nccl_unique_id();
  auto pg = make_nccl_backend(no);
  DS_EXPECT(pg->device_collectives() && pg->device_index() == 0, "nccl ", version, " reduces device memory");
  return pg;
}

}  // namespace

DS_TEST(reducer_nccl_device_buckets) {
  auto pg = nccl_group_of_one();
  const Device dev = Device::cuda(0);

  // Five gradients, 4 KiB buckets, walked in reverse: 3000 floats (12 KB, a
  // bucket alone), 700 + 2500, then 37 + 1000: buckets [[4], [3, 2], [1, 0]].
  const std::vector<int64_t> sizes{1000, 37, 2500, 700, 3000};
  for (int mode = 0; mode < 2; ++mode) {
    const bool in_place = mode == 1;
    for (bool average : {false, true}) {
      std::vector<Tensor> grads;
      for (auto n : sizes) grads.push_back(Tensor::full({n}, -7.0, DType::Float32, dev));
      ReducerOptions o;
      o.bucket_bytes = 4096;
      o.average = average;
      o.device = dev;
      o.in_place = in_place;
      Reducer r(pg, grads, o);
      BucketPlan plan = plan_buckets(f32(sizes), 4096, kDeviceBucketAlign);
      DS_EXPECT((r.buckets() == std::vector<std::vector<int>>{{4}, {3, 2}, {1, 0}}) && r.buckets() == plan.members,
                "reducer buckets follow the plan");
      for (int step = 0; step < 2; ++step) {
        // Expected: the CPU sum over the ranks (one rank: its values), / world size for the mean.
        std::vector<std::vector<float>> want(sizes.size());
        std::vector<Tensor> values(sizes.size());
        for (size_t i = 0; i < sizes.size(); ++i) {
          Tensor c = Tensor::empty({sizes[i]}, DType::Float32);
          for (int64_t k = 0; k < sizes[i]; ++k) c.data<float>()[k] = float(step * 1000 + int64_t(i) * 100) + 0.25f * float(k % 37);
          want[i].assign(c.data<float>(), c.data<float>() + sizes[i]);
          values[i] = to_device(c, dev);
        }
        // Backward order: bucket by bucket. The first bucket's values come from a
        // kernel queued on the compute stream right before mark_ready (fill_),
        // so the copy into the bucket must be stream-ordered behind it.
        int marked_buckets = 0;
        for (size_t b = 0; b < plan.members.size(); ++b) {
          for (int i : plan.members[b]) {
            if (b == 0) {
              values[size_t(i)] = Tensor::full({sizes[size_t(i)]}, 3.5 + step, DType::Float32, dev);
              want[size_t(i)].assign(size_t(sizes[size_t(i)]), float(3.5 + step));
            }
            r.mark_ready(i, &values[size_t(i)]);
          }
          ++marked_buckets;
          DS_EXPECT(r.buckets_launched() == marked_buckets, "bucket ", b, " launched as soon as complete");
          // Its collective is issued while "backward" still has buckets to mark.
          DS_EXPECT(eventually([&] { return r.buckets_issued() >= marked_buckets; }), "bucket ", b,
                    " all-reduce not issued before the later gradients were marked");
          if (b == 0) {
            // A SyncBatchNorm-style host collective queued behind bucket 0.
            double v[3] = {1.5, -2.0, 4.0};
            r.run_ordered([&v](Backend& g) {
              g.all_reduce(v, 3, DType::Float64, ReduceOp::Sum, 0);
              g.synchronize();
            });
            DS_EXPECT(v[0] == 1.5 && v[1] == -2.0 && v[2] == 4.0, "host task sum over one rank");
          }
        }
        r.wait();
        const std::vector<Tensor> out = in_place ? r.bucket_views() : grads;
        for (size_t i = 0; i < sizes.size(); ++i) {
          DS_EXPECT(out[i].device() == dev, "result on the device");
          std::vector<float> got = host(out[i]);
          for (int64_t k = 0; k < sizes[i]; ++k)
            DS_EXPECT(got[size_t(k)] == want[i][size_t(k)] / (average ? float(pg->size()) : 1.0f), "gradient ", i,
                      " element ", k, " step ", step, ": ", got[size_t(k)], " != ", want[i][size_t(k)]);
        }
      }
    }
  }

  // The overflow vote: a 1-element max all-reduce of device memory.
  Tensor flag = Tensor::full({1}, 1.0, DType::Float32, dev);
  pg->all_reduce(flag.raw(), 1, DType::Float32, ReduceOp::Max, 0, true);
  pg->synchronize();
  DS_EXPECT(host(flag)[0] == 1.0f, "device max all-reduce");

#if defined(DETSEG3D_WITH_CUDA) && DETSEG3D_WITH_CUDA
  // The average of NCCL < 2.10 (sum, then this scale on the NCCL stream).
  Tensor s = Tensor::full({1000}, 3.0, DType::Float32, dev);
  scale_on_stream(s.raw(), 1000, DType::Float32, 0.25, cuda::stream(0));
  for (float x : host(s)) DS_EXPECT(x == 0.75f, "scale kernel: ", x);
#endif
}

DS_TEST(reducer_nccl_two_ranks) {
  nccl_or_skip(2);
  const NcclUniqueId id = nccl_unique_id();
  const std::vector<int64_t> sizes{1000, 37, 2500, 700, 3000};
  // Rank r's gradient i, element k.
  auto value = [](int r, size_t i, int64_t k) { return float(r * 10 + int64_t(i)) + 0.125f * float(k % 29); };
  std::string errors[2];
  auto rank_main = [&](int r) {
    try {
      cuda::DeviceGuard guard(r);
      const Device dev = Device::cuda(r);
      NcclOptions no;
      no.rank = r;
      no.size = 2;
      no.device = r;
      no.id = id;
      auto pg = make_nccl_backend(no);
      DS_EXPECT(pg->device_index() == r, "rank ", r, " communicates on cuda:", pg->device_index());
      // Broadcast from rank 1 (device memory).
      Tensor b = Tensor::full({5}, double(r + 1), DType::Float32, dev);
      pg->broadcast(b.raw(), 5 * sizeof(float), 1, 0, true);
      pg->synchronize();
      for (float x : host(b)) DS_EXPECT(x == 2.0f, "rank ", r, ": broadcast from rank 1 gave ", x);
      // Averaged device buckets.
      std::vector<Tensor> grads;
      for (auto n : sizes) grads.push_back(Tensor::full({n}, -7.0, DType::Float32, dev));
      ReducerOptions o;
      o.bucket_bytes = 4096;
      o.average = true;
      o.device = dev;
      Reducer red(pg, grads, o);
      std::vector<Tensor> values(sizes.size());
      for (size_t i = 0; i < sizes.size(); ++i) {
        Tensor c = Tensor::empty({sizes[i]}, DType::Float32);
        for (int64_t k = 0; k < sizes[i]; ++k) c.data<float>()[k] = value(r, i, k);
        values[i] = to_device(c, dev);
      }
      for (const auto& bucket : red.buckets())
        for (int i : bucket) red.mark_ready(i, &values[size_t(i)]);
      red.wait();
      for (size_t i = 0; i < sizes.size(); ++i) {
        std::vector<float> got = host(grads[i]);
        for (int64_t k = 0; k < sizes[i]; ++k) {
          const float want = (value(0, i, k) + value(1, i, k)) / 2.0f;
          DS_EXPECT(got[size_t(k)] == want, "rank ", r, " gradient ", i, " element ", k, ": ", got[size_t(k)],
                    " != mean ", want);
        }
      }
      // The overflow vote: only rank 0 saw inf.
      Tensor flag = Tensor::full({1}, r == 0 ? 1.0 : 0.0, DType::Float32, dev);
      pg->all_reduce(flag.raw(), 1, DType::Float32, ReduceOp::Max, 0, true);
      pg->synchronize();
      DS_EXPECT(host(flag)[0] == 1.0f, "rank ", r, ": the vote missed rank 0's overflow");
    } catch (const Error& e) {
      errors[r] = e.what();
    }
  };
  std::thread t1(rank_main, 1);
  rank_main(0);
  t1.join();
  DS_EXPECT(errors[0].empty() && errors[1].empty(), "rank 0: ", errors[0], "; rank 1: ", errors[1]);
}

namespace {

Tensor smooth(const Shape& shape, double phase) {
  Tensor t = Tensor::empty(shape, DType::Float32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(0.5 * std::sin(0.37 * double(i) + phase));
  return t;
}

// Forward + backward of `net` on cuda:0 with fixed input and output
// gradients (compute dtype `dt`); the float32 master gradients on the host.
std::vector<std::vector<float>> run_backward(nn::RetinaNet& net, DType dt) {
  const Device dev = Device::cuda(0);
  const nn::Triple div = net.size_divisible();
  Tensor x = to_device(smooth({2, div[0] * 2, div[1] * 2, div[2] * 2, 1}, 0.0), dev).to(dt);
  net.store().zero_grad();
  auto out = net.forward(x, true);
  std::vector<Tensor> gc, gb;
  for (auto& t : out.cls) gc.push_back(to_device(smooth(t.shape(), 1.0), dev).to(dt));
  for (auto& t : out.box) gb.push_back(to_device(smooth(t.shape(), 2.0), dev).to(dt));
  net.backward(gc, gb, false);
  std::vector<std::vector<float>> g;
  for (auto& e : net.store().entries())
    if (!e.buffer && e.trainable) g.push_back(host(nn::ParamStore::grad(e)));
  return g;
}

}  // namespace

DS_TEST(reducer_nccl_model_hook) {
  auto pg = nccl_group_of_one();
  const Device dev = Device::cuda(0);
  for (int variant = 0; variant < 2; ++variant) {
    const bool amp = variant == 0, sync_bn = variant == 1;
    const DType dt = amp ? DType::Float16 : DType::Float32;
    nn::RetinaNetConfig cfg;
    cfg.backbone.depth = 18;
    cfg.backbone.widths = {8, 8, 16, 16};
    cfg.returned_layers = {1, 2};
    cfg.fpn_channels = 8;
    cfg.head_groups = 4;
    cfg.num_anchors = 2;
    nn::RetinaNet net(cfg);
    net.to(dev);
    if (amp) net.set_precision(dt);
    const std::vector<std::vector<float>> want = run_backward(net, dt);

    std::vector<nn::ParamEntry*> params;
    std::vector<Tensor> templates;
    std::map<const nn::ParamEntry*, int> index;
    for (auto& e : net.store().entries())
      if (!e.buffer && e.trainable) {
        index[&e] = int(params.size());
        params.push_back(&e);
        templates.push_back(Tensor::zeros(e.value.shape(), e.value.dtype()));  // CPU: shapes only
      }
    ReducerOptions o;
    o.bucket_bytes = 16 << 10;  // several buckets even for this small net
    o.device = dev;
    o.in_place = true;
    auto r = std::make_shared<Reducer>(pg, templates, o);
    DS_EXPECT(r->buckets().size() >= 3, "only ", r->buckets().size(), " buckets");
    int hook_calls = 0, launched_before_last_call = 0;
    net.set_grad_ready_hook([&](const std::vector<nn::ParamEntry*>& ready) {
      launched_before_last_call = r->buckets_launched();
      ++hook_calls;
      for (nn::ParamEntry* e : ready) r->mark_ready(index.at(e), &nn::ParamStore::grad(*e));
    });
    if (sync_bn) DS_EXPECT(net.set_batchnorm_sync(make_batchnorm_sync(r)) > 0, "no BatchNorm layer synchronised");
    for (int step = 0; step < 2; ++step) {
      run_backward(net, dt);
      r->wait();
      // Buckets went out during backward: before the stem's report, all but the last were launched.
      DS_EXPECT(hook_calls > 1 && launched_before_last_call >= int(r->buckets().size()) - 2, "only ",
                launched_before_last_call, " of ", r->buckets().size(), " buckets launched before backward's last report");
      hook_calls = 0;
      const std::vector<Tensor> views = r->bucket_views();
      for (size_t i = 0; i < params.size(); ++i) {
        std::vector<float> got = host(views[i]);
        float scale = 1e-6f;
        for (float v : want[i]) scale = std::max(scale, std::fabs(v));
        for (size_t k = 0; k < got.size(); ++k) {
          // One rank: the mean is the gradient itself, up to the GPU kernels' run-to-run
          // rounding (atomic accumulation order; SyncBatchNorm's composed path).
          const float tol = (amp ? 2e-3f : 1e-4f) * scale;
          DS_EXPECT(std::fabs(got[k] - want[i][k]) <= tol, params[i]->name, "[", k, "] ", got[k], " != ", want[i][k],
                    amp ? " (fp16 AMP)" : " (SyncBatchNorm)", " step ", step);
        }
      }
    }
    net.set_grad_ready_hook(nullptr);
    net.set_batchnorm_sync(nullptr);
  }
}
