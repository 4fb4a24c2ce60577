"""An offline stand-in for ImageNet DeiT weights (DESIGN.md, "Offline twins").

The paper initializes the AST from ImageNet DeiT (section 2.2, Table 2). Machines without
internet cannot fetch those weights, so the smoke profile pre-trains a tiny distilled DeiT
(timm's own class, at the `test` size) on scikit-learn's bundled digits images, upscaled to
the `test` size's source grid times 16 pixels and repeated over three colour channels. The
file is a timm-format state dict and reaches the AST through exactly the same
`ast_repro.weights.imagenet_init` as real DeiT weights. Results obtained from it are labelled
as coming from a proxy: it teaches the code path, not ImageNet's features.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ast_repro.fileio import atomic_save, atomic_write_json
from ast_repro.model_config import DEIT_PATCH_SIZE, MODEL_SIZES
from ast_repro.pretrained import PROXY_FILE, pretrained_dir

# The model size whose ImageNet stand-in is the digits proxy.
PROXY_SIZE = "test"
# scikit-learn's digits: 8 x 8 images with pixel values 0..16, ten classes.
DIGITS_SIDE = 8
DIGITS_MAX_VALUE = 16.0
NUM_DIGIT_CLASSES = 10
# Share of the 1797 images held out for the accuracy check.
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class ProxyResult:
    """Where the proxy weights went and how well they classify held-out digits."""

    path: Path
    test_accuracy: float
    train_seconds: float


def proxy_image_size() -> int:
    """Side in pixels of the proxy's input images (source grid x patch size)."""
    rows, cols = MODEL_SIZES[PROXY_SIZE].source_grid
    if rows != cols:
        raise ValueError(f"the {PROXY_SIZE!r} size needs a square source grid, got {rows}x{cols}")
    return rows * DEIT_PATCH_SIZE


def digits_images(*, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (N, 3, S, S) images in [-1, 1] and (N,) int64 labels.

    Each 8 x 8 image is enlarged by nearest-neighbour repetition to S x S and copied to the
    three colour channels, so a summed one-channel kernel sees exactly what the RGB one saw.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32)  # (N, 8, 8)
    images = images / DIGITS_MAX_VALUE * 2 - 1
    images = F.interpolate(images[:, None], size=(image_size, image_size), mode="nearest")
    return images.expand(-1, 3, -1, -1).contiguous(), torch.as_tensor(digits.target)


def build_proxy_vit() -> nn.Module:
    """A randomly initialized timm distilled DeiT with the `test` size's width and depth."""
    import timm

    spec = MODEL_SIZES[PROXY_SIZE]
    return timm.create_model(
        "deit_tiny_distilled_patch16_224",
        pretrained=False,
        img_size=proxy_image_size(),
        patch_size=DEIT_PATCH_SIZE,
        embed_dim=spec.hidden_size,
        depth=spec.num_hidden_layers,
        num_heads=spec.num_attention_heads,
        num_classes=NUM_DIGIT_CLASSES,
    )


def pretrain_proxy(
    path: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    epochs: int = 6,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> ProxyResult:
    """Pre-train the digits proxy and save it as a timm-format state dict (atomically).

    A json with the seed, settings and accuracy is written next to it (`<path>.json`).
    The run is deterministic for a given seed and thread count.

    Args:
        path: destination; default `pretrained_dir()/proxy_deit_test_digits.pth`.
        seed: seeds the split, the initialization and the batch order.
        epochs: passes over the training images.
        batch_size: images per step.
        learning_rate: AdamW learning rate.
    """
    path = Path(path) if path is not None else pretrained_dir() / PROXY_FILE
    start = time.perf_counter()
    images, labels = digits_images(image_size=proxy_image_size())
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    num_test = int(len(labels) * TEST_FRACTION)
    test_idx, train_idx = order[:num_test], order[num_test:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_proxy_vit()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    steps = epochs * -(-len(train_idx) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps)
    model.train()
    for _ in range(epochs):
        shuffled = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for batch in shuffled.split(batch_size):
            # In training mode timm's distilled DeiT returns the mean of its two heads.
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        predictions = model(images[test_idx]).argmax(dim=1)
    accuracy = (predictions == labels[test_idx]).float().mean().item()
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    atomic_save(path, lambda handle: torch.save(state_dict, handle))
    seconds = time.perf_counter() - start
    atomic_write_json(
        path.with_name(path.name + ".json"),
        {
            "what": "digits proxy for ImageNet DeiT weights (not ImageNet)",
            "size": PROXY_SIZE,
            "image_size": proxy_image_size(),
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "test_images": num_test,
            "test_accuracy": accuracy,
            "train_seconds": seconds,
        },
    )
    return ProxyResult(path=path, test_accuracy=accuracy, train_seconds=seconds)
