"""A real single-node SLURM cluster for the tests marked ``slurm``.

The session-scoped ``slurm_cluster`` fixture runs ``jobs/local-slurm/start.sh`` (which
installs slurm-wlm/munge with apt if needed and starts munged, slurmctld and slurmd on
this machine), yields a :class:`SlurmCluster` helper, and runs ``stop.sh`` at the end of
the session -- only if it was this fixture that started the cluster.

Run them with ``python -m pytest -m slurm tests/slurm``. The project's ``addopts`` only
deselect ``slow`` and ``gpu``, so this conftest also deselects ``slurm`` tests unless the
``-m`` expression names ``slurm`` (or ``CSST_RUN_SLURM=1``): a plain ``python -m pytest``
never starts daemons or runs apt as root. ``CSST_SKIP_SLURM=1`` skips them even when
selected; so does start.sh's exit code 3 (not root, no apt).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "jobs" / "local-slurm" / "start.sh"
STOP = REPO / "jobs" / "local-slurm" / "stop.sh"
EXIT_SKIP = 3  # start.sh: "cannot run here" (not root, no apt, apt install failed)

# Job states after which a job never runs again (see `man squeue`, JOB STATE CODES).
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
_JOB_STATE = re.compile(r"\bJobState=(\w+)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``slurm`` tests unless the ``-m`` expression asks for them."""
    markexpr = config.getoption("markexpr", default="") or ""
    if "slurm" in markexpr or os.environ.get("CSST_RUN_SLURM") == "1":
        return  # the user chose: -m decides (e.g. -m slurm, -m "slurm or slow")
    deselected = [item for item in items if item.get_closest_marker("slurm")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("slurm")]


def _run(cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)


@dataclass(frozen=True)
class SlurmCluster:
    """Submit, wait for and cancel jobs on the local cluster (thin wrappers of the CLI)."""

    runtime_dir: Path
    started_here: bool

    @property
    def output_dir(self) -> Path:
        """Where job output goes when the caller gives no ``-o``/``--output``."""
        return self.runtime_dir / "out"

    def _sbatch(
        self, args: Sequence[str], sbatch_args: Sequence[str], env: Mapping[str, str] | None
    ) -> str:
        opts = [str(a) for a in sbatch_args]
        if not any(o.startswith(("-o", "--output")) for o in opts):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            opts.append(f"--output={self.output_dir}/%x-%j.out")  # not into the cwd (repo)
        job_env = None if env is None else {**os.environ, **env}
        proc = _run(["sbatch", "--parsable", *opts, *args], env=job_env, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip()}")
        # --parsable prints "<job id>" or "<job id>;<cluster>"
        return proc.stdout.strip().split(";")[0]

    def submit(
        self,
        script_path: str | os.PathLike[str],
        *args: str,
        env: Mapping[str, str] | None = None,
        sbatch_args: Sequence[str] = (),
    ) -> str:
        """``sbatch --parsable [sbatch_args] script_path [args]``; returns the job id.

        ``env`` adds variables to the job's environment (sbatch exports the submitting
        environment, so they are merged into ``os.environ``).
        """
        return self._sbatch([os.fspath(script_path), *map(str, args)], sbatch_args, env)

    def wrap(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        sbatch_args: Sequence[str] = (),
    ) -> str:
        """``sbatch --parsable --wrap command``; returns the job id."""
        return self._sbatch([f"--wrap={command}"], sbatch_args, env)

    def state(self, job_id: str) -> str | None:
        """Current state (``PENDING``, ``RUNNING``, ``COMPLETED``...), None if unknown.

        There is no accounting (no ``sacct``): ``scontrol show job`` knows a job while it is
        queued and for ``MinJobAge`` (600 s in start.sh's slurm.conf) after it ended;
        ``squeue`` is asked as well in case scontrol hiccups. For an array job every task's
        state is reported: one state if they agree, else the sorted set joined by ``,``.
        """
        proc = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout=30)
        states = set(_JOB_STATE.findall(proc.stdout)) if proc.returncode == 0 else set()
        if not states:
            proc = _run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], timeout=30)
            if proc.returncode == 0:
                states = {s for s in proc.stdout.split() if s}
        return ",".join(sorted(states)) if states else None

    def wait(
        self,
        job_id: str,
        timeout: float = 60.0,
        *,
        states: Collection[str] = TERMINAL_STATES,
    ) -> str:
        """Poll until the job is in one of ``states`` (default: finished); return its state.

        Raises TimeoutError (with the last state seen) after ``timeout`` seconds, and
        LookupError if slurm does not know the job for 10 s in a row.
        """
        deadline = time.monotonic() + timeout
        last: str | None = None
        unknown_since: float | None = None
        while True:
            last = self.state(job_id)
            now = time.monotonic()
            if last is not None:
                unknown_since = None
                if all(s in states for s in last.split(",")):
                    return last
            elif unknown_since is None:
                unknown_since = now
            elif now - unknown_since > 10:
                raise LookupError(f"slurm does not know job {job_id}")
            if now > deadline:
                raise TimeoutError(f"job {job_id} still {last} after {timeout:g} s")
            time.sleep(0.25)

    def cancel(self, job_id: str) -> None:
        """``scancel job_id`` (does not wait: follow with ``wait``)."""
        proc = _run(["scancel", str(job_id)], timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"scancel {job_id} failed: {proc.stderr.strip()}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node cluster (started by jobs/local-slurm/start.sh)."""
    if os.environ.get("CSST_SKIP_SLURM") == "1":
        pytest.skip("CSST_SKIP_SLURM=1")
    # The apt install on first use can take a minute or two; a started cluster, ~1 s.
    proc = _run(["bash", str(START)], timeout=900)
    if proc.returncode == EXIT_SKIP:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "exit 3"
        pytest.skip(f"no local SLURM cluster: {reason}")
    if proc.returncode != 0:
        pytest.fail(
            f"{START} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    started_here = "csst-slurm: status=started" in proc.stdout
    cluster = SlurmCluster(
        runtime_dir=Path(os.environ.get("CSST_SLURM_DIR", "/tmp/csst-slurm")),
        started_here=started_here,
    )
    yield cluster
    if started_here:
        stop = _run(["bash", str(STOP)], timeout=300)
        if stop.returncode != 0:
            # Teardown: report, but do not turn passed tests into errors.
            warnings.warn(f"{STOP} failed (exit {stop.returncode}): {stop.stderr}", stacklevel=1)
