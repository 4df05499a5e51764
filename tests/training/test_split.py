import numpy as np
import pytest

from csst_photoz.training import split_rows


def test_same_seed_gives_the_same_split_and_another_seed_another():
    a, b = split_rows(1000, seed=7), split_rows(1000, seed=7)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert a.fingerprint() == b.fingerprint()
    c = split_rows(1000, seed=8)
    assert not np.array_equal(a.test, c.test)
    assert a.fingerprint() != c.fingerprint()


@pytest.mark.parametrize("n", [10, 97, 1000])
def test_parts_are_disjoint_sorted_and_cover_every_row(n):
    split = split_rows(n, seed=1)
    parts = [split.train, split.validation, split.test]
    together = np.concatenate(parts)
    assert together.size == n and np.unique(together).size == n
    assert set(together.tolist()) == set(range(n))
    for part in parts:
        assert np.all(np.diff(part) > 0)


def test_default_fractions_give_the_papers_split_of_forty_thousand():
    split = split_rows(40_000, seed=0)
    assert (split.test.size, split.validation.size, split.train.size) == (10_000, 3_000, 27_000)
    description = split.describe()
    assert description["n_test"] == 10_000 and description["sha256"] == split.fingerprint()


def test_fractions_are_configurable():
    split = split_rows(200, seed=0, test_fraction=0.0, validation_fraction=0.5)
    assert (split.test.size, split.validation.size, split.train.size) == (0, 100, 100)


@pytest.mark.parametrize(
    ("n", "test_fraction", "validation_fraction", "match"),
    [
        (100, 1.0, 0.1, "test_fraction"),
        (100, -0.1, 0.1, "test_fraction"),
        (100, 0.25, 0.0, "validation_fraction"),
        (100, 0.25, 1.0, "validation_fraction"),
        (3, 0.25, 0.1, "need at least one"),
    ],
)
def test_bad_fractions_or_too_few_rows_are_refused(n, test_fraction, validation_fraction, match):
    with pytest.raises(ValueError, match=match):
        split_rows(n, seed=0, test_fraction=test_fraction, validation_fraction=validation_fraction)
