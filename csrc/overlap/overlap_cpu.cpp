// CPU patch-overlap kernel: an OpenMP loop over pairs around the shared per-element math.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/homography.h"
#include "../common/patch_grid.h"
#include "../common/vote.h"
#include "overlap.h"

namespace mimic_fast {
namespace {

// Sample pixel coordinates of every source patch of one direction, [P_src * samples] each.
// They depend on neither H nor the pair, so one table serves the whole batch.
struct SampleTable {
  std::vector<double> x;
  std::vector<double> y;
};

SampleTable make_sample_table(const SamplePattern& pattern, const PatchGrid& src,
                              int32_t direction) {
  const int32_t S = pattern.samples;
  SampleTable t;
  t.x.resize(static_cast<size_t>(src.count()) * S);
  t.y.resize(t.x.size());
  for (int32_t s = 0; s < src.count(); ++s) {
    const uint64_t key = pattern.key(direction, s);
    for (int32_t i = 0; i < S; ++i) {
      const size_t k = static_cast<size_t>(s) * S + i;
      sample_pixel(src, pattern.patch, s, pattern.offset(key, i), &t.x[k], &t.y[k]);
    }
  }
  return t;
}

// Labels of n samples. Cloned for AVX2 (picked at load time): the loop vectorises, and with
// contraction off the results are the same bits as the baseline clone's.
__attribute__((target_clones("avx2", "default"))) void label_samples(
    const double* __restrict H, const double* __restrict xs, const double* __restrict ys,
    int32_t n, const PatchGrid tgt, int32_t patch, int32_t* __restrict labels) {
  for (int32_t i = 0; i < n; ++i) {
    labels[i] = project_label(H, xs[i], ys[i], tgt.ncols, tgt.nrows, patch);
  }
}

struct BufferLabels {
  const int32_t* labels;
  int32_t operator()(int32_t i) const { return labels[i]; }
};

// One direction of one pair: vote per source patch, then raster-order de-duplication.
// Returns the number of matched source patches; matches[s] = target patch or -1.
int32_t match_direction(const double* H, const PatchGrid& src, const PatchGrid& tgt,
                        int32_t patch, int32_t samples, const SampleTable& table,
                        int32_t* labels, uint8_t* claimed, int32_t* matches) {
  std::fill(claimed, claimed + tgt.count(), uint8_t{0});
  int32_t count = 0;
  for (int32_t s = 0; s < src.count(); ++s) {
    const double* xs = table.x.data() + static_cast<size_t>(s) * samples;
    const double* ys = table.y.data() + static_cast<size_t>(s) * samples;
    label_samples(H, xs, ys, samples, tgt, patch, labels);
    // A patch landing whole in one target patch (or wholly out) needs no vote.
    int32_t differing = 0;
    for (int32_t i = 1; i < samples; ++i) differing += labels[i] != labels[0];
    const int32_t t = differing == 0 ? labels[0] : vote_patch(BufferLabels{labels}, samples);
    if (t >= 0 && !claimed[t]) {
      claimed[t] = 1;
      matches[s] = t;
      ++count;
    } else {
      matches[s] = -1;
    }
  }
  return count;
}

template <typename Scalar>
void run_batch(const Scalar* H, int64_t batch, const OverlapParams& prm,
               const OverlapOutputs& out) {
  const PatchGrid g1 = make_grid(prm.height1, prm.width1, prm.patch);
  const PatchGrid g2 = make_grid(prm.height2, prm.width2, prm.patch);
  const int32_t P1 = g1.count();
  const int32_t P2 = g2.count();
  const SamplePattern pattern = make_pattern(prm.seed, prm.patch, prm.samples, prm.grid);
  const SampleTable fwd_table = make_sample_table(pattern, g1, 0);
  const SampleTable bwd_table = make_sample_table(pattern, g2, 1);

  // No more threads than pairs: a lone pair should not wait on idle threads' barrier.
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), batch));
#pragma omp parallel num_threads(threads)
  {
    std::vector<int32_t> labels(prm.samples);
    std::vector<uint8_t> claimed(std::max(P1, P2));
#pragma omp for schedule(dynamic, 4)
    for (int64_t b = 0; b < batch; ++b) {
      double h[9];
      double inv[9];
      for (int i = 0; i < 9; ++i) h[i] = static_cast<double>(H[b * 9 + i]);
      int32_t* fwd = out.forward + b * P1;
      int32_t* bwd = out.backward + b * P2;
      int32_t* corr = out.correspondences + b * P1;
      if (!invert_homography(h, inv)) {
        out.overlap[b] = 0.0f;
        out.valid[b] = false;
        std::fill(fwd, fwd + P1, -1);
        std::fill(bwd, bwd + P2, -1);
        std::fill(corr, corr + P1, -1);
        out.counts[2 * b] = 0;
        out.counts[2 * b + 1] = 0;
        continue;
      }
      const int32_t cf = match_direction(h, g1, g2, prm.patch, prm.samples, fwd_table,
                                         labels.data(), claimed.data(), fwd);
      const int32_t cb = match_direction(inv, g2, g1, prm.patch, prm.samples, bwd_table,
                                         labels.data(), claimed.data(), bwd);
      out.counts[2 * b] = cf;
      out.counts[2 * b + 1] = cb;
      out.overlap[b] = overlap_score(cf, cb, P1, P2);
      out.valid[b] = true;
      if (store_forward(cf, cb)) {
        std::copy(fwd, fwd + P1, corr);
      } else {
        std::fill(corr, corr + P1, -1);
        for (int32_t s = 0; s < P2; ++s) {
          if (bwd[s] >= 0) corr[bwd[s]] = s;
        }
      }
    }
  }
}

}  // namespace

void patch_overlap_cpu(const void* H, bool is_double, int64_t batch, const OverlapParams& params,
                       const OverlapOutputs& out) {
  if (batch <= 0) return;
  if (is_double) {
    run_batch(static_cast<const double*>(H), batch, params, out);
  } else {
    run_batch(static_cast<const float*>(H), batch, params, out);
  }
}

}  // namespace mimic_fast
