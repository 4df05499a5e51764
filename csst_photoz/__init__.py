"""csst-photoz: survey-scale photometric redshifts for the China Space Station Telescope.

The package follows the data flow of the survey processor:

- :mod:`csst_photoz.instrument` -- the CSST survey camera (bands, zero points, noise, PSFs);
- :mod:`csst_photoz.sim` -- the mock galaxy population and its synthetic CSST photometry;
- :mod:`csst_photoz.photometry` -- detection, aperture photometry and stamps (NumPy or CuPy);
- :mod:`csst_photoz.models` / :mod:`csst_photoz.training` -- the networks and their training;
- :mod:`csst_photoz.pipeline` -- the Dask batch processor; :func:`csst_photoz.run` is its entry.
- :mod:`csst_photoz.metrics` -- photo-z quality metrics (sigma_NMAD, outlier fraction, bias).
"""

from importlib.metadata import PackageNotFoundError, version

from ._lazy import lazy_attributes

try:
    __version__ = version("csst-photoz")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "run"]

# ``run`` imports dask and distributed: only when first used
__getattr__, __dir__ = lazy_attributes(__name__, {"run": "pipeline.batch"}, __all__)
