"""Training-step throughput of the four networks, one step as `csst-photoz train` takes it.

Usage: python benchmarks/training.py [--threads 1] [--batch-size 512] [--repeats 9]
       [--train-rows 27000] [--out benchmarks/results]

Networks: built from the shipped checkpoints (`csst_photoz.checkpoints`), so that the input
transforms carry real constants: the MLP and CNN as loaded, the hybrid as
``Hybrid(HybridConfig(mlp.config, cnn.config))`` and the hybrid transfer as
``Hybrid.from_pretrained(mlp, cnn)`` (frozen layers, as trained). Each is put in training mode
with a fresh Adam optimiser over its trainable parameters.

One timed step is what the training loop does per batch: augment (`augment_batch` with the
network's paper plan: flux realisations for the MLP and the hybrids, the cycled dihedral
transforms for the CNN, random ones for the hybrids), forward pass, MAE + Gaussian NLL loss,
backward pass, Adam step. Inputs are synthetic but shaped as in training: ``--batch-size``
galaxies of 7-band fluxes and errors (log-normal) and 7 x 32 x 32 stamps (background noise at
each band's RMS plus a Gaussian galaxy). samples/s = batch / median step time; seconds per
epoch = ``--train-rows`` x copies per galaxy (8 dihedral copies for the CNN, 8 flux
realisations for the hybrids, as the shipped runs, 50 for the MLP) / samples/s.

The CNN (and the CNN branch of the hybrids) is also timed in the paper's literal layout, in
turns with ours: its pooling branch as ``maxpool 3x3 stride 1 -> 1x1 conv stride 2`` (ours:
pool with stride 2, then the 1x1 convolution with stride 1; same outputs and gradients), torch's
default NCHW memory format (ours: channels-last) and ``torch.asinh`` for the stamp scaling
(ours: `fast_asinh`). The ratio is the speed-up of those three changes.

Steps of all variants run in rotating turns (`_results.interleaved_median_times`), so load
from other processes on the shared cores weighs on all alike; the load average is recorded.

Writes ``training_cpu.json`` and ``training_cpu.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _results import (
    THREAD_VARIABLES,
    cpu_model,
    interleaved_median_times,
    pin_threads,
    write_results,
)

RESULTS = Path(__file__).parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS / OpenMP threads")
    parser.add_argument("--batch-size", type=int, default=512, help="galaxies per step")
    parser.add_argument("--repeats", type=int, default=9, help="timed steps per variant")
    parser.add_argument(
        "--train-rows", type=int, default=27_000, help="training galaxies, for seconds per epoch"
    )
    parser.add_argument("--seed", type=int, default=2022, help="seed of the synthetic inputs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    return parser


# pin the thread pools before anything imports NumPy or torch (when run as a script)
_THREADS = _parser().parse_known_args()[0].threads if __name__ == "__main__" else 1
pin_threads(_THREADS)

import contextlib  # noqa: E402
import copy  # noqa: E402
import platform  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import csst_photoz  # noqa: E402
from csst_photoz.checkpoints import shipped_checkpoints  # noqa: E402
from csst_photoz.models import CNN, MLP, Hybrid, HybridConfig, gaussian_nll, load_model  # noqa: E402
from csst_photoz.models import stamp_transform as stamp_transform_module  # noqa: E402
from csst_photoz.models.cnn import CNNTrunk, InceptionBlock  # noqa: E402
from csst_photoz.training.augment import AugmentPlan, augment_batch, epoch_generator  # noqa: E402
from csst_photoz.training.batches import Batch  # noqa: E402
from csst_photoz.training.config import TrainingConfig  # noqa: E402

#: Copies of each training galaxy per epoch in the shipped runs (checkpoints README).
COPIES = {"mlp": 50, "cnn": 8, "hybrid": 8, "hybrid-transfer": 8}


def _shipped(architecture: str) -> Any:
    for path in shipped_checkpoints():
        model = load_model(path)
        if model.architecture == architecture and getattr(model, "is_transfer", False) is False:
            return model
    raise SystemExit(f"no shipped {architecture} checkpoint: the benchmark builds on them")


def build_networks() -> dict[str, torch.nn.Module]:
    """The four networks in training mode, with real input-transform constants."""
    mlp, cnn = _shipped("mlp"), _shipped("cnn")
    assert isinstance(mlp, MLP) and isinstance(cnn, CNN)
    return {
        "mlp": mlp,
        "cnn": cnn,
        "hybrid": Hybrid(HybridConfig(mlp=mlp.config, cnn=cnn.config)),
        "hybrid-transfer": Hybrid.from_pretrained(mlp, cnn),
    }


def paper_layout(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose CNN trunk runs the paper's literal layout in NCHW."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, InceptionBlock):
            module.branch_pool[0].stride = 1
            module.branch_pool[1].conv.stride = (2, 2)
        if isinstance(module, CNNTrunk):
            module.memory_format = torch.contiguous_format
            module.convolutions.to(memory_format=torch.contiguous_format)
    return model


@contextlib.contextmanager
def torch_asinh() -> Iterator[None]:
    """Scale stamps with ``torch.asinh`` instead of `fast_asinh` inside the block."""
    saved = stamp_transform_module.fast_asinh
    stamp_transform_module.fast_asinh = torch.asinh
    try:
        yield
    finally:
        stamp_transform_module.fast_asinh = saved


def synthetic_batch(n: int, rms: np.ndarray, seed: int) -> Batch:
    """``n`` galaxies of fluxes, errors, 32 x 32 stamps and redshifts."""
    rng = np.random.default_rng(seed)
    n_bands = rms.size
    flux = rng.lognormal(8.0, 1.0, (n, n_bands))
    error = np.sqrt(flux + 400.0)
    yy, xx = np.mgrid[-16:16, -16:16] + 0.5
    radius = rng.uniform(1.0, 4.0, (n, 1, 1, 1))
    profile = np.exp(-0.5 * (xx**2 + yy**2) / radius**2) / (2 * np.pi * radius**2)
    stamps = flux[:, :, None, None] * profile
    stamps = stamps + rng.normal(0.0, 1.0, stamps.shape) * rms[None, :, None, None]
    return Batch(
        redshift=torch.as_tensor(rng.uniform(0.0, 4.0, n), dtype=torch.float32),
        fluxes=torch.as_tensor(flux, dtype=torch.float32),
        flux_errors=torch.as_tensor(error, dtype=torch.float32),
        stamps=torch.as_tensor(stamps, dtype=torch.float32),
    )


def training_step(kind: str, model: torch.nn.Module, batch: Batch, seed: int) -> Callable[[], None]:
    """One augmented forward, backward and Adam step of ``model`` on ``batch``."""
    model.train()
    config = TrainingConfig()
    plan = AugmentPlan.for_kind(kind, config)
    weight = config.uncertainty_weight
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-4)
    generator = epoch_generator(seed, 1)
    copy_index = torch.arange(len(batch)) % plan.copies
    inputs_of = {"mlp": ("fluxes", "flux_errors"), "cnn": ("stamps",)}
    names = inputs_of.get(kind, ("fluxes", "flux_errors", "stamps"))

    def step() -> None:
        augmented, _ = augment_batch(batch, copy_index, plan, generator=generator)
        given = augmented.inputs()
        out = model(**{name: given[name] for name in names})
        mae = (out.z - augmented.redshift).abs().mean()
        loss = mae + weight * gaussian_nll(out, augmented.redshift)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Median step times of every network (and the paper layouts), in rotating turns."""
    torch.manual_seed(args.seed)
    torch.set_num_interop_threads(1)
    networks = build_networks()
    cnn = networks["cnn"]
    rms = cnn.stamp_transform.background_rms.numpy().astype(np.float64)
    batch = synthetic_batch(args.batch_size, rms, args.seed)
    functions: dict[str, tuple[Callable[[], Any], Callable[[], None]]] = {}
    for kind, model in networks.items():
        functions[kind] = (training_step(kind, model, batch, args.seed), lambda: None)
        if kind != "mlp":
            paper_step = training_step(kind, paper_layout(model), batch, args.seed)

            def literal(step: Callable[[], None] = paper_step) -> None:
                with torch_asinh():
                    step()

            functions[f"{kind} (paper layout)"] = (literal, lambda: None)
    load_start = os.getloadavg()[0]
    times = interleaved_median_times(functions, args.repeats)
    load_end = os.getloadavg()[0]
    rows = []
    for name, timing in times.items():
        kind = name.split(" ")[0]
        rate = args.batch_size / timing["median_s"]
        epoch_samples = args.train_rows * COPIES[kind]
        rows.append(
            {
                "variant": name,
                "median_step_s": timing["median_s"],
                "all_step_s": timing["all_s"],
                "samples_per_second": rate,
                "copies_per_galaxy": COPIES[kind],
                "seconds_per_epoch": epoch_samples / rate,
            }
        )
    return {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "csst_photoz": csst_photoz.__version__,
            "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
            "torch_threads": torch.get_num_threads(),
            "load_average": [load_start, load_end],
        },
        "parameters": vars(args) | {"out": str(args.out)},
        "rows": rows,
    }


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    machine, params = result["machine"], result["parameters"]
    rate = {row["variant"]: row["samples_per_second"] for row in result["rows"]}
    lines = [
        "# Training throughput, device: cpu",
        "",
        f"{machine['cpu']}; {machine['cores']} CPU cores, torch threads "
        f"{machine['torch_threads']}; python {machine['python']}; torch {machine['torch']}; "
        f"csst_photoz {machine['csst_photoz']}. Load average at start "
        f"{machine['load_average'][0]:.2f}, at end {machine['load_average'][1]:.2f}.",
        "",
        f"One step: augment, forward, MAE + NLL, backward, Adam on {params['batch_size']} "
        f"synthetic galaxies; median of {params['repeats']} steps per variant, variants in "
        f"rotating turns. Epoch: {params['train_rows']:,} training galaxies x copies.",
        "",
        "| network | samples/s | median step [ms] | copies / galaxy | s / epoch | "
        "ours vs paper layout |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        paper = rate.get(f"{row['variant']} (paper layout)")
        ratio = f"{row['samples_per_second'] / paper:.2f}x" if paper else ""
        lines.append(
            f"| {row['variant']} | {row['samples_per_second']:,.0f} | "
            f"{1e3 * row['median_step_s']:.0f} | {row['copies_per_galaxy']} | "
            f"{row['seconds_per_epoch']:,.0f} | {ratio} |"
        )
    lines += [
        "",
        "Paper layout: pooling branch `maxpool 3x3 stride 1 -> 1x1 conv stride 2`, NCHW, "
        "`torch.asinh` stamp scaling; ours: pool with stride 2 then the 1x1 convolution, "
        "channels-last, `fast_asinh` (same outputs and gradients).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = measure(args)
    stem = "training_cpu" if args.threads == 1 else f"training_cpu_{args.threads}threads"
    write_results(args.out, stem, result, to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
