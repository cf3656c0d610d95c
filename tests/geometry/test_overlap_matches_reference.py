"""The CPU kernel equals the numpy reference bit for bit, whatever the batch, dtype or layout."""

from __future__ import annotations

import numpy as np
import pytest
from overlap_cases import random_homographies, zoom_about

import mimic_fast
from mimic_fast.geometry import reference as R
from mimic_fast.geometry.reference import patch_overlap_reference


def assert_same(a, b):
    for name, x, y in zip(a._fields, a, b):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture
def rng(request):
    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh per run, reported on failure
    request.node.user_properties.append(("rng_seed", seed))
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_homographies(rng, dtype):
    H = random_homographies(rng, 24).astype(dtype)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    out = mimic_fast.patch_overlap(H, seed=seed)
    assert_same(out, patch_overlap_reference(H, seed=seed))
    assert out.overlap.shape == (24,) and out.forward.shape == (24, 196)
    assert out.valid.all() and (out.overlap > 0).any()


def test_grid_sampling(rng):
    H = random_homographies(rng, 12)
    assert_same(mimic_fast.patch_overlap(H, sampling="grid"),
                patch_overlap_reference(H, sampling="grid"))
    # grid is deterministic: the seed does not matter
    assert_same(mimic_fast.patch_overlap(H, sampling="grid", seed=1),
                mimic_fast.patch_overlap(H, sampling="grid", seed=2))


def test_batch_equals_singles(rng):
    H = random_homographies(rng, 9)
    batch = mimic_fast.patch_overlap(H, seed=3)
    for i in range(len(H)):
        single = mimic_fast.patch_overlap(H[i], seed=3)
        for name, x, y in zip(batch._fields, batch, single):
            np.testing.assert_array_equal(x[i], y, err_msg=name)
    # and a pair's result does not depend on its position in the batch
    perm = rng.permutation(len(H))
    shuffled = mimic_fast.patch_overlap(H[perm], seed=3)
    np.testing.assert_array_equal(shuffled.correspondences, batch.correspondences[perm])


@pytest.mark.parametrize("batch", [0, 1, 7])
def test_batch_sizes(rng, batch):
    H = random_homographies(rng, batch)
    out = mimic_fast.patch_overlap(H)
    assert out.overlap.shape == (batch,) and out.counts.shape == (batch, 2)
    assert out.forward.shape == (batch, 196) and out.backward.shape == (batch, 196)
    assert_same(out, patch_overlap_reference(H))


def test_non_contiguous_input(rng):
    big = random_homographies(rng, 10)
    H = big[::2]  # strided batch
    Ht = np.ascontiguousarray(big.transpose(0, 2, 1)).transpose(0, 2, 1)  # transposed layout
    assert not H.flags.c_contiguous and not Ht.flags.c_contiguous
    assert_same(mimic_fast.patch_overlap(H), patch_overlap_reference(np.ascontiguousarray(H)))
    assert_same(mimic_fast.patch_overlap(Ht), mimic_fast.patch_overlap(big))


@pytest.mark.parametrize("image_size, patch", [
    ((230, 250), 16),            # not patch multiples: patches tile the top-left 224x240
    (((224, 224), (160, 320)), 16),  # different view sizes
    (((100, 37), (64, 90)), 8),
    ((224, 224), 14),            # a patch that is not a power of two
    ((33, 33), 32),              # one patch per view
])
def test_view_sizes(rng, image_size, patch):
    H = random_homographies(rng, 6, size=100.0)
    out = mimic_fast.patch_overlap(H, image_size=image_size, patch_size=patch, samples=37)
    assert_same(out, patch_overlap_reference(H, image_size, patch, samples=37))
    (h1, w1), (h2, w2) = image_size if np.ndim(image_size[0]) else (image_size, image_size)
    assert out.forward.shape == (6, (h1 // patch) * (w1 // patch))
    assert out.backward.shape == (6, (h2 // patch) * (w2 // patch))


@pytest.mark.parametrize("samples", [1, 2, 7, 100, 1024])
def test_sample_counts(rng, samples):
    H = random_homographies(rng, 4)
    assert_same(mimic_fast.patch_overlap(H, samples=samples),
                patch_overlap_reference(H, samples=samples))


def test_many_labels_per_patch_takes_the_exact_slow_path():
    # An 8x zoom spreads one source patch over ~64 target patches, more than the fast vote's
    # 16 slots: the kernel switches to its quadratic path and must still equal the reference.
    H = zoom_about(8.0)
    offsets = R.random_offsets(5, 0, 196, 100, 16)
    x, y = R.sample_points(14, 14, 16, offsets)
    labels = R.project_labels(H, x, y, 14, 14, 16)
    distinct = [len(np.unique(row)) for row in labels]
    assert max(distinct) > 16  # the slow path is really taken
    out = mimic_fast.patch_overlap(H, seed=5)
    assert_same(out, patch_overlap_reference(H, seed=5))
    assert out.counts[1] == 4  # the 8x shrink back lands in the 2x2 central patches


def test_correspondences_are_one_to_one_and_consistent(rng):
    H = random_homographies(rng, 16)
    out = mimic_fast.patch_overlap(H)
    for b in range(len(H)):
        c = out.correspondences[b]
        matched = c[c >= 0]
        assert len(np.unique(matched)) == len(matched)  # one-to-one
        cf, cb = out.counts[b]
        assert len(matched) == min(cf, cb) if cf != cb else len(matched) == cb
        assert out.overlap[b] == np.float32(min(cf / 196, cb / 196))
        assert cf == (out.forward[b] >= 0).sum() and cb == (out.backward[b] >= 0).sum()
        if cf < cb:
            np.testing.assert_array_equal(c, out.forward[b])
        else:  # the backward direction, inverted
            src = np.nonzero(out.backward[b] >= 0)[0]
            np.testing.assert_array_equal(c[out.backward[b][src]], src)


def test_threads_do_not_change_results(rng):
    H = random_homographies(rng, 33)
    before = mimic_fast.get_num_threads()
    try:
        mimic_fast.set_num_threads(1)
        one = mimic_fast.patch_overlap(H)
        mimic_fast.set_num_threads(2)
        two = mimic_fast.patch_overlap(H)
    finally:
        mimic_fast.set_num_threads(before)
    assert_same(one, two)
