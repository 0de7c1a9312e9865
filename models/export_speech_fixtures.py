"""Export small random-weight speech encoders the way people ship them, for the coverage tests.

    pip install torch==2.13.0 transformers onnxscript optimum-onnx torchaudio   # CPU torch; never a runtime dependency
    python models/export_speech_fixtures.py             # writes models/fixtures/speech/speech_*.onnx (committed)

Public architectures from `transformers` (Whisper encoder, wav2vec2 with group- and layer-norm
feature extractors, HuBERT) at tiny configs with seeded random weights (the fixtures test graph
analysis, not accuracy), exported with dynamic batch (and sample) axes by TorchScript
(`dynamo=False`) and by the dynamo exporter, which build their head split/merge targets at run
time (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`) in different ways. The Whisper
TorchScript export is also passed through onnxruntime's transformer optimizer, which fuses
Gelu/BiasGelu/SkipLayerNormalization (the com.microsoft ops), and the wav2vec2 model is also
exported by optimum-onnx. Written out from their public architectures (no speechbrain/torchaudio
install needed): speechbrain's ECAPA-TDNN (Res2Net chunks, SE blocks, attentive statistics
pooling, "same" reflect padding), an nn.MultiheadAttention block and torchaudio Emformer's
attention layout (heads folded into the batch axis as `B * num_heads`); torchaudio's Emformer itself
(`pip install torchaudio`; only its pure-torch emformer module is used). A decomposed-GroupNorm
conv block (G = C and G < C) completes the set.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

OUT = Path(__file__).resolve().parent / "fixtures" / "speech"
OPSET = 18
IR = 8  # what onnxruntime releases of the last two years load


def whisper():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = WhisperConfig(num_mel_bins=40, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                        encoder_ffn_dim=128, max_source_positions=50)
    return WhisperEncoder(cfg), torch.randn(1, 40, 100), "input_features", {0: "batch"}  # 2 x positions frames


def _w2v_config(cls, **extra):
    return cls(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, **extra)


def wav2vec2(norm="group"):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = _w2v_config(Wav2Vec2Config, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    return Wav2Vec2Model(cfg), torch.randn(1, 1600), "input_values", {0: "batch", 1: "samples"}


def hubert():
    from transformers import HubertConfig, HubertModel

    return HubertModel(_w2v_config(HubertConfig)), torch.randn(1, 1600), "input_values", {0: "batch", 1: "samples"}


class GroupNormBlock(nn.Module):
    """Conv -> GroupNorm(groups, 16) -> ReLU -> Conv: TorchScript and dynamo decompose GroupNorm into
    Reshape(N, G, -1) -> InstanceNormalization -> Reshape(Shape(x)) -> per-channel Mul/Add."""

    def __init__(self, groups):
        super().__init__()
        self.c1, self.gn, self.c2 = nn.Conv1d(8, 16, 3, padding=1), nn.GroupNorm(groups, 16), nn.Conv1d(16, 8, 3, padding=1)
        with torch.no_grad():
            self.gn.weight.uniform_(0.5, 1.5)
            self.gn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.c2(torch.relu(self.gn(self.c1(x))))


# ---- speechbrain's ECAPA-TDNN (speechbrain/lobes/models/ECAPA_TDNN.py), written out so the
# fixture needs no speechbrain install: same modules, same forward (lengths=None), tiny widths.

class SbConv1d(nn.Module):
    """speechbrain.nnet.CNN.Conv1d with padding="same", padding_mode="reflect": the padding is
    computed from the time length at run time (get_padding_elem), then F.pad(mode="reflect")."""

    def __init__(self, cin, cout, k, dilation=1, groups=1):
        super().__init__()
        self.k, self.d = k, dilation
        self.conv = nn.Conv1d(cin, cout, k, dilation=dilation, groups=groups)

    def forward(self, x):
        n = x.shape[-1]
        out = (n - self.d * (self.k - 1) - 1) + 1
        pad = (n - out) // 2
        return self.conv(nn.functional.pad(x, (pad, pad), mode="reflect"))


class TDNNBlock(nn.Module):
    def __init__(self, cin, cout, k, dilation):
        super().__init__()
        self.conv, self.norm = SbConv1d(cin, cout, k, dilation), nn.BatchNorm1d(cout)

    def forward(self, x):
        return self.norm(torch.relu(self.conv(x)))


class Res2NetBlock(nn.Module):
    def __init__(self, cin, cout, scale, k, dilation):
        super().__init__()
        self.scale = scale
        self.blocks = nn.ModuleList(TDNNBlock(cin // scale, cout // scale, k, dilation) for _ in range(scale - 1))

    def forward(self, x):
        y = []
        for i, x_i in enumerate(torch.chunk(x, self.scale, dim=1)):
            if i == 0:
                y_i = x_i
            elif i == 1:
                y_i = self.blocks[i - 1](x_i)
            else:
                y_i = self.blocks[i - 1](x_i + y_i)
            y.append(y_i)
        return torch.cat(y, dim=1)


class SEBlock(nn.Module):
    def __init__(self, cin, se, cout):
        super().__init__()
        self.conv1, self.conv2 = SbConv1d(cin, se, 1), SbConv1d(se, cout, 1)

    def forward(self, x):
        s = x.mean(dim=2, keepdim=True)
        return torch.sigmoid(self.conv2(torch.relu(self.conv1(s)))) * x


class SERes2NetBlock(nn.Module):
    def __init__(self, c, scale, se, k, dilation):
        super().__init__()
        self.tdnn1 = TDNNBlock(c, c, 1, 1)
        self.res2net_block = Res2NetBlock(c, c, scale, k, dilation)
        self.tdnn2 = TDNNBlock(c, c, 1, 1)
        self.se_block = SEBlock(c, se, c)

    def forward(self, x):
        return self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x)))) + x


def _statistics(x, m, eps=1e-12):
    mean = (m * x).sum(2)
    std = torch.sqrt((m * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(eps))
    return mean, std


class AttentiveStatisticsPooling(nn.Module):
    """global_context=True: the attention sees [x, mean, std]; softmax over time per channel."""

    def __init__(self, c, attention):
        super().__init__()
        self.tdnn = TDNNBlock(c * 3, attention, 1, 1)
        self.conv = SbConv1d(attention, c, 1)

    def forward(self, x):
        n = x.shape[-1]
        lengths = torch.ones(x.shape[0])
        mask = (torch.arange(n).unsqueeze(0) < (lengths * n).unsqueeze(1)).unsqueeze(1)
        total = mask.sum(dim=2, keepdim=True).float()
        mean, std = _statistics(x, mask / total)
        attn = torch.cat([x, mean.unsqueeze(2).repeat(1, 1, n), std.unsqueeze(2).repeat(1, 1, n)], dim=1)
        attn = self.conv(torch.tanh(self.tdnn(attn)))
        attn = torch.softmax(attn.masked_fill(mask == 0, float("-inf")), dim=2)
        mean, std = _statistics(x, attn)
        return torch.cat((mean, std), dim=1).unsqueeze(2)


class ECAPA(nn.Module):
    """ECAPA_TDNN(input_size=24, channels=[32]*4 + [96], kernel_sizes=[5, 3, 3, 3, 1],
    dilations=[1, 2, 3, 4, 1], attention_channels=16, res2net_scale=4, se_channels=8,
    lin_neurons=24): x [B, T, F] -> embedding [B, 1, 24]."""

    def __init__(self, feats=24, c=32, mfa=96, attention=16, scale=4, se=8, emb=24):
        super().__init__()
        self.blocks = nn.ModuleList([TDNNBlock(feats, c, 5, 1)] +
                                    [SERes2NetBlock(c, scale, se, 3, d) for d in (2, 3, 4)])
        self.mfa = TDNNBlock(3 * c, mfa, 1, 1)
        self.asp = AttentiveStatisticsPooling(mfa, attention)
        self.asp_bn = nn.BatchNorm1d(2 * mfa)
        self.fc = SbConv1d(2 * mfa, emb, 1)
        with torch.no_grad():  # running statistics as after training, so BatchNorm is no identity
            for m in self.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = x.transpose(1, 2)
        xl = []
        for layer in self.blocks:
            x = layer(x)
            xl.append(x)
        x = self.mfa(torch.cat(xl[1:], dim=1))
        return self.fc(self.asp_bn(self.asp(x))).transpose(1, 2)


class MHABlock(nn.Module):
    """Linear -> nn.MultiheadAttention (packed in-projection; the exporters fold heads into the batch
    axis as `bsz * num_heads`) + residual -> LayerNorm -> FFN -> Linear: x [B, T, 24] -> [B, T, 16]."""

    def __init__(self, d=64, heads=4):
        super().__init__()
        self.inp, self.mha, self.ln = nn.Linear(24, d), nn.MultiheadAttention(d, heads, batch_first=True), nn.LayerNorm(d)
        self.ffn, self.out = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d)), nn.Linear(d, 16)

    def forward(self, x):
        h = self.inp(x)
        h = self.ln(h + self.mha(h, h, h, need_weights=False)[0])
        return self.out(h + self.ffn(h))


class EmformerAttention(nn.Module):
    """torchaudio.models.emformer._EmformerAttention's layout, time first: q/k/v [T, B, D] viewed as
    [T, B*H, d] (`view(-1, B * num_heads, head_dim)`), transposed to [B*H, T, d], two bmm, merged
    back with `view(T, B, D)`; then the output projection. x [T, B, 24] -> [T, B, 16]."""

    def __init__(self, d=64, heads=4):
        super().__init__()
        self.heads, self.d = heads, d
        self.emb, self.emb_to_key_value, self.emb_to_query = nn.Linear(24, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.out_proj, self.head = nn.Linear(d, d), nn.Linear(d, 16)

    def forward(self, x):
        h = self.emb(x)
        t, b, _ = h.shape
        q = self.emb_to_query(h) * (self.d // self.heads) ** -0.5
        k, v = self.emb_to_key_value(h).chunk(chunks=2, dim=2)
        q, k, v = (z.contiguous().view(-1, b * self.heads, self.d // self.heads).transpose(0, 1) for z in (q, k, v))
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
        out = torch.bmm(attn, v).transpose(0, 1).contiguous().view(t, b, self.d)
        return self.head(torch.relu(self.out_proj(out)))


def _torchaudio_emformer():
    """torchaudio.models.emformer (pure torch). Imported from the installed torchaudio; where its C
    extension does not match the installed torch, the module file is loaded on its own (it needs
    only torch)."""
    try:
        from torchaudio.models.emformer import Emformer
        return Emformer
    except (ImportError, OSError, RuntimeError):  # torchaudio's C extension built for another torch
        import importlib.util

        spec = importlib.util.find_spec("torchaudio")  # locates the package without running its __init__
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / "emformer.py"
        module_spec = importlib.util.spec_from_file_location("_emformer", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.Emformer


class TorchaudioEmformer(nn.Module):
    """torchaudio's Emformer(input_dim=32, num_heads=4, ffn_dim=64, num_layers=2, segment_length=4,
    right_context_length=1) on full-length utterances: x [B, T + 1, 32] -> [B, T, 32]. Its attention
    folds heads into the batch (`view(-1, B * num_heads, head_dim)`) and reads the batch back
    (`view(B, num_heads, T, -1)` with `B = size(0) // num_heads`). torch.export cannot trace it
    (the lengths make a data-dependent mask), so only the TorchScript export exists."""

    def __init__(self):
        super().__init__()
        self.m = _torchaudio_emformer()(input_dim=32, num_heads=4, ffn_dim=64, num_layers=2, segment_length=4,
                                        right_context_length=1)

    def forward(self, x):
        lengths = torch.full((x.shape[0],), x.shape[1] - 1, dtype=torch.long)
        return self.m(x, lengths)[0]


class LastHidden(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x).last_hidden_state


MODELS = {
    "whisper": whisper,
    "wav2vec2": wav2vec2,
    "wav2vec2_layer": lambda: wav2vec2("layer"),
    "hubert": hubert,
    "groupnorm4": lambda: (GroupNormBlock(4), torch.randn(1, 8, 20), "x", {0: "batch", 2: "time"}),
    "ecapa": lambda: (ECAPA(), torch.randn(1, 50, 24), "feats", {0: "batch", 1: "time"}),
    "mha": lambda: (MHABlock(), torch.randn(2, 12, 24), "x", {0: "batch", 1: "time"}),
    "emformer_attn": lambda: (EmformerAttention(), torch.randn(12, 2, 24), "x", {0: "time", 1: "batch"}),
    "emformer": lambda: (TorchaudioEmformer(), torch.randn(2, 9, 32), "x", {0: "batch"}),
}
OUT_AXES = {"mha": {0: "batch", 1: "time"}, "emformer_attn": {0: "time", 1: "batch"}}
RAW = (GroupNormBlock, ECAPA, MHABlock, EmformerAttention, TorchaudioEmformer)  # modules that return a tensor (the transformers ones return an output object)


def export(name: str, dynamo: bool) -> Path:
    torch.manual_seed(0)
    model, x, input_name, axes = MODELS[name]()
    model = (model if isinstance(model, RAW) else LastHidden(model)).eval()
    path = OUT / f"speech_{name}_{'dynamo' if dynamo else 'ts'}.onnx"
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast path has no ONNX export
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {k: torch.export.Dim(v, max=64 if v == "batch" else 32000, min={"batch": 1, "time": 4}.get(v, 400))
                    for k, v in axes.items()}
            prog = torch.onnx.export(model, (x,), input_names=[input_name], output_names=["hidden"], opset_version=OPSET,
                                     dynamic_shapes={"x": dims}, dynamo=True, optimize=True)
            prog.save(str(path))
        else:
            torch.onnx.export(model, (x,), str(path), input_names=[input_name], output_names=["hidden"],
                              opset_version=OPSET, dynamic_axes={input_name: axes, "hidden": OUT_AXES.get(name, {0: "batch"})}, dynamo=False)
    m = onnx.load(str(path))
    m.ir_version = min(m.ir_version, IR)
    onnx.save(m, str(path))
    return path


def ort_optimize(src: Path) -> Path:
    """onnxruntime.transformers.optimizer as users run it on an encoder (fuses Gelu, BiasGelu,
    SkipLayerNormalization; the attention stays unfused: its shapes are computed at run time)."""
    from onnxruntime.transformers import optimizer

    dst = src.with_name(src.stem + "_ortopt.onnx")
    optimizer.optimize_model(str(src), model_type="bert", num_heads=4, hidden_size=64, opt_level=1).save_model_to_file(str(dst))
    m = onnx.load(str(dst))
    m.ir_version = min(m.ir_version, IR)
    onnx.save(m, str(dst))
    return dst


def optimum_export(name: str = "wav2vec2") -> Path:
    """optimum-onnx's `main_export` (task feature-extraction) of the same seeded transformers model,
    saved with save_pretrained first: optimum picks its own dynamic axes and attention export."""
    import tempfile

    import transformers.utils.import_utils as iu

    iu._torchvision_available = False  # a torchvision built for another torch breaks transformers' imports
    from optimum.exporters.onnx import main_export

    torch.manual_seed(0)
    model, *_ = MODELS[name]()
    dst = OUT / f"speech_{name}_optimum.onnx"
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(f"{tmp}/hf")
        main_export(f"{tmp}/hf", output=f"{tmp}/onnx", task="feature-extraction", opset=OPSET, no_post_process=True)
        m = onnx.load(f"{tmp}/onnx/model.onnx")
    m.ir_version = min(m.ir_version, IR)
    onnx.save(m, str(dst))
    return dst


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or MODELS:
        for dynamo in (False, True):
            try:
                p = export(name, dynamo)
                print(f"wrote {p} ({p.stat().st_size} bytes)")
                if name == "whisper" and not dynamo:
                    q = ort_optimize(p)
                    print(f"wrote {q} ({q.stat().st_size} bytes)")
                if name == "wav2vec2" and not dynamo:
                    q = optimum_export(name)
                    print(f"wrote {q} ({q.stat().st_size} bytes)")
            except Exception as exc:  # report and continue: one exporter may not support a model
                print(f"FAILED {name} dynamo={dynamo}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
