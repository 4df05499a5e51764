import itertools

import numpy as np
import pytest
import torch

from csst_photoz.models import StampTransform, dihedral, fit_stamp_size, random_dihedral
from csst_photoz.models.stamp_transform import FAST_ASINH_LIMIT, N_DIHEDRAL, fast_asinh


def test_centre_crop_keeps_the_central_pixels():
    stamps = torch.arange(2 * 3 * 40 * 44, dtype=torch.float32).reshape(2, 3, 40, 44)
    out = fit_stamp_size(stamps, torch.ones(3), size=32)
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out, stamps[:, :, 4:36, 6:38])


def test_padding_adds_noise_at_the_band_rms_and_keeps_the_stamp():
    rms = torch.tensor([1.0, 5.0, 20.0])
    stamps = torch.full((200, 3, 16, 16), 7.0)
    out = fit_stamp_size(stamps, rms, size=32, generator=torch.Generator().manual_seed(0))
    assert out.shape == (200, 3, 32, 32)
    torch.testing.assert_close(out[:, :, 8:24, 8:24], stamps)
    border = out.clone()
    border[:, :, 8:24, 8:24] = float("nan")
    for band in range(3):
        values = border[:, band][~torch.isnan(border[:, band])]
        assert values.numel() == 200 * (32 * 32 - 16 * 16)
        assert abs(values.mean().item()) < 0.01 * rms[band]
        assert values.std().item() == pytest.approx(rms[band].item(), rel=0.01)


def test_mixed_axes_crop_one_pad_the_other():
    out = fit_stamp_size(torch.ones(1, 1, 40, 20), torch.ones(1), size=32)
    assert out.shape == (1, 1, 32, 32)
    torch.testing.assert_close(out[:, :, :, 6:26], torch.ones(1, 1, 32, 20))


def test_padding_is_deterministic_with_a_seed():
    transform = StampTransform([3.0, 4.0], scaling="none", seed=5)
    stamps = torch.zeros(4, 2, 20, 20)
    first, second = transform(stamps), transform(stamps)
    torch.testing.assert_close(first, second)
    other = transform(stamps, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(first, other)
    again = transform(stamps, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(other, again)


def test_asinh_scaling_uses_the_background_rms_by_default():
    stamps = torch.randn(2, 2, 32, 32) * 100
    transform = StampTransform([2.0, 4.0])
    expected = torch.asinh(stamps / torch.tensor([2.0, 4.0]).view(1, 2, 1, 1))
    torch.testing.assert_close(transform(stamps), expected)
    raw = StampTransform([2.0, 4.0], scaling="none")
    torch.testing.assert_close(raw(stamps), stamps)
    assert transform.state_dict() == {}  # constants live in the configuration


def test_stamp_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="scaling"):
        StampTransform([1.0], scaling="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bands"):
        StampTransform([1.0, 2.0])(torch.zeros(1, 3, 32, 32))


def test_dihedral_transforms_form_a_group_of_eight():
    x = torch.randn(1, 1, 5, 5)  # generic: no symmetry
    images = [dihedral(x, k) for k in range(N_DIHEDRAL)]
    assert all(not torch.equal(a, b) for a, b in itertools.combinations(images, 2))
    torch.testing.assert_close(images[0], x)
    # closure: the composition of any two transforms is one of the eight
    for a, b in itertools.product(range(N_DIHEDRAL), repeat=2):
        composed = dihedral(dihedral(x, a), b)
        assert sum(torch.equal(composed, image) for image in images) == 1
    # every transform has an inverse among them
    for a in range(N_DIHEDRAL):
        assert any(torch.equal(dihedral(dihedral(x, a), b), x) for b in range(N_DIHEDRAL))


def test_per_stamp_dihedral_matches_single_transforms():
    x = torch.randn(16, 3, 8, 8)
    k = torch.arange(16) % N_DIHEDRAL
    out = dihedral(x, k)
    for i in range(16):
        torch.testing.assert_close(out[i], dihedral(x[i], int(k[i])))
    shuffled = random_dihedral(x, generator=torch.Generator().manual_seed(0))
    assert shuffled.shape == x.shape
    with pytest.raises(ValueError, match=r"0\.\.7"):
        dihedral(x, 8)


def test_fast_asinh_matches_float64_asinh_over_the_dynamic_range():
    generator = torch.Generator().manual_seed(20261125)
    magnitude = 10.0 ** (torch.rand(200_000, generator=generator) * 74 - 37)  # 1e-37 .. 1e37
    sign = torch.where(torch.rand(200_000, generator=generator) < 0.5, -1.0, 1.0)
    values = (magnitude * sign).float()
    reference = np.arcsinh(values.double().numpy())
    result = fast_asinh(values)
    assert result.dtype == torch.float32
    np.testing.assert_allclose(result.double().numpy(), reference, rtol=2.5e-7, atol=0)  # 2 ulp


def test_fast_asinh_special_values():
    values = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 3e38])
    result = fast_asinh(values)
    assert torch.equal(torch.signbit(result[:2]), torch.tensor([False, True]))
    assert torch.equal(result[:2], torch.zeros(2))
    assert torch.isnan(result[2])
    limit = float(np.arcsinh(np.float32(FAST_ASINH_LIMIT)))
    np.testing.assert_allclose(result[3:].numpy(), [limit, -limit, limit], rtol=1e-6)
