"""Shared, expensive objects for the tests (built once per session)."""

import pytest

from csst_photoz.instrument import Instrument
from csst_photoz.sim import SyntheticPhotometer


@pytest.fixture(scope="session")
def instrument() -> Instrument:
    return Instrument.default()


@pytest.fixture(scope="session")
def photometer(instrument: Instrument) -> SyntheticPhotometer:
    return SyntheticPhotometer.for_instrument(instrument)
