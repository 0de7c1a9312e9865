"""A model scored through its downstream model: the head's windows over a clip's embeddings are
exactly openwakeword's (16 consecutive 96-d embeddings, slid one at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.data import DataError, Example
from onnxprune.search.head import Clip, Head, HeadEvaluator, clips_of
from onnxprune.core.io import load_model
from onnxprune.core.runtime import make_session


def _examples(n_clips=3, per_clip=18, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_clips):
        for k in range(per_clip):
            feeds = {"input_1": (rng.standard_normal((1, 76, 32, 1)) * 0.5 + 1).astype(np.float32)}
            out.append(Example(feeds, label="yes" if c == 0 else "no", source=f"c{c}.wav[{k}]", seconds=0.76,
                               meta={"file": f"c{c}.wav", "clip_seconds": 2.5}))
    return out


def test_clips_group_examples_by_file_in_order():
    clips = clips_of(_examples())
    assert [c.source for c in clips] == ["c0.wav", "c1.wav", "c2.wav"]
    assert all(len(c.examples) == 18 for c in clips) and clips[0].seconds == 2.5 and clips[0].label == "yes"
    assert len(clips_of(_examples(), 2)) == 2


@pytest.mark.realmodel
def test_head_windows_match_openwakeword(real_model):
    emb, head_path = make_session(str(real_model("embedding_model"))), real_model("hey_jarvis_v0.1")
    clip = clips_of(_examples(1))[0]
    outs = [emb.run(None, ex.feeds)[0] for ex in clip.examples]
    got = Head(head_path).run(outs, clip)
    # openwakeword: stack the embeddings, a head input is 16 consecutive ones
    rows = np.concatenate([o.reshape(1, 96) for o in outs])
    head = make_session(str(head_path))
    name = head.get_inputs()[0].name
    want = [head.run(None, {name: rows[j:j + 16][None]})[0] for j in range(len(rows) - 15)]
    assert got.shape[0] == 3 and np.allclose(got, np.stack(want))


@pytest.mark.realmodel
def test_head_evaluator_original_is_identical_and_short_clips_fail(real_model):
    original = load_model(real_model("embedding_model"))
    ev = HeadEvaluator(original, clips_of(_examples()), Head(real_model("hey_jarvis_v0.1")))
    m = ev(original)
    assert m["top1_agreement"] == 100.0 and m["snr_db"] == float("inf") and "task" not in m
    short = Clip("yes", 1.0, "s.wav", _examples(1, per_clip=5))
    with pytest.raises(DataError, match="reads 16 at a time"):
        HeadEvaluator(original, [short], Head(real_model("hey_jarvis_v0.1")))
