#include "detection/atss.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <queue>

#include "core/error.h"
#include "core/thread_pool.h"
#include "detection/box_ops.h"

namespace ds::det {

int64_t AnchorLevels::total() const {
  int64_t t = 0;
  for (int64_t c : counts) t += c;
  return t;
}

void check_anchor_levels(const AnchorLevels& a, bool check_values) {
  DS_CHECK(a.levels.size() == a.counts.size(), "internal: anchor levels and counts differ");
  DS_CHECK(!a.levels.empty(), "anchors: at least one level is needed");
  DS_CHECK(a.per_location >= 1, "anchors: anchorsPerLocation must be >= 1, got ", a.per_location);
  for (size_t l = 0; l < a.levels.size(); ++l) {
    DS_CHECK(a.counts[l] % a.per_location == 0, "anchors: level ", l, " has ", a.counts[l],
             " anchors, not a multiple of anchorsPerLocation = ", a.per_location);
    if (check_values) check_boxes(a.levels[l], a.counts[l], "anchors");
  }
}

namespace {

struct Cand {
  double d2;
  int64_t idx;
  bool operator<(const Cand& o) const { return d2 < o.d2 || (d2 == o.d2 && idx < o.idx); }
};

// Appends the k nearest centres of one level (by squared distance, then
// index) to `out`, nearest first. `centres` points at the level's first
// centre; indices are offset by `offset`.
void nearest_k(const float* centres, int64_t count, int64_t offset, const double gc[3], int64_t k,
               std::vector<Cand>& out) {
  std::priority_queue<Cand> heap;  // max-heap: top is the worst kept candidate
  double worst = std::numeric_limits<double>::infinity();
  constexpr int64_t kBlock = 512;
  double d2[kBlock];
  for (int64_t i0 = 0; i0 < count; i0 += kBlock) {
    const int64_t n = std::min(kBlock, count - i0);
    const float* c = centres + 3 * i0;
    for (int64_t i = 0; i < n; ++i) {  // vectorisable
      double dx = double(c[3 * i]) - gc[0], dy = double(c[3 * i + 1]) - gc[1], dz = double(c[3 * i + 2]) - gc[2];
      d2[i] = dx * dx + dy * dy + dz * dz;
    }
    for (int64_t i = 0; i < n; ++i) {
      // Indices only grow, so a tie with the worst kept candidate loses too.
      if (d2[i] >= worst) continue;
      heap.push(Cand{d2[i], offset + i0 + i});
      if (int64_t(heap.size()) > k) heap.pop();
      if (int64_t(heap.size()) == k) worst = heap.top().d2;
    }
  }
  size_t base = out.size();
  while (!heap.empty()) {
    out.push_back(heap.top());
    heap.pop();
  }
  std::reverse(out.begin() + long(base), out.end());
}

}  // namespace

AnchorCentres anchor_centres(const AnchorLevels& anchors) {
  const int64_t A = anchors.per_location;
  AnchorCentres r;
  r.xyz.resize(static_cast<size_t>(anchors.total() / A * 3));
  std::atomic<bool> shared{true};
  int64_t off = 0;  // in locations
  for (size_t l = 0; l < anchors.levels.size(); ++l) {
    const float* b = anchors.levels[l];
    float* out = r.xyz.data() + 3 * off;
    parallel_for(0, anchors.counts[l] / A, 4096, [&](int64_t i0, int64_t i1) {
      bool same = true;
      for (int64_t i = i0; i < i1; ++i) {
        const float* p = b + 6 * A * i;
        for (int j = 0; j < 3; ++j) out[3 * i + j] = 0.5f * (p[j] + p[j + 3]);
        for (int64_t a = 1; a < A; ++a)
          for (int j = 0; j < 3; ++j) same &= 0.5f * (p[6 * a + j] + p[6 * a + j + 3]) == out[3 * i + j];
      }
      if (!same) shared.store(false, std::memory_order_relaxed);
    });
    off += anchors.counts[l] / A;
  }
  r.per = A;
  if (shared.load() || A == 1) return r;
  // Anchors of a location have different centres: keep one centre per anchor.
  r.per = 1;
  r.xyz.resize(static_cast<size_t>(anchors.total() * 3));
  off = 0;
  for (size_t l = 0; l < anchors.levels.size(); ++l) {
    const float* b = anchors.levels[l];
    float* out = r.xyz.data() + 3 * off;
    for (int64_t i = 0; i < anchors.counts[l]; ++i)
      for (int j = 0; j < 3; ++j) out[3 * i + j] = 0.5f * (b[6 * i + j] + b[6 * i + j + 3]);
    off += anchors.counts[l];
  }
  return r;
}

std::vector<int32_t> atss_match(const AnchorLevels& anchors, const float* gt, int64_t num_gt,
                                const AtssOptions& opts, const AnchorCentres* centres) {
  check_anchor_levels(anchors, false);
  DS_CHECK(opts.num_candidates >= 1, "ATSS: numCandidates must be >= 1, got ", opts.num_candidates);
  check_boxes(gt, num_gt, "ATSS: GT boxes");
  const int64_t total = anchors.total();
  std::vector<int32_t> matched(size_t(total), -1);
  if (num_gt == 0 || total == 0) return matched;
  AnchorCentres own;
  if (!centres) {
    own = anchor_centres(anchors);
    centres = &own;
  }
  const int64_t per = centres->per;
  const size_t L = anchors.levels.size();
  std::vector<int64_t> offsets(L, 0);
  for (size_t l = 1; l < L; ++l) offsets[l] = offsets[l - 1] + anchors.counts[l - 1];
  auto anchor_ptr = [&](int64_t g) {
    size_t l = 0;
    while (g >= offsets[l] + anchors.counts[l]) ++l;
    return anchors.levels[l] + 6 * (g - offsets[l]);
  };

  // Positive candidates per GT with their IoUs.
  std::vector<std::vector<std::pair<int64_t, double>>> pos(static_cast<size_t>(num_gt));
  parallel_for(0, num_gt, 1, [&](int64_t g0, int64_t g1) {
    std::vector<Cand> cand;
    std::vector<double> ious;
    for (int64_t g = g0; g < g1; ++g) {
      const float* box = gt + 6 * g;
      double gc[3];
      for (int j = 0; j < 3; ++j) gc[j] = 0.5 * (double(box[j]) + double(box[j + 3]));
      cand.clear();
      for (size_t l = 0; l < L; ++l) {
        int64_t locations = anchors.counts[l] / anchors.per_location;
        int64_t k = std::min(opts.num_candidates * anchors.per_location, locations);
        k = std::min(k, anchors.counts[l]);
        if (k <= 0) continue;
        // Nearest ceil(k / per) centres, expanded to their anchors in index
        // order and cut to k: the same as the k nearest anchors ordered by
        // (distance, index), because anchors of a location share the distance.
        const int64_t k_loc = (k + per - 1) / per;
        const size_t base = cand.size();
        nearest_k(centres->xyz.data() + 3 * (offsets[l] / per), anchors.counts[l] / per, 0, gc, k_loc, cand);
        if (per > 1) {
          std::vector<Cand> locs(cand.begin() + long(base), cand.end());
          cand.resize(base);
          for (const Cand& c : locs)
            for (int64_t a = 0; a < per && int64_t(cand.size() - base) < k; ++a)
              cand.push_back(Cand{c.d2, offsets[l] + c.idx * per + a});
        } else {
          for (size_t i = base; i < cand.size(); ++i) cand[i].idx += offsets[l];
        }
      }
      ious.resize(cand.size());
      double mean = 0;
      for (size_t i = 0; i < cand.size(); ++i) {
        ious[i] = pair_iou(anchor_ptr(cand[i].idx), box);
        mean += ious[i];
      }
      const size_t K = cand.size();
      if (K == 1) {
        // A single candidate in total: the std is undefined, and MONAI then
        // makes the candidate positive (before any centre-in-GT test).
        pos[size_t(g)].emplace_back(cand[0].idx, ious[0]);
        continue;
      }
      mean /= double(K);
      double var = 0;
      for (double v : ious) var += (v - mean) * (v - mean);
      double thr = mean + std::sqrt(var / double(K - 1));
      for (size_t i = 0; i < K; ++i) {
        if (!(ious[i] >= thr)) continue;
        if (opts.center_in_gt) {
          const float* a = anchor_ptr(cand[i].idx);
          double m = std::numeric_limits<double>::infinity();
          for (int j = 0; j < 3; ++j) {
            double c = 0.5 * (double(a[j]) + double(a[j + 3]));
            m = std::min({m, c - box[j], double(box[j + 3]) - c});
          }
          if (!(m > 0.01)) continue;
        }
        pos[size_t(g)].emplace_back(cand[i].idx, ious[i]);
      }
    }
  });

  // Resolve anchors claimed by several GTs: highest IoU, then lowest GT index.
  std::vector<double> best(size_t(total), -1.0);
  for (int64_t g = 0; g < num_gt; ++g)
    for (auto& [idx, iou] : pos[size_t(g)])
      if (iou > best[size_t(idx)]) {
        best[size_t(idx)] = iou;
        matched[size_t(idx)] = int32_t(g);
      }
  return matched;
}

}  // namespace ds::det
