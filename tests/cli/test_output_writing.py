"""Reports are written the way users expect: `-` is stdout, a symlink is followed and a device or
FIFO written through (never replaced), a new file gets the umask's mode."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from test_main import run

import onnxprune

KWS = Path(onnxprune.__file__).parent / "assets" / "kws" / "kws.onnx"


def test_json_dash_is_stdout(tmp_path):
    r = run("inspect", KWS, "--json", "-", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # stdout carries the JSON alone; the table went to stderr
    assert data["params"] > 0 and "groups" in r.stderr
    assert not (tmp_path / "-").exists()


def test_report_dash_is_stdout(tmp_path):
    r = run("prune", KWS, tmp_path / "p.onnx", "--report", "-")
    assert r.returncode == 0, r.stderr
    assert "fidelity" in json.loads(r.stdout)


def test_symlinked_report_keeps_the_symlink(tmp_path):
    target = tmp_path / "real" / "report.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    r = run("inspect", KWS, "--json", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and json.loads(target.read_text())["params"] > 0


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is waiting, as `cat pipe` would
    try:
        r = run("inspect", KWS, "--json", fifo)
        assert r.returncode == 0, r.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        chunks = []
        while True:
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert json.loads(b"".join(chunks))["params"] > 0
    finally:
        os.close(reader)


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_new_json_gets_the_umask_mode(tmp_path, mask):
    old = os.umask(mask)
    try:
        r = run("inspect", KWS, "--json", tmp_path / "a.json")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o666 & ~mask


def test_existing_regular_file_is_replaced_keeping_its_mode(tmp_path):
    out = tmp_path / "a.json"
    out.write_text("old")
    os.chmod(out, 0o640)
    assert run("inspect", KWS, "--json", out).returncode == 0
    assert json.loads(out.read_text())["params"] > 0 and stat.S_IMODE(os.stat(out).st_mode) == 0o640
