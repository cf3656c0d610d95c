// The steps of RANSAC for one pair, shared by the CPU and CUDA kernels: counter-based
// minimal samples, hypotheses, and OpenCV's adaptive iteration count.
//
// The definition (python/mimic_fast/geometry/reference_ransac.py) runs iterations one after
// another: iteration `it` (while it < niters) draws a minimal sample, solves it and counts its
// inliers; a count above max(best, 3) becomes the best model and lowers niters. A hypothesis
// depends on (seed, iteration, n) only, so the CUDA kernel evaluates several iterations at
// once and then applies them in order with ransac_accept: the same result, bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "counter_rng.h"
#include "homography_fit.h"
#include "hd.h"

namespace mimic_fast {

#if !defined(__CUDACC__)
using std::log;
using std::rint;
#endif

constexpr int32_t kSampleAttempts = 32;  // minimal samples tried per iteration
constexpr int32_t kSampleDraws = 64;     // index draws per attempt to find 4 distinct ones
constexpr double kDblMin = 2.2250738585072014e-308;  // DBL_MIN

// Key of one (seed, iteration, attempt). The pair enters through its match count only, never
// through its position in the batch.
MF_HD uint64_t sample_key(uint64_t seed, int32_t iteration, int32_t attempt) {
  uint64_t k = mix64(seed ^ 0x3c6ef372fe94f82bULL);
  k = mix64(k ^ (static_cast<uint64_t>(iteration) + 1ULL) * 0x9e3779b97f4a7c15ULL);
  return mix64(k ^ (static_cast<uint64_t>(attempt) + 1ULL) * 0xd1b54a32d192ed03ULL);
}

// Uniform index in [0, n) for one draw (multiply-shift, no modulo).
MF_HD int32_t sample_index(uint64_t key, int32_t draw, int32_t n) {
  const uint64_t h = mix64(key ^ (static_cast<uint64_t>(draw) + 1ULL) * 0x8cb92ba72f3d8dd7ULL);
  return static_cast<int32_t>(((h >> 32) * static_cast<uint64_t>(n)) >> 32);
}

// Four distinct indices of [0, n): successive draws, repeats skipped. False when
// kSampleDraws draws did not give four.
MF_HD bool draw_sample(uint64_t key, int32_t n, int32_t* idx) {
  int32_t got = 0;
  for (int32_t draw = 0; draw < kSampleDraws && got < 4; ++draw) {
    const int32_t i = sample_index(key, draw, n);
    bool fresh = true;
    for (int32_t j = 0; j < got; ++j) fresh = fresh && (idx[j] != i);
    if (fresh) idx[got++] = i;
  }
  return got == 4;
}

// The hypothesis of one iteration: the first of kSampleAttempts minimal samples that passes
// minimal_sample_ok and solves to a finite H. False when none does (the iteration has no
// model, as when OpenCV's subset search fails).
template <class Points>
MF_HD bool make_hypothesis(const Points& pts, int32_t n, uint64_t seed, int32_t iteration,
                           double* H) {
  for (int32_t attempt = 0; attempt < kSampleAttempts; ++attempt) {
    int32_t idx[4];
    if (!draw_sample(sample_key(seed, iteration, attempt), n, idx)) continue;
    Pt s[4], d[4];
    for (int32_t k = 0; k < 4; ++k) {
      s[k] = pts.s(idx[k]);
      d[k] = pts.d(idx[k]);
    }
    if (minimal_sample_ok(s, d) && solve_homography4(s, d, H)) return true;
  }
  return false;
}

// OpenCV's RANSACUpdateNumIters for 4-point models: the iterations needed to draw an
// all-inlier sample with probability `confidence` when `good` of n matches are inliers,
// never more than the current count. (1 - ep)^4 is two squarings.
MF_HD int32_t update_iterations(double confidence, int32_t n, int32_t good, int32_t niters) {
  const double ep = static_cast<double>(n - good) / static_cast<double>(n);
  const double w = 1.0 - ep;
  const double w2 = w * w;
  double num = 1.0 - confidence;
  if (!(num > kDblMin)) num = kDblMin;
  double denom = 1.0 - w2 * w2;
  if (denom < kDblMin) return 0;
  num = log(num);
  denom = log(denom);
  if (denom >= 0.0 || -num >= static_cast<double>(niters) * -denom) return niters;
  return static_cast<int32_t>(rint(num / denom));
}

struct RansacState {
  int32_t best;    // inliers of the best model so far; -1 before any
  int32_t niters;  // iterations to run (lowered as better models come)
};

// Applies one iteration's inlier count (-1: no model) in order. True when it is the new best.
MF_HD bool ransac_accept(RansacState* st, int32_t count, int32_t n, double confidence) {
  const int32_t floor = st->best > 3 ? st->best : 3;  // OpenCV: > max(best, modelPoints - 1)
  if (count <= floor) return false;
  st->best = count;
  st->niters = update_iterations(confidence, n, count, st->niters);
  return true;
}

// True when every one of the n matches has finite coordinates.
template <class Points>
MF_HD bool matches_finite(const Points& pts, int32_t n) {
  bool ok = true;
  for (int32_t i = 0; i < n; ++i) {
    const Pt s = pts.s(i);
    const Pt d = pts.d(i);
    ok = ok && isfinite(s.x) && isfinite(s.y) && isfinite(d.x) && isfinite(d.y);
  }
  return ok;
}

}  // namespace mimic_fast
