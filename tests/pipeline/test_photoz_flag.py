"""Every partition carries each network's domain flag beside its redshift and uncertainty."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from csst_photoz.io.checkpoint_metadata import DomainReference
from csst_photoz.io.run_store import RunStore
from csst_photoz.io.tile_sources import TileSource
from csst_photoz.models import load_model, save_model
from csst_photoz.models.domain import DomainFlag
from csst_photoz.pipeline import PipelineConfig
from csst_photoz.pipeline.batch import resolve_checkpoints
from csst_photoz.pipeline.tile_task import TileJob, _models, process_tile

V0_1 = Path(__file__).parents[1] / "fixtures" / "v0_1"
TILE = V0_1 / "tiles" / "tile_00000000.zarr"
BANDS = ("NUV", "u", "g", "r", "i", "z", "y")


def _partition(out: Path, checkpoint: Path) -> pa.Table:
    refs = resolve_checkpoints([checkpoint], bands=BANDS)
    job = TileJob(str(out), PipelineConfig(device="cpu").model_dump_json(), tuple(refs), BANDS)
    result = process_tile(TileSource("zarr", str(TILE.resolve())), job)
    _models.cache_clear()
    assert result.status == "done"
    return pq.read_table(RunStore(out).partition_path(0))


def test_the_partition_has_a_documented_uint16_flag_per_network(tmp_path):
    table = _partition(tmp_path / "run", V0_1 / "mlp.pt")
    field = table.schema.field("z_mlp_flag")
    assert field.type == pa.uint16()
    description = field.metadata[b"description"].decode()
    assert "MISSING_BANDS" in description and "CLAMPED" in description
    names = table.column_names
    assert names.index("z_mlp_flag") == names.index("z_mlp_err") + 1
    # a checkpoint without a domain reference flags only missing bands and clamping
    allowed = DomainFlag.MISSING_BANDS | DomainFlag.CLAMPED
    assert not (table["z_mlp_flag"].to_numpy() & ~np.uint16(allowed)).any()


def test_a_narrow_trained_range_clamps_and_flags_the_partition(tmp_path):
    model = load_model(V0_1 / "mlp.pt")
    model.set_domain(DomainReference(z_min=5.0, z_max=6.0, sigma_max=1.0))
    save_model(model, tmp_path / "narrow.pt")
    table = _partition(tmp_path / "run", tmp_path / "narrow.pt")
    z = table["z_mlp"].to_numpy()
    finite = np.isfinite(z)
    assert finite.any() and np.all(z[finite] == 5.0)
    assert np.all(table["z_mlp_flag"].to_numpy()[finite] & DomainFlag.CLAMPED)
