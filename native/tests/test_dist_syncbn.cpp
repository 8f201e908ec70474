// SyncBatchNorm and the backbone's gradient-ready report, without Gloo:
//   syncbn_matches_concatenated_batch  ranks simulated by threads sharing an
//       in-process all-reduce; float64 SyncBN forward (output, running
//       statistics) and backward (dx, summed dgamma / dbeta) on unequal
//       per-rank batches (one rank with a single value per channel) equal
//       plain BatchNorm on the concatenated batch, for the fused CPU path and
//       for the composed path CUDA tensors take (run here on CPU tensors).
//   syncbn_single_rank_is_batchnorm    a 1-rank sync object changes nothing.
//   retinanet_ready_hook_order         every trainable parameter reported
//       exactly once per backward, module by module in the documented order
//       (heads, FPN, backbone blocks deepest first, stem last), each with its
//       final gradient at the time it is reported; frozen ones never.
//   reducer_run_ordered                tasks run on the communication thread,
//       exceptions reach the caller and fail the reducer.
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "dist/reducer.h"
#include "nn/batchnorm.h"
#include "nn/retinanet.h"
#include "tests/harness.h"

using namespace ds;
using namespace ds::testing;

namespace {

// In-process "process group" of W threads: all_reduce_sum deposits each
// rank's buffer, the last arrival sums them in rank order, all copy it out.
class ThreadGroup {
 public:
  explicit ThreadGroup(int w) : w_(w), slots_(size_t(w)) {}
  int size() const { return w_; }
  void all_reduce(int rank, double* d, size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return left_ == 0; });  // the previous round is fully read
    slots_[size_t(rank)].assign(d, d + n);
    if (++arrived_ == w_) {
      result_.assign(n, 0.0);
      for (auto& s : slots_) {
        DS_CHECK(s.size() == n, "ThreadGroup: ranks passed different counts");
        for (size_t i = 0; i < n; ++i) result_[i] += s[i];
      }
      arrived_ = 0;
      left_ = w_;
      ++gen_;
      cv_.notify_all();
    } else {
      const long g = gen_;
      cv_.wait(l, [&] { return gen_ != g; });
    }
    std::copy(result_.begin(), result_.end(), d);
    if (--left_ == 0) cv_.notify_all();
  }

 private:
  int w_;
  std::vector<std::vector<double>> slots_;
  std::vector<double> result_;
  int arrived_ = 0, left_ = 0;
  long gen_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

class ThreadSync : public nn::BatchNormSync {
 public:
  ThreadSync(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return g_.size(); }
  void all_reduce_sum(double* d, size_t n) override {
    ++calls;
    g_.all_reduce(rank_, d, n);
  }
  int calls = 0;

 private:
  ThreadGroup& g_;
  int rank_;
};

// Rank-dependent values: a large common offset (1000) plus a per-rank shift,
// so the ranks' own statistics differ from the global ones and a naive
// sum-of-squares combination would lose digits.
Tensor wave(int64_t n, int64_t d1, int64_t d2, int64_t d3, int64_t c, int rank, double offset, double salt) {
  Tensor t = Tensor::empty({n, d1, d2, d3, c}, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = offset + 0.5 * rank + std::sin(0.37 * double(i) + 1.3 * rank + salt) * (1.0 + 0.5 * rank) + 0.1 * double(i % (c + 2));
  return t;
}

// Every part's rows (values of all C channels) in one [1, 1, 1, rows, C] tensor.
Tensor concat_rows(const std::vector<Tensor>& parts) {
  const int64_t C = parts[0].size(4);
  int64_t rows = 0;
  for (auto& p : parts) rows += p.numel() / C;
  Tensor out = Tensor::empty({1, 1, 1, rows, C}, parts[0].dtype());
  size_t off = 0;
  for (auto& p : parts) {
    std::memcpy(static_cast<char*>(out.raw()) + off, p.raw(), p.nbytes());
    off += p.nbytes();
  }
  return out;
}

Tensor vec(std::vector<double> v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::Float64);
  std::copy(v.begin(), v.end(), t.data<double>());
  return t;
}

void expect_close(const Tensor& a, const double* b, int64_t n, double tol, const char* what) {
  DS_EXPECT(a.numel() == n, what, ": ", a.numel(), " values vs ", n);
  const double* p = a.data<double>();
  for (int64_t i = 0; i < n; ++i)
    DS_EXPECT(std::fabs(p[i] - b[i]) <= tol * std::max(1.0, std::fabs(b[i])), what, "[", i, "]: ", p[i], " vs ", b[i]);
}

// Runs one SyncBatchNorm forward + backward per rank (threads) on inputs of
// the given shapes and compares with plain BatchNorm on all rows together.
// composed: the device path (batchnorm_sync.cpp) instead of the fused CPU one.
void check_sync_case(const std::vector<Shape>& shapes, bool composed) {
  const int W = int(shapes.size());
  const int64_t C = shapes[0][4];
  std::vector<Tensor> xs, dys, res;
  for (int r = 0; r < W; ++r) {
    const Shape& s = shapes[size_t(r)];
    xs.push_back(wave(s[0], s[1], s[2], s[3], C, r, 1000.0, 0.0));
    dys.push_back(wave(s[0], s[1], s[2], s[3], C, r, 0.0, 2.0));
    res.push_back(wave(s[0], s[1], s[2], s[3], C, r, 0.0, 4.0));
  }
  const std::vector<double> gamma{1.0, 0.5, -2.0, 1.5, 0.25}, beta{0.0, 0.1, -0.3, 2.0, 1.0};
  const std::vector<double> rm0{0.5, -1.0, 0.0, 2.0, 3.0}, rv0{1.0, 2.0, 0.5, 1.0, 4.0};
  DS_CHECK(C == int64_t(gamma.size()), "test cases have 5 channels");
  nn::BatchNormOptions o;
  o.training = true;
  o.momentum = 0.3;
  o.relu = true;

  // Reference: one process, every rank's rows in one tensor (BatchNorm treats all rows alike).
  Tensor rm = vec(rm0), rv = vec(rv0);
  nn::BatchNormSaved ref_saved;
  Tensor x_all = concat_rows(xs), dy_all = concat_rows(dys), res_all = concat_rows(res);
  Tensor y_ref = nn::batchnorm_forward(x_all, vec(gamma), vec(beta), rm, rv, res_all, o, &ref_saved);
  nn::NormGrads g_ref = nn::batchnorm_backward(x_all, y_ref, vec(gamma), ref_saved, dy_all, o, true);

  ThreadGroup group(W);
  struct Out {
    Tensor y, rm, rv, dx, dgamma, dbeta, pre;
    int calls = 0;
    std::string error;
  };
  std::vector<Out> outs(static_cast<size_t>(W));
  std::vector<std::thread> threads;
  for (int r = 0; r < W; ++r) {
    threads.emplace_back([&, r] {
      try {
        ThreadSync sync(group, r);
        nn::BatchNormOptions ro = o;
        ro.sync = &sync;
        Out& out = outs[size_t(r)];
        out.rm = vec(rm0), out.rv = vec(rv0);
        nn::BatchNormSaved s;
        const Tensor &x = xs[size_t(r)], &dy = dys[size_t(r)];
        out.y = composed ? nn::sync_batchnorm_forward_composed(x, vec(gamma), vec(beta), out.rm, out.rv, res[size_t(r)], ro, &s)
                         : nn::batchnorm_forward(x, vec(gamma), vec(beta), out.rm, out.rv, res[size_t(r)], ro, &s);
        nn::NormGrads g = composed ? nn::sync_batchnorm_backward_composed(x, out.y, vec(gamma), s, dy, ro, true)
                                   : nn::batchnorm_backward(x, out.y, vec(gamma), s, dy, ro, true);
        out.dx = g.grad_input, out.dgamma = g.grad_gamma, out.dbeta = g.grad_beta, out.pre = g.grad_pre;
        out.calls = sync.calls;
      } catch (const std::exception& e) {
        outs[size_t(r)].error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < W; ++r) DS_EXPECT(outs[size_t(r)].error.empty(), "rank ", r, ": ", outs[size_t(r)].error);

  const double tol = 1e-10;
  int64_t off = 0;
  std::vector<double> dgamma(static_cast<size_t>(C), 0.0), dbeta(static_cast<size_t>(C), 0.0);
  for (int r = 0; r < W; ++r) {
    const Out& out = outs[size_t(r)];
    const int64_t n = xs[size_t(r)].numel();
    // One collective in forward, one in backward.
    DS_EXPECT(out.calls == 2, "rank ", r, " made ", out.calls, " all-reduces");
    expect_close(out.y, y_ref.data<double>() + off, n, tol, "y");
    expect_close(out.dx, g_ref.grad_input.data<double>() + off, n, tol, "dx");
    expect_close(out.pre, g_ref.grad_pre.data<double>() + off, n, tol, "grad_pre");
    // Running statistics: the global mean and unbiased variance, identical on every rank.
    expect_close(out.rm, rm.data<double>(), C, tol, "running_mean");
    expect_close(out.rv, rv.data<double>(), C, tol, "running_var");
    for (int64_t c = 0; c < C; ++c) {
      dgamma[size_t(c)] += out.dgamma.data<double>()[c];
      dbeta[size_t(c)] += out.dbeta.data<double>()[c];
    }
    off += n;
  }
  // dgamma / dbeta are each rank's own sums: they add up to the batch's (DDP then averages).
  expect_close(vec(dgamma), g_ref.grad_gamma.data<double>(), C, tol, "sum of dgamma");
  expect_close(vec(dbeta), g_ref.grad_beta.data<double>(), C, tol, "sum of dbeta");
  // Discrimination: the last rank alone (per-process statistics) normalises differently.
  if (xs.back().numel() / C > 1) {
    Tensor rm2 = vec(rm0), rv2 = vec(rv0);
    Tensor y_local = nn::batchnorm_forward(xs.back(), vec(gamma), vec(beta), rm2, rv2, res.back(), o, nullptr);
    double diff = 0;
    for (int64_t i = 0; i < y_local.numel(); ++i)
      diff = std::max(diff, std::fabs(y_local.data<double>()[i] - outs.back().y.data<double>()[i]));
    DS_EXPECT(diff > 1e-2, "per-rank and synchronised statistics should differ, max |dy| = ", diff);
  }
}

}  // namespace

DS_TEST(syncbn_matches_concatenated_batch) {
  // 3 ranks, unequal batches (rank 0: 12 values per channel, rank 2: 36), fused CPU path and composed device path.
  const std::vector<Shape> shapes{{1, 2, 3, 2, 5}, {2, 2, 3, 2, 5}, {3, 2, 3, 2, 5}};
  check_sync_case(shapes, false);
  check_sync_case(shapes, true);
  // A rank with a single value per channel (allowed when the ranks together have more).
  const std::vector<Shape> tiny{{1, 1, 1, 1, 5}, {1, 1, 1, 4, 5}};
  check_sync_case(tiny, false);
  check_sync_case(tiny, true);
}

DS_TEST(syncbn_single_rank_is_batchnorm) {
  ThreadGroup group(1);
  ThreadSync sync(group, 0);
  Tensor x = wave(2, 2, 2, 3, 4, 0, 3.0, 1.0), dy = wave(2, 2, 2, 3, 4, 0, 0.0, 5.0);
  Tensor g = vec({1.0, 2.0, 0.5, -1.0}), b = vec({0.0, 1.0, 0.0, -1.0});
  nn::BatchNormOptions o;
  Tensor rm_a = vec({0, 0, 0, 0}), rv_a = vec({1, 1, 1, 1}), rm_b = vec({0, 0, 0, 0}), rv_b = vec({1, 1, 1, 1});
  nn::BatchNormSaved sa, sb;
  Tensor ya = nn::batchnorm_forward(x, g, b, rm_a, rv_a, Tensor(), o, &sa);
  nn::NormGrads ga = nn::batchnorm_backward(x, Tensor(), g, sa, dy, o, false);
  o.sync = &sync;
  Tensor yb = nn::batchnorm_forward(x, g, b, rm_b, rv_b, Tensor(), o, &sb);
  nn::NormGrads gb = nn::batchnorm_backward(x, Tensor(), g, sb, dy, o, false);
  DS_EXPECT(sync.calls == 0, "a 1-rank group needs no collective, made ", sync.calls);
  expect_close(yb, ya.data<double>(), ya.numel(), 0, "y");
  expect_close(gb.grad_input, ga.grad_input.data<double>(), ga.grad_input.numel(), 0, "dx");
  expect_close(rv_b, rv_a.data<double>(), 4, 0, "running_var");
}

DS_TEST(retinanet_ready_hook_order) {
  nn::RetinaNetConfig cfg;
  cfg.backbone.depth = 18;  // two blocks per layer
  cfg.backbone.widths = {4, 8, 8, 8};
  cfg.returned_layers = {1, 2};
  cfg.fpn_channels = 8;
  cfg.head_groups = 4;
  cfg.num_anchors = 2;
  cfg.dtype = DType::Float64;
  nn::RetinaNet net(cfg);
  // A frozen backbone parameter is never reported.
  const std::string frozen = "feature_extractor.body.layer1.1.bn2.weight";
  DS_EXPECT(net.store().find(frozen) != nullptr, "no parameter ", frozen);
  net.store().find(frozen)->trainable = false;

  struct Call {
    std::vector<std::string> names;
    std::vector<Tensor> grads;
  };
  std::vector<Call> calls;
  net.set_grad_ready_hook([&](const std::vector<nn::ParamEntry*>& ps) {
    Call c;
    for (nn::ParamEntry* e : ps) {
      c.names.push_back(e->name);
      c.grads.push_back(nn::ParamStore::grad(*e).clone());
    }
    calls.push_back(std::move(c));
  });
  const nn::Triple div = net.size_divisible();
  Tensor x = wave(1, div[0], div[1], div[2], 1, 0, 0.0, 0.5);
  auto out = net.forward(x, true);
  std::vector<Tensor> gc, gb;
  for (auto& t : out.cls) gc.push_back(wave(t.size(0), t.size(1), t.size(2), t.size(3), t.size(4), 1, 0.0, 1.0));
  for (auto& t : out.box) gb.push_back(wave(t.size(0), t.size(1), t.size(2), t.size(3), t.size(4), 1, 0.0, 2.0));
  net.store().zero_grad();
  net.backward(gc, gb, false);

  // Module of a parameter name: the part before ".weight"/".bias" at the granularity the hook reports.
  auto module_of = [](const std::string& n) -> std::string {
    for (const char* p : {"regression_head.", "classification_head.", "feature_extractor.fpn."})
      if (n.rfind(p, 0) == 0) return p;
    const std::string body = "feature_extractor.body.";
    DS_CHECK(n.rfind(body, 0) == 0, "unexpected parameter ", n);
    const std::string rest = n.substr(body.size());
    if (rest.rfind("layer", 0) == 0) return body + rest.substr(0, rest.find('.', rest.find('.') + 1));  // layerL.B
    return body + "stem";
  };
  const std::vector<std::string> want_order{
      "regression_head.", "classification_head.", "feature_extractor.fpn.",
      "feature_extractor.body.layer2.1", "feature_extractor.body.layer2.0",
      "feature_extractor.body.layer1.1", "feature_extractor.body.layer1.0", "feature_extractor.body.stem"};
  DS_EXPECT(calls.size() == want_order.size(), "hook called ", calls.size(), " times, want ", want_order.size());
  std::map<std::string, int> seen;
  for (size_t k = 0; k < calls.size(); ++k) {
    for (size_t i = 0; i < calls[k].names.size(); ++i) {
      const std::string& n = calls[k].names[i];
      DS_EXPECT(module_of(n) == want_order[k], "call ", k, " reported ", n, " (module ", module_of(n), "), want ",
                want_order[k]);
      ++seen[n];
      // Final when reported: equal to the gradient after the whole backward.
      Tensor& fin = nn::ParamStore::grad(*net.store().find(n));
      expect_close(calls[k].grads[i], fin.data<double>(), fin.numel(), 0, n.c_str());
    }
  }
  for (auto& e : net.store().entries()) {
    const int want = (!e.buffer && e.trainable) ? 1 : 0;
    DS_EXPECT(seen[e.name] == want, e.name, " reported ", seen[e.name], " times, want ", want);
  }
  DS_EXPECT(seen.count(frozen) && seen[frozen] == 0, "frozen parameter reported");
}

DS_TEST(reducer_run_ordered) {
  auto pg = dist::make_single_process_backend();
  std::vector<Tensor> grads{Tensor::zeros({3}, DType::Float32), Tensor::zeros({5}, DType::Float32)};
  dist::Reducer r(pg, grads, {8, true});  // 8-byte buckets: one per gradient
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  r.mark_ready(1);
  r.run_ordered([&](dist::Backend& b) {
    ran_on = std::this_thread::get_id();
    DS_CHECK(b.size() == 1, "wrong backend");
  });
  DS_EXPECT(ran_on != std::thread::id() && ran_on != caller, "the task did not run on the communication thread");
  r.mark_ready(0);
  r.wait();
  bool threw = false;
  try {
    r.run_ordered([](dist::Backend&) { DS_FAIL("peer vanished"); });
  } catch (const Error& e) {
    threw = std::string(e.what()).find("peer vanished") != std::string::npos;
  }
  DS_EXPECT(threw, "the task's exception did not reach the caller");
  // The reducer is failed from now on (the ranks would be out of step).
  threw = false;
  try {
    r.run_ordered([](dist::Backend&) {});
  } catch (const Error&) {
    threw = true;
  }
  DS_EXPECT(threw, "a failed reducer accepted another collective");
}
