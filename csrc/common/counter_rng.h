// Counter-based sampling of pixel offsets inside a patch.
//
// A sample's offset is a pure function of (seed, direction, patch, sample): no state, no
// dependence on which pair, batch or thread computes it. Python's twin lives in
// python/mimic_fast/geometry/reference.py and must stay bit-identical.
#pragma once
#include <cstdint>

#include "hd.h"

namespace mimic_fast {

// splitmix64's finaliser: a bijective 64-bit mixer with full avalanche.
MF_HD uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}

// Key of one (seed, direction, patch); each sample then costs one mix64.
MF_HD uint64_t patch_key(uint64_t seed, int32_t direction, int32_t patch) {
  uint64_t k = mix64(seed ^ 0x6a09e667f3bcc909ULL);
  k = mix64(k ^ (static_cast<uint64_t>(direction) + 1ULL) * 0x9e3779b97f4a7c15ULL);
  return mix64(k ^ (static_cast<uint64_t>(patch) + 1ULL) * 0xd1b54a32d192ed03ULL);
}

// Uniform pixel index in [0, patch*patch) for one sample (multiply-shift, no modulo).
MF_HD int32_t random_offset(uint64_t key, int32_t sample, int32_t patch_area) {
  const uint64_t h = mix64(key ^ (static_cast<uint64_t>(sample) + 1ULL) * 0x8cb92ba72f3d8dd7ULL);
  return static_cast<int32_t>(((h >> 32) * static_cast<uint64_t>(patch_area)) >> 32);
}

// Deterministic stratified pattern: sample i sits at the centre of cell (i % gx, i / gx) of a
// gx x gy grid over the patch, gx = ceil(sqrt(samples)), gy = ceil(samples / gx), rounded down
// to whole pixels. Returns the pixel index dy * patch + dx.
MF_HD int32_t grid_offset(int32_t sample, int32_t gx, int32_t gy, int32_t patch) {
  const int32_t dx = ((2 * (sample % gx) + 1) * patch) / (2 * gx);
  const int32_t dy = ((2 * (sample / gx) + 1) * patch) / (2 * gy);
  return dy * patch + dx;
}

// gx of grid_offset: the smallest g with g * g >= samples.
MF_HD int32_t grid_columns(int32_t samples) {
  int32_t g = 1;
  while (g * g < samples) ++g;
  return g;
}

}  // namespace mimic_fast
