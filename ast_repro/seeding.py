"""Seeds derived from integer keys, shared by the augmentations, the samplers and training.

Every random draw of a run comes from a generator seeded by a tuple such as
(seed, epoch, index) or (seed, epoch), so a resumed or distributed run draws exactly what an
uninterrupted single-process run draws.
"""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integers such as (seed, epoch, index)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def make_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A `torch.Generator` on `device` seeded with `derive_seed(*keys)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
