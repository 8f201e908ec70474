// Bindings for anchors, box ops, the box coder and NMS (all synchronous:
// they are cheap and take/return typed arrays).
#include "detection/anchors.h"
#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/nms.h"
#include "napi/detection_args.h"

namespace ds::napi {
namespace {
using namespace det_args;

// detAnchors(imageSize[3], featureMapSizes[[3]], baseAnchorShapes[[3]], featureMapScales|null) -> Float32Array[]
Napi::Value Anchors(const Napi::CallbackInfo& info) {
  auto size = triple_arg(info[0], "anchors.generate imageSize");
  std::vector<det::Int3> fms;
  DS_CHECK(info[1].IsArray(), "anchors.generate featureMapSizes must be an array of (x, y, z) triples");
  Napi::Array fa = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < fa.Length(); ++i) fms.push_back(triple_arg(fa.Get(i), "anchors.generate featureMapSizes"));
  DS_CHECK(info[2].IsArray(), "anchors.generate baseAnchorShapes must be an array of (x, y, z) triples");
  Napi::Array sa = info[2].As<Napi::Array>();
  std::vector<det::Dbl3> shapes;
  for (uint32_t i = 0; i < sa.Length(); ++i) shapes.push_back(dtriple(sa.Get(i), "anchors.generate baseAnchorShapes"));
  std::vector<double> scales;
  if (info[3].IsArray()) {
    Napi::Array a = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) scales.push_back(number_arg(a.Get(i), "anchors.generate featureMapScales"));
  }
  auto levels = det::generate_anchors(size, fms, shapes, scales);
  Napi::Array out = Napi::Array::New(info.Env(), levels.size());
  for (uint32_t i = 0; i < levels.size(); ++i) out.Set(i, to_js(info.Env(), levels[i]));
  return out;
}

Napi::Value Iou(const Napi::CallbackInfo& info) {
  auto a = boxes(info[0], "boxes.iou first argument", false);
  auto b = boxes(info[1], "boxes.iou second argument", false);
  return to_js(info.Env(), det::box_iou(a.data(), int64_t(a.size() / 6), b.data(), int64_t(b.size() / 6)));
}

Napi::Value Giou(const Napi::CallbackInfo& info) {
  auto a = boxes(info[0], "boxes.giou first argument", false);
  auto b = boxes(info[1], "boxes.giou second argument", false);
  return to_js(info.Env(), det::box_giou(a.data(), int64_t(a.size() / 6), b.data(), int64_t(b.size() / 6)));
}

// detClip(boxes, imageSize[3]) -> Float32Array (clamped copy)
Napi::Value Clip(const Napi::CallbackInfo& info) {
  auto b = boxes(info[0], "boxes.clip boxes");
  det::clip_boxes(b.data(), int64_t(b.size() / 6), dtriple(info[1], "boxes.clip imageSize"));
  return to_js(info.Env(), b);
}

// detKeepNonSmall(boxes, minSize) -> Int32Array of kept indices
Napi::Value KeepNonSmall(const Napi::CallbackInfo& info) {
  auto b = boxes(info[0], "boxes.removeSmall boxes");
  double m = number_arg(info[1], "boxes.removeSmall minSize");
  DS_CHECK(std::isfinite(m) && m >= 0, "boxes.removeSmall minSize must be >= 0, got ", m);
  return to_js(info.Env(), det::keep_non_small(b.data(), int64_t(b.size() / 6), m));
}

int64_t max_keep_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return -1;
  int64_t k = int_arg(v, "nms maxKeep");
  DS_CHECK(k >= 0, "nms maxKeep must be >= 0, got ", k);
  return k;
}

// detNms(boxes, scores, iouThreshold, maxKeep?) -> Int32Array
Napi::Value Nms(const Napi::CallbackInfo& info) {
  auto b = boxes(info[0], "boxes.nms boxes");
  auto s = f32(info[1], "boxes.nms scores");
  int64_t n = int64_t(b.size() / 6);
  DS_CHECK(int64_t(s.size()) == n, "boxes.nms: ", n, " boxes but ", s.size(), " scores");
  return to_js(info.Env(), det::nms(b.data(), s.data(), n, number_arg(info[2], "boxes.nms iouThreshold"),
                                    max_keep_arg(info[3])));
}

// detBatchedNms(boxes, scores, labels, iouThreshold, maxKeep?) -> Int32Array
Napi::Value BatchedNms(const Napi::CallbackInfo& info) {
  auto b = boxes(info[0], "boxes.batchedNms boxes");
  auto s = f32(info[1], "boxes.batchedNms scores");
  auto l = i32(info[2], "boxes.batchedNms labels");
  int64_t n = int64_t(b.size() / 6);
  DS_CHECK(int64_t(s.size()) == n && int64_t(l.size()) == n, "boxes.batchedNms: ", n, " boxes, ", s.size(),
           " scores and ", l.size(), " labels; one score and one label per box are needed");
  return to_js(info.Env(), det::batched_nms(b.data(), s.data(), l.data(), n,
                                            number_arg(info[3], "boxes.batchedNms iouThreshold"),
                                            max_keep_arg(info[4])));
}

// detEncode(anchors, gt, weights[6]) / detDecode(anchors, deltas, weights[6]) -> Float32Array
Napi::Value Encode(const Napi::CallbackInfo& info) {
  auto a = boxes(info[0], "boxes.encode anchors");
  auto g = boxes(info[1], "boxes.encode gt");
  DS_CHECK(a.size() == g.size(), "boxes.encode: ", a.size() / 6, " anchors but ", g.size() / 6,
           " GT boxes; they are encoded pairwise");
  double w[6] = {1, 1, 1, 1, 1, 1};
  weights6(info[2], w, "boxes.encode weights");
  std::vector<float> out(a.size());
  det::encode_boxes(a.data(), g.data(), int64_t(a.size() / 6), w, out.data());
  return to_js(info.Env(), out);
}

Napi::Value Decode(const Napi::CallbackInfo& info) {
  auto a = boxes(info[0], "boxes.decode anchors");
  auto d = f32(info[1], "boxes.decode deltas");
  DS_CHECK(a.size() == d.size(), "boxes.decode: ", a.size() / 6, " anchors but ", d.size(), " delta values (",
           "6 per anchor needed)");
  for (size_t i = 0; i < d.size(); ++i)
    DS_CHECK(std::isfinite(d[i]), "boxes.decode: delta ", i, " is not finite (", d[i], ")");
  double w[6] = {1, 1, 1, 1, 1, 1};
  weights6(info[2], w, "boxes.decode weights");
  std::vector<float> out(a.size());
  det::decode_boxes(a.data(), d.data(), int64_t(a.size() / 6), w, out.data());
  return to_js(info.Env(), out);
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "detAnchors", Anchors);
  export_fn(env, exports, "detIou", Iou);
  export_fn(env, exports, "detGiou", Giou);
  export_fn(env, exports, "detClip", Clip);
  export_fn(env, exports, "detKeepNonSmall", KeepNonSmall);
  export_fn(env, exports, "detNms", Nms);
  export_fn(env, exports, "detBatchedNms", BatchedNms);
  export_fn(env, exports, "detEncode", Encode);
  export_fn(env, exports, "detDecode", Decode);
}

}  // namespace

DS_NAPI_REGISTER(detection_boxes, Init);

}  // namespace ds::napi
