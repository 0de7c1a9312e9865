"""Optional heavy dependencies of recovery (torch, onnx2torch), imported only when asked for.

onnx2torch imports torchvision at import time for its NMS and RoiAlign converters, and the PyPI
torchvision wheel does not load beside the CPU build of torch (its C ops fail to register). Speech
models use neither op, so when torchvision cannot be imported we put a stand-in module in its place
for the duration of the onnx2torch import; calling those two converters then raises a clear error.
"""

from __future__ import annotations

import importlib
import sys
import types

from ..errors import UsageError

INSTALL = 'pip install "onnxprune[recover]"'


def require():
    """(torch, onnx2torch) or a one-line UsageError naming the install command."""
    try:
        import torch
    except ImportError:
        raise UsageError(f"recovery needs torch and onnx2torch: {INSTALL}") from None
    try:
        onnx2torch = _import_onnx2torch()
    except ImportError:
        raise UsageError(f"recovery needs onnx2torch: {INSTALL}") from None
    from . import converters  # noqa: F401  (registers the converters onnx2torch lacks)

    return torch, onnx2torch


def _import_onnx2torch():
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    try:
        importlib.import_module("torchvision")
        return importlib.import_module("onnx2torch")
    except (ImportError, RuntimeError, OSError):  # missing or unloadable torchvision
        pass
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # a half-imported torchvision
    stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

    def unavailable(*_args, **_kwargs):
        raise NotImplementedError("NMS/RoiAlign need a working torchvision beside torch")

    ops.nms = ops.roi_align = ops.box_convert = unavailable
    stub.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
    try:
        return importlib.import_module("onnx2torch")
    finally:  # only onnx2torch's modules keep a reference to the stand-in
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]


def available() -> bool:
    """Whether recovery can run here (torch and onnx2torch import)."""
    try:
        require()
        return True
    except UsageError:
        return False
