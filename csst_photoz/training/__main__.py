"""``python -m csst_photoz.training KIND --data DIR --out CKPT``: also the torchrun target."""

import sys

from .cli import run

if __name__ == "__main__":
    sys.exit(run())
