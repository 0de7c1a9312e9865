"""Train the zoo's CNN + bidirectional-GRU CTC recognizer (word vocabulary, greedy decoding) on
synthesized digit strings and device commands, and export it with both torch exporters.

    python models/ctc_data.py                 # synthesize + write the committed eval/calib sets
    python models/train_ctc.py                # -> models/zoo/crnn_ctc_{ts,dynamo}.onnx, ctc_vocab.txt,
                                              #    logmel_frontend_dyn.onnx (symbolic length)
    python models/eval_zoo.py ctc --heldout   # held-out WER with onnxruntime only
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ctc_data  # noqa: E402
from logmel import LogMel, export  # noqa: E402

ZOO = Path(__file__).resolve().parent / "zoo"
PAD = float(np.log(1e-6))  # log-mel of digital silence
FIXED_FRAMES = 199         # 4 s, for an export without a symbolic time axis


class CRNN(nn.Module):
    """Two strided convs (time /4, mel /4) -> per-frame projection -> BiGRU -> word log-probs.
    `conv2` / `proj` (default: `conv` / 96) let the recipe be built at a pruned model's widths."""

    def __init__(self, vocab: int = len(ctc_data.VOCAB), conv: int = 32, hidden: int = 64, conv2: int | None = None,
                 proj: int = 96):
        super().__init__()
        conv2 = conv2 or conv
        self.norm = nn.BatchNorm2d(1)
        self.conv = nn.Sequential(
            nn.Conv2d(1, conv, 3, 2, 1, bias=False), nn.BatchNorm2d(conv), nn.ReLU(),
            nn.Conv2d(conv, conv2, 3, 2, 1, bias=False), nn.BatchNorm2d(conv2), nn.ReLU())
        self.proj = nn.Linear(conv2 * 10, proj)
        self.gru = nn.GRU(proj, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, vocab)
        self.feat = conv2 * 10
        self.batch1 = False  # export: a constant [1, -1, C*10] Reshape (a Shape read of C would block pruning)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:   # [B, 1, T, 40] -> [B, T/4, vocab]
        x = self.conv(self.norm(logmel))                        # [B, C, T/4, 10]
        x = x.permute(0, 2, 1, 3)
        x = x.reshape(1, -1, self.feat) if self.batch1 else x.flatten(2)   # [B, T/4, C*10]
        x, _ = self.gru(torch.relu(self.proj(x)))
        return torch.log_softmax(self.out(x), dim=-1)


def out_frames(t: int) -> int:
    return ((t - 1) // 2 + 1 - 1) // 2 + 1


def encode(text: str) -> list[int]:
    return [ctc_data.VOCAB.index(w) for w in text.split()]


def greedy(logp: np.ndarray) -> str:
    ids = logp.argmax(-1)
    words, prev = [], 0
    for i in ids:
        if i != prev and i != 0:
            words.append(ctc_data.VOCAB[i])
        prev = i
    return " ".join(words)


def wer(refs: list[str], hyps: list[str]) -> float:
    def dist(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[len(b)]
    return sum(dist(r.split(), h.split()) for r, h in zip(refs, hyps)) / sum(len(r.split()) for r in refs)


def features(items, front: LogMel) -> list[np.ndarray]:
    with torch.no_grad():
        return [front(torch.from_numpy(w[None]))[0, 0].numpy() for w, _ in items]


def cached_features(name: str, make, front: LogMel):
    """Log-mel features of a split, cached (the front-end dominates start-up on a slow CPU)."""
    path = ctc_data.CACHE / f"ctc_{name}_feats.npz"
    if not path.exists():
        items = make()
        feats = features(items, front)
        np.savez(path, x=np.concatenate(feats), lens=[len(f) for f in feats], text=[t for _, t in items])
    z = np.load(path)
    x, offsets = z["x"], np.cumsum([0, *z["lens"]])  # read x once: each z["x"] decompresses a new copy
    return [x[a:b] for a, b in zip(offsets[:-1], offsets[1:])], [str(t) for t in z["text"]]


def batches(feats, texts, size: int, rng):
    order = np.argsort([len(f) for f in feats])
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    for k in rng.permutation(len(groups)):
        idx = groups[k]
        t = max(len(feats[i]) for i in idx)
        x = np.full((len(idx), 1, t, 40), PAD, np.float32)
        for j, i in enumerate(idx):
            x[j, 0, :len(feats[i])] = feats[i]
        yield x, [len(feats[i]) for i in idx], [texts[i] for i in idx]


def evaluate(net, feats, texts) -> float:
    net.eval()
    with torch.no_grad():
        hyps = [greedy(net(torch.from_numpy(f[None, None]))[0].numpy()) for f in feats]
    return wer(texts, hyps)


def main(epochs: int = 30, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    records = ctc_data.build_base()
    front = LogMel()
    tf, tt = cached_features("train", lambda: ctc_data.utterances(records, "train", 2, seed=200), front)
    ef, et = cached_features("heldout", lambda: ctc_data.utterances(records, "eval", 1, seed=21), front)
    print(f"train {len(tf)} utterances, held-out {len(ef)}", file=sys.stderr, flush=True)
    net = CRNN()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    steps = epochs * ((len(tf) + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    ctc = nn.CTCLoss(zero_infinity=True)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        start, total, n = time.time(), 0.0, 0
        for x, lens, texts in batches(tf, tt, 32, rng):
            logp = net(torch.from_numpy(x)).transpose(0, 1)  # [T, B, V]
            targets = [encode(t) for t in texts]
            loss = ctc(logp, torch.tensor(sum(targets, [])), torch.tensor([out_frames(t) for t in lens]),
                       torch.tensor([len(t) for t in targets]))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
        print(f"epoch {epoch + 1}: loss {total / n:.3f}, held-out WER {evaluate(net, ef[::4], et[::4]):.3f} "
              f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    net.eval()
    torch.save(net.state_dict(), ctc_data.CACHE / "crnn_ctc.pt")
    print(f"held-out WER (torch, all {len(ef)}): {evaluate(net, ef, et):.4f}", file=sys.stderr)
    export_ctc(net)


def export_ctc(net: CRNN) -> None:
    import onnx

    net.batch1 = True
    (ZOO / "ctc_vocab.txt").write_text("\n".join(ctc_data.VOCAB) + "\n")
    export(str(ZOO / "logmel_frontend_dyn.onnx"), None)
    example = (torch.zeros(1, 1, 101, 40),)
    dyn = {"logmel": {2: "frames"}, "logprobs": {1: "steps"}}
    for name, dynamo, fixed in (("ts", False, False), ("dynamo", True, False), ("dynamo", True, True)):
        path = ZOO / f"crnn_ctc_{name}.onnx"
        if path.exists() and dynamo and fixed:
            break  # the dynamic-length dynamo export worked
        try:
            with torch.no_grad():
                if dynamo:
                    # Bidirectional GRU with a symbolic time axis fails in the dynamo exporter's decompositions
                    # (torch 2.13); then export a fixed 4 s window (199 frames) instead.
                    shape = (torch.zeros(1, 1, FIXED_FRAMES, 40),) if fixed else example
                    kw = {} if fixed else {"dynamic_shapes": {"logmel": {2: torch.export.Dim("frames", min=8, max=4000)}}}
                    prog = torch.onnx.export(net, shape, input_names=["logmel"], output_names=["logprobs"],
                                             opset_version=18, dynamo=True, optimize=True, **kw)
                    prog.save(str(path))
                else:
                    export_ts(net, path, example, dyn)
            m = onnx.load(str(path))
            m.ir_version = min(m.ir_version, 10)
            m.producer_name = "onnxprune-zoo"
            onnx.checker.check_model(m, full_check=True)
            onnx.save(m, str(path))
            check_export(net, path)
            print(f"exported {path}" + (" (fixed 199 frames)" if fixed else ""), file=sys.stderr)
        except Exception as exc:  # report, keep the other exporter's file
            print(f"export {name} (fixed={fixed}) failed: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            path.unlink(missing_ok=True)


def export_ts(net: CRNN, path: Path, example=(torch.zeros(1, 1, 101, 40),),
              dyn=(("logmel", {2: "frames"}), ("logprobs", {1: "steps"}))) -> None:
    """The TorchScript export the zoo ships (crnn_ctc_ts.onnx); also used to build the recipe at a pruned
    model's widths (benchmarks/dense_twin.py)."""
    net.batch1 = True
    torch.onnx.export(net, example, str(path), input_names=["logmel"], output_names=["logprobs"],
                      opset_version=17, dynamo=False, dynamic_axes=dict(dyn))


def check_export(net: CRNN, path: Path) -> None:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fixed = s.get_inputs()[0].shape[2]
    for t in ((fixed,) if isinstance(fixed, int) else (57, 101, 180)):
        x = np.random.default_rng(t).standard_normal((1, 1, t, 40)).astype(np.float32) - 5
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        got = s.run(None, {s.get_inputs()[0].name: x})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3, (path, t, np.abs(got - ref).max())


if __name__ == "__main__":
    if sys.argv[1:] == ["export"]:  # re-export the saved weights
        torch.set_num_threads(1)
        trained = CRNN()
        trained.load_state_dict(torch.load(ctc_data.CACHE / "crnn_ctc.pt"))
        export_ctc(trained.eval())
    else:
        main(*(int(a) for a in sys.argv[1:]))
