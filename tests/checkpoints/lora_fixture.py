"""LoRA fixtures for tests/cli/lora.sh, written from the published LoRA formula
(W' = W + scale * alpha / rank * up @ down) and the two name layouts, independently of Fresco.

  lora_fixture.py write WEIGHTS.h5 LORA.safetensors
      a kohya LoRA (lora_unet_*, rank 4, alpha 2) on double_blocks.0.img_attn.qkv and
      single_blocks.0.linear1, and a diffusers/PEFT one (transformer.*.lora_A/lora_B, rank 2)
      on transformer_blocks.0.attn.to_v (rows [2d, 3d) of img_attn.qkv), in one file
  lora_fixture.py merge WEIGHTS.h5 LORA.safetensors SCALE OUT.h5
      OUT.h5: a copy of WEIGHTS.h5 (f32) with the LoRA merged in float64
  lora_fixture.py write-qwen / merge-qwen (same arguments): Qwen-Image weights, whose keys are
      the diffusers names, and a diffusers/PEFT LoRA (rank 2) on transformer_blocks.0.attn.to_v
      and transformer_blocks.1.txt_mlp.net.0.proj, each merged into that very key
"""
import json
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from write_layouts import write_safetensors  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=types[e["dtype"]]).reshape(e["shape"])
    return out


def write(weights, lora_path):
    with h5py.File(weights, "r") as f:
        d = f["img_in/weight"].shape[0]
        linear1_rows = f["single_blocks/0/linear1/weight"].shape[0]
    rng = np.random.default_rng(11)
    t = {}
    for module, rows in (("double_blocks_0_img_attn_qkv", 3 * d), ("single_blocks_0_linear1", linear1_rows)):
        t[f"lora_unet_{module}.lora_up.weight"] = rng.normal(0, 0.3, (rows, 4)).astype(np.float32)
        t[f"lora_unet_{module}.lora_down.weight"] = rng.normal(0, 0.3, (4, d)).astype(np.float32)
        t[f"lora_unet_{module}.alpha"] = np.array(2.0, dtype=np.float32)
    t["transformer.transformer_blocks.0.attn.to_v.lora_B.weight"] = rng.normal(0, 0.3, (d, 2)).astype(np.float32)
    t["transformer.transformer_blocks.0.attn.to_v.lora_A.weight"] = rng.normal(0, 0.3, (2, d)).astype(np.float32)
    write_safetensors(lora_path, t)


def merge(weights, lora_path, scale, out):
    shutil.copyfile(weights, out)
    lora = read_safetensors(lora_path)
    with h5py.File(out, "r+") as f:
        for module in ("double_blocks.0.img_attn.qkv", "single_blocks.0.linear1"):
            flat = "lora_unet_" + module.replace(".", "_")
            up = lora[flat + ".lora_up.weight"].astype(np.float64)
            down = lora[flat + ".lora_down.weight"].astype(np.float64)
            alpha = float(lora[flat + ".alpha"])
            ds = f[module.replace(".", "/") + "/weight"]
            ds[...] = (ds[()].astype(np.float64) + scale * alpha / down.shape[0] * up @ down).astype(np.float32)
        up = lora["transformer.transformer_blocks.0.attn.to_v.lora_B.weight"].astype(np.float64)
        down = lora["transformer.transformer_blocks.0.attn.to_v.lora_A.weight"].astype(np.float64)
        ds = f["double_blocks/0/img_attn/qkv/weight"]
        w = ds[()].astype(np.float64)
        d = w.shape[1]
        w[2 * d:3 * d] += scale * (up @ down)  # no alpha: alpha = rank
        ds[...] = w.astype(np.float32)


QWEN_MODULES = ("transformer_blocks.0.attn.to_v", "transformer_blocks.1.txt_mlp.net.0.proj")


def write_qwen(weights, lora_path):
    rng = np.random.default_rng(12)
    t = {}
    with h5py.File(weights, "r") as f:
        for module in QWEN_MODULES:
            rows, cols = f[module.replace(".", "/") + "/weight"].shape
            t[f"transformer.{module}.lora_B.weight"] = rng.normal(0, 0.3, (rows, 2)).astype(np.float32)
            t[f"transformer.{module}.lora_A.weight"] = rng.normal(0, 0.3, (2, cols)).astype(np.float32)
    write_safetensors(lora_path, t)


def merge_qwen(weights, lora_path, scale, out):
    shutil.copyfile(weights, out)
    lora = read_safetensors(lora_path)
    with h5py.File(out, "r+") as f:
        for module in QWEN_MODULES:
            up = lora[f"transformer.{module}.lora_B.weight"].astype(np.float64)
            down = lora[f"transformer.{module}.lora_A.weight"].astype(np.float64)
            ds = f[module.replace(".", "/") + "/weight"]
            ds[...] = (ds[()].astype(np.float64) + scale * (up @ down)).astype(np.float32)  # alpha = rank


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "write-qwen":
        write_qwen(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "merge-qwen":
        merge_qwen(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    else:
        merge(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
