"""limit_threads caps torch and the BLAS pools inside the block and restores them after."""

import pytest
import torch
from threadpoolctl import threadpool_info

from csst_photoz.threads import limit_threads


def test_torch_and_blas_are_capped_inside_and_restored_after():
    torch_before = torch.get_num_threads()
    blas_before = [pool["num_threads"] for pool in threadpool_info()]
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == torch_before
    assert [pool["num_threads"] for pool in threadpool_info()] == blas_before


def test_none_changes_nothing_and_zero_is_refused():
    before = torch.get_num_threads()
    with limit_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads must be >= 1"), limit_threads(0):
        pass


def test_limits_are_restored_when_the_block_raises():
    before = torch.get_num_threads()
    with pytest.raises(KeyError), limit_threads(1):
        raise KeyError("boom")
    assert torch.get_num_threads() == before
