"""Checkpoints a user would have on a GPU host, written there with the PyTorch it has (nothing can be downloaded).

microsoft/deberta-xlarge-mnli's real architecture (48 layers, hidden 1024, 16 heads, 3 labels; the config.json the hub
repo holds) with random weights, as a `pytorch_model.bin` of about 3 GB in PyTorch's zip format, keyed as the hub's
checkpoint is (`deberta.` prefix, pooler and classifier head), into MODELS_DIR/microsoft/deberta-xlarge-mnli: the
models folder's layout. The service builds its own graph from it (no ONNX export), as it does for a user who names
the model. The tokenizer is peers.py's stand-in (MiniLM's WordPiece vocabulary as vocab.txt), so that the service and
the bert_score replica read the same token counts.

The state dict is written by name rather than by instantiating transformers' class, so that what is written does not
depend on the transformers version there; the names are then compared with that class's (on the meta device, no
memory) and any difference printed.

Usage on the device: python3 tools/gpu/make_checkpoints.py VOCAB MODELS_DIR
A rehearsal without PyTorch (tools/gpu/measure.py --tiny-deberta): python3 tools/gpu/make_checkpoints.py VOCAB
MODELS_DIR --tiny writes the same 48 layers, names and layout at hidden size 64 as a model.safetensors (17 MB, plain
Python), so that every step of a lent run can be tried on a machine without a GPU.
"""
import array
import collections
import json
import os
import random
import struct
import sys
import time

VOCAB, MODELS = sys.argv[1], sys.argv[2]
TINY = "--tiny" in sys.argv[3:]

CONFIG = {
    "model_type": "deberta",
    "architectures": ["DebertaForSequenceClassification"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "max_position_embeddings": 512,
    "relative_attention": True,
    "pos_att_type": "c2p|p2c",
    "layer_norm_eps": 1e-7,
    "max_relative_positions": -1,
    "position_biased_input": False,
    "num_attention_heads": 16,
    "num_hidden_layers": 48,
    "type_vocab_size": 0,
    "vocab_size": 50265,
    "pooler_dropout": 0,
    "pooler_hidden_act": "gelu",
    "pooler_hidden_size": 1024,
    "pad_token_id": 0,
    "id2label": {"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"},
    "label2id": {"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2},
}


def shapes(c):
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    s = collections.OrderedDict()
    s["deberta.embeddings.word_embeddings.weight"] = [c["vocab_size"], h]
    s["deberta.embeddings.LayerNorm.weight"] = [h]
    s["deberta.embeddings.LayerNorm.bias"] = [h]
    for n in range(layers):
        p = f"deberta.encoder.layer.{n}."
        s[p + "attention.self.q_bias"] = [h]
        s[p + "attention.self.v_bias"] = [h]
        s[p + "attention.self.in_proj.weight"] = [3 * h, h]
        s[p + "attention.self.pos_proj.weight"] = [h, h]
        s[p + "attention.self.pos_q_proj.weight"] = [h, h]
        s[p + "attention.self.pos_q_proj.bias"] = [h]
        s[p + "attention.output.dense.weight"] = [h, h]
        s[p + "attention.output.dense.bias"] = [h]
        s[p + "attention.output.LayerNorm.weight"] = [h]
        s[p + "attention.output.LayerNorm.bias"] = [h]
        s[p + "intermediate.dense.weight"] = [i, h]
        s[p + "intermediate.dense.bias"] = [i]
        s[p + "output.dense.weight"] = [h, i]
        s[p + "output.dense.bias"] = [h]
        s[p + "output.LayerNorm.weight"] = [h]
        s[p + "output.LayerNorm.bias"] = [h]
    s["deberta.encoder.rel_embeddings.weight"] = [2 * c["max_position_embeddings"], h]
    s["pooler.dense.weight"] = [c["pooler_hidden_size"], h]
    s["pooler.dense.bias"] = [c["pooler_hidden_size"]]
    s["classifier.weight"] = [len(c["id2label"]), c["pooler_hidden_size"]]
    s["classifier.bias"] = [len(c["id2label"])]
    return s


def compare_with_transformers(names):
    try:
        import torch
        from transformers import DebertaConfig, DebertaForSequenceClassification
        cfg = DebertaConfig(**{k: v for k, v in CONFIG.items() if k not in ("model_type", "architectures")})
        with torch.device("meta"):
            theirs = set(DebertaForSequenceClassification(cfg).state_dict())
        ours = set(names)
        print("transformers' DebertaForSequenceClassification keys:",
              "the same" if theirs == ours else
              f"only ours {sorted(ours - theirs)[:6]}, only theirs {sorted(theirs - ours)[:6]}", flush=True)
    except Exception as ex:  # informational only
        print(f"transformers comparison skipped: {ex!r}", flush=True)


def write_safetensors(path, config):
    """Random float32 tensors in the safetensors layout: a JSON header of names, shapes and offsets, then the data."""
    rng = random.Random(11)
    header, blobs, offset = {}, [], 0
    for name, shape in shapes(config).items():
        count = 1
        for d in shape:
            count *= d
        base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
        data = array.array("f", (base + (rng.random() - 0.5) * 0.1 for _ in range(count))).tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            f.write(b)
    os.replace(path + ".part", path)


def deberta_xlarge_mnli():
    out = os.path.join(MODELS, "microsoft", "deberta-xlarge-mnli")
    weights = os.path.join(out, "model.safetensors" if TINY else "pytorch_model.bin")
    if os.path.exists(weights):
        print("deberta-xlarge-mnli: already written", flush=True)
        return
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    config = dict(CONFIG, hidden_size=64, intermediate_size=128, num_attention_heads=4, pooler_hidden_size=64,
                  vocab_size=30522) if TINY else CONFIG
    write_config(out, config)
    if TINY:
        write_safetensors(weights, config)
        print(f"tiny deberta-xlarge-mnli stand-in: {os.path.getsize(weights) / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")
        return
    import torch
    generator = torch.Generator().manual_seed(11)
    state = collections.OrderedDict()
    for name, shape in shapes(CONFIG).items():
        t = torch.randn(shape, generator=generator) * 0.02
        if name.endswith("LayerNorm.weight"):
            t += 1.0
        state[name] = t
    compare_with_transformers(state.keys())
    torch.save(state, weights + ".part")
    os.replace(weights + ".part", weights)
    params = sum(t.numel() for t in state.values())
    print(f"deberta-xlarge-mnli: {params / 1e6:.0f}M parameters, {os.path.getsize(weights) / 1e9:.2f} GB "
          f"pytorch_model.bin in {time.perf_counter() - started:.1f} s", flush=True)


def write_config(out, config):
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(VOCAB, encoding="utf-8") as f, open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as g:
        g.write(f.read())
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 512}, f)


if __name__ == "__main__":
    deberta_xlarge_mnli()
