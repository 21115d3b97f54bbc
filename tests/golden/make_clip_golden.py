#!/usr/bin/env python3
"""Golden reference for the CLIP text model as FLUX.1 runs it ("clip-tiny" preset).

An independent plain-PyTorch implementation (no transformers) written from the published CLIP
text transformer as docs/text-encoders.md states it: token plus learned position embeddings,
pre-LayerNorm blocks (affine, eps 1e-5) with causal multi-head attention scaled by
1/sqrt(head dim) and a quick-GELU MLP (x * sigmoid(1.702 x)), all Linears with biases, a final
LayerNorm; the pooled output is the final hidden state at the position transformers picks for
openai/clip-vit-large-patch14 (whose config has the legacy eos_token_id 2): the first position of
the largest id, the end-of-text token, which is also its first occurrence.

Run (needs torch, numpy, h5py; on the dev machine that is /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_clip_golden.py OUTDIR

Writes into OUTDIR:
    clip_tiny_weights.h5  float32 datasets, key "a.b.c" -> /a/b/c; root attrs
                          format="fresco-weights", format_version=1, model="clip-tiny"
    clip_tiny_golden.h5   /ids [16] (float32, exact) (start 1022, 9 words, end of text 1023, padded with 1023
                          as FLUX pads CLIP), attr eot (the pooled position), /hidden [16, 48] and
                          /pooled [48] of the float64 forward, /hidden_bf16 and /pooled_bf16 of
                          the bfloat16 eager forward (every op's result rounded to bfloat16,
                          LayerNorm statistics and softmax in float32): the bf16 tolerance's
                          baseline

Weights are drawn in float64 from torch.Generator seed 7171 in the order of param_shapes(),
rounded to float32 and widened back.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

from fresco_weights_h5 import write_weights_file

# clip-tiny (src/model/text_encoder_config.cpp)
VOCAB, D, HEADS, LAYERS, MLP, POSITIONS, EPS = 1024, 48, 4, 2, 96, 16, 1e-5
BOS, EOT = 1022, 1023  # the largest ids, as in CLIP's vocabulary
SEED = 7171


def param_shapes():
    s = {"text_model.embeddings.token_embedding.weight": (VOCAB, D),
         "text_model.embeddings.position_embedding.weight": (POSITIONS, D)}
    for n in range(LAYERS):
        p = f"text_model.encoder.layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"] = (D, D)
            s[p + f"self_attn.{proj}.bias"] = (D,)
        s[p + "layer_norm1.weight"] = (D,)
        s[p + "layer_norm1.bias"] = (D,)
        s[p + "mlp.fc1.weight"] = (MLP, D)
        s[p + "mlp.fc1.bias"] = (MLP,)
        s[p + "mlp.fc2.weight"] = (D, MLP)
        s[p + "mlp.fc2.bias"] = (D,)
        s[p + "layer_norm2.weight"] = (D,)
        s[p + "layer_norm2.bias"] = (D,)
    s["text_model.final_layer_norm.weight"] = (D,)
    s["text_model.final_layer_norm.bias"] = (D,)
    return s


def make_weights(gen):
    w = {}
    for name, shape in param_shapes().items():
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        if "norm" in name and name.endswith(".weight"):
            x = 1 + 0.2 * x
        elif name.endswith(".bias"):
            x = 0.1 * x
        elif "embedding" in name:
            x = 0.5 * x
        else:
            x = x / math.sqrt(shape[1])
        w[name] = x.to(torch.float32).to(torch.float64)
    return w


def forward(w, ids, dt):
    stat = torch.float64 if dt == torch.float64 else torch.float32
    W = {k: v.to(dt) for k, v in w.items()}
    L = ids.numel()
    dh = D // HEADS

    def ln(x, name):
        xs = x.to(stat)
        mean = xs.mean(-1, keepdim=True)
        var = (xs - mean).pow(2).mean(-1, keepdim=True)
        y = ((xs - mean) / torch.sqrt(var + EPS)).to(dt)
        return y * W[name + ".weight"] + W[name + ".bias"]

    def lin(x, name):
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    causal = torch.triu(torch.full((L, L), float("-inf"), dtype=stat), diagonal=1)  # -inf where key > query
    x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:L]
    for n in range(LAYERS):
        p = f"text_model.encoder.layers.{n}."
        a = ln(x, p + "layer_norm1")
        q, k, v = (lin(a, p + f"self_attn.{c}_proj").view(L, HEADS, dh).transpose(0, 1) for c in "qkv")
        scores = (q @ k.transpose(1, 2)).to(stat) / math.sqrt(dh) + causal
        probs = torch.softmax(scores, dim=-1).to(dt)
        o = (probs @ v).transpose(0, 1).reshape(L, D)
        x = x + lin(o, p + "self_attn.out_proj")
        a = ln(x, p + "layer_norm2")
        h = lin(a, p + "mlp.fc1")
        h = h * torch.sigmoid(1.702 * h)
        x = x + lin(h, p + "mlp.fc2")
    hidden = ln(x, "text_model.final_layer_norm")
    eot = int(torch.argmax(ids))  # the legacy rule: the first position of the largest id
    return hidden, hidden[eot], eot


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    w = make_weights(gen)
    words = torch.randint(0, BOS, (9,), generator=gen)
    ids = torch.cat([torch.tensor([BOS]), words, torch.full((POSITIONS - 10,), EOT)])
    with torch.no_grad():
        hidden, pooled, eot = forward(w, ids, torch.float64)
        hidden_bf16, pooled_bf16, _ = forward(w, ids, torch.bfloat16)
    assert eot == int((ids == EOT).nonzero()[0]), "the first end of text is the pooled position"

    write_weights_file(os.path.join(outdir, "clip_tiny_weights.h5"), "clip-tiny", w)
    with h5py.File(os.path.join(outdir, "clip_tiny_golden.h5"), "w") as f:
        f.create_dataset("ids", data=ids.numpy().astype(np.float32))  # small integers, exact
        f.attrs["eot"] = np.int64(eot)
        f.create_dataset("hidden", data=hidden.numpy().astype(np.float32))
        f.create_dataset("pooled", data=pooled.numpy().astype(np.float32))
        f.create_dataset("hidden_bf16", data=hidden_bf16.to(torch.float32).numpy())
        f.create_dataset("pooled_bf16", data=pooled_bf16.to(torch.float32).numpy())
        f.attrs["generator"] = "tests/golden/make_clip_golden.py (PyTorch float64; bf16 eager baseline)"
        f.attrs["torch_version"] = str(torch.__version__)
    rel = lambda a, b: ((a.double() - b).norm() / b.norm()).item()
    print(f"clip-tiny: {len(w)} tensors, {sum(t.numel() for t in w.values())} parameters -> {outdir}")
    print(f"ids {ids.tolist()} eot {eot}")
    print(f"hidden norm {hidden.norm().item():.6f}, pooled norm {pooled.norm().item():.6f}; bf16 eager vs "
          f"float64: hidden {rel(hidden_bf16, hidden):.3e}, pooled {rel(pooled_bf16, pooled):.3e}")


if __name__ == "__main__":
    main()
