"""Memory a CPU worker needs: the process with the networks loaded, plus one tile.

Each measurement runs in a fresh process (``resource.getrusage`` peak RSS): the imports and
the four shipped networks loaded (what every worker holds), then one synthetic tile of the
given side processed end to end by ``process_tile`` (photometry, stamps, inference, write).
The per-pixel slope is what ``csst_photoz.pipeline.batch`` uses to check ``--memory-limit``
before a run starts. Run::

    python benchmarks/faults_memory.py [--sizes 512 1024 2048]

Writes ``benchmarks/results/faults_memory.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _results import cpu_model, pin_threads, write_results

_CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
import numpy as np

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

from csst_photoz.io.tile_sources import TileSource
from csst_photoz.io.tile_zarr import write_tile_zarr
from csst_photoz.pipeline.batch import resolve_checkpoints
from csst_photoz.pipeline.config import PipelineConfig
from csst_photoz.pipeline.tile_task import TileJob, prepare_worker, process_tile
from csst_photoz.tile import Tile
from csst_photoz.constants import CSST_BANDS

side = int(sys.argv[1])
folder = Path(tempfile.mkdtemp())
rng = np.random.default_rng(1)
n = len(CSST_BANDS)
image = rng.normal(0, 10, (n, side, side)).astype(np.float32)
yy, xx = np.mgrid[0:15, 0:15]
blob = np.exp(-((yy - 7) ** 2 + (xx - 7) ** 2) / 8.0).astype(np.float32) * 400
for y, x in rng.integers(10, side - 25, (side * side // 20000, 2)):
    image[:, y:y + 15, x:x + 15] += blob
tile = Tile(0, CSST_BANDS, image, np.full(image.shape, 100, np.float32),
            np.zeros(image.shape, np.uint16), (1e3,) * n, (300.0,) * n, 0.074,
            {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": side / 2, "CRPIX2": side / 2,
             "CRVAL1": 10.0, "CRVAL2": 10.0, "CD1_1": -2e-5, "CD1_2": 0.0, "CD2_1": 0.0,
             "CD2_2": 2e-5})
store = write_tile_zarr(tile, folder / "tile_00000000.zarr")
del tile, image
config = PipelineConfig(device="cpu")
job = TileJob(str(folder / "run"), config.model_dump_json(),
              tuple(resolve_checkpoints(None)), tuple(CSST_BANDS))
prepare_worker(job)
loaded = peak()
result = process_tile(TileSource("zarr", str(store)), job)
print(json.dumps({"side": side, "models_loaded": loaded, "peak": peak(),
                  "status": result.status, "rows": result.rows}))
"""


def _measure(side: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(side)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    pin_threads(1)
    rows = [_measure(side) for side in args.sizes]
    base = min(row["models_loaded"] for row in rows)
    big, small = max(rows, key=lambda r: r["side"]), min(rows, key=lambda r: r["side"])
    slope = (big["peak"] - small["peak"]) / (big["side"] ** 2 - small["side"] ** 2)
    lines = [
        "# Memory of a CPU worker: the networks loaded, plus one tile",
        "",
        f"`python benchmarks/faults_memory.py --sizes {' '.join(map(str, args.sizes))}` on "
        f"{cpu_model()}; fresh process per size, peak RSS; four shipped networks.",
        "",
        "| tile side [px] | RSS, networks loaded [MB] | peak RSS, one tile [MB] | rows |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['side']} | {r['models_loaded'] / 1e6:.0f} | {r['peak'] / 1e6:.0f} | {r['rows']} |"
        for r in rows
    ]
    lines += [
        "",
        f"Worker with the networks loaded: {base / 1e6:.0f} MB; slope between the smallest and "
        f"the largest tile: {slope:.0f} bytes per pixel (7 bands).",
        "",
    ]
    result = {"cpu": cpu_model(), "rows": rows, "base_bytes": base, "bytes_per_pixel": slope}
    write_results(args.out, "faults_memory", result, "\n".join(lines))


if __name__ == "__main__":
    main()
