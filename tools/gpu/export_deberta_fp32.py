"""Export the deberta-xlarge-mnli architecture (40 layers, random weights) in fp32, as bert_score runs it.

export_models.py exports it in fp16 only; fp32 is the like-for-like comparison with bert_score's default. At about
3 GB the graph exceeds protobuf's 2 GB, so the weights go to external data files beside model.onnx.

Usage on the device: python3 tools/gpu/export_deberta_fp32.py OUTDIR   (writes OUTDIR/model.onnx + weights)
"""
import os
import sys

import torch
from transformers import DebertaConfig, DebertaModel

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
cfg = DebertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=40, num_attention_heads=16,
                    intermediate_size=4096, max_position_embeddings=512, relative_attention=True,
                    pos_att_type=["c2p", "p2c"], layer_norm_eps=1e-7, max_relative_positions=-1,
                    position_biased_input=False, type_vocab_size=0)
with torch.device("cuda"):
    model = DebertaModel(cfg).eval()


class LastHiddenState(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


ids = torch.ones(2, 16, dtype=torch.long, device="cuda")
axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "last_hidden_state": {0: "batch", 1: "seq"}}
path = os.path.join(out, "model.onnx")
kw = dict(input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17)
with torch.no_grad():
    try:
        torch.onnx.export(LastHiddenState(model), (ids, ids), path, dynamo=False, **kw)
    except Exception as ex:  # noqa: BLE001 - fall back to the other exporter, as export_models.py does
        print("legacy export failed:", repr(ex)[:300], flush=True)
        torch.onnx.export(LastHiddenState(model), (ids, ids), path, dynamo=True, external_data=True, **kw)
size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
print("exported", path, size, "bytes with its weights", flush=True)
