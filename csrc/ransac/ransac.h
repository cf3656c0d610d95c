// Batched RANSAC homographies: B pairs of padded matches in one call.
// Semantics: the numpy reference python/mimic_fast/geometry/reference_ransac.py (the
// definition); per-element math in csrc/common/homography_fit.h and ransac_steps.h.
#pragma once
#include <cstdint>

namespace mimic_fast {

struct RansacParams {
  double threshold;   // reprojection error threshold (pixels), > 0
  int32_t max_iters;  // iterations at most, >= 1
  double confidence;  // 0 < confidence < 1: drives the adaptive iteration count
  uint64_t seed;      // sampling key; a pair's samples depend on (seed, iteration) only
};

struct RansacOutputs {
  double* H;             // [B, 3, 3] src -> dst, H[2,2] = 1; zeros when not valid
  bool* inliers;         // [B, N] (padding false)
  int32_t* num_inliers;  // [B]
  bool* valid;           // [B]
};

// src, dst: [B, N, 2] row-major, float (is_double=false) or double; counts: [B] int64 valid
// matches per pair (clamped to [0, N]). Host pointers; OpenMP over pairs.
void find_homographies_cpu(const void* src, const void* dst, bool is_double,
                           const int64_t* counts, int64_t batch, int64_t n, const RansacParams& p,
                           const RansacOutputs& out);

// Same contract with device pointers, enqueued on `stream` (a cudaStream_t; 0 = default).
// Throws std::runtime_error when built without CUDA or on a CUDA error.
void find_homographies_cuda(const void* src, const void* dst, bool is_double,
                            const int64_t* counts, int64_t batch, int64_t n,
                            const RansacParams& p, const RansacOutputs& out, void* stream);

// Host pointers in and out; copies through the current CUDA device.
void find_homographies_cuda_from_host(const void* src, const void* dst, bool is_double,
                                      const int64_t* counts, int64_t batch, int64_t n,
                                      const RansacParams& p, const RansacOutputs& out);

}  // namespace mimic_fast
