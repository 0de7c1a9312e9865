"""onnx2torch converters for ops it lacks, registered with its own `add_converter`.

Recurrent ops follow the ONNX definitions exactly: LSTM gates in ONNX order i, o, f, c (torch uses
i, f, g, o), GRU gates z, r, h with `linear_before_reset`, B = [Wb, Rb], peepholes P = [i, o, f],
`sequence_lens`, `direction`, `layout`, `clip`. Weights are module *inputs* (not parameters), so
they stay ONNX initializers in ONNX layout and recovery trains them in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

_ACT = {"Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Relu": torch.relu}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _register(op: str, versions, converter) -> None:
    for v in versions:
        try:
            add_converter(operation_type=op, version=v)(converter)
        except ValueError:  # onnx2torch has its own for this version now
            pass


class OnnxRecurrent(nn.Module, OnnxToTorchModule):
    """ONNX LSTM / GRU / RNN (all directions), unrolled over time."""

    def __init__(self, op: str, hidden: int, direction: str, acts: list[str], clip: float | None,
                 linear_before_reset: bool, layout: int, outputs: int):
        super().__init__()
        self.op, self.hidden, self.direction, self.clip = op, hidden, direction, clip
        self.acts, self.lbr, self.layout, self.outputs = acts, linear_before_reset, layout, outputs

    def forward(self, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None):
        seq = x.shape[1 if self.layout else 0]
        if p is None and self._fast_ok() and (sequence_lens is None or bool((sequence_lens == seq).all())):
            return self._fast(x, w, r, b, initial_h, initial_c)
        if self.layout:
            x = x.transpose(0, 1)  # [batch, seq, in] -> [seq, batch, in]
            initial_h = None if initial_h is None else initial_h.transpose(0, 1)
            initial_c = None if initial_c is None else initial_c.transpose(0, 1)
        dirs = 2 if self.direction == "bidirectional" else 1
        ys, hs, cs = [], [], []
        for d in range(dirs):
            reverse = self.direction == "reverse" or d == 1
            n = 2 if dirs == 2 else 1
            acts = self.acts[d * len(self.acts) // n:(d + 1) * len(self.acts) // n]
            y, h, c = self._direction(x, w[d], r[d], None if b is None else b[d], sequence_lens,
                                      None if initial_h is None else initial_h[d],
                                      None if initial_c is None else initial_c[d],
                                      None if p is None else p[d], reverse, acts)
            ys.append(y), hs.append(h), cs.append(c)
        y, yh = torch.stack(ys, 1), torch.stack(hs, 0)  # [seq, dirs, batch, H], [dirs, batch, H]
        yc = torch.stack(cs, 0) if self.op == "LSTM" else None
        if self.layout:
            y, yh = y.permute(2, 0, 1, 3), yh.transpose(0, 1)
            yc = None if yc is None else yc.transpose(0, 1)
        out = (y, yh, yc)[:self.outputs]
        return out[0] if self.outputs == 1 else out

    _ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}  # ONNX gate blocks in torch's order

    def _fast_ok(self) -> bool:
        """torch's fused kernels compute the same thing: default activations, no clip, and for GRU
        linear_before_reset=1 (torch applies r after the recurrent matmul)."""
        dirs = 2 if self.direction == "bidirectional" else 1
        plain = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": self.acts[:1]}[self.op]
        acts_ok = self.acts == plain * dirs and (self.op != "RNN" or plain[0] in ("Tanh", "Relu"))
        return acts_ok and self.clip is None and (self.op != "GRU" or self.lbr)

    def _fast(self, x, w, r, b, h0, c0):
        """The same op through torch's fused nn.LSTM/GRU/RNN, weights fed by functional_call."""
        from torch.func import functional_call

        dirs = 2 if self.direction == "bidirectional" else 1
        hid = self.hidden
        if self.layout:
            x = x.transpose(0, 1)
            h0 = None if h0 is None else h0.transpose(0, 1)
            c0 = None if c0 is None else c0.transpose(0, 1)
        cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[self.op]
        kw = {} if self.op != "RNN" else {"nonlinearity": self.acts[0].lower()}
        rnn = cls(w.shape[-1], hid, bidirectional=dirs == 2, device="meta", **kw)  # shapes only
        order = torch.cat([torch.arange(k * hid, (k + 1) * hid) for k in self._ORDER[self.op]])
        gates = w.shape[1]
        values = {}
        for d in range(dirs):
            sfx = "_l0" + ("_reverse" if d else "")
            bb = b[d] if b is not None else w.new_zeros(2 * gates)
            values["weight_ih" + sfx], values["weight_hh" + sfx] = w[d][order], r[d][order]
            values["bias_ih" + sfx], values["bias_hh" + sfx] = bb[:gates][order], bb[gates:][order]
        batch = x.shape[1]
        h0 = x.new_zeros(dirs, batch, hid) if h0 is None else h0
        state = h0 if self.op != "LSTM" else (h0, x.new_zeros(dirs, batch, hid) if c0 is None else c0)
        xin = x.flip(0) if self.direction == "reverse" else x
        y, hn = functional_call(rnn, values, (xin, state), strict=True)
        if self.direction == "reverse":
            y = y.flip(0)
        y = y.view(y.shape[0], batch, dirs, hid).transpose(1, 2)  # [seq, dirs, batch, H]
        yh, yc = (hn if self.op != "LSTM" else hn[0]), (hn[1] if self.op == "LSTM" else None)
        if self.layout:
            y, yh = y.permute(2, 0, 1, 3), yh.transpose(0, 1)
            yc = None if yc is None else yc.transpose(0, 1)
        out = (y, yh, yc)[:self.outputs]
        return out[0] if self.outputs == 1 else out

    def _clip(self, v):
        return v if self.clip is None else v.clamp(-self.clip, self.clip)

    def _direction(self, x, w, r, b, lens, h, c, p, reverse, acts):
        seq, batch, hid = x.shape[0], x.shape[1], self.hidden
        gates = w.shape[0] // hid
        f = [_ACT[a] for a in acts]
        wb, rb = (b[:gates * hid], b[gates * hid:]) if b is not None else (None, None)
        xw = torch.matmul(x, w.t()) + (wb if wb is not None else 0)  # all steps at once
        h = x.new_zeros(batch, hid) if h is None else h
        c = x.new_zeros(batch, hid) if c is None and self.op == "LSTM" else c
        steps = range(seq - 1, -1, -1) if reverse else range(seq)
        y = [None] * seq
        for t in steps:
            hr = torch.matmul(h, r.t()) + (rb if rb is not None else 0)
            if self.op == "LSTM":
                gx, gh = xw[t].split(hid, -1), hr.split(hid, -1)
                pi, po, pf = (p.split(hid) if p is not None else (0, 0, 0))
                i = f[0](self._clip(gx[0] + gh[0] + pi * c))
                fg = f[0](self._clip(gx[2] + gh[2] + pf * c))
                cc = f[1](self._clip(gx[3] + gh[3]))
                c_new = fg * c + i * cc
                o = f[0](self._clip(gx[1] + gh[1] + po * c_new))
                h_new = o * f[2](c_new)
            elif self.op == "GRU":
                gx = xw[t].split(hid, -1)
                rz, rr = (r[:hid], r[hid:2 * hid])
                rbz, rbr, rbh = (rb.split(hid) if rb is not None else (0, 0, 0))
                z = f[0](self._clip(gx[0] + h @ rz.t() + rbz))
                rg = f[0](self._clip(gx[1] + h @ rr.t() + rbr))
                rh = r[2 * hid:]
                if self.lbr:
                    hh = f[1](self._clip(gx[2] + rg * (h @ rh.t() + rbh)))
                else:
                    hh = f[1](self._clip(gx[2] + (rg * h) @ rh.t() + rbh))
                h_new, c_new = (1 - z) * hh + z * h, None
            else:
                h_new, c_new = f[0](self._clip(xw[t] + hr)), None
            if lens is not None:
                keep = (t < lens).unsqueeze(-1)
                y[t] = torch.where(keep, h_new, torch.zeros_like(h_new))
                h = torch.where(keep, h_new, h)
                c = torch.where(keep, c_new, c) if c_new is not None else c
            else:
                y[t], h, c = h_new, h_new, c_new
        return torch.stack(y, 0), h, c


def _recurrent(node, graph) -> OperationConverterResult:
    a = node.attributes
    op = node.operation_type
    acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [])]
    dirs = 2 if a.get("direction", "forward") == "bidirectional" else 1
    acts = acts or _DEFAULT_ACTS[op] * dirs
    if any(x not in _ACT for x in acts):
        raise NotImplementedError(f"{op} activations {acts} (only Sigmoid/Tanh/Relu)")
    if a.get("input_forget", 0):
        raise NotImplementedError("LSTM input_forget=1")
    if len(acts) == len(_DEFAULT_ACTS[op]) and dirs == 2:
        acts = acts * 2
    module = OnnxRecurrent(op, int(a["hidden_size"]), a.get("direction", "forward"), acts, a.get("clip"),
                           bool(a.get("linear_before_reset", 0)), int(a.get("layout", 0)),
                           len(node.output_values))
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


class OnnxPad18(nn.Module, OnnxToTorchModule):
    """Pad-18/19: pads, constant_value and axes as inputs."""

    _MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}

    def __init__(self, mode: str):
        super().__init__()
        if mode not in self._MODES:
            raise NotImplementedError(f"Pad mode {mode}")
        self.mode = self._MODES[mode]

    def forward(self, x, pads, constant_value=None, axes=None):
        rank = x.dim()
        axes = list(range(rank)) if axes is None else [int(v) % rank for v in axes.tolist()]
        pads = [int(v) for v in pads.tolist()]
        begin, end = dict(zip(axes, pads[:len(axes)])), dict(zip(axes, pads[len(axes):]))
        first = min((ax for ax in range(rank) if begin.get(ax, 0) or end.get(ax, 0)), default=rank)
        torch_pads = []
        for ax in range(rank - 1, first - 1, -1):
            torch_pads += [begin.get(ax, 0), end.get(ax, 0)]
        if self.mode == "constant":
            value = 0.0 if constant_value is None or constant_value.numel() == 0 else float(constant_value)
            return F.pad(x, torch_pads, mode="constant", value=value)
        return F.pad(x, torch_pads, mode=self.mode)


def _pad18(node, graph) -> OperationConverterResult:
    return OperationConverterResult(torch_module=OnnxPad18(node.attributes.get("mode", "constant")),
                                    onnx_mapping=onnx_mapping_from_node(node))


class OnnxCompare16(nn.Module, OnnxToTorchModule):
    def __init__(self, op: str):
        super().__init__()
        self.fn = torch.greater_equal if op == "GreaterOrEqual" else torch.less_equal

    def forward(self, x, y):
        return self.fn(x, y)


def _compare16(node, graph) -> OperationConverterResult:
    return OperationConverterResult(torch_module=OnnxCompare16(node.operation_type),
                                    onnx_mapping=onnx_mapping_from_node(node))


_REDUCE = {
    "ReduceMean": lambda x, d, k: x.mean(d, keepdim=k), "ReduceSum": lambda x, d, k: x.sum(d, keepdim=k),
    "ReduceMax": lambda x, d, k: x.amax(d, keepdim=k), "ReduceMin": lambda x, d, k: x.amin(d, keepdim=k),
    "ReduceL1": lambda x, d, k: x.abs().sum(d, keepdim=k), "ReduceL2": lambda x, d, k: x.square().sum(d, keepdim=k).sqrt(),
    "ReduceSumSquare": lambda x, d, k: x.square().sum(d, keepdim=k),
    "ReduceLogSum": lambda x, d, k: x.sum(d, keepdim=k).log(), "ReduceLogSumExp": lambda x, d, k: x.logsumexp(d, keepdim=k),
}


class OnnxReduce18(nn.Module, OnnxToTorchModule):
    """Reductions from opset 18 on: axes as an optional input."""

    def __init__(self, op: str, keepdims: bool, noop_with_empty_axes: bool):
        super().__init__()
        self.op, self.keepdims, self.noop = op, keepdims, noop_with_empty_axes

    def forward(self, x, axes=None):
        dims = [] if axes is None else [int(v) % x.dim() for v in axes.tolist()]
        if not dims:
            if self.noop:
                return x
            dims = list(range(x.dim()))
        return _REDUCE[self.op](x, tuple(dims), self.keepdims)


def _reduce18(node, graph) -> OperationConverterResult:
    a = node.attributes
    module = OnnxReduce18(node.operation_type, bool(a.get("keepdims", 1)), bool(a.get("noop_with_empty_axes", 0)))
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


class OnnxSplit18(nn.Module, OnnxToTorchModule):
    """Split-18: sizes as an optional input, or `num_outputs` chunks (the last one smaller)."""

    def __init__(self, axis: int, outputs: int):
        super().__init__()
        self.axis, self.outputs = axis, outputs

    def forward(self, x, split=None):
        if split is not None:
            parts = torch.split(x, [int(v) for v in split.tolist()], self.axis)
        else:
            parts = torch.split(x, -(-x.shape[self.axis] // self.outputs), self.axis)
        return parts[0] if self.outputs == 1 else tuple(parts)


def _split18(node, graph) -> OperationConverterResult:
    module = OnnxSplit18(int(node.attributes.get("axis", 0)), len(node.output_values))
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


_register("LSTM", (7, 14), _recurrent)
_register("GRU", (7, 14), _recurrent)
_register("RNN", (7, 14), _recurrent)
_register("Pad", (18, 19, 21, 23), _pad18)
_register("GreaterOrEqual", (16,), _compare16)
_register("LessOrEqual", (16,), _compare16)
for _op in _REDUCE:
    _register(_op, (18, 20) if _op in ("ReduceMax", "ReduceMin") else (18,), _reduce18)
_register("Split", (18,), _split18)
