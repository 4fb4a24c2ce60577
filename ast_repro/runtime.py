"""Where a run executes: device, mixed precision and `torchrun` process groups.

The original trains with `nn.DataParallel` over the visible GPUs and fp16 autocast with a
GradScaler (original `src/traintest.py`). Here one process per GPU under `torchrun`
and DistributedDataParallel, bf16 autocast on CUDA by default (fp16 with a GradScaler as an
option) and fp32 on CPU. A run started without `torchrun` is a world of one.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ast_repro.errors import AstReproError, RunFailed

# torchrun's environment variables (torch.distributed.run).
WORLD_SIZE_ENV, RANK_ENV, LOCAL_RANK_ENV = "WORLD_SIZE", "RANK", "LOCAL_RANK"
# How long ranks wait for each other (e.g. while rank 0 writes a checkpoint or evaluates).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=60)

# Values of `precision`: "auto" picks bf16 on CUDA (fp16 where bf16 is missing), fp32 on CPU.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# True once this process has been part of a torchrun process group (see `joined_group`).
_joined_group = False


class DeviceError(AstReproError, RuntimeError):
    """The machine lacks what `device` or `precision` asks for; the message names the key."""


class PeerStopped(RunFailed):
    """A collective broke off because another rank stopped; that rank reports its own error."""


@dataclass(frozen=True)
class Runtime:
    """The process's place in the job and how it computes.

    Attributes:
        device: where the model and batches live.
        precision: resolved "fp32", "bf16" or "fp16".
        rank, world_size, local_rank: as set by torchrun (0, 1, 0 without it).
        owns_group: this process created the process group and destroys it in `close`.
    """

    device: torch.device
    precision: str
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast for forward passes; a no-op in fp32."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16 (the original's AMP, section 5.1)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def barrier(self) -> None:
        if self.distributed:
            with _peers("barrier"):
                dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this runtime created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> this rank's GPU when CUDA is available, else the CPU; otherwise `name`."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(
            f"device={name!r} is not a device name; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device={name!r} was asked for, but CUDA is not available here; use device=cpu"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"device={name!r} was asked for, but this machine has "
            f"{torch.cuda.device_count()} GPU(s)"
        )
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" -> "bf16" on CUDA (fp16 on GPUs without bf16), "fp32" elsewhere."""
    # NOTE: the original always runs fp16 autocast with a GradScaler (section 5.1). bf16 has
    # fp32's range, so it needs no loss scaling and cannot overflow; "fp16" remains available.
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(
            "precision='fp16' (autocast + GradScaler) needs a CUDA device; on this machine "
            "use precision=bf16 or fp32"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    return precision


def setup(*, device: str = "auto", precision: str = "auto") -> Runtime:
    """Join the torchrun process group when WORLD_SIZE > 1 and pick device and precision.

    The backend is NCCL on CUDA and Gloo on CPU; the group is read from torchrun's
    environment variables. Without torchrun this returns a single-process runtime.
    """
    # NOTE: the original wraps the model in nn.DataParallel over all visible GPUs; one process
    # per GPU with DistributedDataParallel is faster and also spans nodes. The recipe's batch
    # stays the global batch (see ast_repro.train).
    rank, world_size = launch_rank()
    local_rank = int(os.environ.get(LOCAL_RANK_ENV, "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    global _joined_group
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
        owns_group = True
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        _joined_group = True
    return Runtime(
        device=resolved,
        precision=resolve_precision(precision, resolved),
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        owns_group=owns_group,
    )


def launch_rank() -> tuple[int, int]:
    """(rank, world size) as torchrun set them for this process; (0, 1) without torchrun."""
    return int(os.environ.get(RANK_ENV, "0")), int(os.environ.get(WORLD_SIZE_ENV, "1"))


def joined_group() -> bool:
    """Whether this process has been part of a torchrun process group (closed or not).

    Before that, every rank reads the same config and files and meets the same bad input;
    after it, an error may be one rank's own (a clip of its share of the data).
    """
    return _joined_group


def all_reduce_mean(value: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Mean of a tensor over ranks (a nan on any rank makes the mean nan)."""
    if not runtime.distributed:
        return value
    value = value.detach().clone()
    with _peers("all_reduce"):
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / runtime.world_size


def gather_to_main(obj: Any, runtime: Runtime) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order); None on the other ranks."""
    if not runtime.distributed:
        return [obj]
    gathered: list[Any] = [None] * runtime.world_size if runtime.is_main else []
    with _peers("gather"):
        dist.gather_object(obj, gathered if runtime.is_main else None, dst=0)
    return gathered if runtime.is_main else None


def broadcast_from_main(obj: Any, runtime: Runtime) -> Any:
    """Rank 0's `obj` on every rank."""
    if not runtime.distributed:
        return obj
    box = [obj]
    with _peers("broadcast"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def _peers(operation: str) -> Iterator[None]:
    """Turn a collective that broke off because a peer died into one line, not a traceback.

    The rank that stopped first reports the cause (a bad clip in its share of the data, say);
    the others only learn that the connection closed.
    """
    try:
        yield
    except RuntimeError as exc:
        # NCCL and the newer backends raise DistError; gloo a RuntimeError that says so.
        if not (isinstance(exc, dist.DistError) or "closed by peer" in str(exc)):
            raise
        raise PeerStopped(
            f"{operation} across ranks broke off: another rank stopped (its error is reported "
            "on its own line)"
        ) from exc
