"""Fixtures for the data tests (helpers live in audio_fixtures.py)."""

from __future__ import annotations

import pytest
from audio_fixtures import tone, write


@pytest.fixture
def speech_commands(tmp_path):
    """A Speech-Commands-style folder: label folders, mixed rates, stereo, int16 and float files."""
    root = tmp_path / "sc"
    write(root / "yes" / "a.wav", tone(16000, 1.0), 16000, "PCM_16")
    write(root / "yes" / "b.flac", tone(44100, 1.0, 600), 44100, "PCM_16")
    write(root / "no" / "c.wav", tone(8000, 1.0, 300, channels=2), 8000, "FLOAT")
    write(root / "no" / "deep" / "d.ogg", tone(16000, 1.0, 500), 16000, "VORBIS")
    return root
