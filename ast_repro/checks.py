"""What a clip and a datafile must satisfy: the one set of checks every command applies.

The original code finds a bad clip only when its data loader reaches it (`src/dataloader.py`,
`AudiosetDataset._wav2fbank`): a clip too short for one frame or holding NaN crashes the
run, and int16 values stored as floats go through silently. Here one set of rules decides:

- a datafile (`check_datafile`, `datafile_problems`): json of the AST format that lists at
  least one clip, every entry with at least one label, each label in the label set;
- a clip (`header_problems`, `sample_problems`): readable audio with samples, not
  truncated (its header promises no more than the file holds), at least one 25 ms frame
  long after resampling to the model's rate, and when decoded, finite samples within
  `MAX_FLOAT_PEAK`.

`ast_repro.audio.load_audio` (training, evaluation, prediction, norm statistics, the waveform
cache) raises `AudioError` on a clip's first problem; `ast-repro validate-data` reports every
problem of every clip with `check_clip` (headers only, plus decoding where a header cannot
rule a problem out: float samples). A clip at another sample rate is not a problem: every
command resamples it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import soundfile as sf

from ast_repro.datafiles import Clip, DatafileError, LabelMap, read_datafile
from ast_repro.errors import AstReproError
from ast_repro.features import FRAME_LENGTH_MS, frame_geometry

ChannelPolicy = Literal["first", "mean"]

# NOTE: the original feeds any float samples to the fbank; int16 values stored as floats
# (peaks in the thousands) shift every log-mel value by about 2 * ln(32768) = 21 and the
# model sees nonsense. A peak above this is refused; float audio a little over full scale
# (up to 2.0, e.g. after resampling or mixing) is accepted as it is.
MAX_FLOAT_PEAK = 2.0
# Sample formats whose values a header cannot bound: only these can hold NaN, inf or values
# outside [-1, 1], so only these are decoded by the header-only check.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
# Decoding may give this fraction fewer samples than the header counts before the file
# counts as damaged: the headers of compressed formats (MP3) can estimate their length.
DECODED_SHORTFALL = 0.01
# NOTE: the original reads whatever part of a truncated file is there; here it is refused.
# libsndfile's log line for a WAV data chunk longer than the file ("data : 32000 (should
# be 8000)"); 2**31 - 1 and more mark a stream written without knowing its length.
_DATA_LENGTH = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMED_LENGTH = 2**31 - 1


class AudioError(AstReproError, ValueError):
    """An audio file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str | None = None) -> None:
        # A single argument is a whole message: that is how torch.utils.data re-raises an
        # error of a DataLoader worker in the main process.
        super().__init__(str(path) if problem is None else f"{path}: {problem}")
        self.path = None if problem is None else Path(path)
        self.problem = str(path) if problem is None else problem


class ClipProblem(NamedTuple):
    """One problem of a clip or a datafile entry: a short kind and a sentence."""

    kind: str
    detail: str


@dataclass(frozen=True)
class AudioHeader:
    """What an audio file's header says.

    Attributes:
        sample_rate: Hz.
        frames: samples per channel the file holds.
        channels: channel count.
        subtype: libsndfile's sample format, e.g. "PCM_16", "FLOAT".
        promised_frames: samples per channel the header promises where that is more than
            the file holds (a truncated copy), else None.
    """

    sample_rate: int
    frames: int
    channels: int
    subtype: str
    promised_frames: int | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def read_header(path: str | os.PathLike[str]) -> AudioHeader:
    """The header of an audio file, without decoding it.

    Raises:
        AudioError: missing or unreadable file.
    """
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    frames = int(info.frames)
    promised = None
    match = _DATA_LENGTH.search(info.extra_info or "")
    if match is not None:
        declared, present = int(match.group(1)), int(match.group(2))
        if present < declared < _STREAMED_LENGTH and present > 0:
            promised = round(frames * declared / present)
    return AudioHeader(int(info.samplerate), frames, int(info.channels), info.subtype, promised)


def decode(path: str | os.PathLike[str], channels: ChannelPolicy = "first") -> np.ndarray:
    """Every sample of an audio file as mono float32 (libsndfile's [-1, 1] scale).

    Args:
        path: any format libsndfile reads.
        channels: "first" takes channel 0, as the original does; "mean" averages channels.

    Returns:
        (N,) float32 at the file's own rate.

    Raises:
        AudioError: missing or unreadable file.
    """
    if channels not in ("first", "mean"):
        raise ValueError(f"channels must be 'first' or 'mean', not {channels!r}")
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    mono = data[:, 0] if channels == "first" else data.mean(axis=1)
    return np.ascontiguousarray(mono)


def resampled_length(frames: int, file_rate: int, sample_rate: int) -> int:
    """Samples after resampling `frames` from `file_rate` to `sample_rate` Hz, as torchaudio's
    `functional.resample` makes them: ceil(frames * sample_rate / file_rate)."""
    return -(-frames * sample_rate // file_rate)


def length_problem(num_samples: int, sample_rate: int) -> ClipProblem | None:
    """A clip of `num_samples` at `sample_rate` Hz that is too short for one Kaldi frame."""
    if num_samples == 0:
        return ClipProblem("zero length", "the file holds no samples")
    window = frame_geometry(sample_rate)[0]
    if num_samples < window:
        return ClipProblem(
            "too short",
            f"{num_samples} samples at {sample_rate} Hz is shorter than one "
            f"{FRAME_LENGTH_MS:g} ms frame ({window} samples)",
        )
    return None


def header_problems(header: AudioHeader, *, sample_rate: int) -> list[ClipProblem]:
    """What a header alone shows to be wrong with a clip that is resampled to `sample_rate`."""
    problems = []
    if header.promised_frames is not None:
        problems.append(
            ClipProblem(
                "truncated",
                f"the header promises {header.promised_frames} samples but the file holds "
                f"{header.frames} (an interrupted copy or download?); copy it again",
            )
        )
    length = resampled_length(header.frames, header.sample_rate, sample_rate)
    problem = length_problem(length, sample_rate)
    if problem is not None:
        problems.append(problem)
    return problems


def sample_problems(samples: np.ndarray, header: AudioHeader) -> list[ClipProblem]:
    """What a clip's decoded (N,) samples show to be wrong: fewer than its header says
    (damaged compressed data), NaN/inf, or float values far out of range."""
    if samples.shape[0] < header.frames * (1 - DECODED_SHORTFALL):
        return [
            ClipProblem(
                "truncated",
                f"the header promises {header.frames} samples but {samples.shape[0]} decode",
            )
        ]
    if not np.isfinite(samples).all():
        return [ClipProblem("not finite", "the file holds NaN or infinite samples")]
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_FLOAT_PEAK:
        return [
            ClipProblem(
                "out of range",
                f"float samples reach {peak:.4g}, far outside [-1, 1] (integer samples stored "
                "as float?); rescale the file to [-1, 1], e.g. divide int16 values by 32768",
            )
        ]
    return []


@dataclass(frozen=True)
class ClipCheck:
    """The outcome of `check_clip`: the header (None when unreadable) and the problems."""

    header: AudioHeader | None
    problems: tuple[ClipProblem, ...]


def check_clip(
    path: str | os.PathLike[str], *, sample_rate: int, decode_all: bool = False
) -> ClipCheck:
    """Every problem of one clip that the commands would refuse it for.

    Args:
        path: the audio file.
        sample_rate: the model's rate in Hz; the clip is resampled to it.
        decode_all: decode the file even when its header rules out bad samples (slower;
            also finds damaged compressed data).

    Returns:
        The header and problems; float files are always decoded, as their header cannot
        rule out NaN or out-of-range samples.
    """
    try:
        header = read_header(path)
    except AudioError as exc:
        kind = "missing file" if exc.problem == "file not found" else "unreadable"
        return ClipCheck(None, (ClipProblem(kind, exc.problem),))
    problems = header_problems(header, sample_rate=sample_rate)
    if header.frames == 0 or not (decode_all or header.subtype in FLOAT_SUBTYPES):
        return ClipCheck(header, tuple(problems))
    try:
        samples = decode(path)
    except AudioError as exc:
        return ClipCheck(header, (*problems, ClipProblem("unreadable", exc.problem)))
    return ClipCheck(header, (*problems, *sample_problems(samples, header)))


def entry_problems(clip: Clip, labels: LabelMap | None) -> list[ClipProblem]:
    """What is wrong with a datafile entry's labels (`labels` None: not checked against a set).

    An entry without a label would be scored as a correct prediction of class 0 by the
    accuracy, and trained towards no class at all.
    """
    if not clip.labels:
        return [ClipProblem("no labels", "the entry lists no label")]
    if labels is not None:
        unknown = [mid for mid in clip.labels if mid not in labels.mids]
        if unknown:
            return [ClipProblem("unknown label", f"{', '.join(unknown)} not in the label set")]
    return []


def datafile_problems(
    path: str | os.PathLike[str], labels: LabelMap | None = None
) -> tuple[list[Clip], list[tuple[int, ClipProblem]]]:
    """A datafile's clips and the problems of its entries, as (entry index, problem).

    Raises:
        DatafileError: the datafile is missing, malformed or lists no clips.
    """
    clips = read_datafile(path)
    if not clips:
        raise DatafileError(f"{path}: no clips (its 'data' list is empty)")
    problems = [(i, p) for i, clip in enumerate(clips) for p in entry_problems(clip, labels)]
    return clips, problems


def check_datafile(path: str | os.PathLike[str], labels: LabelMap | None = None) -> list[Clip]:
    """A datafile's clips, refused as a whole if anything is wrong with it or an entry.

    Args:
        path: an AST json datafile.
        labels: the label set its label ids must belong to; None checks only that each
            entry has a label.

    Raises:
        DatafileError: missing or malformed file, no clips, an entry without labels or with a
            label id outside `labels` (the first one is named).
    """
    clips, problems = datafile_problems(path, labels)
    if problems:
        index, problem = problems[0]
        more = f" ({len(problems) - 1} more entries; see `ast-repro validate-data {path}`)"
        if labels is not None:  # a model's or a --label-csv's classes, not the datafile's own
            more = (
                f" ({len(problems) - 1} more entries; the labels checked against are "
                f"{labels.num_classes} classes: is the datafile of another dataset?)"
            )
        raise DatafileError(
            f"{path}: entry {index} ({clips[index].wav}): {problem.detail}"
            + (more if len(problems) > 1 else "")
        )
    return clips
