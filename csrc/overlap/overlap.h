// Batched patch correspondences and overlap between two views related by a homography.
// Semantics: DESIGN.md "patch_overlap semantics"; the definition is the numpy reference
// python/mimic_fast/geometry/reference.py.
#pragma once
#include <cstdint>

namespace mimic_fast {

struct OverlapParams {
  int32_t height1, width1;  // view 1 (pixels)
  int32_t height2, width2;  // view 2 (pixels)
  int32_t patch;            // patch side p; views hold (h // p) x (w // p) patches
  int32_t samples;          // sample points per patch
  uint64_t seed;            // random sampling key; unused by the grid pattern
  bool grid;                // stratified grid pattern instead of random sampling
};

struct OverlapOutputs {
  float* overlap;            // [B]
  bool* valid;               // [B]
  int32_t* forward;          // [B, P1] view-2 patch matched to each view-1 patch, or -1
  int32_t* backward;         // [B, P2] view-1 patch matched to each view-2 patch, or -1
  int32_t* correspondences;  // [B, P1] the stored direction keyed by view-1 patch, or -1
  int32_t* counts;           // [B, 2] matches forward, backward
};

// H: [B, 3, 3] row-major, float (is_double=false) or double. Host pointers; OpenMP over pairs.
void patch_overlap_cpu(const void* H, bool is_double, int64_t batch, const OverlapParams& params,
                       const OverlapOutputs& out);

// Same contract with device pointers, enqueued on `stream` (a cudaStream_t; 0 = default).
// Throws std::runtime_error when built without CUDA or on a CUDA error.
void patch_overlap_cuda(const void* H, bool is_double, int64_t batch, const OverlapParams& params,
                        const OverlapOutputs& out, void* stream);

// Host pointers in and out; copies through the current CUDA device.
void patch_overlap_cuda_from_host(const void* H, bool is_double, int64_t batch,
                                  const OverlapParams& params, const OverlapOutputs& out);

int32_t cuda_device_count();  // 0 without a CUDA build or without a device

}  // namespace mimic_fast
