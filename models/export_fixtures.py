"""Export the small recurrent/attention test fixtures with both torch exporters.

    pip install torch==2.13.0 onnxscript   # CPU build; torch is never a runtime dependency
    python models/export_fixtures.py       # writes models/fixtures/*.onnx (committed)

Weights are seeded random (the fixtures test graph rewriting, not accuracy). Each model is
exported twice: TorchScript (`dynamo=False`) and the dynamo exporter, which emit different
patterns (e.g. packed-QKV Reshape/Gather chains vs. Split, LSTM vs. unrolled loops).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

OUT = Path(__file__).resolve().parent / "fixtures"
OPSET = 18


class CnnBiGruCtc(nn.Module):
    """The seeds' CNN+RNN recognizer: conv front-end over log-mel, bidirectional GRU, CTC logits."""

    def __init__(self, mels=40, channels=32, hidden=48, vocab=29):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(mels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU())
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, x):  # x: [B, mels, T]
        h = self.conv(x).transpose(1, 2)
        y, _ = self.gru(h)
        return self.out(y).log_softmax(-1)


class Lstm2(nn.Module):
    """A 2-layer LSTM classifier over features (the NLP/KWS seed shape)."""

    def __init__(self, feats=40, hidden=64, classes=12):
        super().__init__()
        self.lstm = nn.LSTM(feats, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # [B, T, feats]
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class Transformer(nn.Module):
    def __init__(self, feats=40, d=64, heads=4, ffn=128, classes=12):
        super().__init__()
        self.inp = nn.Linear(feats, d)
        self.layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.layer(self.inp(x)).mean(1))


class ConformerConv(nn.Module):
    """Conformer convolution module: pointwise -> GLU -> depthwise -> BatchNorm -> SiLU -> pointwise."""

    def __init__(self, d=64, kernel=15):
        super().__init__()
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)

    def forward(self, x):  # [B, T, d]
        y = nn.functional.glu(self.pw1(x.transpose(1, 2)), dim=1)
        y = self.pw2(nn.functional.silu(self.bn(self.dw(y))))
        return x + y.transpose(1, 2)


class Conformer(nn.Module):
    def __init__(self, feats=40, d=64, heads=4, ffn=128, classes=12):
        super().__init__()
        self.inp = nn.Linear(feats, d)
        self.ff1 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ffn), nn.SiLU(), nn.Linear(ffn, d))
        self.norm_att = nn.LayerNorm(d)
        self.att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.conv = ConformerConv(d)
        self.ff2 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ffn), nn.SiLU(), nn.Linear(ffn, d))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.inp(x)
        x = x + 0.5 * self.ff1(x)
        a = self.norm_att(x)
        x = x + self.att(a, a, a, need_weights=False)[0]
        x = self.conv(x)
        x = self.norm(x + 0.5 * self.ff2(x))
        return self.head(x.mean(1))


MODELS = {
    "cnn_bigru_ctc": (CnnBiGruCtc, (1, 40, 50)),
    "lstm2": (Lstm2, (1, 50, 40)),
    "transformer": (Transformer, (1, 50, 40)),
    "conformer": (Conformer, (1, 50, 40)),
}


def export(name: str, dynamo: bool) -> Path:
    cls, shape = MODELS[name]
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, (nn.BatchNorm1d,)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(*shape)
    path = OUT / f"{name}_{'dynamo' if dynamo else 'ts'}.onnx"
    with torch.no_grad():
        if dynamo:
            prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=OPSET, input_names=["x"],
                                     output_names=["y"], optimize=True)
            prog.save(str(path))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=["x"],
                              output_names=["y"])
    m = onnx.load(str(path))
    m.ir_version = min(m.ir_version, 8)
    onnx.save(m, str(path))
    return path


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name in MODELS:
        for dynamo in (False, True):
            try:
                p = export(name, dynamo)
                print(f"wrote {p} ({p.stat().st_size} bytes)")
            except Exception as exc:  # report and continue: one exporter may not support a model
                print(f"FAILED {name} dynamo={dynamo}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
