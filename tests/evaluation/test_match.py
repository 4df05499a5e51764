"""Positional truth matching: brute-force references and the guarantees of the pairing."""

import numpy as np
import pytest

from csst_photoz.evaluation.match import Match, match_positions


def _distances(tx, ty, dx, dy) -> np.ndarray:
    return np.hypot(np.subtract.outer(tx, dx), np.subtract.outer(ty, dy))


def reference_nearest_then_closest(tx, ty, dx, dy, radius):
    """The documented rule, by brute force.

    Each truth claims its nearest detection (if within the radius); a detection claimed by
    several truths goes to the closest of them.
    """
    d = _distances(tx, ty, dx, dy)
    pairs = {}
    for i in range(len(tx)):
        j = int(np.argmin(d[i]))
        if d[i, j] < radius and (j not in pairs or d[i, j] < d[pairs[j], j]):
            pairs[j] = i
    truth = np.array(sorted(pairs.values()), dtype=np.int64)
    inverse = {i: j for j, i in pairs.items()}
    detection = np.array([inverse[i] for i in truth], dtype=np.int64)
    return truth, detection, d[truth, detection]


def reference_greedy(tx, ty, dx, dy, radius):
    """All pairs within the radius, closest first, each truth and detection used once."""
    d = _distances(tx, ty, dx, dy)
    i_all, j_all = np.nonzero(d < radius)
    order = np.argsort(d[i_all, j_all], kind="stable")
    used_t, used_d, pairs = set(), set(), []
    for i, j in zip(i_all[order], j_all[order], strict=True):
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            pairs.append((i, j))
    pairs.sort()
    truth = np.array([p[0] for p in pairs], dtype=np.int64)
    detection = np.array([p[1] for p in pairs], dtype=np.int64)
    return truth, detection, d[truth, detection]


def random_field(seed, n_truth=60, n_found=50, size=40.0):
    rng = np.random.default_rng(seed)
    tx, ty = rng.uniform(0, size, (2, n_truth))
    # most detections scatter around a truth galaxy, some are spurious
    pick = rng.choice(n_truth, n_found - 10, replace=False)
    dx = np.concatenate([tx[pick] + rng.normal(0, 0.6, len(pick)), rng.uniform(0, size, 10)])
    dy = np.concatenate([ty[pick] + rng.normal(0, 0.6, len(pick)), rng.uniform(0, size, 10)])
    return tx, ty, dx, dy


def _check(match, expected):
    assert isinstance(match, Match)
    np.testing.assert_array_equal(match.truth, expected[0])
    np.testing.assert_array_equal(match.detection, expected[1])
    np.testing.assert_allclose(match.distance, expected[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [0.5, 1.5, 4.0])
def test_matches_the_brute_force_rule(seed, radius):
    tx, ty, dx, dy = random_field(seed)
    match = match_positions(tx, ty, dx, dy, radius=radius)
    _check(match, reference_nearest_then_closest(tx, ty, dx, dy, radius))


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_greedy_matching_when_detections_are_isolated(seed):
    # detections on a grid 5 apart, truths within 1.5 of one detection or far from all: with
    # radius 2 each truth has at most one detection in reach, so both rules must agree
    rng = np.random.default_rng(100 + seed)
    grid = np.arange(0.0, 50.0, 5.0)
    dx, dy = (a.ravel() for a in np.meshgrid(grid, grid))
    keep = rng.random(dx.size) < 0.7
    dx, dy = dx[keep], dy[keep]
    n = 80
    host = rng.integers(0, dx.size, n)
    angle, reach = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 1.5, n)
    tx, ty = dx[host] + reach * np.cos(angle), dy[host] + reach * np.sin(angle)
    far = rng.random(n) < 0.2  # some truths land midway between grid points: unmatched
    tx[far], ty[far] = dx[host[far]] + 2.5, dy[host[far]] + 2.5
    radius = 2.0
    assert (np.sum(_distances(tx, ty, dx, dy) < radius, axis=1) <= 1).all()

    match = match_positions(tx, ty, dx, dy, radius=radius)
    expected = reference_greedy(tx, ty, dx, dy, radius)
    _check(match, expected)
    _check(match, reference_nearest_then_closest(tx, ty, dx, dy, radius))
    assert 0 < len(match.truth) < n - far.sum() + 1
    assert not np.isin(np.flatnonzero(far), match.truth).any()


@pytest.mark.parametrize("seed", range(8))
def test_guarantees_of_the_pairing(seed):
    tx, ty, dx, dy = random_field(1000 + seed, n_truth=80, n_found=70, size=30.0)
    radius = 2.0
    d = _distances(tx, ty, dx, dy)
    match = match_positions(tx, ty, dx, dy, radius=radius)
    t, j, dist = match
    assert t.dtype == j.dtype == np.int64
    assert len(t) == len(j) == len(dist) > 0
    # one to one, sorted by truth index, true separations, all within the radius
    assert len(np.unique(t)) == len(t) and len(np.unique(j)) == len(j)
    assert (np.diff(t) > 0).all()
    np.testing.assert_allclose(dist, d[t, j], rtol=1e-12)
    assert (dist < radius).all()
    nearest = np.argmin(d, axis=1)
    matched = dict(zip(t.tolist(), j.tolist(), strict=True))
    for i in range(len(tx)):
        if i in matched:
            # a truth is only ever paired with its own nearest detection ...
            assert matched[i] == nearest[i]
            # ... and no truth claiming the same detection is closer to it
            rivals = np.flatnonzero(nearest == matched[i])
            assert d[i, matched[i]] <= d[rivals, matched[i]].min()
        elif d[i, nearest[i]] < radius:
            # an unmatched truth in reach lost its nearest detection to a closer truth (a blend)
            winner = np.flatnonzero(j == nearest[i])
            assert winner.size == 1
            assert d[t[winner[0]], nearest[i]] <= d[i, nearest[i]]
        else:
            assert d[i].min() >= radius


def test_detection_claimed_by_two_truths_goes_to_the_closer():
    # both truths have detection 0 as nearest; truth 1 is closer, truth 0 stays unmatched even
    # though detection 1 is within the radius of it (blend rule)
    match = match_positions([0.0, 1.6], [0.0, 0.0], [1.0, -1.5], [0.0, 0.0], radius=2.0)
    np.testing.assert_array_equal(match.truth, [1])
    np.testing.assert_array_equal(match.detection, [0])
    np.testing.assert_allclose(match.distance, [0.6])
    # order of the truths does not change who wins
    match = match_positions([1.6, 0.0], [0.0, 0.0], [1.0, -1.5], [0.0, 0.0], radius=2.0)
    np.testing.assert_array_equal(match.truth, [0])
    np.testing.assert_array_equal(match.detection, [0])


def test_simple_pairs_and_radius():
    tx, ty = [0.0, 10.0, 20.0], [0.0, 0.0, 0.0]
    dx, dy = [20.3, 0.1, 50.0], [0.0, 0.0, 0.0]
    match = match_positions(tx, ty, dx, dy, radius=0.5)
    np.testing.assert_array_equal(match.truth, [0, 2])
    np.testing.assert_array_equal(match.detection, [1, 0])
    np.testing.assert_allclose(match.distance, [0.1, 0.3])
    assert len(match_positions(tx, ty, dx, dy, radius=0.2).truth) == 1
    assert len(match_positions(tx, ty, dx, dy, radius=0.05).truth) == 0


@pytest.mark.parametrize(
    ("truth", "found"),
    [
        (([], []), ([1.0], [2.0])),
        (([1.0], [2.0]), ([], [])),
        (([], []), ([], [])),
    ],
)
def test_empty_inputs_give_empty_matches(truth, found):
    match = match_positions(*truth, *found, radius=1.0)
    assert isinstance(match, Match)
    for array in match:
        assert array.shape == (0,)
    assert match.truth.dtype == match.detection.dtype == np.int64


@pytest.mark.parametrize("radius", [0.0, -1.0])
def test_non_positive_radius_raises(radius):
    with pytest.raises(ValueError, match="radius must be positive"):
        match_positions([0.0], [0.0], [0.0], [0.0], radius=radius)
    with pytest.raises(ValueError, match="radius must be positive"):
        match_positions([], [], [], [], radius=radius)


def test_a_nan_radius_is_refused():
    with pytest.raises(ValueError, match="radius must be positive"):
        match_positions([0.0], [0.0], [0.0], [0.0], radius=float("nan"))


def test_separation_equal_to_the_radius_is_accepted():
    # a 3-4-5 triangle: the separation is exactly 5.0 in floating point
    match = match_positions([0.0], [0.0], [3.0], [4.0], radius=5.0)
    np.testing.assert_array_equal(match.truth, [0])
    np.testing.assert_allclose(match.distance, [5.0])
