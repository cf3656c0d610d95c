// CUDA RANSAC kernel: one block per pair (grid-stride), one warp per hypothesis, lanes over
// the matches, around the same per-pair steps as the CPU kernel (csrc/common).
//
// Each round, the block's kWarps warps evaluate iterations base .. base + kWarps - 1 (those
// below the current iteration count); thread 0 then applies their inlier counts in iteration
// order with ransac_accept, exactly as the sequential definition does, so the result is the
// CPU kernel's bit for bit. Iterations past the final count are wasted work, at most
// kWarps - 1 per pair. The refit runs on one thread (its sums are sequential, in the order the
// CPU and the reference use).
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/cuda_host.h"
#include "../common/homography_fit.h"
#include "../common/ransac_steps.h"
#include "ransac.h"

namespace mimic_fast {
namespace {

using cuda_host::check;
using cuda_host::copy_to_host;
using cuda_host::DeviceBuffer;
using cuda_host::resident_blocks;
using cuda_host::Stream;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

template <typename Scalar>
__global__ void __launch_bounds__(kThreads) ransac_kernel(
    const Scalar* __restrict__ src,      // [B, N, 2]
    const Scalar* __restrict__ dst,      // [B, N, 2]
    const int64_t* __restrict__ counts,  // [B]
    int64_t batch, int64_t N, RansacParams prm,
    double* __restrict__ H,              // [B, 3, 3]
    bool* __restrict__ inliers,          // [B, N]
    int32_t* __restrict__ num_inliers,   // [B]
    bool* __restrict__ valid) {          // [B]
  __shared__ double hyp[kWarps][9];
  __shared__ int32_t hyp_count[kWarps];
  __shared__ double best[9];
  __shared__ double chosen[9];
  __shared__ RansacState st;
  __shared__ bool refit_ok;
  __shared__ int32_t refit_count;
  __shared__ int32_t final_count;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const double t2 = prm.threshold * prm.threshold;

  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    const int32_t n = static_cast<int32_t>(min(max(counts[b], int64_t{0}), N));
    const MatchView<Scalar> pts{src + b * N * 2, dst + b * N * 2};
    bool finite = true;
    for (int32_t i = threadIdx.x; i < n; i += kThreads) {
      const Pt s = pts.s(i);
      const Pt d = pts.d(i);
      finite = finite && isfinite(s.x) && isfinite(s.y) && isfinite(d.x) && isfinite(d.y);
    }
    const bool usable = __syncthreads_and(finite) && n >= 4;
    if (threadIdx.x == 0) {
      st = RansacState{-1, prm.max_iters};
      refit_count = 0;
    }
    __syncthreads();
    if (usable) {
      for (int32_t base = 0; base < st.niters; base += kWarps) {
        const int32_t it = base + warp;
        int32_t c = -1;
        double h[9];
        if (it < st.niters && make_hypothesis(pts, n, prm.seed, it, h)) {  // warp-uniform
          int32_t local = 0;
          for (int32_t i = lane; i < n; i += 32) {
            const Pt s = pts.s(i);
            const Pt d = pts.d(i);
            local += reprojection_inlier(h, s.x, s.y, d.x, d.y, t2) ? 1 : 0;
          }
          c = __reduce_add_sync(0xffffffffu, local);
          if (lane == 0) {
            for (int k = 0; k < 9; ++k) hyp[warp][k] = h[k];
          }
        }
        if (lane == 0) hyp_count[warp] = c;
        __syncthreads();
        if (threadIdx.x == 0) {
          for (int w = 0; w < kWarps && base + w < st.niters; ++w) {
            if (ransac_accept(&st, hyp_count[w], n, prm.confidence)) {
              for (int k = 0; k < 9; ++k) best[k] = hyp[w][k];
            }
          }
        }
        __syncthreads();
      }
      if (threadIdx.x == 0) {
        refit_ok = st.best >= 4 && refit_homography(pts, n, t2, best, chosen);
      }
      __syncthreads();
      if (refit_ok) {
        int32_t local = 0;
        for (int32_t i = threadIdx.x; i < n; i += kThreads) {
          const Pt s = pts.s(i);
          const Pt d = pts.d(i);
          local += reprojection_inlier(chosen, s.x, s.y, d.x, d.y, t2) ? 1 : 0;
        }
        atomicAdd(&refit_count, local);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        if (refit_ok && refit_count >= 4) {
          final_count = refit_count;
        } else {
          final_count = st.best;
          for (int k = 0; k < 9; ++k) chosen[k] = best[k];
        }
      }
      __syncthreads();
    }
    const bool ok = usable && st.best >= 4;
    for (int64_t i = threadIdx.x; i < N; i += kThreads) {
      bool in = false;
      if (ok && i < n) {
        const Pt s = pts.s(static_cast<int32_t>(i));
        const Pt d = pts.d(static_cast<int32_t>(i));
        in = reprojection_inlier(chosen, s.x, s.y, d.x, d.y, t2);
      }
      inliers[b * N + i] = in;
    }
    if (threadIdx.x < 9) H[b * 9 + threadIdx.x] = ok ? chosen[threadIdx.x] : 0.0;
    if (threadIdx.x == 0) {
      num_inliers[b] = ok ? final_count : 0;
      valid[b] = ok;
    }
    __syncthreads();  // shared state is reused by the next pair
  }
}

template <typename Scalar>
void launch(const Scalar* src, const Scalar* dst, const int64_t* counts, int64_t batch,
            int64_t n, const RansacParams& prm, const RansacOutputs& out, cudaStream_t stream) {
  const unsigned blocks = resident_blocks(ransac_kernel<Scalar>, kThreads, 0, batch);
  ransac_kernel<Scalar><<<blocks, kThreads, 0, stream>>>(
      src, dst, counts, batch, n, prm, out.H, out.inliers, out.num_inliers, out.valid);
  check(cudaGetLastError(), "ransac_kernel launch");
}

}  // namespace

void find_homographies_cuda(const void* src, const void* dst, bool is_double,
                            const int64_t* counts, int64_t batch, int64_t n,
                            const RansacParams& p, const RansacOutputs& out, void* stream) {
  if (batch <= 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (is_double) {
    launch(static_cast<const double*>(src), static_cast<const double*>(dst), counts, batch, n, p,
           out, s);
  } else {
    launch(static_cast<const float*>(src), static_cast<const float*>(dst), counts, batch, n, p,
           out, s);
  }
}

void find_homographies_cuda_from_host(const void* src, const void* dst, bool is_double,
                                      const int64_t* counts, int64_t batch, int64_t n,
                                      const RansacParams& p, const RansacOutputs& out) {
  if (batch <= 0) return;
  const size_t B = static_cast<size_t>(batch);
  const size_t N = static_cast<size_t>(n);
  const size_t pts_bytes = B * N * 2 * (is_double ? sizeof(double) : sizeof(float));
  DeviceBuffer dSrc(pts_bytes), dDst(pts_bytes), dCounts(B * sizeof(int64_t)),
      dH(B * 9 * sizeof(double)), dIn(B * N * sizeof(bool)), dNum(B * sizeof(int32_t)),
      dValid(B * sizeof(bool));
  Stream stream;
  check(cudaMemcpyAsync(dSrc.ptr, src, pts_bytes, cudaMemcpyHostToDevice, stream.handle),
        "cudaMemcpyAsync src");
  check(cudaMemcpyAsync(dDst.ptr, dst, pts_bytes, cudaMemcpyHostToDevice, stream.handle),
        "cudaMemcpyAsync dst");
  check(cudaMemcpyAsync(dCounts.ptr, counts, B * sizeof(int64_t), cudaMemcpyHostToDevice,
                        stream.handle),
        "cudaMemcpyAsync counts");
  const RansacOutputs dev{static_cast<double*>(dH.ptr), static_cast<bool*>(dIn.ptr),
                          static_cast<int32_t*>(dNum.ptr), static_cast<bool*>(dValid.ptr)};
  find_homographies_cuda(dSrc.ptr, dDst.ptr, is_double, static_cast<const int64_t*>(dCounts.ptr),
                         batch, n, p, dev, stream.handle);
  copy_to_host(out.H, dev.H, B * 9 * sizeof(double), stream.handle);
  copy_to_host(out.inliers, dev.inliers, B * N * sizeof(bool), stream.handle);
  copy_to_host(out.num_inliers, dev.num_inliers, B * sizeof(int32_t), stream.handle);
  copy_to_host(out.valid, dev.valid, B * sizeof(bool), stream.handle);
  check(cudaStreamSynchronize(stream.handle), "find_homographies kernel");
}

}  // namespace mimic_fast
