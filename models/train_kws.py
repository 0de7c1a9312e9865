"""Train the zoo's DS-CNN keyword spotter on synthesized speech and export it (plus the log-mel
front-end) to ONNX.  Needs the `train` extra (torch); a few minutes on 2 CPU threads.

    python models/kws_data.py                 # synthesize + write the committed eval/calib sets
    python models/train_kws.py                # -> models/zoo/kws_dscnn.onnx, models/zoo/logmel_frontend.onnx
    python models/eval_zoo.py kws --heldout   # held-out accuracy with onnxruntime only
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kws_data  # noqa: E402
from logmel import LogMel, export  # noqa: E402

ZOO = Path(__file__).resolve().parent / "zoo"
FEATS = kws_data.CACHE / "kws_train_feats.npz"


def ds_block(cin: int, cout: int, stride=1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DSCNN(nn.Module):
    """Depthwise-separable CNN (Zhang et al. 2017 'Hello Edge' style), widths 64..128, stem stride (4, 2) to stay
    cheap to train on a shared CPU. `widths` (stem, then each block's pointwise output): other values
    build the same recipe narrower, e.g. at a pruned model's widths (benchmarks/dense_twin.py)."""

    def __init__(self, n_classes: int = len(kws_data.LABELS), widths=(64, 64, 96, 96, 128)):
        super().__init__()
        w = widths
        self.norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(nn.Conv2d(1, w[0], (10, 4), (4, 2), (5, 1), bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        self.blocks = nn.Sequential(ds_block(w[0], w[1], (1, 2)), ds_block(w[1], w[2], 2), ds_block(w[2], w[3]),
                                    ds_block(w[3], w[4]))
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(w[4], n_classes)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.norm(logmel)))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


class Exported(nn.Module):
    """What ships: probabilities, like the bundled demo model."""

    def __init__(self, net: DSCNN):
        super().__init__()
        self.net = net

    def forward(self, logmel):
        return torch.softmax(self.net(logmel), dim=-1)


def featurize(waves: np.ndarray, front: LogMel) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([front(torch.from_numpy(waves[i:i + 512])).numpy()
                               for i in range(0, len(waves), 512)]).astype(np.float32)


def train_features(copies: int = 2) -> tuple[np.ndarray, np.ndarray]:
    if FEATS.exists():
        z = np.load(FEATS)
        return z["x"], z["y"]
    records = kws_data.build_base()
    front = LogMel()
    xs, ys = [], []
    for c in range(copies):
        waves, labels = kws_data.clips(records, "train", 1, seed=100 + c, silence=400)
        xs.append(featurize(waves, front))
        ys.append(np.array([kws_data.LABELS.index(lab) for lab in labels]))
        print(f"  copy {c + 1}/{copies}: {len(waves)} clips", file=sys.stderr, flush=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    np.savez(FEATS, x=x, y=y)
    return x, y


def heldout_features() -> tuple[np.ndarray, np.ndarray]:
    path = kws_data.CACHE / "kws_heldout_feats.npz"
    if not path.exists():
        waves, labels = kws_data.clips(kws_data.build_base(), "eval", 1, seed=11, silence=60)
        np.savez(path, x=featurize(waves, LogMel()), y=np.array([kws_data.LABELS.index(lab) for lab in labels]))
    z = np.load(path)
    return z["x"], z["y"]


def accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 512])).argmax(1).numpy() for i in range(0, len(x), 512)])
    return float((pred == y).mean())


def main(epochs: int = 4, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # faster than 2 on a shared 2-core machine
    x, y = train_features()
    xe, ye = heldout_features()
    print(f"train {len(x)} clips, held-out {len(xe)} clips", file=sys.stderr)
    net = DSCNN()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    steps = epochs * (len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        start, total = time.time(), 0.0
        order = rng.permutation(len(x))
        for i in range(0, len(order) - 63, 64):
            idx = order[i:i + 64]
            xb = torch.from_numpy(x[idx])
            # SpecAugment-lite: one random time and one frequency mask.
            t0, f0 = rng.integers(0, 44), rng.integers(0, 35)
            xb[:, :, t0:t0 + rng.integers(0, 6)] = xb.mean()
            xb[:, :, :, f0:f0 + rng.integers(0, 6)] = xb.mean()
            loss = nn.functional.cross_entropy(net(xb), torch.from_numpy(y[idx]), label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            if i // 64 % 50 == 0:
                print(f"  step {i // 64}: loss {loss.item():.3f} ({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
        print(f"epoch {epoch + 1}: loss {total / len(x):.3f}, held-out acc {accuracy(net, xe, ye):.3f} "
              f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    net.eval()
    ZOO.mkdir(exist_ok=True)
    torch.save(net.state_dict(), kws_data.CACHE / "kws_dscnn.pt")
    export_kws(net, ZOO / "kws_dscnn.onnx")
    export(str(ZOO / "logmel_frontend.onnx"), 16000)
    (ZOO / "kws_labels.json").write_text(json.dumps(kws_data.LABELS) + "\n")


def export_kws(net: DSCNN, path: Path) -> None:
    import onnx

    model = Exported(net).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 49, 40),), str(path), input_names=["logmel"], output_names=["probs"],
                      opset_version=17, dynamo=False)
    m = onnx.load(str(path))
    m.ir_version = 8
    m.producer_name = "onnxprune-zoo"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
