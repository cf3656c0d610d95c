"""Property-based fuzz: wild homographies, kernel == reference, and the invariants hold."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import mimic_fast
from mimic_fast.geometry.reference import patch_overlap_reference

wild_values = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1e-2, 1e-2),
    st.sampled_from([0.0, 1.0, -1.0, 1e300, -1e-300, np.inf, -np.inf, np.nan]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    H=arrays(np.float64, (3, 3), elements=wild_values),
    seed=st.integers(0, 2**64 - 1),
    size=st.tuples(st.integers(16, 80), st.integers(16, 80)),
    samples=st.integers(1, 40),
)
def test_wild_homographies(H, seed, size, samples):
    out = mimic_fast.patch_overlap(H, image_size=size, seed=seed, samples=samples)
    ref = patch_overlap_reference(H, image_size=size, seed=seed, samples=samples)
    for name, a, b in zip(out._fields, out, ref):
        np.testing.assert_array_equal(a, b, err_msg=name)
    P = (size[0] // 16) * (size[1] // 16)
    cf, cb = (int(c) for c in out.counts)
    assert 0 <= cf <= P and 0 <= cb <= P
    assert 0.0 <= out.overlap <= 1.0
    matched = out.correspondences[out.correspondences >= 0]
    assert len(np.unique(matched)) == len(matched) == (cf if cf < cb else cb)
    if not np.all(np.isfinite(H)):
        assert not out.valid and out.overlap == 0
