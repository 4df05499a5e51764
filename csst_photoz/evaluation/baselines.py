"""Tuned classical baselines on one magnitude plus colours (scikit-learn).

Both baselines see what a user would give any photo-z code: per-band fluxes (and errors) in one
unit. Their features (`baseline_features`) are one magnitude and the ``N - 1`` adjacent colours

* colour ``c_b = -2.5 log10(F_b / F_{b+1})`` (a flux ratio: independent of the unit and the
  zero point);
* magnitude ``m = -2.5 log10(F_ref)`` of one reference band, in the flux unit (an AB magnitude
  up to a constant offset, which changes nothing for trees or standardised distances). By
  default the reference is the band with the highest median S/N on the training set.

Missing bands and non-detections follow the package's convention
(`csst_photoz.models.features`): a band is **missing** when its flux or its error is NaN or its
error is not a positive finite number; a flux below its 1-sigma error (0 and negative fluxes
included) is a non-detection, and enters as its 1-sigma upper limit: the flux is replaced by its
error before the magnitude is taken. A missing band's magnitude and the colours it enters are NaN:

* `GradientBoostingBaseline` gives them to `sklearn.ensemble.HistGradientBoostingRegressor`,
  which learns at each split which side missing values go to;
* `KNNBaseline` standardises the features (statistics of the present values) and measures
  distances over the features both galaxies have, scaled up to all of them
  (`sklearn.metrics.pairwise.nan_euclidean_distances`): a galaxy missing a band is matched on
  its other colours (no imputation).

A row without any present band (for the k-NN: without any finite feature) is predicted as NaN.

Tuning on the training set's own validation part
------------------------------------------------
``fit`` holds back a random ``validation_fraction`` (default 20 %) of the training rows, scores
candidate settings fitted on the rest by the mean ``|z_pred - z| / (1 + z)`` on it (an L1 score:
it weighs the core and the outliers), keeps the best, and refits on all training rows.

* Gradient boosting: L1 loss (``absolute_error``: the median), early stopping on the validation
  part (``n_iter_no_change`` iterations without improvement, at most ``max_iter``), and
  ``n_candidates`` settings drawn at random (``seed``) from `GBT_PARAM_GRID` (learning rate,
  leaves per tree, minimum samples per leaf, L2 regularisation); the final model is refitted on
  all rows for the number of iterations the chosen candidate ran (``n_iter_``). LightGBM is not
  used: scikit-learn's estimator is the same histogram algorithm, without another dependency.
* k-NN: the features are standardised (`sklearn.preprocessing.StandardScaler`); ``z`` is the
  median redshift of the ``k`` nearest training galaxies, ``k`` chosen from `KNN_NEIGHBOURS`.

Uncertainty
-----------
The raw ``sigma`` is half the 16-84 % range: of two quantile gradient-boosting models (fitted
with the chosen settings), or of the ``k`` neighbours' redshifts. It is recalibrated like the
networks' sigma (`csst_photoz.metrics.coverage_scale`): one factor, chosen so that 68.27 % of the
validation part lies within ``±sigma`` of the models fitted without it. ``sigma`` is at least
``min_sigma``. ``n_threads`` caps the threads during fitting and prediction
(`csst_photoz.threads.limit_threads`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from csst_photoz.threads import limit_threads

from ..metrics import coverage_scale

__all__ = [
    "BASELINES",
    "GBT_PARAM_GRID",
    "KNN_NEIGHBOURS",
    "GradientBoostingBaseline",
    "KNNBaseline",
    "baseline_features",
    "fit_predict_baselines",
]

#: Settings the gradient boosting draws its candidates from (`GradientBoostingBaseline`).
GBT_PARAM_GRID: dict[str, tuple[float, ...]] = {
    "learning_rate": (0.05, 0.1, 0.2),
    "max_leaf_nodes": (15, 31, 63, 127),
    "min_samples_leaf": (5, 20, 50),
    "l2_regularization": (0.0, 1.0),
}

#: Neighbour counts the k-NN chooses from (`KNNBaseline`).
KNN_NEIGHBOURS = (3, 5, 8, 12, 20, 40)

_DEFAULT_MIN_SIGMA = 1e-3
_MIN_ROWS = 10
_QUANTILES = (0.16, 0.84)


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


def _present(flux: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Bands that are not missing: finite flux, finite positive error."""
    return np.isfinite(flux) & np.isfinite(error) & (error > 0)


def baseline_features(
    fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike, reference_band: int
) -> np.ndarray:
    """One magnitude and the adjacent colours of each galaxy (NaN where a band is missing).

    Parameters
    ----------
    fluxes, flux_errors : array_like
        (n, N) fluxes and 1-sigma errors, bands in wavelength order, any one unit. A band is
        missing where either is NaN or the error is not positive; a flux below its error is
        replaced by the error (a 1-sigma upper limit).
    reference_band : int
        Index of the band whose magnitude ``-2.5 log10(F)`` is the first feature.

    Returns
    -------
    numpy.ndarray
        (n, N) float64: the magnitude, then the colours ``-2.5 log10(F_b / F_{b+1})``.

    """
    flux, error = _as_flux_arrays(fluxes, flux_errors)
    if not 0 <= reference_band < flux.shape[1]:
        raise ValueError(f"reference_band {reference_band} is not one of {flux.shape[1]} bands")
    present = _present(flux, error)
    magnitude = np.full(flux.shape, np.nan)
    magnitude[present] = -2.5 * np.log10(np.maximum(flux[present], error[present]))
    return np.column_stack([magnitude[:, reference_band], magnitude[:, :-1] - magnitude[:, 1:]])


def _score(z_true: np.ndarray, z_pred: np.ndarray) -> float:
    """Mean ``|z_pred - z_true| / (1 + z_true)``: what the tuning minimises."""
    return float(np.mean(np.abs(z_pred - z_true) / (1.0 + z_true)))


def _half_range(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(high - low)


class _ColourBaseline:
    """Inputs, reference band, validation split, threads and sigma scale of both baselines."""

    name = "baseline"

    def __init__(
        self,
        *,
        reference_band: int | None,
        validation_fraction: float,
        seed: int,
        min_sigma: float,
        n_threads: int | None,
    ) -> None:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        if not min_sigma > 0:
            raise ValueError(f"min_sigma must be > 0, got {min_sigma!r}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
        self.reference_band = reference_band
        self.validation_fraction = float(validation_fraction)
        self.seed = int(seed)
        self.min_sigma = float(min_sigma)
        self.n_threads = n_threads
        self.n_bands_: int | None = None
        self.reference_band_: int | None = None
        self.sigma_scale_ = 1.0

    def _check_fitted(self, flux: np.ndarray) -> None:
        if self.n_bands_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        if flux.shape[1] != self.n_bands_:
            raise ValueError(f"fitted on {self.n_bands_} bands, got fluxes in {flux.shape[1]}")

    def _calibrate(self, z_true: np.ndarray, z_pred: np.ndarray, raw_sigma: np.ndarray) -> None:
        try:
            self.sigma_scale_ = coverage_scale(
                z_true, z_pred, np.maximum(raw_sigma, self.min_sigma)
            )
        except ValueError:  # all validation residuals zero: leave sigma as it is
            self.sigma_scale_ = 1.0

    def _fit_rows(
        self, flux: np.ndarray, error: np.ndarray, z: np.ndarray, fit: np.ndarray, val: np.ndarray
    ) -> None:
        raise NotImplementedError  # pragma: no cover - every baseline overrides it

    def _predict_rows(self, flux: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover - every baseline overrides it

    def describe(self) -> dict[str, Any]:
        """The fitted settings, for a results table."""
        return {"reference_band": self.reference_band_, "sigma_scale": self.sigma_scale_}

    def fit(
        self, fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike, redshift: npt.ArrayLike
    ) -> Self:
        """Tune on a validation part of the training set, then fit on all of it.

        Parameters
        ----------
        fluxes, flux_errors : array_like
            (n, N) training fluxes and errors (missing bands: module docstring).
        redshift : array_like
            (n,) true redshifts; rows with a non-finite redshift or no present band are
            dropped.

        Returns
        -------
        Self
            ``self``, fitted.

        """
        flux, error = _as_flux_arrays(fluxes, flux_errors)
        z = np.asarray(redshift, dtype=np.float64)
        if z.shape != (flux.shape[0],):
            raise ValueError(f"redshift must have shape ({flux.shape[0]},), got {z.shape}")
        usable = np.isfinite(z) & _present(flux, error).any(axis=1)
        flux, error, z = flux[usable], error[usable], z[usable]
        if z.size < _MIN_ROWS:
            raise ValueError(f"{z.size} usable training rows; need at least {_MIN_ROWS}")
        n_bands = flux.shape[1]
        if self.reference_band is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.where(np.isfinite(error) & (error > 0), flux / error, np.nan)
            median = np.array([np.nanmedian(c) if np.isfinite(c).any() else -np.inf for c in snr.T])
            self.reference_band_ = int(np.argmax(median))
        elif 0 <= self.reference_band < n_bands:
            self.reference_band_ = int(self.reference_band)
        else:
            raise ValueError(f"reference_band {self.reference_band} is not one of {n_bands} bands")
        order = np.random.default_rng(self.seed).permutation(z.size)
        n_val = max(1, round(self.validation_fraction * z.size))
        val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.n_bands_ = n_bands
        with limit_threads(self.n_threads):
            self._fit_rows(flux, error, z, fit, val)
        return self

    def predict(
        self, fluxes: npt.ArrayLike, flux_errors: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Redshift and calibrated 1-sigma uncertainty of each galaxy.

        Parameters
        ----------
        fluxes, flux_errors : array_like
            (n, N) fluxes and errors in the bands and unit of the training set.

        Returns
        -------
        z, sigma : numpy.ndarray
            (n,) point estimates and uncertainties (``>= min_sigma``); NaN for rows without a
            present band.

        """
        flux, error = _as_flux_arrays(fluxes, flux_errors)
        self._check_fitted(flux)
        z = np.full(flux.shape[0], np.nan)
        sigma = np.full(flux.shape[0], np.nan)
        usable = _present(flux, error).any(axis=1)
        if usable.any():
            with limit_threads(self.n_threads):
                z[usable], raw_sigma = self._predict_rows(flux[usable], error[usable])
            sigma[usable] = np.maximum(self.sigma_scale_ * raw_sigma, self.min_sigma)
        return z, sigma


class KNNBaseline(_ColourBaseline):
    """k nearest neighbours on the standardised magnitude and colours, ``k`` tuned.

    Parameters
    ----------
    n_neighbors : sequence of int, optional
        Candidate neighbour counts (each >= 2); default `KNN_NEIGHBOURS`. Those not smaller
        than the rows outside the validation part are skipped.
    reference_band : int, optional
        Band of the magnitude feature; default the highest median S/N of the training set.
    validation_fraction : float, optional
        Share of the training rows that chooses ``k`` and calibrates sigma. Default 0.2.
    seed : int, optional
        Random state of the validation split. Default 0.
    min_sigma : float, optional
        Floor of the uncertainty. Default 1e-3.
    n_threads : int, optional
        Cap on the worker threads; default no cap.

    Attributes
    ----------
    n_neighbors_ : int
        The chosen ``k``.
    validation_scores_ : dict
        ``{k: mean |dz| / (1 + z)}`` on the validation part.

    """

    name = "knn"

    def __init__(
        self,
        *,
        n_neighbors: Sequence[int] = KNN_NEIGHBOURS,
        reference_band: int | None = None,
        validation_fraction: float = 0.2,
        seed: int = 0,
        min_sigma: float = _DEFAULT_MIN_SIGMA,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            reference_band=reference_band,
            validation_fraction=validation_fraction,
            seed=seed,
            min_sigma=min_sigma,
            n_threads=n_threads,
        )
        candidates = tuple(n_neighbors)
        if not candidates or any(isinstance(k, bool) or int(k) != k or k < 2 for k in candidates):
            raise ValueError(f"n_neighbors must be integers >= 2, got {candidates!r}")
        self.n_neighbors = tuple(sorted({int(k) for k in candidates}))

    def _features(self, flux: np.ndarray, error: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(baseline_features(flux, error, self.reference_band_))

    def _index(self, features: np.ndarray, k: int) -> Any:
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k, metric="nan_euclidean").fit(features)

    def _fit_rows(
        self, flux: np.ndarray, error: np.ndarray, z: np.ndarray, fit: np.ndarray, val: np.ndarray
    ) -> None:
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(baseline_features(flux, error, self.reference_band_))
        features = self._features(flux, error)
        usable = np.isfinite(features).any(axis=1)
        fit, val = fit[usable[fit]], val[usable[val]]
        candidates = [k for k in self.n_neighbors if k < fit.size]
        if not candidates or val.size == 0:
            raise ValueError(
                f"{fit.size} usable rows outside the validation part and {val.size} in it; "
                f"need more than k = {self.n_neighbors[0]} and at least 1"
            )
        largest = candidates[-1]
        _, neighbours = self._index(features[fit], largest).kneighbors(features[val])
        neighbour_z = z[fit][neighbours]
        self.validation_scores_ = {
            k: _score(z[val], np.median(neighbour_z[:, :k], axis=1)) for k in candidates
        }
        self.n_neighbors_ = min(self.validation_scores_, key=self.validation_scores_.__getitem__)
        z_val, sigma_val = self._summarise(neighbour_z[:, : self.n_neighbors_])
        self._calibrate(z[val], z_val, sigma_val)
        self.index_ = self._index(features[usable], self.n_neighbors_)
        self.redshift_ = z[usable]

    @staticmethod
    def _summarise(neighbour_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, median, high = np.quantile(neighbour_z, (_QUANTILES[0], 0.5, _QUANTILES[1]), axis=1)
        return median, _half_range(low, high)

    def _predict_rows(self, flux: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = self._features(flux, error)
        usable = np.isfinite(features).any(axis=1)
        z, sigma = np.full(flux.shape[0], np.nan), np.full(flux.shape[0], np.nan)
        if usable.any():
            _, neighbours = self.index_.kneighbors(features[usable])
            z[usable], sigma[usable] = self._summarise(self.redshift_[neighbours])
        return z, sigma

    def describe(self) -> dict[str, Any]:
        """The chosen ``k``, the validation scores, the reference band and the sigma factor."""
        return {
            **super().describe(),
            "n_neighbors": self.n_neighbors_,
            "validation_scores": {str(k): v for k, v in self.validation_scores_.items()},
        }


class GradientBoostingBaseline(_ColourBaseline):
    """Histogram gradient boosting (L1 loss, early stopping) on magnitude + colours, tuned.

    Parameters
    ----------
    param_grid : mapping, optional
        Candidate values of `sklearn.ensemble.HistGradientBoostingRegressor` settings; default
        `GBT_PARAM_GRID`.
    n_candidates : int, optional
        Settings drawn from the grid (all of it if it is smaller). Default 8.
    max_iter : int, optional
        Cap on the boosting iterations. Default 1000.
    n_iter_no_change : int, optional
        Early-stopping patience on the validation part. Default 20.
    reference_band, validation_fraction, seed, min_sigma, n_threads
        As for `KNNBaseline`; ``seed`` also draws the candidates and seeds the estimators.

    Attributes
    ----------
    params_ : dict
        The chosen settings.
    n_iter_ : int
        Iterations the chosen candidate ran before early stopping (the final model's count).
    search_ : list of dict
        Each candidate's settings, validation score and iterations.

    """

    name = "gbr"

    def __init__(
        self,
        *,
        param_grid: Mapping[str, Sequence[float]] = GBT_PARAM_GRID,
        n_candidates: int = 8,
        max_iter: int = 1000,
        n_iter_no_change: int = 20,
        reference_band: int | None = None,
        validation_fraction: float = 0.2,
        seed: int = 0,
        min_sigma: float = _DEFAULT_MIN_SIGMA,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            reference_band=reference_band,
            validation_fraction=validation_fraction,
            seed=seed,
            min_sigma=min_sigma,
            n_threads=n_threads,
        )
        if n_candidates < 1 or max_iter < 1 or n_iter_no_change < 1:
            raise ValueError(
                "need n_candidates, max_iter and n_iter_no_change >= 1, got "
                f"{n_candidates!r}, {max_iter!r}, {n_iter_no_change!r}"
            )
        self.param_grid = {key: tuple(values) for key, values in param_grid.items()}
        self.n_candidates = int(n_candidates)
        self.max_iter = int(max_iter)
        self.n_iter_no_change = int(n_iter_no_change)

    def _candidates(self) -> list[dict[str, Any]]:
        from sklearn.model_selection import ParameterGrid

        grid = list(ParameterGrid(self.param_grid))
        if len(grid) <= self.n_candidates:
            return grid
        chosen = np.random.default_rng(self.seed).choice(len(grid), self.n_candidates, False)
        return [grid[i] for i in np.sort(chosen)]

    def _early_stopped(
        self, params: dict[str, Any], x: np.ndarray, z: np.ndarray, x_val: np.ndarray,
        z_val: np.ndarray, **loss: Any,
    ) -> Any:  # fmt: skip
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=self.max_iter, early_stopping=True, n_iter_no_change=self.n_iter_no_change,
            random_state=self.seed, **loss, **params,
        ).fit(x, z, X_val=x_val, y_val=z_val)  # fmt: skip

    def _refit(self, model: Any, x: np.ndarray, z: np.ndarray) -> Any:
        """``model``'s settings and iteration count, fitted on all rows without early stopping."""
        from sklearn.base import clone

        return clone(model).set_params(max_iter=model.n_iter_, early_stopping=False).fit(x, z)

    def _fit_rows(
        self, flux: np.ndarray, error: np.ndarray, z: np.ndarray, fit: np.ndarray, val: np.ndarray
    ) -> None:
        x = baseline_features(flux, error, self.reference_band_)
        parts = (x[fit], z[fit], x[val], z[val])
        self.search_ = []
        best = None
        for params in self._candidates():
            model = self._early_stopped(params, *parts, loss="absolute_error")
            score = _score(z[val], model.predict(x[val]))
            self.search_.append({**params, "score": score, "n_iter": int(model.n_iter_)})
            if best is None or score < best[0]:
                best = (score, params, model)
        assert best is not None  # at least one candidate
        _, self.params_, median = best
        self.n_iter_ = int(median.n_iter_)
        low, high = (
            self._early_stopped(self.params_, *parts, loss="quantile", quantile=q)
            for q in _QUANTILES
        )
        self._calibrate(
            z[val], median.predict(x[val]), _half_range(low.predict(x[val]), high.predict(x[val]))
        )
        self.models_ = tuple(self._refit(model, x, z) for model in (median, low, high))

    def _predict_rows(self, flux: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = baseline_features(flux, error, self.reference_band_)
        median, low, high = (model.predict(x) for model in self.models_)
        return median, _half_range(low, high)

    def describe(self) -> dict[str, Any]:
        """The chosen settings and iterations, the reference band and the sigma factor."""
        return {**super().describe(), **self.params_, "n_iter": self.n_iter_}


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
    seed: int = 0,
    n_threads: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tune and fit each baseline (default settings) on the training set; predict the test set.

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
    seed : int, optional
        Random state of the validation splits and the candidate draw. Default 0.
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
        model = BASELINES[name](seed=seed, n_threads=n_threads)
        model.fit(train_fluxes, train_flux_errors, train_redshift)
        results[name] = model.predict(test_fluxes, test_flux_errors)
    return results
