// Bindings for ATSS matching, hard-negative sampling, the detector loss and
// post-processing. detLoss / detPostprocess are jobs (sync + *Async).
#include "detection/atss.h"
#include "detection/detector_loss.h"
#include "detection/postprocess.h"
#include "detection/sampler.h"
#include "napi/detection_args.h"

namespace ds::napi {
namespace {
using namespace det_args;

uint64_t seed_arg(const Napi::Value& v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return 0;
  int64_t s = int_arg(v, what);
  DS_CHECK(s >= 0, what, " must be an integer >= 0, got ", s);
  return uint64_t(s);
}

void atss_opts(const Napi::Value& v, det::AtssOptions& o, const std::string& what) {
  if (!v.IsObject()) return;
  Napi::Object obj = v.As<Napi::Object>();
  opt_int(obj, "numCandidates", o.num_candidates, what);
  opt_bool(obj, "centerInGt", o.center_in_gt, what);
}

void sampler_opts(const Napi::Value& v, det::SamplerOptions& o, const std::string& what) {
  if (!v.IsObject()) return;
  Napi::Object obj = v.As<Napi::Object>();
  opt_int(obj, "batchSizePerImage", o.batch_size_per_image, what);
  opt_num(obj, "positiveFraction", o.positive_fraction, what);
  opt_int(obj, "minNeg", o.min_neg, what);
  opt_int(obj, "poolSize", o.pool_size, what);
}

// detAtss(levels: Float32Array[], anchorsPerLocation, gt: Float32Array, {numCandidates, centerInGt}) -> Int32Array
Napi::Value Atss(const Napi::CallbackInfo& info) {
  std::vector<Napi::Reference<Napi::Value>> keep;
  BoxLevelRefs levels = box_level_refs(info[0], "match.atss anchors", keep);
  int64_t A = int_arg(info[1], "match.atss anchorsPerLocation");
  auto gt = boxes(info[2], "match.atss GT boxes");
  det::AtssOptions o;
  atss_opts(info[3], o, "match.atss");
  det::AnchorLevels al{levels.ptrs, levels.counts, A};
  det::check_anchor_levels(al, true);
  return to_js(info.Env(), det::atss_match(al, gt.data(), int64_t(gt.size() / 6), o));
}

// detSample(matched: Int32Array, scores: Float32Array, options, seed) -> {positive, negative}
Napi::Value Sample(const Napi::CallbackInfo& info) {
  auto m = i32(info[0], "sampler.hardNegative matched");
  auto s = f32(info[1], "sampler.hardNegative scores");
  DS_CHECK(m.size() == s.size(), "sampler.hardNegative: ", m.size(), " matched labels but ", s.size(), " scores");
  det::SamplerOptions o;
  sampler_opts(info[2], o, "sampler.hardNegative");
  det::Rng rng(seed_arg(info[3], "sampler.hardNegative seed"));
  det::Sample r = det::sample_hard_negatives(m.data(), s.data(), int64_t(m.size()), o, rng);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("positive", to_js(info.Env(), r.pos));
  out.Set("negative", to_js(info.Env(), r.neg));
  return out;
}

// detLoss(cls: Tensor[], box: Tensor[], anchors: Float32Array[], targets: {boxes, labels}[], options)
Job Loss(const Napi::CallbackInfo& info) {
  struct State {
    std::vector<Tensor> cls, box;
    std::vector<Napi::Reference<Napi::Value>> keep;
    BoxLevelRefs anchors;
    std::vector<std::vector<float>> gt_boxes;
    std::vector<std::vector<int32_t>> gt_labels;
    det::DetectorLossOptions o;
    det::DetectorLoss r;
  };
  auto s = std::make_shared<State>();
  const std::string what = "detector.loss";
  s->cls = tensors(info[0], "detector.loss clsLogits");
  s->box = tensors(info[1], "detector.loss boxRegression");
  s->anchors = box_level_refs(info[2], "detector.loss anchors", s->keep);
  DS_CHECK(info[3].IsArray(), "detector.loss targets must be an array of {boxes, labels}, one per image");
  Napi::Array t = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < t.Length(); ++i) {
    DS_CHECK(t.Get(i).IsObject(), "detector.loss targets[", i, "] must be {boxes: Float32Array, labels: Int32Array}");
    Napi::Object ti = t.Get(i).As<Napi::Object>();
    s->gt_boxes.push_back(boxes(ti.Get("boxes"), "detector.loss target boxes", false));
    s->gt_labels.push_back(i32(ti.Get("labels"), "detector.loss target labels"));
    DS_CHECK(s->gt_boxes.back().size() / 6 == s->gt_labels.back().size(), "detector.loss: targets[", i, "] has ",
             s->gt_boxes.back().size() / 6, " boxes but ", s->gt_labels.back().size(), " labels");
  }
  det::DetectorLossOptions& o = s->o;
  if (info[4].IsObject()) {
    Napi::Object obj = info[4].As<Napi::Object>();
    opt_int(obj, "numClasses", o.num_classes, what);
    Napi::Value v = get_opt(obj, "clsLoss");
    if (!v.IsUndefined()) {
      std::string k = string_arg(v, "detector.loss option 'clsLoss'");
      DS_CHECK(k == "focal" || k == "bce", "detector.loss option 'clsLoss' must be 'focal' or 'bce', got '", k, "'");
      o.cls_loss = k == "focal" ? det::ClsLossKind::Focal : det::ClsLossKind::BCE;
    }
    v = get_opt(obj, "boxLoss");
    if (!v.IsUndefined()) {
      std::string k = string_arg(v, "detector.loss option 'boxLoss'");
      DS_CHECK(k == "smoothl1" || k == "giou", "detector.loss option 'boxLoss' must be 'smoothl1' or 'giou', got '",
               k, "'");
      o.box_loss = k == "giou" ? det::BoxLossKind::GIoU : det::BoxLossKind::SmoothL1;
    }
    opt_num(obj, "focalGamma", o.focal_gamma, what);
    opt_num(obj, "focalAlpha", o.focal_alpha, what);
    opt_num(obj, "smoothL1Beta", o.smooth_l1_beta, what);
    opt_num(obj, "clsLossWeight", o.cls_weight, what);
    opt_num(obj, "gradScale", o.grad_scale, what);
    v = get_opt(obj, "nonFiniteOk");
    if (!v.IsUndefined()) o.non_finite_ok = bool_arg(v, "detector.loss option 'nonFiniteOk'");
    atss_opts(get_opt(obj, "atss"), o.atss, what + ".atss");
    sampler_opts(get_opt(obj, "sampler"), o.sampler, what + ".sampler");
    weights6(get_opt(obj, "boxCoderWeights"), o.coder_weights, "detector.loss option 'boxCoderWeights'");
    o.seed = seed_arg(get_opt(obj, "seed"), "detector.loss option 'seed'");
  }
  return {[s] {
            std::vector<det::ImageTargets> targets;
            for (size_t i = 0; i < s->gt_boxes.size(); ++i)
              targets.push_back({s->gt_boxes[i].data(), s->gt_labels[i].data(), int64_t(s->gt_labels[i].size())});
            s->r = det::detector_loss(s->cls, s->box, s->anchors.ptrs, s->anchors.counts, targets, s->o);
          },
          [s](Napi::Env env) -> Napi::Value {
            Napi::Object o = Napi::Object::New(env);
            o.Set("cls", s->r.cls);
            o.Set("box", s->r.box);
            o.Set("total", s->r.total);
            Napi::Array cg = Napi::Array::New(env, s->r.cls_grads.size());
            Napi::Array bg = Napi::Array::New(env, s->r.box_grads.size());
            for (uint32_t i = 0; i < s->r.cls_grads.size(); ++i) cg.Set(i, TensorWrap::Wrap(env, s->r.cls_grads[i]));
            for (uint32_t i = 0; i < s->r.box_grads.size(); ++i) bg.Set(i, TensorWrap::Wrap(env, s->r.box_grads[i]));
            o.Set("clsGrads", cg);
            o.Set("boxGrads", bg);
            o.Set("numSampledPositives", double(s->r.num_sampled_pos));
            o.Set("numSampledNegatives", double(s->r.num_sampled_neg));
            o.Set("numForeground", double(s->r.num_foreground));
            o.Set("nonFinite", s->r.non_finite);
            return o;
          }};
}

// detPostprocess(cls: Tensor[], box: Tensor[], anchors: Float32Array[], imageSizes: [x,y,z][], options)
Job Postprocess(const Napi::CallbackInfo& info) {
  struct State {
    std::vector<Tensor> cls, box;
    std::vector<Napi::Reference<Napi::Value>> keep;
    BoxLevelRefs anchors;
    std::vector<std::array<double, 3>> sizes;
    det::PostprocessOptions o;
    std::vector<det::Detections> r;
  };
  auto s = std::make_shared<State>();
  const std::string what = "detector.postprocess";
  s->cls = tensors(info[0], "detector.postprocess clsLogits");
  s->box = tensors(info[1], "detector.postprocess boxRegression");
  s->anchors = box_level_refs(info[2], "detector.postprocess anchors", s->keep);
  DS_CHECK(info[3].IsArray(), "detector.postprocess imageSizes must be an array of (x, y, z) sizes");
  Napi::Array sz = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < sz.Length(); ++i) s->sizes.push_back(dtriple(sz.Get(i), "detector.postprocess imageSize"));
  det::PostprocessOptions& o = s->o;
  if (info[4].IsObject()) {
    Napi::Object obj = info[4].As<Napi::Object>();
    opt_int(obj, "numClasses", o.num_classes, what);
    opt_num(obj, "scoreThresh", o.score_thresh, what);
    opt_int(obj, "topkCandidatesPerLevel", o.topk_candidates_per_level, what);
    opt_num(obj, "nmsThresh", o.nms_thresh, what);
    opt_int(obj, "detectionsPerImg", o.detections_per_img, what);
    opt_bool(obj, "applySigmoid", o.apply_sigmoid, what);
    opt_num(obj, "minSize", o.min_size, what);
    weights6(get_opt(obj, "boxCoderWeights"), o.coder_weights, "detector.postprocess option 'boxCoderWeights'");
  }
  return {[s] { s->r = det::postprocess(s->cls, s->box, s->anchors.ptrs, s->anchors.counts, s->sizes, s->o); },
          [s](Napi::Env env) -> Napi::Value {
            Napi::Array out = Napi::Array::New(env, s->r.size());
            for (uint32_t i = 0; i < s->r.size(); ++i) {
              Napi::Object d = Napi::Object::New(env);
              d.Set("boxes", to_js(env, s->r[i].boxes));
              d.Set("scores", to_js(env, s->r[i].scores));
              d.Set("labels", to_js(env, s->r[i].labels));
              out.Set(i, d);
            }
            return out;
          }};
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "detAtss", Atss);
  export_fn(env, exports, "detSample", Sample);
  export_job(env, exports, "detLoss", Loss);
  export_job(env, exports, "detPostprocess", Postprocess);
}

}  // namespace

DS_NAPI_REGISTER(detection_train, Init);

}  // namespace ds::napi
