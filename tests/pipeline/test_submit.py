"""The bounded submission helper: window, keys, failures, retries, release, cancellation."""

import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from csst_photoz.pipeline.submit import default_window, submit_bounded, task_per_item


@pytest.fixture(scope="module")
def client():
    """Two single-threaded in-process workers (fast to start; tasks need not pickle)."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def square(x: int) -> int:
    return x * x


def square_unless_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def fail_once(x: int, *, marks: str) -> int:
    mark = Path(marks) / f"{x}.tried"
    if not mark.exists():
        mark.touch()
        raise OSError(f"first try of {x}")
    return x


def slow(x: int) -> int:
    time.sleep(0.05)
    return x


def released(client, prefix: str) -> bool:
    """Whether the client holds no future keyed ``prefix...`` (releases reach it on its loop)."""
    for _ in range(100):
        if not any(key.startswith(prefix) for key in client.futures):
            return True
        time.sleep(0.05)
    return False


def test_every_item_comes_back_once_with_its_result(client):
    submit = task_per_item(client, square, key=lambda x: f"square-{x}")
    outcomes = list(submit_bounded(client, range(20), submit, window=3))
    assert sorted(o.item for o in outcomes) == list(range(20))
    assert all(o.result == o.item**2 and not o.failed for o in outcomes)


def test_items_in_flight_never_exceed_the_window(client):
    window, taken, submitted, seen = 3, [], [], []

    def items():
        for x in range(25):
            taken.append(x)
            yield x

    one_task = task_per_item(client, slow, key=lambda x: f"slow-{x}")

    def submit(x: int):
        submitted.append(x)
        assert len(submitted) - len(seen) <= window  # in the graph, this one included
        return one_task(x)

    for outcome in submit_bounded(client, items(), submit, window=window):
        seen.append(outcome.item)
        assert len(taken) - len(seen) <= window - 1  # one slot just freed, not yet refilled
    assert sorted(seen) == list(range(25))


def test_keys_are_the_callers_deterministic_keys(client):
    submit = task_per_item(client, square, key=lambda x: f"square-{x}")
    first = {o.item: o.key for o in submit_bounded(client, range(6), submit, window=2)}
    again = {o.item: o.key for o in submit_bounded(client, range(6), submit, window=4)}
    assert first == again == {x: f"square-{x}" for x in range(6)}


def test_a_failed_item_comes_back_with_its_exception_and_the_others_complete(client):
    submit = task_per_item(client, square_unless_three, key=lambda x: f"sq3-{x}")
    outcomes = {o.item: o for o in submit_bounded(client, range(6), submit, window=2)}
    assert outcomes[3].failed and isinstance(outcomes[3].error, ValueError)
    assert "three is bad" in str(outcomes[3].error) and outcomes[3].result is None
    assert {x: o.result for x, o in outcomes.items() if x != 3} == {
        x: x * x for x in (0, 1, 2, 4, 5)
    }


def test_retries_apply_to_the_submitted_tasks(client, tmp_path):
    submit = task_per_item(client, fail_once, key=lambda x: f"once-{x}", marks=str(tmp_path))
    outcomes = list(submit_bounded(client, range(4), submit, window=2, retries=1))
    assert sorted(o.result for o in outcomes) == [0, 1, 2, 3]
    without = tmp_path / "without"
    without.mkdir()
    submit = task_per_item(client, fail_once, key=lambda x: f"twice-{x}", marks=str(without))
    outcomes = list(submit_bounded(client, range(4), submit, window=2))
    assert all(isinstance(o.error, OSError) for o in outcomes)


def test_a_chain_of_tasks_per_item_returns_its_last_result(client):
    def submit(x: int):
        first = client.submit(square, x, key=f"chain-first-{x}", pure=False)
        return client.submit(square, first, key=f"chain-last-{x}", pure=False)

    outcomes = list(submit_bounded(client, range(5), submit, window=2))
    assert {o.item: (o.key, o.result) for o in outcomes} == {
        x: (f"chain-last-{x}", x**4) for x in range(5)
    }


def test_futures_are_released_as_they_complete(client):
    submit = task_per_item(client, square, key=lambda x: f"release-{x}")
    for _ in submit_bounded(client, range(10), submit, window=2):
        pass
    assert released(client, "release-")


def test_raising_in_the_callers_loop_cancels_the_futures_in_flight(client):
    submitted = []
    one_task = task_per_item(client, slow, key=lambda x: f"stop-{x}")

    def submit(x: int):
        submitted.append(x)
        return one_task(x)

    with pytest.raises(RuntimeError, match=r"item [0-3] failed"):
        for outcome in submit_bounded(client, range(50), submit, window=4):
            raise RuntimeError(f"item {outcome.item} failed")
    assert submitted == [0, 1, 2, 3]
    assert released(client, "stop-")


def test_a_keyboard_interrupt_cancels_the_futures_in_flight_and_propagates(client):
    one_task = task_per_item(client, slow, key=lambda x: f"interrupt-{x}")
    futures = {}

    def submit(x: int):
        if x == 5:  # while the helper refills its window, as a Ctrl-C would arrive
            raise KeyboardInterrupt
        futures[x] = one_task(x)
        return futures[x]

    seen = []
    with pytest.raises(KeyboardInterrupt):
        for outcome in submit_bounded(client, range(50), submit, window=4):
            seen.append(outcome.item)
    assert len(seen) == 2  # 0..3 in flight; the second refill (item 5) was interrupted
    assert {futures[x].status for x in futures if x not in seen} == {"cancelled"}
    futures.clear()
    assert released(client, "interrupt-")


def test_the_window_defaults_to_twice_the_threads_and_must_be_positive(client):
    assert default_window(client) == 4
    submit = task_per_item(client, square, key=lambda x: f"bad-{x}")
    with pytest.raises(ValueError, match="window must be >= 1"):
        list(submit_bounded(client, range(3), submit, window=0))


def test_two_items_with_one_key_are_refused(client):
    submit = task_per_item(client, slow, key=lambda x: "same-key")
    with pytest.raises(ValueError, match="one task key 'same-key'"):
        list(submit_bounded(client, range(3), submit, window=3))
