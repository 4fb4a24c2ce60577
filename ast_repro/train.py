"""Training: the original `src/traintest.py` loop with the paper's recipes (section 3).

Adam (betas 0.95/0.999, weight decay 5e-7), the original's warm-up staircase and per-epoch
step decay, BCE or cross entropy on (mixup-)soft labels, per-epoch validation with the
cumulative checkpoint ensemble, weight averaging over an epoch range and, for Speech
Commands, the best-validation model scored on the test set (original `src/traintest.py`).
On top: bf16/fp16 autocast, DistributedDataParallel under `torchrun`, per-epoch atomic
checkpoints with exact resumption, and a guard against non-finite losses.

    ast-repro train --recipe speechcommands --set batch_size=64 --set seed=1 [--resume]
    torchrun --nproc_per_node 4 -m ast_repro.cli train --recipe audioset_full

`batch_size` is the global batch of the recipe (the original's DataParallel batch); under
DDP each of W processes takes batch_size / W. Multi-node runs need `results/` on a filesystem
every node sees (checkpoints are written by rank 0 and read by all ranks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ast_repro import checkpoint as ckpt
from ast_repro.build import build_data, build_model, compile_model, train_loader
from ast_repro.config import ConfigError, TrainConfig
from ast_repro.ensemble import CumulativeEnsemble, save_predictions, weight_average
from ast_repro.errors import RunFailed
from ast_repro.evaluate import (
    EvalResult,
    evaluate_dataset,
    loss_on_logits,
    summary_line,
)
from ast_repro.frontend import model_inputs
from ast_repro.metrics import compute_metrics, headline
from ast_repro.optim import make_optimizer, make_scheduler, warmup_lr
from ast_repro.results import results_dir, write_metrics
from ast_repro.resume import restore
from ast_repro.runtime import Runtime, all_reduce_mean, setup
from ast_repro.seeding import make_generator
from ast_repro.throughput import EpochMeter, training_flops

STAGE = "train"
# Progress-bar refresh interval in steps.
POSTFIX_EVERY = 10

EpochCallback = Callable[[int, dict[str, Any]], None]


class TrainingDiverged(RunFailed, RuntimeError):
    """The loss became nan or inf; the message gives epoch, step and the last good checkpoint."""


class Trainer:
    """One run: data, model, optimizer and the epoch loop. Use `train()`."""

    def __init__(self, config: TrainConfig, runtime: Runtime, *, resume: bool) -> None:
        if config.batch_size % runtime.world_size:
            raise ConfigError(
                f"batch_size={config.batch_size} must be divisible by the {runtime.world_size} "
                "processes (it is the global batch)"
            )
        self.config, self.runtime = config, runtime
        self.data = data = build_data(config, runtime)
        self.paths, self.labels, self.frontend = data.paths, data.labels, data.frontend
        self.valid_set, self.eval_set = data.valid_set, data.eval_set
        model = build_model(config, self.labels.num_classes, runtime).to(runtime.device)
        self.flops_per_clip = training_flops(model.config)
        self.model: torch.nn.Module = compile_model(model, config)
        if runtime.distributed:
            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=device_ids)
        self.optimizer = make_optimizer(self.model, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.scaler = runtime.grad_scaler()
        # created by the first file written, so a config refused below leaves no directory
        self.dir = results_dir() / STAGE / config.run_name
        self.ckpt_dir = self.dir / ckpt.CHECKPOINT_DIR
        self.epoch, self.global_step, self.elapsed = 0, 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.resumed: list[dict[str, Any]] = []  # ast_repro.resume.resume_record entries
        self.best: dict[str, Any] = {}
        self.ensemble = CumulativeEnsemble()
        self.extra: dict[str, Any] = {}  # final evaluations: wa, valid, test
        self._resume_or_refuse(resume)
        self.writer = self._tensorboard()

    # ------------------------------------------------------------------ setup

    def _resume_or_refuse(self, resume: bool) -> None:
        last = self.ckpt_dir / ckpt.LAST_NAME
        if not last.is_file():
            if resume and self.runtime.is_main:
                print(f"no checkpoint at {last}: starting {self.config.run_name} from scratch")
            return
        if not resume:
            raise ConfigError(
                f"{self.dir} already holds a run ({last}); resume it with --resume "
                "(resume=True) or choose another run_name"
            )
        run = restore(last, self.config, self.labels, self.model, self.optimizer,
                      self.scheduler, self.scaler)  # fmt: skip
        self.epoch, self.global_step, self.elapsed = run.epoch, run.global_step, run.elapsed
        self.history, self.best, self.resumed = run.history, run.best, run.resumed
        if self.runtime.is_main:
            files = [self.dir / "predictions" / f"valid_{e}.npz" for e in range(1, self.epoch + 1)]
            self.ensemble = CumulativeEnsemble.from_files(files)
            changed = "".join(f", {k} {a!r} -> {b!r}" for k, (a, b) in run.changes.items())
            print(f"resuming {self.config.run_name} after epoch {self.epoch} from {last}{changed}")

    def _tensorboard(self) -> Any:
        if not (self.config.tensorboard and self.runtime.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard=true needs the tensorboard package: "
                "pip install 'ast-repro[tensorboard]'"
            ) from None
        return SummaryWriter(str(self.dir / "tensorboard"))

    # ------------------------------------------------------------------ epochs

    def fit(self, on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
        """Train the remaining epochs, then run the final evaluations and write metrics."""
        for epoch in range(self.epoch + 1, self.config.epochs + 1):
            start = time.perf_counter()
            lr, train_loss, speed = self._train_epoch(epoch)
            result = self._evaluate(self.valid_set)
            self.scheduler.step()  # after validation, as the original
            self.epoch = epoch
            self.elapsed += time.perf_counter() - start
            record = self._end_epoch(epoch, lr, train_loss, speed, result)
            self.runtime.barrier()
            if on_epoch_end is not None and record is not None:
                on_epoch_end(epoch, record)
        return self._finish()

    def _train_epoch(self, epoch: int) -> tuple[float, float, dict[str, float | None]]:
        """One epoch of updates.

        Returns:
            (last lr, mean train loss, speed), where speed is `EpochMeter.record`: clips per
            second over all ranks, MFU, the data-wait fraction and, on a GPU, peak memory.
        """
        config, runtime = self.config, self.runtime
        loader = train_loader(self.data, config, runtime, epoch)
        self.model.train()
        total, lr = 0.0, self.optimizer.param_groups[0]["lr"]
        meter = EpochMeter(runtime.device, self.flops_per_clip, runtime.world_size)
        bar = tqdm(
            loader,
            desc=f"{config.run_name} epoch {epoch}/{config.epochs}",
            disable=not (config.progress and runtime.is_main),
            leave=False,
        )
        for step, batch in enumerate(meter.iterate(bar)):
            if config.warmup and (warm := warmup_lr(self.global_step, config.lr)) is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = warm
            lr = self.optimizer.param_groups[0]["lr"]
            draws = None
            if self.frontend is not None:
                generator = make_generator(
                    config.seed, epoch, step, runtime.rank, device=runtime.device
                )
                draws = self.frontend.draw(generator, batch[0].shape[0])
            x, y = model_inputs(batch, runtime.device, self.frontend, draws)
            with runtime.autocast():
                logits = self.model(x)
            loss = loss_on_logits(logits.float(), y, config.loss)
            value = float(all_reduce_mean(loss.detach(), runtime))
            # NOTE: the original checks its running loss every 100 steps and returns quietly;
            # here every step's loss (averaged over ranks, so all ranks stop together) is
            # checked before the update can spoil the weights, and the run fails loudly.
            if not math.isfinite(value):
                last = self.ckpt_dir / ckpt.LAST_NAME
                good = (
                    f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint yet"
                )
                raise TrainingDiverged(
                    f"{config.run_name}: loss is {value} at epoch {epoch}, step {step} (global "
                    f"step {self.global_step}, lr {lr:.3g}); stopped, {good}. Resume it with a "
                    f"lower lr (--resume --set lr={config.lr / 10:.3g}), or restart with "
                    "precision=fp32 under another run_name."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.global_step += 1
            total += value * x.shape[0]
            meter.add(x.shape[0])
            if self.writer is not None:
                self.writer.add_scalar("train/loss", value, self.global_step)
                self.writer.add_scalar("train/lr", lr, self.global_step)
            if step % POSTFIX_EVERY == 0:
                rate = f"{meter.rate():.0f}"
                bar.set_postfix(loss=f"{total / meter.clips:.4f}", lr=f"{lr:.2e}", clips_s=rate)
        return lr, total / max(meter.clips, 1), meter.record()

    def _end_epoch(
        self,
        epoch: int,
        lr: float,
        train_loss: float,
        speed: dict[str, float | None],
        result: EvalResult | None,
    ) -> dict[str, Any] | None:
        """Rank 0: record metrics, write predictions, checkpoints and metrics.json."""
        if result is None:
            return None
        cumulative = compute_metrics(self.ensemble.update(result.probs), result.targets)
        values = headline(result.metrics)
        main = values["mAP"] if self.config.metric == "mAP" else values["accuracy"]
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "valid_loss": result.loss,
            **values,
            "main": main,
            **{f"cum_{k}": v for k, v in headline(cumulative).items()},
            "seconds": self.elapsed,
            **speed,
        }
        self.history.append(record)
        print(f"{self.config.run_name} epoch {epoch}: {summary_line(result.metrics)} "
              f"train_loss {train_loss:.4f} valid_loss {result.loss:.4f}")  # fmt: skip
        predictions = self.dir / "predictions" / f"valid_{epoch}.npz"
        save_predictions(
            predictions,
            probs=result.probs,
            targets=result.targets,
            datafile=str(self.paths["valid"]),
        )
        improved = not self.best or main > self.best["main"]
        if improved:
            self.best = {"epoch": epoch, "main": main}
        payload = ckpt.model_payload(
            self.model, config=self.config, labels=self.labels, epoch=epoch, metrics=record
        )
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "global_step": self.global_step,
            "sampler": {"seed": self.config.seed, "epoch": epoch},
            "history": self.history,
            "best": self.best,
            "elapsed": self.elapsed,
            "resumed": self.resumed,
        }
        # without save_model, only the newest epoch and the weight-averaging range are kept
        config = self.config
        keep = config.save_model or (config.wa and config.wa_start <= epoch - 1 <= config.wa_end)
        ckpt.save_epoch(self.ckpt_dir, payload, state, best=improved, keep_previous=keep)
        if self.writer is not None:
            for key, value in record.items():
                if value is not None:  # mfu off a known GPU
                    self.writer.add_scalar(f"valid/{key}", value, epoch)
        self._write_metrics(complete=False)
        return record

    # ------------------------------------------------------------------ end of run

    def _evaluate(
        self, dataset: Any, state: dict[str, torch.Tensor] | None = None
    ) -> EvalResult | None:
        """Score the model (with `state` loaded first, if given); the result on rank 0."""
        if state is not None:
            ckpt.unwrap(self.model).load_state_dict(state)
        return evaluate_dataset(
            ckpt.unwrap(self.model),
            dataset,
            runtime=self.runtime,
            batch_size=max(1, self.config.eval_batch_size // self.runtime.world_size),
            loss=self.config.loss,
            frontend=self.frontend,
            num_workers=self.config.num_workers,
        )

    def _finish(self) -> dict[str, Any]:
        config, runtime = self.config, self.runtime
        if config.wa:
            state = weight_average(
                str(self.ckpt_dir / ckpt.EPOCH_PATTERN), start=config.wa_start, end=config.wa_end
            )
            result = self._evaluate(self.valid_set, state)
            if result is not None:
                payload = ckpt.model_payload(
                    self.model, config=config, labels=self.labels, epoch=self.epoch
                )
                ckpt.save(self.ckpt_dir / ckpt.WA_NAME, payload)
                self._save_result("valid_wa", result, self.paths["valid"])
                self.extra["wa"] = {
                    "label": f"weight average of epochs {config.wa_start}..{config.wa_end}",
                    **headline(result.metrics),
                    "valid_loss": result.loss,
                }
        if config.select_best:
            best = ckpt.load(self.ckpt_dir / ckpt.BEST_NAME)
            for name, dataset, datafile in (
                ("valid", self.valid_set, self.paths["valid"]),
                ("test", self.eval_set, self.paths["eval"]),
            ):
                if dataset is None:
                    continue
                result = self._evaluate(dataset, best["model"])
                if result is not None:
                    self._save_result(f"{name}_best", result, datafile)
                    self.extra[name] = {
                        "label": f"best-validation model (epoch {best['epoch']}) on {name} set",
                        "epoch": best["epoch"],
                        **headline(result.metrics),
                    }
        if runtime.is_main and not config.save_model:
            for epoch in range(1, self.epoch):
                ckpt.epoch_path(self.ckpt_dir, epoch).unlink(missing_ok=True)
        path = self._write_metrics(complete=True) if runtime.is_main else None
        runtime.barrier()
        if self.writer is not None:
            self.writer.close()
        return {
            "run_dir": str(self.dir),
            "metrics_path": None if path is None else str(path),
            "checkpoint_dir": str(self.ckpt_dir),
            "history": self.history,
            "final": self.history[-1] if self.history else None,
            "best": self.best,
            **self.extra,
        }

    def _save_result(self, name: str, result: EvalResult, datafile: Path) -> None:
        path = self.dir / "predictions" / f"{name}.npz"
        save_predictions(path, probs=result.probs, targets=result.targets, datafile=str(datafile))

    def _write_metrics(self, *, complete: bool) -> Path:
        metrics = {
            "main_metric": self.config.metric,
            "epochs": self.history,
            "final": self.history[-1] if self.history else None,
            "best": self.best,
            **({"resumed": self.resumed} if self.resumed else {}),
            **self.extra,
        }
        return write_metrics(
            STAGE,
            self.config.run_name,
            profile=self.config.profile,
            config=self.config.to_dict(),
            metrics=metrics,
            seed=self.config.seed,
            wall_time_s=self.elapsed,
            extra={
                "complete": complete,
                "data": {key: str(value) for key, value in self.paths.items()},
                "world_size": self.runtime.world_size,
                "precision": self.runtime.precision,
                "num_parameters": sum(p.numel() for p in self.model.parameters()),
            },
        )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Train one run and return its metrics and paths (usable from notebooks).

    Args:
        config: from `ast_repro.config.resolve`. ESC-50 configs must name one fold; use
            `train_esc50_folds` for cross-validation.
        resume: continue from `checkpoints/last.pt` of the same run (starts fresh if absent).
        on_epoch_end: called on rank 0 with (epoch, record) after each epoch's checkpoint.
        runtime: an existing runtime (e.g. shared by the folds of a driver); default: set one
            up from torchrun's environment and close it at the end.

    Returns:
        `history` (per-epoch records), `final`, `best`, `wa`/`valid`/`test` where computed,
        `run_dir`, `checkpoint_dir` and `metrics_path` (None on ranks other than 0).
    """
    if config.dataset == "esc50" and len(config.fold_list()) != 1:
        raise ConfigError(
            f"folds={config.folds!r}: train() runs one fold; use train_esc50_folds() (or "
            "`ast-repro train`) for cross-validation"
        )
    own = runtime is None
    runtime = runtime or setup(device=config.device, precision=config.precision)
    try:
        return Trainer(config, runtime, resume=resume).fit(on_epoch_end)
    finally:
        if own:
            runtime.close()
