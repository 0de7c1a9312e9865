"""The machine a number was measured on: CPU model, the ISA flags that change int8 and float
kernels (AVX2, AVX-512, VNNI, AMX), core count and library versions. Published figures quote
these, and `quantize` uses the VNNI flag to say whether its check ran on a CPU that saturates."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# flags as Linux names them in /proc/cpuinfo; the ones that select different ORT (MLAS) kernels
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("", platform.processor(), platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_model() -> str:
    return _cpuinfo()[0]


def isa_flags() -> list[str]:
    """The kernel-relevant ISA flags this CPU reports, in a fixed order (empty if unknown)."""
    flags = _cpuinfo()[1]
    return [f for f in ISA_FLAGS if f in flags]


def int8_saturates() -> bool | None:
    """True on an x86 CPU with AVX2 but no VNNI, where ORT's u8*s8 kernels (VPMADDUBSW) add
    pairs of products in 16 bits and can saturate; None when the flags are unknown."""
    flags = _cpuinfo()[1]
    if not flags:
        return None
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    return "avx2" in flags and not any(f in flags for f in VNNI_FLAGS)


def describe(threads=None) -> dict:
    """Everything a published figure should name about where it was measured."""
    import numpy
    import onnx
    import onnxruntime

    return {"cpu": cpu_model(), "isa": isa_flags(), "cores": os.cpu_count(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": numpy.__version__,
            "threads": threads if threads else "default"}


def one_line(info: dict) -> str:
    isa = "/".join(info.get("isa") or []) or "ISA flags unknown"
    return (f"{info['cpu']} ({info['cores']} cores; {isa}) | onnxruntime {info['onnxruntime']} | "
            f"threads {info['threads']}")
