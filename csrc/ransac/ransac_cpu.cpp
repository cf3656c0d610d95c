// CPU RANSAC kernel: an OpenMP loop over pairs around the shared per-pair steps
// (csrc/common/ransac_steps.h, homography_fit.h). Iterations run one after another, as the
// definition does; the inlier count of each hypothesis is the vectorised hot loop.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/homography_fit.h"
#include "../common/ransac_steps.h"
#include "ransac.h"

namespace mimic_fast {
namespace {

// Matches of one pair as four contiguous double arrays, for the counting loop.
struct SoA {
  std::vector<double> sx, sy, dx, dy;
  explicit SoA(int64_t n) : sx(n), sy(n), dx(n), dy(n) {}
};

// Inliers of H among n matches. Cloned for AVX2 (picked at load time): the loop vectorises,
// and with contraction off every clone gives the same decisions.
__attribute__((target_clones("avx2", "default"))) int32_t count_inliers(
    const double* __restrict Hp, const double* __restrict sx, const double* __restrict sy,
    const double* __restrict dx, const double* __restrict dy, int32_t n, double t2) {
  double H[9];
  for (int i = 0; i < 9; ++i) H[i] = Hp[i];
  int32_t count = 0;
  for (int32_t i = 0; i < n; ++i) count += reprojection_inlier(H, sx[i], sy[i], dx[i], dy[i], t2);
  return count;
}

template <typename Scalar>
void run_pair(const Scalar* src, const Scalar* dst, int32_t n, int64_t N, const RansacParams& prm,
              SoA& soa, double* H, bool* inliers, int32_t* num_inliers, bool* valid) {
  const MatchView<Scalar> pts{src, dst};
  const double t2 = prm.threshold * prm.threshold;
  std::fill(inliers, inliers + N, false);
  std::fill(H, H + 9, 0.0);
  *num_inliers = 0;
  *valid = false;
  if (n < 4 || !matches_finite(pts, n)) return;
  for (int32_t i = 0; i < n; ++i) {
    soa.sx[i] = static_cast<double>(src[2 * i]);
    soa.sy[i] = static_cast<double>(src[2 * i + 1]);
    soa.dx[i] = static_cast<double>(dst[2 * i]);
    soa.dy[i] = static_cast<double>(dst[2 * i + 1]);
  }
  const auto count = [&](const double* h) {
    return count_inliers(h, soa.sx.data(), soa.sy.data(), soa.dx.data(), soa.dy.data(), n, t2);
  };
  RansacState st{-1, prm.max_iters};
  double best[9];
  for (int32_t it = 0; it < st.niters; ++it) {
    double h[9];
    const int32_t c = make_hypothesis(pts, n, prm.seed, it, h) ? count(h) : -1;
    if (ransac_accept(&st, c, n, prm.confidence)) std::copy(h, h + 9, best);
  }
  if (st.best < 4) return;
  double refit[9];
  const double* chosen = best;
  int32_t chosen_count = st.best;
  if (refit_homography(pts, n, t2, best, refit)) {
    const int32_t c = count(refit);
    if (c >= 4) {
      chosen = refit;
      chosen_count = c;
    }
  }
  std::copy(chosen, chosen + 9, H);
  for (int32_t i = 0; i < n; ++i) {
    inliers[i] = reprojection_inlier(chosen, soa.sx[i], soa.sy[i], soa.dx[i], soa.dy[i], t2);
  }
  *num_inliers = chosen_count;
  *valid = true;
}

template <typename Scalar>
void run_batch(const Scalar* src, const Scalar* dst, const int64_t* counts, int64_t batch,
               int64_t N, const RansacParams& prm, const RansacOutputs& out) {
  // No more threads than pairs: a lone pair should not wait on idle threads' barrier.
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), batch));
#pragma omp parallel num_threads(threads)
  {
    SoA soa(N);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < batch; ++b) {
      const int32_t n = static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(counts[b], 0), N));
      run_pair(src + b * N * 2, dst + b * N * 2, n, N, prm, soa, out.H + b * 9,
               out.inliers + b * N, out.num_inliers + b, out.valid + b);
    }
  }
}

}  // namespace

void find_homographies_cpu(const void* src, const void* dst, bool is_double,
                           const int64_t* counts, int64_t batch, int64_t n, const RansacParams& p,
                           const RansacOutputs& out) {
  if (batch <= 0) return;
  if (is_double) {
    run_batch(static_cast<const double*>(src), static_cast<const double*>(dst), counts, batch, n,
              p, out);
  } else {
    run_batch(static_cast<const float*>(src), static_cast<const float*>(dst), counts, batch, n,
              p, out);
  }
}

}  // namespace mimic_fast
