"""One recipe per network kind: what it reads, how it augments, its schedule, its untrained model.

A `Recipe` is everything the training code needs to know about a network kind; nothing else in
:mod:`csst_photoz.training` tests the kind's name. `recipe` looks one up by name (`KINDS`):

* ``mlp``: fluxes; ``flux_realisations`` noisy flux draws of each galaxy per epoch;
  ``[training.mlp]`` schedule;
* ``cnn``: stamps; ``dihedral_copies`` copies per epoch, copy ``c`` rotated/flipped by
  transform ``c``; ``[training.cnn]``;
* ``hybrid``: fluxes and stamps; flux draws, each paired with a random rotation/flip;
  ``[training.hybrid]``;
* ``hybrid-transfer``: as ``hybrid``, starting from a trained MLP and CNN.

The untrained networks come from :func:`.build.build_model` (the hybrid transfer starts from the
MLP and CNN checkpoints named in the configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .config import Schedule, ScheduleName, TrainingConfig

if TYPE_CHECKING:  # the recipes themselves load without torch (``csst-photoz --help``)
    import numpy.typing as npt

    from ..models import PhotoZModel
    from .augment import AugmentPlan, DihedralMode
    from .data import TrainingSet
    from .split import Split

__all__ = [
    "CNN_RECIPE",
    "HYBRID_RECIPE",
    "HYBRID_TRANSFER_RECIPE",
    "KINDS",
    "MLP_RECIPE",
    "Recipe",
    "recipe",
]


@dataclass(frozen=True)
class Recipe:
    """How one network kind is trained.

    Attributes
    ----------
    name
        The kind's name (``csst-photoz train <name>``; recorded in checkpoints and states).
    reads_fluxes, reads_stamps
        Which inputs the network reads (fluxes come with their errors). They decide the
        architecture: fluxes alone an MLP, stamps alone a CNN, both a hybrid.
    pretrained
        The network starts from the trained MLP and CNN named in the configuration
        (``mlp_checkpoint``, ``cnn_checkpoint``) with the paper's layers frozen, instead of
        from seeded random weights.
    flux_noise
        Each training sample draws a flux realisation ``F + N(0, sigma_F)``.
    dihedral
        Rotations/flips of the stamps: ``"none"``, ``"cycle"`` (copy ``c`` gets transform
        ``c % 8``) or ``"random"``.
    copies_setting
        The `TrainingConfig` field that gives the augmented copies of a galaxy per epoch.
    schedule_name
        The `TrainingConfig` schedule that applies (``mlp``, ``cnn`` or ``hybrid``).
    """

    name: str
    reads_fluxes: bool
    reads_stamps: bool
    pretrained: bool
    flux_noise: bool
    dihedral: DihedralMode
    copies_setting: Literal["flux_realisations", "dihedral_copies"]
    schedule_name: ScheduleName

    def schedule(self, config: TrainingConfig) -> Schedule:
        """The network's epoch budget and schedule under ``config``."""
        return config.schedule(self.schedule_name)

    def augmentation(self, config: TrainingConfig) -> AugmentPlan:
        """The network's augmentation, with the copies per epoch from ``config``.

        ``config.augment = False``: one unperturbed copy of each galaxy per epoch.
        """
        from .augment import AugmentPlan

        if not config.augment:
            return AugmentPlan(1, flux_noise=False, dihedral="none")
        copies = int(getattr(config, self.copies_setting))
        return AugmentPlan(copies, flux_noise=self.flux_noise, dihedral=self.dihedral)

    def build(
        self, dataset: TrainingSet, train: npt.ArrayLike, config: TrainingConfig, split: Split
    ) -> PhotoZModel:
        """The untrained network for ``dataset``, on the CPU (:func:`.build.build_model`).

        Parameters
        ----------
        dataset
            The training set.
        train
            Positions of the training rows in ``dataset`` (for the fitted input statistics).
        config
            Training configuration; its seed fixes the initial weights.
        split
            The run's split (a pretrained start checks its checkpoints against it).

        Returns
        -------
        PhotoZModel
        """
        from .build import build_model

        return build_model(self, dataset, train, config, split)


MLP_RECIPE = Recipe(
    name="mlp", reads_fluxes=True, reads_stamps=False, pretrained=False, flux_noise=True,
    dihedral="none", copies_setting="flux_realisations", schedule_name="mlp",
)  # fmt: skip
CNN_RECIPE = Recipe(
    name="cnn", reads_fluxes=False, reads_stamps=True, pretrained=False, flux_noise=False,
    dihedral="cycle", copies_setting="dihedral_copies", schedule_name="cnn",
)  # fmt: skip
HYBRID_RECIPE = Recipe(
    name="hybrid", reads_fluxes=True, reads_stamps=True, pretrained=False, flux_noise=True,
    dihedral="random", copies_setting="flux_realisations", schedule_name="hybrid",
)  # fmt: skip
HYBRID_TRANSFER_RECIPE = Recipe(
    name="hybrid-transfer", reads_fluxes=True, reads_stamps=True, pretrained=True,
    flux_noise=True, dihedral="random", copies_setting="flux_realisations",
    schedule_name="hybrid",
)  # fmt: skip

_RECIPES = {r.name: r for r in (MLP_RECIPE, CNN_RECIPE, HYBRID_RECIPE, HYBRID_TRANSFER_RECIPE)}
#: The networks `~csst_photoz.training.train_model` trains, by name.
KINDS: tuple[str, ...] = tuple(_RECIPES)


def recipe(kind: str | Recipe) -> Recipe:
    """The recipe of network ``kind`` (a `Recipe` is returned as it is).

    Raises
    ------
    ValueError
        For an unknown name; the message lists `KINDS`.
    """
    if isinstance(kind, Recipe):
        return kind
    found = _RECIPES.get(kind)
    if found is None:
        raise ValueError(f"unknown network {kind!r}; choose one of {list(KINDS)}")
    return found
