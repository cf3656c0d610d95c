// Homography helpers shared by the CPU and CUDA patch-overlap kernels.
// All arithmetic is double precision with no fused multiply-add (the build turns contraction
// off on both compilers), so host, device and the numpy reference agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "hd.h"

namespace mimic_fast {

#if !defined(__CUDACC__)
using std::fabs;
using std::floor;
using std::fmax;
using std::frexp;
using std::ldexp;
using std::isfinite;
#endif

// Singular when |det(H / s)| falls below this, s = the power of two just above max|h_ij|.
constexpr double kSingularDet = 1e-12;

// Writes inv(H) (row-major, 9 values) and returns true, or returns false when H has a
// non-finite entry, is zero or is numerically singular.
MF_HD bool invert_homography(const double* H, double* inv) {
  double scale = 0.0;
  for (int i = 0; i < 9; ++i) {
    if (!isfinite(H[i])) return false;
    scale = fmax(scale, fabs(H[i]));
  }
  if (!(scale > 0.0)) return false;
  // A power-of-two scale keeps the normalisation exact, so "nice" homographies (integer
  // zooms and shifts) invert exactly and samples on patch borders stay on the right side.
  int exponent = 0;
  frexp(scale, &exponent);
  scale = ldexp(1.0, exponent);
  double a[9];
  for (int i = 0; i < 9; ++i) a[i] = H[i] / scale;
  const double c00 = a[4] * a[8] - a[5] * a[7];
  const double c01 = a[5] * a[6] - a[3] * a[8];
  const double c02 = a[3] * a[7] - a[4] * a[6];
  const double det = a[0] * c00 + a[1] * c01 + a[2] * c02;
  if (!(fabs(det) >= kSingularDet)) return false;
  // inv(H) = adj(a) / (det * scale); transposed cofactors.
  const double d = det * scale;
  inv[0] = c00 / d;
  inv[1] = (a[2] * a[7] - a[1] * a[8]) / d;
  inv[2] = (a[1] * a[5] - a[2] * a[4]) / d;
  inv[3] = c01 / d;
  inv[4] = (a[0] * a[8] - a[2] * a[6]) / d;
  inv[5] = (a[2] * a[3] - a[0] * a[5]) / d;
  inv[6] = c02 / d;
  inv[7] = (a[1] * a[6] - a[0] * a[7]) / d;
  inv[8] = (a[0] * a[4] - a[1] * a[3]) / d;
  for (int i = 0; i < 9; ++i) {
    if (!isfinite(inv[i])) return false;
  }
  return true;
}

// floor(t / patch) for 0 <= t < 2^31, exact, as a double. The product with the rounded
// reciprocal can miss the true floor by one either way; the exact integer products fix that.
// (A division would be exact too, but costs far more, on the GPU most of all.)
MF_HD double patch_floor(double t, double patch, double inv_patch) {
  double q = floor(t * inv_patch);
  q += ((q + 1.0) * patch <= t) ? 1.0 : 0.0;
  q -= (q * patch > t) ? 1.0 : 0.0;
  return q;
}

// Label of pixel (x, y) of the source view under H: the target patch index
// (row * ncols + col), or -1 ("out") when w <= 0, the point is not finite, or it lands
// outside the ncols*patch x nrows*patch tiled area of the target view.
// Branch-free (selects, not jumps) so that the CPU kernel's loop over samples vectorises.
MF_HD int32_t project_label(const double* H, double x, double y, int32_t ncols, int32_t nrows,
                            int32_t patch) {
  const double X = H[0] * x + H[1] * y + H[2];
  const double Y = H[3] * x + H[4] * y + H[5];
  const double W = H[6] * x + H[7] * y + H[8];
  const double u = X / W;
  const double v = Y / W;
  // NaN fails every comparison and lands "out".
  const bool inside = (W > 0.0) & (u >= 0.0) & (v >= 0.0) &
                      (u < static_cast<double>(ncols * patch)) &
                      (v < static_cast<double>(nrows * patch));
  const double p = static_cast<double>(patch);
  const double inv_p = 1.0 / p;
  const double col = patch_floor(inside ? u : 0.0, p, inv_p);
  const double row = patch_floor(inside ? v : 0.0, p, inv_p);
  const double label = inside ? row * static_cast<double>(ncols) + col : -1.0;
  return static_cast<int32_t>(label);
}

}  // namespace mimic_fast
