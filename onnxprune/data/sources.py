"""What `--data PATH` names: an audio folder, a JSONL manifest, one audio file, or feature dumps.

Discovery lists *items* (a file, or a manifest segment) without decoding any audio, so a bad path
or manifest line fails before the first example, and memory holds file names, never samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_SUFFIXES
from .config import DataError

DUMP_SUFFIXES = {".npy", ".npz"}
MANIFEST_SUFFIXES = {".jsonl", ".json"}


@dataclass(frozen=True)
class Item:
    path: Path
    key: str                         # stable id (path relative to the data root) for the split
    label: str | None = None
    text: str | None = None
    offset: float = 0.0
    duration: float | None = None


def discover(root: str) -> tuple[str, list[Item]]:
    """("audio" | "dumps", items) for `--data root`."""
    path = Path(root)
    if not path.exists():
        raise DataError(f"--data {path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
        if audio:
            return "audio", [_folder_item(p, path) for p in audio]
        dumps = [p for p in files if p.suffix.lower() in DUMP_SUFFIXES]
        if dumps:
            return "dumps", [Item(p, p.relative_to(path).as_posix()) for p in dumps]
        raise DataError(f"--data {path}: no audio (.wav/.flac/.ogg) or .npy/.npz files in this folder")
    suffix = path.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        return "audio", list(_manifest(path))
    if suffix in DUMP_SUFFIXES:
        return "dumps", [Item(path, path.name)]
    if suffix in AUDIO_SUFFIXES:
        return "audio", [Item(path, path.name)]
    raise DataError(f"--data {path}: not an audio folder, .jsonl manifest, audio file or .npy/.npz dump")


def _folder_item(p: Path, root: Path) -> Item:
    """Speech-Commands layout: the label is the class folder under the root (root/yes/x.wav is
    "yes"; so is root/yes/speaker1/x.wav); a file directly in the root has no label."""
    rel = p.relative_to(root)
    return Item(p, rel.as_posix(), label=rel.parts[0] if len(rel.parts) > 1 else None)


def _manifest(path: Path):
    """NeMo-style lines: {"audio_filepath", "label" or "text", optional "offset"/"duration"}."""
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"--data {path}: cannot open ({exc.strerror})") from None
    count = 0
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"--data {path} line {number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("audio_filepath"), str):
                raise DataError(f"{where}: expected an object with a string \"audio_filepath\"")
            audio = Path(entry["audio_filepath"])
            full = audio if audio.is_absolute() else path.parent / audio
            if not full.is_file():
                raise DataError(f"{where}: audio file {full} does not exist")
            try:
                offset = float(entry.get("offset") or 0.0)
                duration = None if entry.get("duration") is None else float(entry["duration"])
            except (TypeError, ValueError):
                raise DataError(f"{where}: \"offset\"/\"duration\" must be numbers of seconds") from None
            if offset < 0 or (duration is not None and duration <= 0):
                raise DataError(f"{where}: \"offset\" must be >= 0 and \"duration\" > 0")
            label = entry.get("label")
            text = entry.get("text")
            count += 1
            yield Item(full, entry["audio_filepath"], label=None if label is None else str(label),
                       text=None if text is None else str(text), offset=offset, duration=duration)
    if not count:
        raise DataError(f"--data {path}: manifest has no entries")


def item_keys(kind: str, items: list[Item]) -> list[str]:
    """The split keys: one per audio item, one per dump row."""
    return [k for it in items for k in dump_keys(it)] if kind == "dumps" else [it.key for it in items]


def dump_keys(item: Item) -> list[str]:
    """Split keys of a dump file's rows (its first axis), read without loading the arrays."""
    try:
        data = np.load(item.path, mmap_mode="r", allow_pickle=False)
        first = data if isinstance(data, np.ndarray) else data[data.files[0]]
        rows = first.shape[0] if first.ndim else 1
    except Exception as exc:
        raise DataError(f"--data {item.path}: cannot read ({type(exc).__name__}: {exc})") from None
    return [f"{item.key}[{i}]" for i in range(rows)]
