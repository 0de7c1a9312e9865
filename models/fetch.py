"""Extract the real pretrained speech models used in tests from their PyPI wheels into a cache.

Nothing is committed: the models' licences differ (openwakeword's are CC BY-NC-SA 4.0). Each
file is checked against its SHA-256 after extraction.

    python models/fetch.py                 # all models into $ONNXPRUNE_CACHE or ~/.cache/onnxprune
    python models/fetch.py embedding_model  # just one
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# name -> (wheel requirement, path inside the wheel, sha256)
MODELS = {
    "silero_vad_v6": ("faster-whisper==1.2.1", "faster_whisper/assets/silero_vad_v6.onnx",
                      "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"),
    "embedding_model": ("openwakeword==0.5.1", "openwakeword/resources/models/embedding_model.onnx",
                        "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"),
    "alexa_v0.1": ("openwakeword==0.5.1", "openwakeword/resources/models/alexa_v0.1.onnx",
                   "6ff566a01d12670e8d9e3c59da32651db1575d17272a601b7f8a39283dfbae3e"),
    "hey_jarvis_v0.1": ("openwakeword==0.5.1", "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
                        "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb"),
    "melspectrogram": ("openwakeword==0.5.1", "openwakeword/resources/models/melspectrogram.onnx",
                       "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"),
    # Used by the recurrent/subgraph work: the network lives inside If branches / tf2onnx LSTMs.
    "silero_vad": ("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx",
                   "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
    "silero_vad_op18_ifless": ("silero-vad==6.2.3", "silero_vad/data/silero_vad_op18_ifless.onnx",
                               "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28"),
    "hey_mycroft_v0.1": ("openwakeword==0.4.0", "openwakeword/resources/models/hey_mycroft_v0.1.onnx",
                         "785bdf5655863ae47553b23793aa108c7b0152d4823f7869b41f2d2d765912fc"),
    # Reliability corpus only (not speech): OCR models from other wheels, for op and exporter variety.
    "ddddocr_common": ("ddddocr==1.6.1", "ddddocr/common.onnx",
                       "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8"),
    "ddddocr_common_det": ("ddddocr==1.6.1", "ddddocr/common_det.onnx",
                           "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6"),
    "ddddocr_common_old": ("ddddocr==1.6.1", "ddddocr/common_old.onnx",
                           "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68"),
    "ppocrv6_det_small": ("rapidocr==3.10.0", "rapidocr/models/PP-OCRv6_det_small.onnx",
                          "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    "ppocrv6_rec_small": ("rapidocr==3.10.0", "rapidocr/models/PP-OCRv6_rec_small.onnx",
                          "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
    "ppocr_mobile_cls": ("rapidocr==3.10.0", "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                         "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}


def cache_dir() -> Path:
    root = os.environ.get("ONNXPRUNE_CACHE") or Path.home() / ".cache" / "onnxprune"
    path = Path(root) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str) -> Path:
    """Path of the cached model, downloading its wheel with `pip download --no-deps` if needed."""
    requirement, member, digest = MODELS[name]
    target = cache_dir() / f"{name}.onnx"
    if target.exists() and _sha256(target) == digest:
        return target
    wheels = cache_dir().parent / "wheels"
    wheels.mkdir(exist_ok=True)
    project, version = requirement.split("==")
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    if not any(wheels.glob(pattern)):
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp,
                                   requirement], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pip download {requirement} failed: {done.stderr.strip().splitlines()[-1:]}")
            for whl in Path(tmp).glob("*.whl"):
                whl.replace(wheels / whl.name)
    wheel = next(wheels.glob(pattern))
    data = zipfile.ZipFile(wheel).read(member)
    if hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"{name}: {member} in {requirement} does not match the expected SHA-256")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        print(fetch(name))
