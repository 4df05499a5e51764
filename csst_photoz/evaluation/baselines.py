"""Classical machine-learning baselines on the MLP's flux features (scikit-learn).

Both baselines see exactly what the paper's MLP sees: the ``3N - 1`` signed-log features of
`csst_photoz.models.features` (20 for CSST's seven bands) computed from fluxes, flux errors and
per-band limiting fluxes (given, or estimated from the training errors as the MLP does), so the
results table measures what the networks add over off-the-shelf regressors.

* `KNNBaseline`: k nearest neighbours in the standardised feature space; the redshift is the
  mean of the neighbours' redshifts, the raw ``sigma`` their standard deviation.
* `GradientBoostingBaseline`: `sklearn.ensemble.HistGradientBoostingRegressor` with the
  absolute-error loss (the networks' MAE: it estimates the median), and two quantile models at
  16% and 84% whose half-distance is the raw ``sigma``.

Uncertainty recalibration
-------------------------
Raw spreads are not calibrated (neighbour spreads are too wide, in-sample quantiles too
narrow). With ``recalibrate=True`` (default) each baseline multiplies its raw ``sigma`` by one
factor, chosen so that 68.27% of *held-out* training galaxies lie within ``±sigma``: for the
k-NN the leave-one-out predictions of the training set (free), for the gradient boosting a
model fitted on a random 80% of the training set and evaluated on the other 20% before the
final fit on all of it (twice the cost). ``sigma`` is at least ``min_sigma``.

Rows with a NaN feature (a missing flux) are dropped from training and predicted as NaN, as the
networks' NaN inputs propagate. ``n_threads`` caps the OpenMP/BLAS threads during fitting and
prediction (on a busy machine, spinning OpenMP threads can make gradient boosting many times
slower than one thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from ..metrics import coverage_scale

__all__ = [
    "BASELINES",
    "GradientBoostingBaseline",
    "KNNBaseline",
    "baseline_features",
    "fit_predict_baselines",
]

_DEFAULT_MIN_SIGMA = 1e-3


def _as_flux_arrays(
    fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    flux = np.asarray(fluxes, dtype=np.float64)
    error = np.asarray(flux_errors, dtype=np.float64)
    if flux.ndim != 2 or flux.shape != error.shape:
        raise ValueError(
            "fluxes and flux_errors must both be (n_galaxies, n_bands), got shapes "
            f"{flux.shape} and {error.shape}"
        )
    return flux, error


def baseline_features(
    fluxes: npt.ArrayLike,
    flux_errors: npt.ArrayLike,
    limiting_flux: npt.ArrayLike,
    *,
    floor: float | None = None,
) -> np.ndarray:
    """The MLP's ``3N - 1`` signed-log features as a NumPy array (not standardised).

    Parameters
    ----------
    fluxes, flux_errors : array_like
        (n, N) fluxes and 1-sigma errors, bands in a fixed order, any one unit.
    limiting_flux : array_like
        (N,) limiting flux per band, same unit, positive and finite.
    floor : float, optional
        Clipping floor of the signed log; default that of `csst_photoz.models.features`.

    Returns
    -------
    numpy.ndarray
        (n, 3N - 1) float64 features; a row is NaN where its inputs are.

    """
    import torch

    from csst_photoz.models.features import DEFAULT_LOG_FLOOR, flux_features

    flux, error = _as_flux_arrays(fluxes, flux_errors)
    limits = np.asarray(limiting_flux, dtype=np.float64)
    if limits.shape != (flux.shape[1],) or not np.all(np.isfinite(limits) & (limits > 0)):
        raise ValueError(
            f"limiting_flux must be {flux.shape[1]} positive finite values, got {limits.tolist()}"
        )
    features = flux_features(
        torch.from_numpy(flux),
        torch.from_numpy(error),
        torch.from_numpy(limits),
        floor=DEFAULT_LOG_FLOOR if floor is None else floor,
    )
    return features.numpy()


def _coverage_scale(residual: np.ndarray, sigma: np.ndarray) -> float:
    """Factor on ``sigma`` that puts 68.27% of ``|residual|`` within ``±sigma`` (1 if none)."""
    try:
        return coverage_scale(np.zeros_like(residual), residual, sigma)
    except ValueError:  # nothing usable, or all residuals zero: leave sigma as it is
        return 1.0


class _FluxBaseline:
    """Features, limiting fluxes, NaN rows, threads and recalibration shared by the baselines."""

    name = "baseline"

    def __init__(
        self,
        *,
        limiting_flux: Sequence[float] | None = None,
        recalibrate: bool = True,
        min_sigma: float = _DEFAULT_MIN_SIGMA,
        n_threads: int | None = None,
    ) -> None:
        if not min_sigma > 0:
            raise ValueError(f"min_sigma must be > 0, got {min_sigma!r}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
        if limiting_flux is not None:
            limiting_flux = np.asarray(limiting_flux, dtype=np.float64)
            if limiting_flux.ndim != 1 or not np.all(
                np.isfinite(limiting_flux) & (limiting_flux > 0)
            ):
                raise ValueError(
                    f"limiting_flux must be a 1-D sequence of positive finite values, got "
                    f"{limiting_flux.tolist()}"
                )
        self.limiting_flux = limiting_flux
        self.recalibrate = bool(recalibrate)
        self.min_sigma = float(min_sigma)
        self.n_threads = n_threads
        self.limiting_flux_: np.ndarray | None = None
        self.sigma_scale_ = 1.0

    def _threads(self) -> AbstractContextManager[Any]:
        if self.n_threads is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads)

    def _features(self, fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike) -> np.ndarray:
        if self.limiting_flux_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        flux, error = _as_flux_arrays(fluxes, flux_errors)
        if flux.shape[1] != self.limiting_flux_.size:
            raise ValueError(
                f"fitted on {self.limiting_flux_.size} bands, got fluxes in {flux.shape[1]}"
            )
        return baseline_features(flux, error, self.limiting_flux_)

    def _fit_rows(self, features: np.ndarray, z: np.ndarray) -> None:
        raise NotImplementedError  # pragma: no cover - every baseline overrides it

    def _predict_rows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover - every baseline overrides it

    def fit(
        self, fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike, redshift: npt.ArrayLike
    ) -> Self:
        """Fit on a training set (rows with a NaN feature or redshift are dropped).

        Parameters
        ----------
        fluxes, flux_errors : array_like
            (n, N) training fluxes and errors.
        redshift : array_like
            (n,) true redshifts.

        Returns
        -------
        Self
            ``self``, fitted; ``limiting_flux_`` and ``sigma_scale_`` are set.

        """
        from csst_photoz.models.features import estimate_limiting_flux

        flux, error = _as_flux_arrays(fluxes, flux_errors)
        z = np.asarray(redshift, dtype=np.float64)
        if z.shape != (flux.shape[0],):
            raise ValueError(f"redshift must have shape ({flux.shape[0]},), got {z.shape}")
        if self.limiting_flux is not None and self.limiting_flux.size != flux.shape[1]:
            raise ValueError(
                f"limiting_flux has {self.limiting_flux.size} values for {flux.shape[1]} bands"
            )
        self.limiting_flux_ = (
            estimate_limiting_flux(error) if self.limiting_flux is None else self.limiting_flux
        )
        features = self._features(flux, error)
        usable = np.isfinite(features).all(axis=1) & np.isfinite(z)
        self.sigma_scale_ = 1.0
        with self._threads():
            self._fit_rows(features[usable], z[usable])
        return self

    def predict(
        self, fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Redshift and 1-sigma uncertainty of each galaxy.

        Parameters
        ----------
        fluxes, flux_errors : array_like
            (n, N) fluxes and errors in the bands and unit of the training set.

        Returns
        -------
        z, sigma : numpy.ndarray
            (n,) point estimates and uncertainties (``>= min_sigma``); NaN for rows with a NaN
            feature.

        """
        features = self._features(fluxes, flux_errors)
        z = np.full(features.shape[0], np.nan)
        sigma = np.full(features.shape[0], np.nan)
        usable = np.isfinite(features).all(axis=1)
        if usable.any():
            with self._threads():
                z[usable], raw_sigma = self._predict_rows(features[usable])
            sigma[usable] = np.maximum(self.sigma_scale_ * raw_sigma, self.min_sigma)
        return z, sigma


class KNNBaseline(_FluxBaseline):
    """k-nearest-neighbour regression on the standardised MLP features.

    Parameters
    ----------
    n_neighbors : int, optional
        Neighbours per prediction, >= 2. Default 20.
    limiting_flux : sequence of float, optional
        Per-band limiting flux; default: estimated from the training errors
        (`csst_photoz.models.features.estimate_limiting_flux`).
    recalibrate : bool, optional
        Scale ``sigma`` to 68.27% leave-one-out coverage (module docstring). Default True.
    min_sigma : float, optional
        Floor of the uncertainty. Default 1e-3.
    n_threads : int, optional
        Cap on the worker threads; default no cap.

    """

    name = "knn"

    def __init__(
        self,
        *,
        n_neighbors: int = 20,
        limiting_flux: Sequence[float] | None = None,
        recalibrate: bool = True,
        min_sigma: float = _DEFAULT_MIN_SIGMA,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            limiting_flux=limiting_flux,
            recalibrate=recalibrate,
            min_sigma=min_sigma,
            n_threads=n_threads,
        )
        if isinstance(n_neighbors, bool) or int(n_neighbors) != n_neighbors or n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
        self.n_neighbors = int(n_neighbors)

    def _fit_rows(self, features: np.ndarray, z: np.ndarray) -> None:
        from sklearn.neighbors import NearestNeighbors
        from sklearn.preprocessing import StandardScaler

        if z.size <= self.n_neighbors:
            raise ValueError(
                f"{z.size} usable training rows; need more than n_neighbors = {self.n_neighbors}"
            )
        self.scaler_ = StandardScaler().fit(features)
        scaled = self.scaler_.transform(features)
        self.index_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(scaled)
        self.redshift_ = z
        if self.recalibrate:
            # leave-one-out: the k neighbours of each training galaxy other than itself
            _, neighbours = self.index_.kneighbors(n_neighbors=self.n_neighbors)
            loo_z, loo_sigma = self._summarise(neighbours)
            self.sigma_scale_ = _coverage_scale(loo_z - z, np.maximum(loo_sigma, self.min_sigma))

    def _summarise(self, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.redshift_[neighbours]
        return z.mean(axis=1), np.std(z, axis=1, ddof=1)

    def _predict_rows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, neighbours = self.index_.kneighbors(self.scaler_.transform(features))
        return self._summarise(neighbours)


class GradientBoostingBaseline(_FluxBaseline):
    """Histogram gradient boosting on the MLP features, with 16%/84% quantile models for sigma.

    Parameters
    ----------
    max_iter : int, optional
        Boosting iterations per model (early stopping on a 10% validation split may stop
        sooner). Default 300.
    learning_rate : float, optional
        Default 0.1.
    max_leaf_nodes : int, optional
        Default 31.
    seed : int, optional
        Random state of the validation and recalibration splits. Default 0.
    limiting_flux : sequence of float, optional
        As for `KNNBaseline`.
    recalibrate : bool, optional
        Scale ``sigma`` to 68.27% coverage on a held-out 20% (module docstring). Default True.
    min_sigma : float, optional
        Floor of the uncertainty. Default 1e-3.
    n_threads : int, optional
        Cap on the OpenMP threads; default no cap.

    """

    name = "gbr"
    _QUANTILES = (0.16, 0.84)
    _HELD_OUT = 0.2

    def __init__(
        self,
        *,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        seed: int = 0,
        limiting_flux: Sequence[float] | None = None,
        recalibrate: bool = True,
        min_sigma: float = _DEFAULT_MIN_SIGMA,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            limiting_flux=limiting_flux,
            recalibrate=recalibrate,
            min_sigma=min_sigma,
            n_threads=n_threads,
        )
        if max_iter < 1 or not learning_rate > 0 or max_leaf_nodes < 2:
            raise ValueError(
                "need max_iter >= 1, learning_rate > 0 and max_leaf_nodes >= 2, got "
                f"{max_iter!r}, {learning_rate!r}, {max_leaf_nodes!r}"
            )
        self.max_iter = int(max_iter)
        self.learning_rate = float(learning_rate)
        self.max_leaf_nodes = int(max_leaf_nodes)
        self.seed = int(seed)

    def _fit_models(self, features: np.ndarray, z: np.ndarray) -> tuple[Any, Any, Any]:
        from sklearn.ensemble import HistGradientBoostingRegressor

        common = {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "early_stopping": True,
            "validation_fraction": 0.1,
            "n_iter_no_change": 20,
            "random_state": self.seed,
        }
        median = HistGradientBoostingRegressor(loss="absolute_error", **common).fit(features, z)
        low, high = (
            HistGradientBoostingRegressor(loss="quantile", quantile=q, **common).fit(features, z)
            for q in self._QUANTILES
        )
        return median, low, high

    @staticmethod
    def _apply(models: tuple[Any, Any, Any], features: np.ndarray) -> tuple[np.ndarray, ...]:
        median, low, high = (model.predict(features) for model in models)
        return median, 0.5 * np.abs(high - low)

    def _fit_rows(self, features: np.ndarray, z: np.ndarray) -> None:
        if z.size < 10:
            raise ValueError(f"{z.size} usable training rows; need at least 10")
        if self.recalibrate:
            order = np.random.default_rng(self.seed).permutation(z.size)
            n_held = max(1, round(self._HELD_OUT * z.size))
            held, kept = order[:n_held], order[n_held:]
            partial = self._fit_models(features[kept], z[kept])
            z_held, sigma_held = self._apply(partial, features[held])
            self.sigma_scale_ = _coverage_scale(
                z_held - z[held], np.maximum(sigma_held, self.min_sigma)
            )
        self.models_ = self._fit_models(features, z)

    def _predict_rows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z, sigma = self._apply(self.models_, features)
        return z, sigma


#: The baselines by name, as `fit_predict_baselines` knows them.
BASELINES: dict[str, type[KNNBaseline] | type[GradientBoostingBaseline]] = {
    KNNBaseline.name: KNNBaseline,
    GradientBoostingBaseline.name: GradientBoostingBaseline,
}


def fit_predict_baselines(
    train_fluxes: npt.ArrayLike,
    train_flux_errors: npt.ArrayLike,
    train_redshift: npt.ArrayLike,
    test_fluxes: npt.ArrayLike,
    test_flux_errors: npt.ArrayLike,
    *,
    names: Sequence[str] = ("knn", "gbr"),
    limiting_flux: Sequence[float] | None = None,
    seed: int = 0,
    n_threads: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fit each baseline (default settings) on the training set and predict the test set.

    Parameters
    ----------
    train_fluxes, train_flux_errors : array_like
        (n_train, N) training fluxes and errors.
    train_redshift : array_like
        (n_train,) training redshifts.
    test_fluxes, test_flux_errors : array_like
        (n_test, N) test fluxes and errors (same bands and unit).
    names : sequence of str, optional
        Baselines to run, keys of `BASELINES`. Default both.
    limiting_flux : sequence of float, optional
        Per-band limiting flux shared by all baselines; default estimated from the training
        errors.
    seed : int, optional
        Random state of the gradient boosting's splits. Default 0.
    n_threads : int, optional
        Cap on the worker threads; default no cap.

    Returns
    -------
    dict
        ``{name: (z, sigma)}``, ready for `csst_photoz.evaluation.evaluate`.

    """
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {sorted(BASELINES)}")
    results = {}
    for name in names:
        model: KNNBaseline | GradientBoostingBaseline
        if name == GradientBoostingBaseline.name:
            model = GradientBoostingBaseline(
                limiting_flux=limiting_flux, seed=seed, n_threads=n_threads
            )
        else:
            model = KNNBaseline(limiting_flux=limiting_flux, n_threads=n_threads)
        model.fit(train_fluxes, train_flux_errors, train_redshift)
        results[name] = model.predict(test_fluxes, test_flux_errors)
    return results
