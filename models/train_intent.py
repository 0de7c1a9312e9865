"""The zoo's LSTM intent classifier: transcripts (token ids) -> one of 12 smart-home intents.

Its data is text from templates with slots (rooms, devices, names, numbers). The split is by
*template*: a quarter of each intent's phrasings are held out, so evaluation measures phrasings
never seen in training, not memorised sentences.

    python models/train_intent.py             # -> models/zoo/intent_lstm.onnx, intent_vocab.txt,
                                              #    intent_labels.json, data/intent/{eval,calib}.jsonl
    python models/eval_zoo.py intent          # accuracy with onnxruntime only
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ZOO = Path(__file__).resolve().parent / "zoo"
DATA = ZOO / "data" / "intent"
MAX_LEN = 16

ROOMS = ["kitchen", "bedroom", "living room", "bathroom", "office", "hall"]
NAMES = ["mum", "dad", "alice", "bob", "the doctor", "grandma", "sam"]
NUMS = ["one", "two", "three", "five", "ten", "fifteen", "twenty", "thirty"]
TEMPLATES = {
    "light_on": ["turn on the light", "turn on the {room} light", "switch the lights on", "lights on please",
                 "can you turn the {room} lights on", "i need some light in the {room}", "make it bright",
                 "switch on the lamp"],
    "light_off": ["turn off the light", "turn off the {room} light", "switch the lights off", "lights off please",
                  "can you turn the {room} lights off", "kill the lights", "make it dark in the {room}",
                  "switch off the lamp"],
    "fan_on": ["turn on the fan", "start the fan", "switch the {room} fan on", "it is too hot in here",
               "i need some air", "fan on please", "can you start the fan in the {room}", "cool the {room} down"],
    "fan_off": ["turn off the fan", "stop the fan", "switch the {room} fan off", "it is too cold with the fan",
                "fan off please", "can you stop the fan in the {room}", "no more fan", "shut the fan down"],
    "play_music": ["play some music", "play music in the {room}", "put on a song", "i want to hear music",
                   "start the music", "play my playlist", "can you play something", "music please"],
    "stop_music": ["stop the music", "stop playing", "pause the song", "turn the music off", "enough music",
                   "silence the music in the {room}", "can you stop the song", "pause playback"],
    "volume_up": ["turn it up", "volume up", "louder please", "increase the volume", "make it louder",
                  "raise the volume by {num}", "i can not hear it", "turn the volume up in the {room}"],
    "volume_down": ["turn it down", "volume down", "quieter please", "decrease the volume", "make it quieter",
                    "lower the volume by {num}", "it is too loud", "turn the volume down in the {room}"],
    "set_timer": ["set a timer for {num} minutes", "timer {num} minutes", "start a {num} minute timer",
                  "remind me in {num} minutes", "count down {num} minutes", "wake me in {num} minutes",
                  "can you set a timer", "set an alarm for {num}"],
    "weather": ["what is the weather", "will it rain today", "how hot is it outside", "weather forecast please",
                "is it going to be sunny", "do i need an umbrella", "what is the temperature outside",
                "how is the weather tomorrow"],
    "time_query": ["what time is it", "tell me the time", "what is the date today", "what day is it",
                   "how late is it", "is it {num} already", "current time please", "what is the time now"],
    "call_contact": ["call {name}", "phone {name}", "ring {name} please", "can you call {name}",
                     "get {name} on the phone", "dial {name}", "i want to talk to {name}", "video call {name}"],
}
LABELS = list(TEMPLATES)


def fill(template: str, rng: np.random.Generator) -> str:
    return template.format(room=rng.choice(ROOMS), name=rng.choice(NAMES), num=rng.choice(NUMS))


def split_templates(seed: int = 0) -> tuple[dict, dict]:
    """Per intent: 6 training phrasings, 2 held out (chosen by a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for label, temps in TEMPLATES.items():
        order = rng.permutation(len(temps))
        train[label] = [temps[i] for i in order[:6]]
        held[label] = [temps[i] for i in order[6:]]
    return train, held


def sentences(templates: dict, per_template: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [(fill(t, rng), label) for label, temps in templates.items() for t in temps for _ in range(per_template)]


def build_vocab(texts) -> list[str]:
    words = sorted({w for t in texts for w in t.split()})
    return ["<pad>", "<unk>"] + words


def encode(text: str, vocab: list[str]) -> np.ndarray:
    index = {w: i for i, w in enumerate(vocab)}
    ids = [index.get(w, 1) for w in text.split()][:MAX_LEN]
    return np.array(ids, dtype=np.int64)


class IntentLSTM(nn.Module):
    """Embedding -> 1-layer LSTM -> last hidden state -> intents (token ids [1, T], T symbolic)."""

    def __init__(self, vocab: int, classes: int = len(LABELS), embed: int = 64, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embed(tokens))
        return torch.softmax(self.head(h[-1]), dim=-1)


def main(epochs: int = 30, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    train_t, held_t = split_templates()
    train = sentences(train_t, 12, seed=1)
    vocab = build_vocab(t for t, _ in train)
    held = sentences(held_t, 6, seed=2)
    calib = sentences(train_t, 1, seed=3)
    net = IntentLSTM(len(vocab))
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-2)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        start, total = time.time(), 0.0
        for i in rng.permutation(len(train)):
            text, label = train[i]
            ids = encode(text, vocab)
            # Word dropout to <unk>, so unseen words in held-out phrasings are not a surprise.
            ids = np.where(rng.random(len(ids)) < 0.1, 1, ids)
            probs = net(torch.from_numpy(ids[None]))
            loss = nn.functional.nll_loss(torch.log(probs + 1e-9), torch.tensor([LABELS.index(label)]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"epoch {epoch + 1}: loss {total / len(train):.3f}, held-out acc {accuracy(net, held, vocab):.3f} "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    export(net.eval(), vocab, held, calib)


def accuracy(net, items, vocab) -> float:
    net.eval()
    with torch.no_grad():
        hits = [int(net(torch.from_numpy(encode(t, vocab)[None])).argmax()) == LABELS.index(lab) for t, lab in items]
    return float(np.mean(hits))


def export(net: IntentLSTM, vocab, held, calib) -> None:
    import onnx
    import onnxruntime as ort

    path = ZOO / "intent_lstm.onnx"
    torch.onnx.export(net, (torch.ones(1, 7, dtype=torch.long),), str(path), input_names=["tokens"],
                      output_names=["probs"], opset_version=17, dynamo=False, dynamic_axes={"tokens": {1: "words"}})
    m = onnx.load(str(path))
    m.ir_version = 8
    m.producer_name = "onnxprune-zoo"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for text, _ in held[:20]:
        ids = encode(text, vocab)[None]
        with torch.no_grad():
            ref = net(torch.from_numpy(ids)).numpy()
        assert np.abs(s.run(None, {"tokens": ids})[0] - ref).max() < 1e-5
    (ZOO / "intent_vocab.txt").write_text("\n".join(vocab) + "\n")
    (ZOO / "intent_labels.json").write_text(json.dumps(LABELS) + "\n")
    DATA.mkdir(parents=True, exist_ok=True)
    for name, items in (("eval", held), ("calib", calib)):
        (DATA / f"{name}.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in items))
    print(f"exported {path}; held-out accuracy (torch) {accuracy(net, held, vocab):.4f} on {len(held)}", file=sys.stderr)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
