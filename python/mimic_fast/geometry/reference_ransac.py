"""Readable numpy twin of the native RANSAC kernels: the definition of find_homographies.

One pair at a time, iterations one after another, in plain Python and numpy. It performs the
same double-precision operations in the same order as csrc/common/homography_fit.h and
ransac_steps.h (no fused multiply-add; sums accumulated sequentially), so the C++ and CUDA
kernels agree with it bit for bit. Written for clarity, not speed: tests compare the kernels
to it.

Per pair with n valid matches (src_i -> dst_i):

1. n < 4 or a non-finite coordinate: valid=False, H = 0, no inliers.
2. niters = max_iters; for it = 0, 1, ... while it < niters:
   - hypothesis: up to 32 attempts; attempt a draws indices from the counter RNG keyed by
     (seed, it, a) (successive draws, repeats skipped, 64 draws at most) until 4 distinct
     ones; the sample must pass OpenCV's checkSubset (no 3 points collinear within FLT_EPSILON
     tolerance, in either view, on all four triangles; triangle orientations all kept or all
     flipped) and solve to a finite H (closed form, H[2,2] = 1). No such sample: no model.
   - score: inliers = matches with ||H(src) - dst|| <= threshold (OpenCV's rule, evaluated as
     (X - uW)^2 + (Y - vW)^2 <= t^2 W^2, W != 0).
   - a count above max(best, 3) becomes the best model, and niters becomes OpenCV's
     RANSACUpdateNumIters(confidence, outlier ratio, 4, niters).
3. No model with >= 4 inliers: valid=False.
4. Refit: normalised DLT over the best model's inliers, then up to 10 Levenberg-Marquardt steps
   on the reprojection error over the same inliers (as cv2.findHomography does; stopping once
   a step gains less than 1e-10 of the error), then re-scoring:
   the result is the refit model and its inliers, unless the refit fails or keeps fewer than
   4 inliers, in which case it is the best minimal model and its inliers.

The sample depends on (seed, iteration, attempt) and the pair's n only, never on the pair's
position in a batch.
"""

from __future__ import annotations

import math

import numpy as np

from mimic_fast.geometry.result import Homographies

MASK64 = (1 << 64) - 1
FLT_EPSILON = 1.1920928955078125e-07
DBL_MIN = 2.2250738585072014e-308
SAMPLE_ATTEMPTS = 32
SAMPLE_DRAWS = 64
JACOBI_SWEEPS = 24
LM_ITERATIONS = 10
LM_RELATIVE_DECREASE = 1e-10  # an accepted step lowering the error less than this ends LM
_TRIANGLES = ((0, 1, 2), (1, 2, 3), (0, 2, 3), (0, 1, 3))


# --- counter-based samples (csrc/common/ransac_steps.h) -------------------------------------


def mix64(z: int) -> int:
    """splitmix64's finaliser on a Python int (wrapping 64-bit arithmetic)."""
    z &= MASK64
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z


def sample_key(seed: int, iteration: int, attempt: int) -> int:
    k = mix64(seed ^ 0x3C6EF372FE94F82B)
    k = mix64(k ^ (((iteration + 1) * 0x9E3779B97F4A7C15) & MASK64))
    return mix64(k ^ (((attempt + 1) * 0xD1B54A32D192ED03) & MASK64))


def sample_index(key: int, draw: int, n: int) -> int:
    h = mix64(key ^ (((draw + 1) * 0x8CB92BA72F3D8DD7) & MASK64))
    return ((h >> 32) * n) >> 32


def draw_sample(key: int, n: int) -> list[int] | None:
    idx: list[int] = []
    for draw in range(SAMPLE_DRAWS):
        if len(idx) == 4:
            break
        i = sample_index(key, draw, n)
        if i not in idx:
            idx.append(i)
    return idx if len(idx) == 4 else None


# --- minimal samples (csrc/common/homography_fit.h) -----------------------------------------


def triangle_cross(a, b, c) -> tuple[float, bool]:
    """(b - a) x (c - a) and whether it is collinear within OpenCV's tolerance."""
    dx1, dy1 = b[0] - a[0], b[1] - a[1]
    dx2, dy2 = c[0] - a[0], c[1] - a[1]
    cross = dx1 * dy2 - dy1 * dx2
    collinear = not abs(cross) > FLT_EPSILON * (abs(dx1) + abs(dy1) + abs(dx2) + abs(dy2))
    return cross, collinear


def minimal_sample_ok(s, d) -> bool:
    negative = 0
    for t in _TRIANGLES:
        a, cs = triangle_cross(s[t[0]], s[t[1]], s[t[2]])
        b, cd = triangle_cross(d[t[0]], d[t[1]], d[t[2]])
        if cs or cd:
            return False
        negative += a * b < 0.0
    return negative in (0, 4)


def adjugate3(m: list[float]) -> list[float]:
    return [
        m[4] * m[8] - m[5] * m[7], m[2] * m[7] - m[1] * m[8], m[1] * m[5] - m[2] * m[4],
        m[5] * m[6] - m[3] * m[8], m[0] * m[8] - m[2] * m[6], m[2] * m[3] - m[0] * m[5],
        m[3] * m[7] - m[4] * m[6], m[1] * m[6] - m[0] * m[7], m[0] * m[4] - m[1] * m[3],
    ]


def matmul3(a: list[float], b: list[float]) -> list[float]:
    return [a[r * 3] * b[k] + a[r * 3 + 1] * b[3 + k] + a[r * 3 + 2] * b[6 + k]
            for r in range(3) for k in range(3)]


def normalise_h33(H: list[float]) -> list[float] | None:
    w = H[8]
    with np.errstate(all="ignore"):
        out = [float(np.float64(h) / np.float64(w)) for h in H]  # IEEE division, inf/nan allowed
    return out if all(math.isfinite(h) for h in out) else None


def basis_to_points(p) -> list[float]:
    M = [p[0][0], p[1][0], p[2][0], p[0][1], p[1][1], p[2][1], 1.0, 1.0, 1.0]
    adj = adjugate3(M)
    lam = [adj[3 * k] * p[3][0] + adj[3 * k + 1] * p[3][1] + adj[3 * k + 2] for k in range(3)]
    return [M[r * 3 + k] * lam[k] for r in range(3) for k in range(3)]


def solve_homography4(s, d) -> list[float] | None:
    """The homography through 4 matches, H = B adj(A) (basis maps), scaled to H[2,2] = 1."""
    A = basis_to_points(s)
    B = basis_to_points(d)
    return normalise_h33(matmul3(B, adjugate3(A)))


def inlier_mask(H, sx, sy, dx, dy, t2: float) -> np.ndarray:
    """OpenCV's rule ||H(src) - dst||^2 <= t^2, as (X - uW)^2 + (Y - vW)^2 <= t^2 W^2."""
    X = H[0] * sx + H[1] * sy + H[2]
    Y = H[3] * sx + H[4] * sy + H[5]
    W = H[6] * sx + H[7] * sy + H[8]
    ex = X - dx * W
    ey = Y - dy * W
    return (W != 0.0) & (ex * ex + ey * ey <= t2 * (W * W))


# --- iterations (csrc/common/ransac_steps.h) ------------------------------------------------


def make_hypothesis(src, dst, n: int, seed: int, iteration: int) -> list[float] | None:
    for attempt in range(SAMPLE_ATTEMPTS):
        idx = draw_sample(sample_key(seed, iteration, attempt), n)
        if idx is None:
            continue
        s = [(float(src[i, 0]), float(src[i, 1])) for i in idx]
        d = [(float(dst[i, 0]), float(dst[i, 1])) for i in idx]
        if minimal_sample_ok(s, d):
            H = solve_homography4(s, d)
            if H is not None:
                return H
    return None


def update_iterations(confidence: float, n: int, good: int, niters: int) -> int:
    """OpenCV's RANSACUpdateNumIters for 4-point models."""
    ep = (n - good) / n
    w = 1.0 - ep
    w2 = w * w
    num = 1.0 - confidence
    if not num > DBL_MIN:
        num = DBL_MIN
    denom = 1.0 - w2 * w2
    if denom < DBL_MIN:
        return 0
    num = math.log(num)
    denom = math.log(denom)
    if denom >= 0.0 or -num >= niters * -denom:
        return niters
    return int(round(num / denom))  # round half to even, as rint


# --- the refit (csrc/common/homography_fit.h) -----------------------------------------------


def _seq_sum(terms: np.ndarray) -> float:
    """0.0 + t0 + t1 + ..., left to right (the kernels' loop order; np.sum is pairwise)."""
    return float(np.add.accumulate(np.concatenate([[0.0], terms]))[-1])


def smallest_eigenvector9(A: np.ndarray) -> np.ndarray:
    """Cyclic Jacobi on a symmetric 9x9 matrix; the eigenvector of the smallest eigenvalue."""
    A = A.copy()
    V = np.eye(9)
    for _ in range(JACOBI_SWEEPS):
        off = 0.0
        diag = 0.0
        for p in range(9):
            diag = diag + A[p, p] * A[p, p]
            for q in range(p + 1, 9):
                off = off + A[p, q] * A[p, q]
        if not off > 1e-30 * diag:
            break
        for p in range(8):
            for q in range(p + 1, 9):
                apq = A[p, q]
                if apq == 0.0:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0.0 else -1.0) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                akp, akq = A[:, p].copy(), A[:, q].copy()
                A[:, p], A[:, q] = c * akp - s * akq, s * akp + c * akq
                apk, aqk = A[p, :].copy(), A[q, :].copy()
                A[p, :], A[q, :] = c * apk - s * aqk, s * apk + c * aqk
                vkp, vkq = V[:, p].copy(), V[:, q].copy()
                V[:, p], V[:, q] = c * vkp - s * vkq, s * vkp + c * vkq
    best = 0
    for k in range(1, 9):
        best = k if A[k, k] < A[best, best] else best
    return V[:, best].copy()


def dlt_refit(sx, sy, dx, dy) -> list[float] | None:
    """Normalised DLT (Hartley normalisation) over the given matches, H[2,2] = 1."""
    m = float(len(sx))
    if not m >= 4.0:
        return None
    cx, cy = _seq_sum(sx) / m, _seq_sum(sy) / m
    ux, uy = _seq_sum(dx) / m, _seq_sum(dy) / m
    rs = _seq_sum(np.sqrt((sx - cx) * (sx - cx) + (sy - cy) * (sy - cy)))
    rd = _seq_sum(np.sqrt((dx - ux) * (dx - ux) + (dy - uy) * (dy - uy)))
    if not rs > 0.0 or not rd > 0.0:
        return None
    ks = 1.4142135623730951 * m / rs
    kd = 1.4142135623730951 * m / rd
    X, Y = (sx - cx) * ks, (sy - cy) * ks
    u, v = (dx - ux) * kd, (dy - uy) * kd
    zero, one = np.zeros_like(X), np.ones_like(X)
    lx = [X, Y, one, zero, zero, zero, -(u * X), -(u * Y), -u]
    ly = [zero, zero, zero, X, Y, one, -(v * X), -(v * Y), -v]
    LtL = np.zeros((9, 9))
    for j in range(9):
        for k in range(j, 9):
            LtL[j, k] = _seq_sum(lx[j] * lx[k] + ly[j] * ly[k])
    for j in range(9):
        for k in range(j):
            LtL[j, k] = LtL[k, j]
    hn = [float(h) for h in smallest_eigenvector9(LtL)]
    Ts = [ks, 0.0, -(ks * cx), 0.0, ks, -(ks * cy), 0.0, 0.0, 1.0]
    Tdi = [1.0 / kd, 0.0, ux, 0.0, 1.0 / kd, uy, 0.0, 0.0, 1.0]
    return normalise_h33(matmul3(Tdi, matmul3(hn, Ts)))


def lm_normal_equations(p, sx, sy, dx, dy):
    """(cost, J^T J upper triangle [8, 8], J^T r [8]) of p = h0..h7 (h8 = 1)."""
    with np.errstate(all="ignore"):
        X = p[0] * sx + p[1] * sy + p[2]
        Y = p[3] * sx + p[4] * sy + p[5]
        W = p[6] * sx + p[7] * sy + 1.0
        iw = 1.0 / W
        u, v = X * iw, Y * iw
        ru, rv = u - dx, v - dy
        a, b = sx * iw, sy * iw
        zero = np.zeros_like(sx)
        ju = [a, b, iw, zero, zero, zero, -(a * u), -(b * u)]
        jv = [zero, zero, zero, a, b, iw, -(a * v), -(b * v)]
        cost = _seq_sum(ru * ru + rv * rv)
        JtJ = np.zeros((8, 8))
        Jtr = np.zeros(8)
        for j in range(8):
            for k in range(j, 8):
                JtJ[j, k] = _seq_sum(ju[j] * ju[k] + jv[j] * jv[k])
            Jtr[j] = _seq_sum(ju[j] * ru + jv[j] * rv)
    return cost, JtJ, Jtr


def lm_step(JtJ, Jtr, lam: float) -> list[float] | None:
    """Cholesky solve of (JtJ + lam diag(JtJ)) delta = -Jtr; None if not positive definite."""
    L = [[0.0] * 8 for _ in range(8)]
    for j in range(8):
        for i in range(j, 8):
            a = float(JtJ[j, i])
            if i == j:
                a = a + lam * float(JtJ[j, j])
            for k in range(j):
                a = a - L[i][k] * L[j][k]
            if i == j:
                if not a > 0.0:
                    return None
                L[j][j] = math.sqrt(a)
            else:
                L[i][j] = a / L[j][j]
    y = [0.0] * 8
    for i in range(8):
        a = -float(Jtr[i])
        for k in range(i):
            a = a - L[i][k] * y[k]
        y[i] = a / L[i][i]
    delta = [0.0] * 8
    for i in range(7, -1, -1):
        a = y[i]
        for k in range(i + 1, 8):
            a = a - L[k][i] * delta[k]
        delta[i] = a / L[i][i]
    return delta if all(math.isfinite(x) for x in delta) else None


def _refit(best, sx, sy, dx, dy) -> list[float] | None:
    """Normalised DLT over the matches given (the best model's inliers; the best model itself
    when that is degenerate), then up to LM_ITERATIONS Levenberg-Marquardt steps on the
    reprojection error, a step kept only when it lowers the error; an accepted step lowering it
    by at most LM_RELATIVE_DECREASE (relative) is the last. None when the result is not
    finite."""
    H = dlt_refit(sx, sy, dx, dy)
    if H is None:
        H = list(best)
    p = H[:8]
    cost, JtJ, Jtr = lm_normal_equations(p, sx, sy, dx, dy)
    if math.isfinite(cost):
        lam = 1e-3
        for _ in range(LM_ITERATIONS):
            delta = lm_step(JtJ, Jtr, lam)
            if delta is None:
                lam = lam * 10.0
                continue
            q = [p[i] + delta[i] for i in range(8)]
            c, JtJq, Jtrq = lm_normal_equations(q, sx, sy, dx, dy)
            if c < cost:
                converged = cost - c <= LM_RELATIVE_DECREASE * cost
                cost, p, JtJ, Jtr = c, q, JtJq, Jtrq
                lam = lam * 0.1
                if converged:
                    break
            else:
                lam = lam * 10.0
    H = [float(x) for x in p] + [1.0]
    return H if all(math.isfinite(h) for h in H) else None


# --- one pair, a batch ----------------------------------------------------------------------


def ransac_pair_reference(src: np.ndarray, dst: np.ndarray, threshold: float = 5.0,
                          max_iters: int = 2000, confidence: float = 0.995, seed: int = 0):
    """(H [3, 3] float64, inliers [n] bool, num_inliers, valid) for one pair's n matches."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    n = src.shape[0]
    none = (np.zeros((3, 3)), np.zeros(n, bool), 0, False)
    if n < 4 or not (np.isfinite(src).all() and np.isfinite(dst).all()):
        return none
    t2 = threshold * threshold
    sx, sy, dx, dy = src[:, 0].copy(), src[:, 1].copy(), dst[:, 0].copy(), dst[:, 1].copy()
    best, best_count, niters, it = None, -1, max_iters, 0
    while it < niters:
        H = make_hypothesis(src, dst, n, seed, it)
        count = int(inlier_mask(H, sx, sy, dx, dy, t2).sum()) if H is not None else -1
        if count > max(best_count, 3):
            best, best_count = H, count
            niters = update_iterations(confidence, n, count, niters)
        it += 1
    if best_count < 4:
        return none
    chosen, mask = best, inlier_mask(best, sx, sy, dx, dy, t2)
    refit = _refit(best, sx[mask], sy[mask], dx[mask], dy[mask])
    if refit is not None:
        refit_mask = inlier_mask(refit, sx, sy, dx, dy, t2)
        if refit_mask.sum() >= 4:
            chosen, mask = refit, refit_mask
    return np.array(chosen, np.float64).reshape(3, 3), mask, int(mask.sum()), True


def find_homographies_reference(src, dst, counts=None, threshold: float = 5.0,
                                max_iters: int = 2000, confidence: float = 0.995,
                                seed: int = 0) -> Homographies:
    """The definition of mimic_fast.find_homographies on numpy [B, N, 2] inputs."""
    src = np.asarray(src)
    dst = np.asarray(dst)
    B, N = src.shape[0], src.shape[1]
    counts = np.full(B, N) if counts is None else np.asarray(counts)
    out = Homographies(H=np.zeros((B, 3, 3)), inliers=np.zeros((B, N), bool),
                       num_inliers=np.zeros(B, np.int32), valid=np.zeros(B, bool))
    for b in range(B):
        n = int(min(max(int(counts[b]), 0), N))
        H, mask, num, valid = ransac_pair_reference(src[b, :n], dst[b, :n], threshold,
                                                    max_iters, confidence, seed)
        out.H[b], out.inliers[b, :n], out.num_inliers[b], out.valid[b] = H, mask, num, valid
    return out
