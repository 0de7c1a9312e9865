"""The zoo's log-mel front-end as a torch module that exports to plain ONNX ops, so feature
extraction at evaluation/calibration time needs only onnxruntime.

STFT = a Conv1d whose fixed kernels are Hann-windowed DFT rows (cos and sin, 25 ms window, 20 ms
hop, 512-point DFT), power = re^2 + im^2, then a 40-band HTK mel matrix and log.
1 s at 16 kHz gives 49 frames: [1, 16000] -> [1, 1, 49, 40] (the KWS input layout).
"""

from __future__ import annotations

import numpy as np

try:  # torch only for training/export; the filter definitions below are numpy (used by tests)
    import torch
except ImportError:  # pragma: no cover
    torch = None

RATE, WIN, HOP, NFFT, MELS = 16000, 400, 320, 512, 40


def mel_matrix(n_mels: int = MELS, fmin: float = 20.0, fmax: float = 8000.0) -> np.ndarray:
    """[n_mels, NFFT//2+1] triangular HTK-mel filters."""
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    bins = np.fft.rfftfreq(NFFT, 1.0 / RATE)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb.astype(np.float32)


def dft_kernels() -> np.ndarray:
    """[2*(NFFT//2+1), 1, WIN]: windowed cos rows then -sin rows."""
    n = np.arange(WIN)
    k = np.arange(NFFT // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN)  # periodic Hann
    ang = 2 * np.pi * k * n / NFFT
    return np.concatenate([np.cos(ang) * window, -np.sin(ang) * window])[:, None, :].astype(np.float32)


class LogMel(torch.nn.Module if torch else object):
    """waveform [B, T] -> log-mel [B, 1, frames, 40]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernels", torch.from_numpy(dft_kernels()))
        self.register_buffer("mel", torch.from_numpy(mel_matrix()))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = torch.nn.functional.conv1d(waveform.unsqueeze(1), self.kernels, stride=HOP)
        half = NFFT // 2 + 1
        power = spec[:, :half] ** 2 + spec[:, half:] ** 2          # [B, 257, frames]
        mel = torch.matmul(self.mel, power)                         # [B, 40, frames]
        return torch.log(mel + 1e-6).transpose(1, 2).unsqueeze(1)   # [B, 1, frames, 40]


def export(path: str, samples: int | None = RATE) -> None:
    """Export with a fixed [1, samples] input, or a symbolic length when samples is None."""
    import onnx

    model = LogMel().eval()
    example = torch.zeros(1, samples or RATE)
    dynamic = None if samples else {"waveform": {1: "samples"}, "logmel": {2: "frames"}}
    torch.onnx.export(model, (example,), path, input_names=["waveform"], output_names=["logmel"],
                      opset_version=17, dynamo=False, dynamic_axes=dynamic)
    m = onnx.load(path)
    m.ir_version = 8
    m.producer_name = "onnxprune-zoo"
    onnx.save(m, path)
