"""Golden logits of the released AST checkpoints (hf_ast_and_notebook_tooling.md 1.5, 2).

transformers' conversion script checked each Hugging Face copy against the original model
on one clip and recorded `logits[0, :3]`; the same numbers must come out of this package's
features and model, both from the original .pth files and from the Hugging Face copies.
The weights cannot be downloaded here, so each test looks for its files in
$AST_REPRO_PRETRAINED_DIR (default `pretrained_models/`) and skips, saying exactly what to
fetch and where to put it, when they are absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ast_repro.checkpoint import load_original_checkpoint
from ast_repro.pretrained import ORIGINAL_CHECKPOINTS, pretrained_dir

pytestmark = pytest.mark.golden

# Tolerance of transformers' own integration test and conversion script.
GOLDEN_ATOL = 1e-4
PARITY_ATOL = 1e-5
SAMPLE_AUDIO = "sample_audio.flac"
SAMPLE_AUDIO_URL = (
    "https://huggingface.co/datasets/nielsr/audio-spectogram-transformer-checkpoint/"
    "resolve/main/sample_audio.flac"
)
# The first clip of `datasets.load_dataset("speech_commands", "v0.02", split="validation")`,
# as the conversion script used, saved as 16 kHz wav.
SPEECH_SAMPLE = "speech_commands_v0.02_validation_0.wav"

# original file -> logits[0, :3] recorded by transformers' conversion script.
GOLDEN_LOGITS = {
    "audioset_10_10_0.4593.pth": [-0.8760, -7.0042, -8.6602],
    "audioset_10_10_0.4495.pth": [-1.1986, -7.0903, -8.2718],
    "audioset_10_10_0.4483.pth": [-2.6128, -8.0080, -9.4344],
    "audioset_10_10_0.4475.pth": [-1.5080, -7.4534, -8.8917],
    "audioset_12_12_0.4467.pth": [-0.5050, -6.5833, -8.0843],
    "audioset_14_14_0.4431.pth": [-0.3826, -7.0336, -8.2413],
    "audioset_16_16_0.4422.pth": [-1.2113, -6.9101, -8.3470],
    "speechcommands_10_10_0.9812.pth": [6.1589, -8.0566, -8.7984],
}


def _need(path: Path, url: str, *, where: Path | None = None) -> Path:
    if not path.exists():
        pytest.skip(f"golden file absent: download {url} to {where or path}")
    return path


def _input_for(name: str) -> torch.Tensor:
    """(1, T, 128) normalized log-mel of the clip the golden numbers were recorded on."""
    from ast_repro.audio import load_audio
    from ast_repro.features import (
        AUDIOSET_STATS,
        SPEECHCOMMANDS_STATS,
        kaldi_fbank,
        normalize,
        pad_or_crop,
    )

    spec = ORIGINAL_CHECKPOINTS[name]
    if name.startswith("speechcommands"):
        clip = _need(
            pretrained_dir() / SPEECH_SAMPLE,
            "the first validation clip of Hugging Face's speech_commands v0.02",
        )
        stats = SPEECHCOMMANDS_STATS
    else:
        clip = _need(pretrained_dir() / SAMPLE_AUDIO, SAMPLE_AUDIO_URL)
        stats = AUDIOSET_STATS
    waveform = load_audio(clip)
    fbank = pad_or_crop(kaldi_fbank(waveform, 16000), spec.max_length)
    return normalize(fbank, stats)[None]


@pytest.mark.parametrize("name", sorted(GOLDEN_LOGITS))
def test_original_checkpoint_gives_the_golden_logits(name):
    spec = ORIGINAL_CHECKPOINTS[name]
    path = _need(pretrained_dir() / name, spec.url)
    x = _input_for(name)
    model = load_original_checkpoint(path)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (1, spec.num_labels)
    torch.testing.assert_close(
        logits[0, :3], torch.tensor(GOLDEN_LOGITS[name]), atol=GOLDEN_ATOL, rtol=0
    )


@pytest.mark.parametrize("name", sorted(GOLDEN_LOGITS))
def test_hugging_face_copy_gives_the_golden_logits(name):
    transformers = pytest.importorskip("transformers")
    from ast_repro.hf import check_logits, from_hf

    spec = ORIGINAL_CHECKPOINTS[name]
    folder = pretrained_dir() / spec.hf_repo.split("/")[-1]
    _need(
        folder / "config.json",
        f"config.json and model.safetensors of https://huggingface.co/{spec.hf_repo}",
        where=folder,
    )
    x = _input_for(name)
    hf_model = transformers.ASTForAudioClassification.from_pretrained(folder).eval()
    model = from_hf(hf_model)
    assert check_logits(model, hf_model, x, atol=PARITY_ATOL) <= PARITY_ATOL
    original = pretrained_dir() / name
    if original.exists():  # both copies present: the very same tensors
        reference = load_original_checkpoint(original).state_dict()
        for key, value in model.state_dict().items():
            assert torch.equal(value, reference[key]), key
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(
        logits[0, :3], torch.tensor(GOLDEN_LOGITS[name]), atol=GOLDEN_ATOL, rtol=0
    )
