// ATSS anchor matching (Zhang et al. 2020) with MONAI's ATSSMatcher semantics.
//
// For each GT box and each level, the k = min(num_candidates * A, locations)
// anchors whose centres are nearest (Euclidean) to the GT centre are
// candidates (A = anchors per location; ties: lower anchor index first). The
// GT's IoU threshold is mean + std (unbiased, N-1) of its candidates' IoUs
// pooled over all levels; a candidate is positive when IoU >= threshold (and,
// with center_in_gt, its centre lies inside the GT by more than 0.01 voxel).
// An anchor that is positive for several GTs goes to the one with the highest
// IoU (ties: lower GT index). With a single candidate in total (one level
// with one location and A = 1, or numCandidates*A = 1 on one level) the std
// is undefined and, as in MONAI, that candidate is positive. (MONAI labels it
// with GT 0 whatever the GT; here it gets the GT it is the candidate of.)
#pragma once
#include <cstdint>
#include <vector>

namespace ds::det {

struct AtssOptions {
  int64_t num_candidates = 4;
  bool center_in_gt = false;
};

// Anchor set split into levels: level l has counts[l] anchors (flat boxes at
// levels[l]); A anchors per location.
struct AnchorLevels {
  std::vector<const float*> levels;
  std::vector<int64_t> counts;
  int64_t per_location = 1;
  int64_t total() const;
};

// Checks level sizes against A (and boxes when check_values); throws ds::Error.
void check_anchor_levels(const AnchorLevels& anchors, bool check_values);

// Anchor centres (x, y, z), levels concatenated. When the A anchors of every
// location share one centre (always true for generate_anchors: the rounding
// is symmetric) one centre per location is stored (per = A), which makes the
// nearest-candidate search A times cheaper; otherwise one per anchor (per = 1).
// Computed once and shared by all images of a batch.
struct AnchorCentres {
  std::vector<float> xyz;
  int64_t per = 1;
};
AnchorCentres anchor_centres(const AnchorLevels& anchors);

// Matched GT index per anchor (levels concatenated), -1 for background.
// No GT boxes: all -1. `centres` (from anchor_centres) may be null.
std::vector<int32_t> atss_match(const AnchorLevels& anchors, const float* gt, int64_t num_gt,
                                const AtssOptions& opts, const AnchorCentres* centres = nullptr);

}  // namespace ds::det
