// Anchor generation with MONAI's AnchorGeneratorWithAnchorShape semantics.
//
// Level l uses scale feature_map_scales[l] (default 2^l). For each base shape
// s (x, y, z) the anchor's corners relative to its centre are
// -round(scale*s/2) and +round(scale*s/2), rounded half to even per side
// (shape 5 at scale 1: -round(2.5) = -2, +2, so 4 voxels wide). The stride of
// a level is image_size // feature_map_size per axis and the centre of
// location (ix, iy, iz) is (ix*sx, iy*sy, iz*sz) (no half-voxel offset).
//
// Order within a level (matches the head outputs, see preamble/README):
// index = ((iz*FY + iy)*FX + ix)*A + a — location-major, base shapes fastest,
// x the fastest spatial axis. MONAI uses the same scheme on (x, y, z)
// tensors, i.e. z fastest; only that differs.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace ds::det {

using Int3 = std::array<int64_t, 3>;
using Dbl3 = std::array<double, 3>;

// One flat box array (6 floats per anchor) per level. feature_map_scales may
// be empty (then 2^l). All triples are (x, y, z).
std::vector<std::vector<float>> generate_anchors(const Int3& image_size, const std::vector<Int3>& feature_map_sizes,
                                                 const std::vector<Dbl3>& base_anchor_shapes,
                                                 const std::vector<double>& feature_map_scales);

}  // namespace ds::det
