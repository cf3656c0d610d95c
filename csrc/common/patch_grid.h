// How patches tile a view, where a sample sits, and how a pair's two directions combine.
#pragma once
#include <cstdint>

#include "counter_rng.h"
#include "hd.h"

namespace mimic_fast {

// Patches tile the top-left ncols*patch x nrows*patch pixels; index = row * ncols + col.
struct PatchGrid {
  int32_t nrows;
  int32_t ncols;
  MF_HD int32_t count() const { return nrows * ncols; }
};

MF_HD PatchGrid make_grid(int32_t height, int32_t width, int32_t patch) {
  return PatchGrid{height / patch, width / patch};
}

// Pixel offset (dy * patch + dx) of one sample: random (counter-based) or grid.
struct SamplePattern {
  uint64_t seed;
  int32_t patch;
  int32_t samples;
  int32_t grid_x;  // > 0 selects the stratified grid pattern; 0 selects random sampling
  int32_t grid_y;

  // Per-(direction, patch) key, computed once per source patch.
  MF_HD uint64_t key(int32_t direction, int32_t patch_index) const {
    return grid_x > 0 ? 0 : patch_key(seed, direction, patch_index);
  }
  MF_HD int32_t offset(uint64_t key, int32_t sample) const {
    if (grid_x > 0) return grid_offset(sample, grid_x, grid_y, patch);
    return random_offset(key, sample, patch * patch);
  }
};

MF_HD SamplePattern make_pattern(uint64_t seed, int32_t patch, int32_t samples, bool grid) {
  const int32_t gx = grid ? grid_columns(samples) : 0;
  const int32_t gy = grid ? (samples + gx - 1) / gx : 0;
  return SamplePattern{seed, patch, samples, gx, gy};
}

// Integer pixel coordinates of a sample at `offset` inside source patch `patch_index`.
MF_HD void sample_pixel(const PatchGrid& grid, int32_t patch, int32_t patch_index, int32_t offset,
                        double* x, double* y) {
  *x = static_cast<double>((patch_index % grid.ncols) * patch + offset % patch);
  *y = static_cast<double>((patch_index / grid.ncols) * patch + offset / patch);
}

// overlap = min(count_fwd / P1, count_bwd / P2), rounded once to float32.
MF_HD float overlap_score(int32_t count_fwd, int32_t count_bwd, int32_t p1, int32_t p2) {
  const double a = static_cast<double>(count_fwd) / static_cast<double>(p1);
  const double b = static_cast<double>(count_bwd) / static_cast<double>(p2);
  return static_cast<float>(a < b ? a : b);
}

// The stored correspondences come from the direction with fewer matches; a tie stores the
// backward one (inverted to view-1 -> view-2).
MF_HD bool store_forward(int32_t count_fwd, int32_t count_bwd) { return count_fwd < count_bwd; }

}  // namespace mimic_fast
