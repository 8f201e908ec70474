// CPU <-> GPU parity of the detection kernels: pairwise IoU / GIoU, box
// encode / decode, the element losses (focal, BCE, smooth L1, GIoU with
// gradients) and NMS (see tests/parity.h). The CPU functions work on float
// pointers, so the CPU side converts its (float32 / float64 self-check)
// inputs to float32 first.
#include <cmath>

#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/det_cuda.h"
#include "detection/losses.h"
#include "detection/nms.h"
#include "detection/postprocess.h"
#include "detection/sampler.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

namespace {

bool on_gpu(const Tensor& t) { return !t.device().is_cpu(); }
Tensor f32(const Tensor& t) { return t.to(DType::Float32); }
const double kW[6] = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
const double kW2[6] = {10.0, 10.0, 10.0, 5.0, 5.0, 5.0};

// n random boxes in a 64^3 volume with sizes in [1, 20), clustered so that many overlap.
Tensor random_boxes(int64_t n, std::mt19937_64& r) {
  Tensor b = Tensor::empty({n, 6}, DType::Float32);
  std::uniform_real_distribution<float> c(0.f, 64.f), s(1.f, 20.f);
  float* p = b.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < 3; ++k) {
      const float ctr = c(r), sz = s(r);
      p[6 * i + k] = ctr - 0.5f * sz;
      p[6 * i + k + 3] = ctr + 0.5f * sz;
    }
  return b;
}

DType keep_f32(size_t, DType) { return DType::Float32; }

Tensor from_vec(const std::vector<float>& v, const Shape& s) {
  Tensor t = Tensor::empty(s, DType::Float32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

DTypeTols tight() {
  DTypeTols t;
  t.f32 = {1e-7, 1e-6};
  t.f64 = {1e-7, 1e-6};
  t.f16 = {1e-7, 1e-6};
  t.bf16 = {1e-7, 1e-6};
  return t;
}

std::vector<ParityCase> detection_cases() {
  std::vector<ParityCase> cs;
  {
    ParityCase c;
    c.name = "box_iou_giou";
    c.dtypes = {DType::Float32};
    c.sizes = {{1, 1}, {7, 33}, {1000, 517}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_boxes(s[0], r), random_boxes(s[1], r)};
    };
    c.input_dtype = keep_f32;
    c.run = [](Inputs& in) {
      if (on_gpu(in[0])) return Inputs{det::box_iou_cuda(in[0], in[1]), det::box_giou_cuda(in[0], in[1])};
      Tensor a = f32(in[0]), b = f32(in[1]);
      const int64_t n = a.size(0), m = b.size(0);
      return Inputs{from_vec(det::box_iou(a.data<float>(), n, b.data<float>(), m), {n, m}),
                    from_vec(det::box_giou(a.data<float>(), n, b.data<float>(), m), {n, m})};
    };
    c.outputs = {"iou", "giou"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "box_encode_decode";
    c.dtypes = {DType::Float32, DType::Float16, DType::BFloat16};  // the decoded deltas' dtype
    c.sizes = {{1}, {1001}, {200003}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_boxes(s[0], r), random_boxes(s[0], r), random_tensor({s[0], 6}, DType::Float32, r, -2.0, 6.0)};
    };
    c.input_dtype = [](size_t i, DType dt) { return i == 2 ? dt : DType::Float32; };
    c.run = [](Inputs& in) {
      Inputs out;
      for (const double* w : {kW, kW2}) {
        if (on_gpu(in[0])) {
          out.push_back(det::encode_boxes_cuda(in[0], in[1], w));
          out.push_back(det::decode_boxes_cuda(in[0], in[2], w));
        } else {
          Tensor a = f32(in[0]), g = f32(in[1]), d = f32(in[2]);
          const int64_t n = a.size(0);
          Tensor e = Tensor::empty({n, 6}, DType::Float32), b = Tensor::empty({n, 6}, DType::Float32);
          det::encode_boxes(a.data<float>(), g.data<float>(), n, w, e.data<float>());
          det::decode_boxes(a.data<float>(), d.data<float>(), n, w, b.data<float>());
          out.push_back(e);
          out.push_back(b);
        }
      }
      return out;
    };
    c.outputs = {"encode(w=1)", "decode(w=1)", "encode(w=10,5)", "decode(w=10,5)"};
    DTypeTols t = tight();
    t.f32 = t.f16 = t.bf16 = {2e-6, 1e-6};  // exp / log may differ by one double ulp
    c.tol = {t};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "cls_losses";
    c.sizes = {{1}, {1001}, {1000003}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      // Targets 0 (negative), 1 (positive), 2 (ignored).
      return Inputs{random_tensor({s[0]}, DType::Float32, r, -12.0, 12.0), random_tensor({s[0]}, DType::UInt8, r, 0.0, 3.0)};
    };
    c.run = [](Inputs& in) {
      Inputs out;
      for (det::ClsLossKind kind : {det::ClsLossKind::Focal, det::ClsLossKind::BCE}) {
        if (on_gpu(in[0])) {
          Tensor l, g;
          det::cls_loss_cuda(in[0], in[1], kind, 2.0, 0.25, &l, &g);
          out.push_back(l);
          out.push_back(g);
          continue;
        }
        Tensor x = in[0].to(DType::Float64);
        const int64_t n = x.numel();
        Tensor l = Tensor::empty({n}, DType::Float32), g = Tensor::empty({n}, DType::Float32);
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t t = in[1].data<uint8_t>()[i];
          det::LossGrad lg = t > 1 ? det::LossGrad{0, 0} : det::cls_element_loss(x.data<double>()[i], t == 1, kind, 2.0, 0.25);
          l.data<float>()[i] = float(lg.loss);
          g.data<float>()[i] = float(lg.grad);
        }
        out.push_back(l);
        out.push_back(g);
      }
      return out;
    };
    c.outputs = {"focal", "focal_grad", "bce", "bce_grad"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "smooth_l1";
    c.sizes = {{1}, {1001}, {1000003}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r, -1.0, 1.0), random_tensor({s[0]}, DType::Float32, r, -1.0, 1.0)};
    };
    c.run = [](Inputs& in) {
      const double beta = 1.0 / 9.0;
      if (on_gpu(in[0])) {
        Tensor l, g;
        det::smooth_l1_cuda(in[0], in[1], beta, &l, &g);
        return Inputs{l, g};
      }
      Tensor p = in[0].to(DType::Float64), t = in[1].to(DType::Float64);
      Tensor l = Tensor::empty(p.shape(), DType::Float32), g = Tensor::empty(p.shape(), DType::Float32);
      for (int64_t i = 0; i < p.numel(); ++i) {
        det::LossGrad lg = det::smooth_l1(p.data<double>()[i], t.data<double>()[i], beta);
        l.data<float>()[i] = float(lg.loss);
        g.data<float>()[i] = float(lg.grad);
      }
      return Inputs{l, g};
    };
    c.outputs = {"loss", "grad"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "giou_loss";
    c.sizes = {{1}, {1001}, {100003}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      Tensor a = random_boxes(s[0], r), g = a.clone();
      std::uniform_real_distribution<float> jit(-3.f, 3.f);
      for (int64_t i = 0; i < g.numel(); ++i) g.data<float>()[i] += jit(r);
      for (int64_t i = 0; i < s[0]; ++i)
        for (int k = 0; k < 3; ++k) {  // keep x2 >= x1
          float* b = g.data<float>() + 6 * i;
          if (b[k + 3] < b[k]) std::swap(b[k], b[k + 3]);
        }
      return Inputs{a, random_tensor({s[0], 6}, DType::Float32, r, -0.5, 0.5), g};
    };
    c.input_dtype = [](size_t i, DType dt) { return i == 1 ? dt : DType::Float32; };
    c.run = [](Inputs& in) {
      if (on_gpu(in[0])) {
        Tensor l, g;
        det::giou_loss_cuda(in[0], in[1], in[2], kW, &l, &g);
        return Inputs{l, g};
      }
      Tensor a = f32(in[0]), d = in[1].to(DType::Float64), gt = f32(in[2]);
      const int64_t n = a.size(0);
      Tensor l = Tensor::empty({n}, DType::Float32), g = Tensor::empty({n, 6}, DType::Float32);
      for (int64_t i = 0; i < n; ++i) {
        double grad[6];
        l.data<float>()[i] =
            float(det::giou_loss_with_grad(a.data<float>() + 6 * i, d.data<double>() + 6 * i, kW, gt.data<float>() + 6 * i, grad));
        for (int j = 0; j < 6; ++j) g.data<float>()[6 * i + j] = float(grad[j]);
      }
      return Inputs{l, g};
    };
    c.outputs = {"loss", "grad"};
    DTypeTols t = tight();
    t.f32 = t.f16 = t.bf16 = {1e-6, 1e-6};
    c.tol = {t};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "nms";
    c.dtypes = {DType::Float32};
    // {n, max_keep}
    c.sizes = {{1, -1}, {100, -1}, {3000, -1}, {5000, 50}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      Tensor sc = random_tensor({s[0]}, DType::Float32, r, 0.0, 1.0);
      // Ties: every 7th score repeats the previous one (the lower index must win).
      for (int64_t i = 7; i < s[0]; i += 7) sc.data<float>()[i] = sc.data<float>()[i - 1];
      return Inputs{random_boxes(s[0], r), sc, Tensor::full({1}, double(s[1]), DType::Int64)};
    };
    c.input_dtype = keep_f32;
    c.run = [](Inputs& in) {
      const int64_t max_keep = in[2].data<int64_t>()[0];
      Inputs out;
      for (double thr : {0.22, 0.5}) {
        std::vector<int32_t> k;
        if (on_gpu(in[0])) {
          k = det::nms_cuda(in[0], in[1], thr, max_keep);
        } else {
          Tensor b = f32(in[0]), s = f32(in[1]);
          k = det::nms(b.data<float>(), s.data<float>(), b.size(0), thr, max_keep);
        }
        Tensor t = Tensor::empty({int64_t(k.size())}, DType::Int32);
        std::copy(k.begin(), k.end(), t.data<int32_t>());
        out.push_back(t);
      }
      return out;
    };
    c.outputs = {"keep(0.22)", "keep(0.5)"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "batched_nms";
    c.dtypes = {DType::Float32};
    c.sizes = {{1, -1}, {500, -1}, {4000, 100}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      Tensor sc = random_tensor({s[0]}, DType::Float32, r, 0.0, 1.0);
      for (int64_t i = 5; i < s[0]; i += 5) sc.data<float>()[i] = sc.data<float>()[i - 1];
      return Inputs{random_boxes(s[0], r), sc, random_tensor({s[0]}, DType::Int32, r, 0.0, 3.0),
                    Tensor::full({1}, double(s[1]), DType::Int64)};
    };
    c.input_dtype = keep_f32;
    c.run = [](Inputs& in) {
      const int64_t max_keep = in[3].data<int64_t>()[0];
      std::vector<int32_t> k;
      if (on_gpu(in[0])) {
        k = det::batched_nms_cuda(in[0], in[1], in[2], 0.22, max_keep);
      } else {
        Tensor b = f32(in[0]), s = f32(in[1]);
        k = det::batched_nms(b.data<float>(), s.data<float>(), in[2].data<int32_t>(), b.size(0), 0.22, max_keep);
      }
      Tensor t = Tensor::empty({int64_t(k.size())}, DType::Int32);
      std::copy(k.begin(), k.end(), t.data<int32_t>());
      return Inputs{t};
    };
    c.outputs = {"keep"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "hard_negative_sampler";
    c.dtypes = {DType::Float32};
    // {anchors, batch_size_per_image, pool_size}
    c.sizes = {{10, 64, 20}, {5003, 64, 20}, {400009, 256, 20}, {400009, 64, 1000}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      const int64_t n = s[0];
      Tensor m = Tensor::empty({n}, DType::Int32), sc = random_tensor({n}, DType::Float32, r, -5.0, 5.0);
      std::uniform_int_distribution<int> u(0, 99);
      for (int64_t i = 0; i < n; ++i) {
        const int k = u(r);
        m.data<int32_t>()[i] = k < 90 ? -1 : (k < 95 ? -2 : k % 4);  // background, ignored, foreground GT 0..3
        if (k == 0) sc.data<float>()[i] = NAN;                        // ranks like -inf
        if (k == 1 && i > 0) sc.data<float>()[i] = sc.data<float>()[i - 1];  // ties: lower index first
      }
      Tensor opt = Tensor::empty({2}, DType::Int64);
      opt.data<int64_t>()[0] = s[1];
      opt.data<int64_t>()[1] = s[2];
      return Inputs{m, sc, opt};
    };
    c.input_dtype = keep_f32;
    c.run = [](Inputs& in) {
      det::SamplerOptions o;
      o.batch_size_per_image = in[2].data<int64_t>()[0];
      o.pool_size = in[2].data<int64_t>()[1];
      det::Rng rng(1234);
      det::Sample smp;
      if (on_gpu(in[0])) {
        smp = det::sample_hard_negatives_cuda(in[0], in[1], o, rng);
      } else {
        Tensor sc = f32(in[1]);
        smp = det::sample_hard_negatives(in[0].data<int32_t>(), sc.data<float>(), in[0].numel(), o, rng);
      }
      Tensor p = Tensor::empty({int64_t(smp.pos.size())}, DType::Int32), q = Tensor::empty({int64_t(smp.neg.size())}, DType::Int32);
      std::copy(smp.pos.begin(), smp.pos.end(), p.data<int32_t>());
      std::copy(smp.neg.begin(), smp.neg.end(), q.data<int32_t>());
      return Inputs{p, q};
    };
    c.outputs = {"pos", "neg"};
    c.tol = {tight()};
    cs.push_back(c);
  }
  {
    // Two levels, 2 images, A = 3 anchors per location, 2 classes; top-K 40
    // per level so that the K cut and ties matter.
    ParityCase c;
    c.name = "postprocess";
    c.dtypes = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16};
    c.sizes = {{4, 5, 3, 2, 3, 2}, {16, 16, 8, 8, 8, 4}};  // {D1, D2, D3} of level 0 and level 1
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      const int64_t N = 2, A = 3, C = 2;
      Inputs in;
      for (int l = 0; l < 2; ++l) {
        const Shape sp = {N, s[size_t(3 * l)], s[size_t(3 * l + 1)], s[size_t(3 * l + 2)]};
        Tensor logits = random_tensor({sp[0], sp[1], sp[2], sp[3], A * C}, DType::Float32, r, -4.0, 2.0);
        // Ties: every 11th logit repeats the previous one.
        for (int64_t i = 11; i < logits.numel(); i += 11) logits.data<float>()[i] = logits.data<float>()[i - 1];
        in.push_back(logits);
      }
      for (int l = 0; l < 2; ++l) {
        const Shape sp = {N, s[size_t(3 * l)], s[size_t(3 * l + 1)], s[size_t(3 * l + 2)]};
        in.push_back(random_tensor({sp[0], sp[1], sp[2], sp[3], A * 6}, DType::Float32, r, -0.3, 0.3));
      }
      for (int l = 0; l < 2; ++l) in.push_back(random_boxes(s[size_t(3 * l)] * s[size_t(3 * l + 1)] * s[size_t(3 * l + 2)] * A, r));
      return in;
    };
    c.input_dtype = [](size_t i, DType dt) { return i >= 4 ? DType::Float32 : dt; };
    c.run = [](Inputs& in) {
      det::PostprocessOptions o;
      o.num_classes = 2;
      o.score_thresh = 0.05;
      o.topk_candidates_per_level = 40;
      o.nms_thresh = 0.22;
      o.detections_per_img = 30;
      o.min_size = 1.0;
      Tensor a0 = f32(in[4].to(Device::cpu())), a1 = f32(in[5].to(Device::cpu()));
      std::vector<const float*> ap = {a0.data<float>(), a1.data<float>()};
      std::vector<int64_t> counts = {a0.size(0), a1.size(0)};
      const std::vector<std::array<double, 3>> sizes = {{64.0, 60.0, 50.0}};
      const std::vector<Tensor> cls = {in[0], in[1]}, box = {in[2], in[3]};
      std::vector<det::Detections> d = on_gpu(in[0]) ? det::postprocess_cuda(cls, box, ap, counts, sizes, o)
                                                     : det::postprocess(cls, box, ap, counts, sizes, o);
      Inputs out;
      for (auto& im : d) {
        const int64_t m = int64_t(im.scores.size());
        out.push_back(from_vec(im.boxes, {m, 6}));
        out.push_back(from_vec(im.scores, {m}));
        Tensor lab = Tensor::empty({m}, DType::Int32);
        std::copy(im.labels.begin(), im.labels.end(), lab.data<int32_t>());
        out.push_back(lab);
      }
      return out;
    };
    c.outputs = {"boxes[0]", "scores[0]", "labels[0]", "boxes[1]", "scores[1]", "labels[1]"};
    // Identical selection; decode runs on the host in both cases.
    DTypeTols t = tight();
    t.f32 = t.f64 = t.f16 = t.bf16 = {2e-6, 1e-6};
    c.tol = {t};
    cs.push_back(c);
  }
  return cs;
}

}  // namespace

DS_TEST(parity_detection) { run_parity_cases(detection_cases()); }
