#!/usr/bin/env bash
# Download the wheels the GPU device check needs into .device-wheels/ (ignored by git).
#
# The lent GPU machine has Python 3.12 with torch, CuPy, numpy, scipy, pandas, pyarrow,
# matplotlib, pytest, psutil, msgpack, cloudpickle, toolz, numba-cuda and nvidia-ml-py
# already (/work/.library/device/KINDS.md, "Python packages already there"), no network, and
# only 64 MiB of ignored files travel with the checkout. This fetches the rest of what
# `csst_photoz.run` on a LocalCUDACluster imports (found by tracing the imports of the run,
# the simulator, the photometry and the inference: benchmarks/gpu_check.py --list-imports),
# for CPython 3.12 manylinux x86_64, without dependencies (each one is named here), and
# checks the total against the carry limit. photutils is for the gpu-marked tests (reference
# apertures). hats/lsdb/hats-import are left out: only
# `csst-photoz finalize` imports them, and the check does not run it.
#
# Usage: bash benchmarks/prepare_device_wheels.sh [DEST]   (DEST default .device-wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.device-wheels}"
limit_mib=64
mkdir -p "$dest"

# name==version: the versions this project's CPU environment is tested with; the RAPIDS
# packages (dask-cuda, rmm) for CUDA 13, matching the device's torch cu130 and cupy-cuda13x.
wheels=(
    dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 zict==3.0.0
    tblib==3.2.2 tornado==6.6.1 donfig==0.8.1.post1
    zarr==3.1.6 numcodecs==0.16.6 google-crc32c==1.9.0
    astropy==8.0.2 astropy-iers-data==0.2026.11.16.0.37.44 pyerfa==2.0.1.5
    galsim==2.8.5 lsstdesc.coord==1.3.1 sep==1.4.1 photutils==3.0.0
    pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
    dask-cuda==26.10.0 rmm-cu13==26.10.0 librmm-cu13==26.10.0 rapids-logger==0.3.0
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
    platforms+=(--platform "$p")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$dest" "${wheels[@]}"

# GalSim's extension ships with its debug symbols (199 MB, 48 MiB in the wheel, more than
# everything else together); stripped it is 4 MB. Repack the wheel with the stripped library
# and its RECORD entry updated (same file name, same code).
python3 "$(dirname "$0")/strip_wheel.py" "$dest"/galsim-*.whl

total=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
ls -l "$dest"/*.whl | awk '{printf "%8.1f MiB  %s\n", $5 / 2^20, $9}' | sort -rn
printf 'total %.1f MiB of %d MiB that may travel with the checkout\n' \
    "$(echo "$total / 1048576" | bc -l)" "$limit_mib"
if (( total > limit_mib * 1048576 )); then
    echo "too large to carry: drop wheels (see benchmarks/README.md, GPU device check)" >&2
    exit 1
fi
