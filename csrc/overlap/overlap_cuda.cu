// CUDA patch-overlap kernel: one block per pair (grid-stride), one thread per source patch,
// around the same per-element math as the CPU kernel (csrc/common).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../common/cuda_host.h"
#include "../common/homography.h"
#include "../common/patch_grid.h"
#include "../common/vote.h"
#include "overlap.h"

namespace mimic_fast {
namespace {

using cuda_host::check;
using cuda_host::copy_to_host;
using cuda_host::DeviceBuffer;
using cuda_host::resident_blocks;
using cuda_host::Stream;

constexpr int kMaxThreads = 256;

// Threads per block: the source patches of both views in as few rounds as possible, each
// round as even as possible (392 patches at 224x224: 2 rounds of 224 threads, not 256 + 136).
int block_threads(int32_t patches) {
  const int rounds = (patches + kMaxThreads - 1) / kMaxThreads;
  const int per_round = (patches + rounds - 1) / rounds;
  return std::max(32, (per_round + 31) / 32 * 32);
}

// Labels of one source patch's samples, recomputed on demand (vote_patch's slow path calls
// it again rather than storing them).
struct ProjectedLabels {
  double H[9];  // this direction's matrix, copied out of shared memory: one live matrix per
                // thread instead of both (76 rather than 108 registers)
  SamplePattern pattern;
  PatchGrid src;
  PatchGrid tgt;
  int32_t source_patch;
  uint64_t key;

  __device__ int32_t operator()(int32_t i) const {
    double x, y;
    sample_pixel(src, pattern.patch, source_patch, pattern.offset(key, i), &x, &y);
    return project_label(H, x, y, tgt.ncols, tgt.nrows, pattern.patch);
  }
};

template <typename Scalar>
__global__ void __launch_bounds__(kMaxThreads) overlap_kernel(
    const Scalar* __restrict__ H,  // [B, 3, 3]
    int64_t batch, SamplePattern pattern, PatchGrid g1, PatchGrid g2,
    float* __restrict__ overlap,        // [B]
    bool* __restrict__ valid,           // [B]
    int32_t* __restrict__ forward,      // [B, P1]
    int32_t* __restrict__ backward,     // [B, P2]
    int32_t* __restrict__ correspondences,  // [B, P1]
    int32_t* __restrict__ counts) {     // [B, 2]
  extern __shared__ int32_t smem[];
  const int32_t P1 = g1.count();
  const int32_t P2 = g2.count();
  const int32_t P = P1 + P2;
  int32_t* votes = smem;        // [P]: forward votes (view-1 patches), then backward votes
  int32_t* first = smem + P;    // [P]: lowest claimant of each view-2 patch, then of each view-1
  int32_t* corr = smem + 2 * P; // [P1]
  __shared__ double hs[18];  // H, then inv(H)
  __shared__ bool ok;
  __shared__ int32_t matched[2];

  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    if (threadIdx.x == 0) {
      for (int i = 0; i < 9; ++i) hs[i] = static_cast<double>(H[b * 9 + i]);
      ok = invert_homography(hs, hs + 9);
      matched[0] = 0;
      matched[1] = 0;
    }
    for (int32_t k = threadIdx.x; k < P; k += blockDim.x) first[k] = INT_MAX;
    __syncthreads();

    if (ok) {
      // Vote, and let each target patch remember its lowest (raster-first) claimant.
      for (int32_t k = threadIdx.x; k < P; k += blockDim.x) {
        const int32_t dir = k >= P1;
        const int32_t s = dir ? k - P1 : k;
        ProjectedLabels labels{{}, pattern, dir ? g2 : g1, dir ? g1 : g2, s, pattern.key(dir, s)};
        for (int i = 0; i < 9; ++i) labels.H[i] = hs[dir * 9 + i];
        const int32_t t = vote_patch(labels, pattern.samples);
        votes[k] = t;
        if (t >= 0) atomicMin(&first[(dir ? P2 : 0) + t], s);
      }
      __syncthreads();
      // De-duplication: only the first claimant keeps its target.
      for (int32_t k = threadIdx.x; k < P; k += blockDim.x) {
        const int32_t dir = k >= P1;
        const int32_t s = dir ? k - P1 : k;
        const int32_t t = votes[k];
        const int32_t m = (t >= 0 && first[(dir ? P2 : 0) + t] == s) ? t : -1;
        votes[k] = m;
        if (dir) {
          backward[b * P2 + s] = m;
        } else {
          forward[b * P1 + s] = m;
        }
        if (m >= 0) atomicAdd(&matched[dir], 1);
      }
      for (int32_t s = threadIdx.x; s < P1; s += blockDim.x) corr[s] = -1;
      __syncthreads();
      const int32_t cf = matched[0];
      const int32_t cb = matched[1];
      if (threadIdx.x == 0) {
        counts[2 * b] = cf;
        counts[2 * b + 1] = cb;
        overlap[b] = overlap_score(cf, cb, P1, P2);
        valid[b] = true;
      }
      if (store_forward(cf, cb)) {
        for (int32_t s = threadIdx.x; s < P1; s += blockDim.x) corr[s] = votes[s];
      } else {
        for (int32_t s = threadIdx.x; s < P2; s += blockDim.x) {
          if (votes[P1 + s] >= 0) corr[votes[P1 + s]] = s;
        }
      }
      __syncthreads();
      for (int32_t s = threadIdx.x; s < P1; s += blockDim.x) {
        correspondences[b * P1 + s] = corr[s];
      }
    } else {
      if (threadIdx.x == 0) {
        counts[2 * b] = 0;
        counts[2 * b + 1] = 0;
        overlap[b] = 0.0f;
        valid[b] = false;
      }
      for (int32_t s = threadIdx.x; s < P1; s += blockDim.x) {
        forward[b * P1 + s] = -1;
        correspondences[b * P1 + s] = -1;
      }
      for (int32_t s = threadIdx.x; s < P2; s += blockDim.x) backward[b * P2 + s] = -1;
    }
    __syncthreads();  // shared state is reused by the next pair
  }
}

template <typename Scalar>
void launch(const Scalar* H, int64_t batch, const OverlapParams& prm, const OverlapOutputs& out,
            cudaStream_t stream) {
  const PatchGrid g1 = make_grid(prm.height1, prm.width1, prm.patch);
  const PatchGrid g2 = make_grid(prm.height2, prm.width2, prm.patch);
  const SamplePattern pattern = make_pattern(prm.seed, prm.patch, prm.samples, prm.grid);
  const size_t smem = sizeof(int32_t) * (2 * static_cast<size_t>(g1.count() + g2.count()) +
                                         static_cast<size_t>(g1.count()));
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  int smem_max = 0;
  check(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute");
  cudaFuncAttributes attrs{};
  check(cudaFuncGetAttributes(&attrs, overlap_kernel<Scalar>), "cudaFuncGetAttributes");
  const size_t smem_limit = static_cast<size_t>(smem_max) - attrs.sharedSizeBytes;
  if (smem > smem_limit) {
    throw std::invalid_argument(
        "patch_overlap on CUDA: these views need " + std::to_string(smem) +
        " bytes of shared memory per pair (12 bytes per view-1 patch, 8 per view-2 patch), "
        "the device allows " + std::to_string(smem_limit) + "; use the CPU kernel for views "
        "this large");
  }
  if (smem > 48 * 1024) {
    check(cudaFuncSetAttribute(overlap_kernel<Scalar>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          "cudaFuncSetAttribute");
  }
  const int threads = block_threads(g1.count() + g2.count());
  const unsigned blocks = resident_blocks(overlap_kernel<Scalar>, threads, smem, batch);
  overlap_kernel<Scalar><<<blocks, threads, smem, stream>>>(
      H, batch, pattern, g1, g2, out.overlap, out.valid, out.forward, out.backward,
      out.correspondences, out.counts);
  check(cudaGetLastError(), "overlap_kernel launch");
}

}  // namespace

void patch_overlap_cuda(const void* H, bool is_double, int64_t batch, const OverlapParams& params,
                        const OverlapOutputs& out, void* stream) {
  if (batch <= 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (is_double) {
    launch(static_cast<const double*>(H), batch, params, out, s);
  } else {
    launch(static_cast<const float*>(H), batch, params, out, s);
  }
}

void patch_overlap_cuda_from_host(const void* H, bool is_double, int64_t batch,
                                  const OverlapParams& params, const OverlapOutputs& out) {
  if (batch <= 0) return;
  const size_t n = static_cast<size_t>(batch);
  const size_t p1 = static_cast<size_t>((params.height1 / params.patch) *
                                        (params.width1 / params.patch));
  const size_t p2 = static_cast<size_t>((params.height2 / params.patch) *
                                        (params.width2 / params.patch));
  const size_t h_bytes = n * 9 * (is_double ? sizeof(double) : sizeof(float));
  DeviceBuffer dH(h_bytes), dOverlap(n * sizeof(float)), dValid(n * sizeof(bool)),
      dFwd(n * p1 * sizeof(int32_t)), dBwd(n * p2 * sizeof(int32_t)),
      dCorr(n * p1 * sizeof(int32_t)), dCounts(n * 2 * sizeof(int32_t));
  Stream stream;
  check(cudaMemcpyAsync(dH.ptr, H, h_bytes, cudaMemcpyHostToDevice, stream.handle),
        "cudaMemcpyAsync H");
  const OverlapOutputs dev{static_cast<float*>(dOverlap.ptr), static_cast<bool*>(dValid.ptr),
                           static_cast<int32_t*>(dFwd.ptr), static_cast<int32_t*>(dBwd.ptr),
                           static_cast<int32_t*>(dCorr.ptr), static_cast<int32_t*>(dCounts.ptr)};
  patch_overlap_cuda(dH.ptr, is_double, batch, params, dev, stream.handle);
  copy_to_host(out.overlap, dev.overlap, n * sizeof(float), stream.handle);
  copy_to_host(out.valid, dev.valid, n * sizeof(bool), stream.handle);
  copy_to_host(out.forward, dev.forward, n * p1 * sizeof(int32_t), stream.handle);
  copy_to_host(out.backward, dev.backward, n * p2 * sizeof(int32_t), stream.handle);
  copy_to_host(out.correspondences, dev.correspondences, n * p1 * sizeof(int32_t),
               stream.handle);
  copy_to_host(out.counts, dev.counts, n * 2 * sizeof(int32_t), stream.handle);
  check(cudaStreamSynchronize(stream.handle), "patch_overlap kernel");
}

int32_t cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace mimic_fast
