// Homography estimation from point matches, shared by the CPU and CUDA RANSAC kernels:
// degeneracy checks of a minimal sample, the 4-point solve, the inlier rule, the normalised
// DLT over many points and a Levenberg-Marquardt refinement of the reprojection error.
//
// All arithmetic is double precision in a fixed order with no fused multiply-add (the build
// turns contraction off on both compilers) and uses only +, -, *, /, sqrt and comparisons,
// which IEEE 754 rounds identically on host and device: CPU, CUDA and the numpy reference
// (python/mimic_fast/geometry/reference_ransac.py) agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "hd.h"

namespace mimic_fast {

#if !defined(__CUDACC__)
using std::fabs;
using std::isfinite;
using std::sqrt;
#endif

struct Pt {
  double x, y;
};

// Matches of one pair, [n, 2] interleaved (x, y), read as doubles (exact for float32).
template <typename Scalar>
struct MatchView {
  const Scalar* src;  // [n, 2]
  const Scalar* dst;  // [n, 2]
  MF_HD Pt s(int32_t i) const {
    return Pt{static_cast<double>(src[2 * i]), static_cast<double>(src[2 * i + 1])};
  }
  MF_HD Pt d(int32_t i) const {
    return Pt{static_cast<double>(dst[2 * i]), static_cast<double>(dst[2 * i + 1])};
  }
};

constexpr double kFltEpsilon = 1.1920928955078125e-07;  // FLT_EPSILON, OpenCV's tolerance

// Cross product (b - a) x (c - a) = det [[a 1], [b 1], [c 1]]; *collinear when its magnitude
// is within OpenCV's tolerance (haveCollinearPoints), which also catches repeated points.
MF_HD double triangle_cross(Pt a, Pt b, Pt c, bool* collinear) {
  const double dx1 = b.x - a.x;
  const double dy1 = b.y - a.y;
  const double dx2 = c.x - a.x;
  const double dy2 = c.y - a.y;
  const double cross = dx1 * dy2 - dy1 * dx2;
  *collinear = !(fabs(cross) > kFltEpsilon * (fabs(dx1) + fabs(dy1) + fabs(dx2) + fabs(dy2)));
  return cross;
}

// OpenCV's HomographyEstimatorCallback::checkSubset, on all four triangles of both point sets
// (OpenCV tests only those through the last point): no three points collinear, and every
// triangle keeps its orientation (all four flipped is a valid mirror, a mix is not).
MF_HD bool minimal_sample_ok(const Pt* s, const Pt* d) {
  constexpr int32_t kTri[4][3] = {{0, 1, 2}, {1, 2, 3}, {0, 2, 3}, {0, 1, 3}};
  int32_t negative = 0;
  for (int32_t t = 0; t < 4; ++t) {
    bool cs = false;
    bool cd = false;
    const double a = triangle_cross(s[kTri[t][0]], s[kTri[t][1]], s[kTri[t][2]], &cs);
    const double b = triangle_cross(d[kTri[t][0]], d[kTri[t][1]], d[kTri[t][2]], &cd);
    if (cs || cd) return false;
    negative += (a * b < 0.0) ? 1 : 0;
  }
  return negative == 0 || negative == 4;
}

// Adjugate of a row-major 3x3 matrix.
MF_HD void adjugate3(const double* m, double* a) {
  a[0] = m[4] * m[8] - m[5] * m[7];
  a[1] = m[2] * m[7] - m[1] * m[8];
  a[2] = m[1] * m[5] - m[2] * m[4];
  a[3] = m[5] * m[6] - m[3] * m[8];
  a[4] = m[0] * m[8] - m[2] * m[6];
  a[5] = m[2] * m[3] - m[0] * m[5];
  a[6] = m[3] * m[7] - m[4] * m[6];
  a[7] = m[1] * m[6] - m[0] * m[7];
  a[8] = m[0] * m[4] - m[1] * m[3];
}

MF_HD void matmul3(const double* a, const double* b, double* c) {
  for (int32_t r = 0; r < 3; ++r) {
    for (int32_t k = 0; k < 3; ++k) {
      c[r * 3 + k] = a[r * 3] * b[k] + a[r * 3 + 1] * b[3 + k] + a[r * 3 + 2] * b[6 + k];
    }
  }
}

// Divides H by H[8] in place (H[8] becomes exactly 1); false unless every entry is finite.
MF_HD bool normalise_h33(double* H) {
  const double w = H[8];
  for (int32_t i = 0; i < 9; ++i) H[i] = H[i] / w;
  bool ok = true;
  for (int32_t i = 0; i < 9; ++i) ok = ok && isfinite(H[i]);
  return ok;
}

// The matrix (up to scale) taking the projective basis e0, e1, e2, (1, 1, 1) to p0..p3:
// M diag(adj(M) p3) with M = [p0 p1 p2] in homogeneous columns.
MF_HD void basis_to_points(const Pt* p, double* A) {
  const double M[9] = {p[0].x, p[1].x, p[2].x, p[0].y, p[1].y, p[2].y, 1.0, 1.0, 1.0};
  double adj[9];
  adjugate3(M, adj);
  double l[3];
  for (int32_t k = 0; k < 3; ++k) l[k] = adj[3 * k] * p[3].x + adj[3 * k + 1] * p[3].y + adj[3 * k + 2];
  for (int32_t r = 0; r < 3; ++r) {
    for (int32_t k = 0; k < 3; ++k) A[r * 3 + k] = M[r * 3 + k] * l[k];
  }
}

// Exact homography through 4 matches (closed form: H = B adj(A) with A, B the basis maps of
// the source and destination points), normalised so H[8] = 1. False when it is not finite.
MF_HD bool solve_homography4(const Pt* s, const Pt* d, double* H) {
  double A[9], B[9], adjA[9];
  basis_to_points(s, A);
  basis_to_points(d, B);
  adjugate3(A, adjA);
  matmul3(B, adjA, H);
  return normalise_h33(H);
}

// OpenCV's inlier rule, ||H(src) - dst||^2 <= threshold^2, without the division:
// (X - u W)^2 + (Y - v W)^2 <= t^2 W^2 with W != 0. Branch-free, so the CPU loop vectorises.
MF_HD bool reprojection_inlier(const double* H, double x, double y, double u, double v,
                               double t2) {
  const double X = H[0] * x + H[1] * y + H[2];
  const double Y = H[3] * x + H[4] * y + H[5];
  const double W = H[6] * x + H[7] * y + H[8];
  const double ex = X - u * W;
  const double ey = Y - v * W;
  return (W != 0.0) & (ex * ex + ey * ey <= t2 * (W * W));
}

// --- the refit over the inliers ------------------------------------------------------------

constexpr int32_t kJacobiSweeps = 24;  // cyclic Jacobi sweeps at most (converges in ~6-8)
constexpr int32_t kLmIterations = 10;  // Levenberg-Marquardt steps at most, as OpenCV's
// An accepted step that lowers the squared error by at most this fraction ends the refinement.
constexpr double kLmRelativeDecrease = 1e-10;

// Eigenvector of the smallest eigenvalue of a symmetric 9x9 matrix A (destroyed), by cyclic
// Jacobi rotations. Writes it to h.
MF_HD void smallest_eigenvector9(double* A, double* h) {
  double V[81];
  for (int32_t i = 0; i < 81; ++i) V[i] = (i % 10 == 0) ? 1.0 : 0.0;
  for (int32_t sweep = 0; sweep < kJacobiSweeps; ++sweep) {
    double off = 0.0;
    double diag = 0.0;
    for (int32_t p = 0; p < 9; ++p) {
      diag = diag + A[p * 9 + p] * A[p * 9 + p];
      for (int32_t q = p + 1; q < 9; ++q) off = off + A[p * 9 + q] * A[p * 9 + q];
    }
    if (!(off > 1e-30 * diag)) break;
    for (int32_t p = 0; p < 8; ++p) {
      for (int32_t q = p + 1; q < 9; ++q) {
        const double apq = A[p * 9 + q];
        if (apq == 0.0) continue;
        const double theta = (A[q * 9 + q] - A[p * 9 + p]) / (2.0 * apq);
        const double t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
        const double c = 1.0 / sqrt(t * t + 1.0);
        const double s = t * c;
        for (int32_t k = 0; k < 9; ++k) {  // columns p, q: A J
          const double akp = A[k * 9 + p];
          const double akq = A[k * 9 + q];
          A[k * 9 + p] = c * akp - s * akq;
          A[k * 9 + q] = s * akp + c * akq;
        }
        for (int32_t k = 0; k < 9; ++k) {  // rows p, q: J^T (A J)
          const double apk = A[p * 9 + k];
          const double aqk = A[q * 9 + k];
          A[p * 9 + k] = c * apk - s * aqk;
          A[q * 9 + k] = s * apk + c * aqk;
        }
        for (int32_t k = 0; k < 9; ++k) {  // V J
          const double vkp = V[k * 9 + p];
          const double vkq = V[k * 9 + q];
          V[k * 9 + p] = c * vkp - s * vkq;
          V[k * 9 + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  int32_t best = 0;
  for (int32_t k = 1; k < 9; ++k) best = (A[k * 9 + k] < A[best * 9 + best]) ? k : best;
  for (int32_t i = 0; i < 9; ++i) h[i] = V[i * 9 + best];
}

// Normalised DLT (Hartley: centroid to the origin, mean distance sqrt(2)) over the matches
// that are inliers of `Hmask`: least squares of |L h| with |h| = 1, the eigenvector of L^T L
// with the smallest eigenvalue, denormalised and scaled to H[8] = 1. False when degenerate.
template <class Points>
MF_HD bool dlt_refit(const Points& pts, int32_t n, double t2, const double* Hmask, double* H) {
  double m = 0.0, sx = 0.0, sy = 0.0, dx = 0.0, dy = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const Pt s = pts.s(i);
    const Pt d = pts.d(i);
    if (!reprojection_inlier(Hmask, s.x, s.y, d.x, d.y, t2)) continue;
    m = m + 1.0;
    sx = sx + s.x;
    sy = sy + s.y;
    dx = dx + d.x;
    dy = dy + d.y;
  }
  if (!(m >= 4.0)) return false;
  sx = sx / m;
  sy = sy / m;
  dx = dx / m;
  dy = dy / m;
  double rs = 0.0, rd = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const Pt s = pts.s(i);
    const Pt d = pts.d(i);
    if (!reprojection_inlier(Hmask, s.x, s.y, d.x, d.y, t2)) continue;
    rs = rs + sqrt((s.x - sx) * (s.x - sx) + (s.y - sy) * (s.y - sy));
    rd = rd + sqrt((d.x - dx) * (d.x - dx) + (d.y - dy) * (d.y - dy));
  }
  if (!(rs > 0.0) || !(rd > 0.0)) return false;
  const double ks = 1.4142135623730951 * m / rs;  // sqrt(2) / mean distance
  const double kd = 1.4142135623730951 * m / rd;
  double LtL[81];
  for (int32_t i = 0; i < 81; ++i) LtL[i] = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const Pt s = pts.s(i);
    const Pt d = pts.d(i);
    if (!reprojection_inlier(Hmask, s.x, s.y, d.x, d.y, t2)) continue;
    const double X = (s.x - sx) * ks;
    const double Y = (s.y - sy) * ks;
    const double u = (d.x - dx) * kd;
    const double v = (d.y - dy) * kd;
    const double lx[9] = {X, Y, 1.0, 0.0, 0.0, 0.0, -(u * X), -(u * Y), -u};
    const double ly[9] = {0.0, 0.0, 0.0, X, Y, 1.0, -(v * X), -(v * Y), -v};
    for (int32_t j = 0; j < 9; ++j) {
      for (int32_t k = j; k < 9; ++k) LtL[j * 9 + k] = LtL[j * 9 + k] + (lx[j] * lx[k] + ly[j] * ly[k]);
    }
  }
  for (int32_t j = 0; j < 9; ++j) {
    for (int32_t k = 0; k < j; ++k) LtL[j * 9 + k] = LtL[k * 9 + j];
  }
  double hn[9];
  smallest_eigenvector9(LtL, hn);
  // H = Td^-1 Hn Ts
  const double Ts[9] = {ks, 0.0, -(ks * sx), 0.0, ks, -(ks * sy), 0.0, 0.0, 1.0};
  const double Tdi[9] = {1.0 / kd, 0.0, dx, 0.0, 1.0 / kd, dy, 0.0, 0.0, 1.0};
  double tmp[9];
  matmul3(hn, Ts, tmp);
  matmul3(Tdi, tmp, H);
  return normalise_h33(H);
}

// Sum of squared reprojection errors of p = (h0..h7, h8 = 1) over the inliers of Hmask, with
// J^T J (upper triangle of 8x8, row-major) and J^T r. Non-finite when some W is 0.
template <class Points>
MF_HD double lm_normal_equations(const Points& pts, int32_t n, double t2, const double* Hmask,
                                 const double* p, double* JtJ, double* Jtr) {
  for (int32_t i = 0; i < 64; ++i) JtJ[i] = 0.0;
  for (int32_t i = 0; i < 8; ++i) Jtr[i] = 0.0;
  double cost = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    const Pt s = pts.s(i);
    const Pt d = pts.d(i);
    if (!reprojection_inlier(Hmask, s.x, s.y, d.x, d.y, t2)) continue;
    const double X = p[0] * s.x + p[1] * s.y + p[2];
    const double Y = p[3] * s.x + p[4] * s.y + p[5];
    const double W = p[6] * s.x + p[7] * s.y + 1.0;
    const double iw = 1.0 / W;
    const double u = X * iw;
    const double v = Y * iw;
    const double ru = u - d.x;
    const double rv = v - d.y;
    cost = cost + (ru * ru + rv * rv);
    const double a = s.x * iw;
    const double b = s.y * iw;
    const double ju[8] = {a, b, iw, 0.0, 0.0, 0.0, -(a * u), -(b * u)};
    const double jv[8] = {0.0, 0.0, 0.0, a, b, iw, -(a * v), -(b * v)};
    for (int32_t j = 0; j < 8; ++j) {
      for (int32_t k = j; k < 8; ++k) JtJ[j * 8 + k] = JtJ[j * 8 + k] + (ju[j] * ju[k] + jv[j] * jv[k]);
      Jtr[j] = Jtr[j] + (ju[j] * ru + jv[j] * rv);
    }
  }
  return cost;
}

// Solves (JtJ + lambda diag(JtJ)) delta = -Jtr by Cholesky (JtJ: upper triangle, 8x8).
// False when the damped matrix is not positive definite.
MF_HD bool lm_step(const double* JtJ, const double* Jtr, double lambda, double* delta) {
  double L[64];
  for (int32_t j = 0; j < 8; ++j) {
    for (int32_t i = j; i < 8; ++i) {
      double a = JtJ[j * 8 + i];  // (i, j) of the symmetric matrix, i >= j
      if (i == j) a = a + lambda * JtJ[j * 8 + j];
      for (int32_t k = 0; k < j; ++k) a = a - L[i * 8 + k] * L[j * 8 + k];
      if (i == j) {
        if (!(a > 0.0)) return false;
        L[j * 8 + j] = sqrt(a);
      } else {
        L[i * 8 + j] = a / L[j * 8 + j];
      }
    }
  }
  double y[8];
  for (int32_t i = 0; i < 8; ++i) {
    double a = -Jtr[i];
    for (int32_t k = 0; k < i; ++k) a = a - L[i * 8 + k] * y[k];
    y[i] = a / L[i * 8 + i];
  }
  for (int32_t i = 7; i >= 0; --i) {
    double a = y[i];
    for (int32_t k = i + 1; k < 8; ++k) a = a - L[k * 8 + i] * delta[k];
    delta[i] = a / L[i * 8 + i];
  }
  bool ok = true;
  for (int32_t i = 0; i < 8; ++i) ok = ok && isfinite(delta[i]);
  return ok;
}

// Final model from the best RANSAC hypothesis Hbest: normalised DLT over its inliers (when
// not degenerate; else Hbest itself), then up to kLmIterations Levenberg-Marquardt steps on
// the reprojection error over the same inliers, a step kept only when it lowers the error;
// an accepted step that lowers it by at most kLmRelativeDecrease (relative) is the last.
// Writes H with H[8] = 1; false when no finite model came out.
template <class Points>
MF_HD bool refit_homography(const Points& pts, int32_t n, double t2, const double* Hbest,
                            double* H) {
  if (!dlt_refit(pts, n, t2, Hbest, H)) {
    for (int32_t i = 0; i < 9; ++i) H[i] = Hbest[i];
  }
  double p[8], JtJ[64], Jtr[8];
  for (int32_t i = 0; i < 8; ++i) p[i] = H[i];
  double cost = lm_normal_equations(pts, n, t2, Hbest, p, JtJ, Jtr);
  if (isfinite(cost)) {
    double lambda = 1e-3;
    for (int32_t it = 0; it < kLmIterations; ++it) {
      double delta[8], q[8], JtJq[64], Jtrq[8];
      if (!lm_step(JtJ, Jtr, lambda, delta)) {
        lambda = lambda * 10.0;
        continue;
      }
      for (int32_t i = 0; i < 8; ++i) q[i] = p[i] + delta[i];
      const double c = lm_normal_equations(pts, n, t2, Hbest, q, JtJq, Jtrq);
      if (c < cost) {
        const bool converged = cost - c <= kLmRelativeDecrease * cost;
        cost = c;
        for (int32_t i = 0; i < 8; ++i) p[i] = q[i];
        for (int32_t i = 0; i < 64; ++i) JtJ[i] = JtJq[i];
        for (int32_t i = 0; i < 8; ++i) Jtr[i] = Jtrq[i];
        lambda = lambda * 0.1;
        if (converged) break;
      } else {
        lambda = lambda * 10.0;
      }
    }
  }
  for (int32_t i = 0; i < 8; ++i) H[i] = p[i];
  H[8] = 1.0;
  bool ok = true;
  for (int32_t i = 0; i < 9; ++i) ok = ok && isfinite(H[i]);
  return ok;
}

}  // namespace mimic_fast
