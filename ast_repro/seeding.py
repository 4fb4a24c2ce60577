"""Seeds derived from integer keys, shared by the augmentations, the samplers and training.

Every random draw of a run comes from a generator seeded by a tuple such as
(seed, epoch, index) or (seed, epoch), so a resumed or distributed run draws exactly what an
uninterrupted single-process run draws. The global RNG states (`rng_state`) travel in a
training run's `last.pt` for the draws of code outside the package.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integers such as (seed, epoch, index)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def make_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A `torch.Generator` on `device` seeded with `derive_seed(*keys)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python's `random`."""
    # the legacy global state is what a user's np.random calls draw from
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's arrays are stored as tensors so the file loads with weights_only=True
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },  # fmt: skip
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved (CUDA states only where the device count matches)."""
    torch.set_rng_state(state["torch"])
    if (
        state["cuda"]
        and torch.cuda.is_available()
        and len(state["cuda"]) == (torch.cuda.device_count())
    ):
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
