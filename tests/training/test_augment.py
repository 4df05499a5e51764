import numpy as np
import pytest
import torch

from csst_photoz.models import dihedral
from csst_photoz.training import AugmentPlan, TrainingConfig, augment_batch, epoch_generator
from csst_photoz.training.augment import dihedral_choice, drop_bands, realise_fluxes
from csst_photoz.training.batches import Batch, epoch_batches, n_epoch_batches


def test_realisation_noise_has_the_flux_errors_as_standard_deviation():
    sigma = torch.tensor([0.5, 2.0, 30.0])
    fluxes = torch.tensor([100.0, -5.0, 1e4]).repeat(40_000, 1)
    errors = sigma.repeat(40_000, 1)
    realised = realise_fluxes(fluxes, errors, generator=epoch_generator(0, 1))
    residual = realised - fluxes
    torch.testing.assert_close(residual.std(dim=0), sigma, rtol=0.02, atol=0)
    assert torch.all(residual.mean(dim=0).abs() < 0.02 * sigma)  # 4 sigma of the mean
    correlation = np.corrcoef(residual[:, 0].numpy(), residual[:, 1].numpy())[0, 1]
    assert abs(correlation) < 0.03  # bands draw independently


def test_generators_depend_on_seed_epoch_and_rank_only():
    def draw(*args, **kwargs):
        return torch.randn(5, generator=epoch_generator(*args, **kwargs))

    torch.testing.assert_close(draw(3, 2), draw(3, 2))
    assert not torch.equal(draw(3, 2), draw(3, 3))
    assert not torch.equal(draw(3, 2), draw(4, 2))
    assert not torch.equal(draw(3, 2, rank=0), draw(3, 2, rank=1))


def test_cnn_epoch_shows_every_stamp_in_each_of_its_eight_orientations_once():
    n_galaxies, plan = 13, AugmentPlan.for_kind("cnn", TrainingConfig())
    assert (plan.copies, plan.flux_noise, plan.dihedral) == (8, False, "cycle")
    seen = []
    for index in epoch_batches(n_galaxies * plan.copies, batch_size=16, seed=0, epoch=1):
        k = dihedral_choice(index // n_galaxies, plan.dihedral, generator=epoch_generator(0, 1))
        seen += list(zip((index % n_galaxies).tolist(), k.tolist(), strict=True))
    # 104 samples in batches of 16: all are visited (the last batch has 8)
    assert sorted(seen) == [(g, k) for g in range(n_galaxies) for k in range(8)]


def test_hybrid_pairs_each_flux_realisation_with_a_random_dihedral_transform():
    plan = AugmentPlan.for_kind("hybrid", TrainingConfig(flux_realisations=50))
    assert (plan.copies, plan.flux_noise, plan.dihedral) == (50, True, "random")
    n = 800
    g = torch.Generator().manual_seed(0)
    stamps = torch.randn(n, 2, 6, 6, generator=g)
    batch = Batch(
        redshift=torch.rand(n, generator=g),
        fluxes=torch.full((n, 3), 50.0),
        flux_errors=torch.full((n, 3), 4.0),
        stamps=stamps,
    )
    out, k = augment_batch(batch, torch.arange(n) // 16, plan, generator=epoch_generator(1, 1))
    for value in range(8):  # each stamp carries exactly the transform reported for it
        rows = k == value
        torch.testing.assert_close(out.stamps[rows], dihedral(stamps[rows], value))
    counts = torch.bincount(k, minlength=8).numpy()
    assert counts.min() > 60 and counts.max() < 140  # uniform: 100 +- 3 sigma
    noise = (out.fluxes - batch.fluxes)[:, 0].numpy()
    assert abs(np.std(noise) / 4.0 - 1) < 0.1
    assert abs(np.corrcoef(noise, k.numpy())[0, 1]) < 0.15  # transform independent of noise
    torch.testing.assert_close(out.redshift, batch.redshift)
    torch.testing.assert_close(out.flux_errors, batch.flux_errors)


def test_augmentation_is_reproducible_from_the_generator_seed():
    batch = Batch(redshift=torch.zeros(20), fluxes=torch.ones(20, 2), flux_errors=torch.ones(20, 2),
                  stamps=torch.randn(20, 2, 4, 4))  # fmt: skip
    plan = AugmentPlan(copies=3, flux_noise=True, dihedral="random")
    first = augment_batch(batch, torch.zeros(20, dtype=torch.long), plan,
                          generator=epoch_generator(5, 2))  # fmt: skip
    second = augment_batch(batch, torch.zeros(20, dtype=torch.long), plan,
                           generator=epoch_generator(5, 2))  # fmt: skip
    torch.testing.assert_close(first[0].fluxes, second[0].fluxes)
    torch.testing.assert_close(first[1], second[1])


def test_mlp_plan_touches_only_fluxes_and_cnn_plan_only_stamps():
    config = TrainingConfig()
    batch = Batch(redshift=torch.zeros(4), fluxes=torch.ones(4, 2), flux_errors=torch.ones(4, 2),
                  stamps=torch.randn(4, 2, 4, 4))  # fmt: skip
    mlp, k = augment_batch(batch, torch.arange(4), AugmentPlan.for_kind("mlp", config),
                           generator=epoch_generator(0, 1))  # fmt: skip
    assert k is None and torch.equal(mlp.stamps, batch.stamps)
    assert not torch.equal(mlp.fluxes, batch.fluxes)
    cnn, k = augment_batch(batch, torch.arange(4), AugmentPlan.for_kind("cnn", config),
                           generator=epoch_generator(0, 1))  # fmt: skip
    assert k.tolist() == [0, 1, 2, 3] and torch.equal(cnn.fluxes, batch.fluxes)
    assert AugmentPlan.for_kind("hybrid-transfer", config) == AugmentPlan.for_kind("hybrid", config)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_epoch_batches_share_an_epoch_evenly_and_reshuffle_per_epoch(world_size):
    n, batch_size = 101, 8
    shares = [
        torch.cat(list(epoch_batches(n, batch_size=batch_size, seed=2, epoch=1, rank=r,
                                     world_size=world_size)))
        for r in range(world_size)
    ]  # fmt: skip
    assert len({s.numel() for s in shares}) == 1  # equal steps on every process
    assert set(torch.cat(shares).tolist()) == set(range(n))
    batches = list(epoch_batches(n, batch_size=batch_size, seed=2, epoch=1, world_size=world_size))
    assert len(batches) == n_epoch_batches(n, batch_size=batch_size, world_size=world_size)
    again = torch.cat(list(epoch_batches(n, batch_size=batch_size, seed=2, epoch=1,
                                         world_size=world_size)))  # fmt: skip
    later = torch.cat(list(epoch_batches(n, batch_size=batch_size, seed=2, epoch=2,
                                         world_size=world_size)))  # fmt: skip
    assert torch.equal(shares[0], again) and not torch.equal(shares[0], later)


def test_a_final_batch_of_one_sample_is_dropped():
    batches = list(epoch_batches(17, batch_size=8, seed=0, epoch=0))
    assert [b.numel() for b in batches] == [8, 8]
    assert n_epoch_batches(17, batch_size=8) == 2


def test_missing_bands_stay_missing_under_the_flux_noise():
    fluxes = torch.tensor([[np.nan, 0.0, 0.0, 5.0, 100.0]]).repeat(1000, 1)
    errors = torch.tensor([[1.0, 0.0, 2.0, -1.0, 3.0]]).repeat(1000, 1)
    realised = realise_fluxes(fluxes, errors, generator=epoch_generator(0, 1))
    assert torch.isnan(realised[:, 0]).all()  # NaN flux
    assert (realised[:, 1] == 0).all()  # 0 flux with a 0 error (missing) stays exactly 0
    assert (realised[:, 3] == 5).all()  # a negative (sentinel) error: untouched
    assert realised[:, 2].std() > 1.5 and realised[:, 4].std() > 2.5  # present bands: noise


def test_band_dropout_removes_present_bands_at_the_given_rate_and_keeps_one():
    n = 20_000
    fluxes = torch.full((n, 4), 50.0)
    fluxes[:, 0] = np.nan  # already missing: never counted
    errors = torch.ones(n, 4)
    dropped = drop_bands(fluxes, errors, 0.3, generator=epoch_generator(0, 1))
    removed = torch.isnan(dropped[:, 1:])
    assert removed.float().mean().item() == pytest.approx(0.3 * (1 - 0.3**2), abs=0.01)
    assert (~removed).any(dim=1).all()  # every row keeps a present band
    assert torch.equal(drop_bands(fluxes, errors, 0.0, generator=epoch_generator(0, 1))[:, 1:],
                       fluxes[:, 1:])  # fmt: skip
    with pytest.raises(ValueError, match="band_dropout"):
        AugmentPlan(2, flux_noise=True, dihedral="none", band_dropout=1.0)


def test_the_plan_drops_bands_after_the_noise():
    fluxes, errors = torch.full((500, 3), 100.0), torch.ones(500, 3)
    batch = Batch(redshift=torch.zeros(500), fluxes=fluxes, flux_errors=errors)
    plan = AugmentPlan(1, flux_noise=True, dihedral="none", band_dropout=0.2)
    out, _ = augment_batch(batch, torch.zeros(500, dtype=torch.long), plan,
                           generator=epoch_generator(0, 1))  # fmt: skip
    assert 0.1 < torch.isnan(out.fluxes).float().mean().item() < 0.3
    present = out.fluxes[~torch.isnan(out.fluxes)]
    assert present.std() > 0.5  # the remaining bands were realised
