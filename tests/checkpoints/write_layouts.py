"""Writes a Fresco weights file (f32 or f16) back out as the checkpoints users have, for the
`convert` tests: the original FLUX.1 release's single file and diffusers' folder layout (for
Qwen-Image weights, whose names are the diffusers checkpoint's, the same names sharded).

Written from diffusers' published FluxTransformer2DModel / AutoencoderKL module names and the
original release's (black-forest-labs/flux, src/flux/model.py, modules/layers.py,
modules/autoencoder.py), independently of Fresco's C++ mapping: the converter must undo it.

  write_layouts.py WEIGHTS.h5 OUTDIR [--shards N] [--prefix P]
    OUTDIR/original.safetensors   the original names (under prefix P if given)
    OUTDIR/diffusers/             the diffusers layout: N shards and their index
                                  (diffusion_pytorch_model-0000i-of-0000N.safetensors), or one
                                  diffusion_pytorch_model.safetensors for N = 1
  write_layouts.py compare A.h5 B.h5   exit 1 unless both hold the same tensors, bit for bit
"""
import json
import os
import sys

import h5py
import numpy as np

DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}  # I64: buffers


def read_weights(path):
    tensors = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            tensors[name.replace("/", ".")] = np.ascontiguousarray(obj[()])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def transformer_to_diffusers(sd):
    d = sd["img_in.weight"].shape[0]
    out = {}

    def linear(src, dst):
        for leaf in ("weight", "bias"):
            out[f"{dst}.{leaf}"] = sd[f"{src}.{leaf}"]

    linear("img_in", "x_embedder")
    linear("txt_in", "context_embedder")
    for src, dst in (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"),
                     ("guidance_in", "guidance_embedder")):
        if f"{src}.in_layer.weight" in sd:
            linear(f"{src}.in_layer", f"time_text_embed.{dst}.linear_1")
            linear(f"{src}.out_layer", f"time_text_embed.{dst}.linear_2")
    double = sorted({int(k.split(".")[1]) for k in sd if k.startswith("double_blocks.")})
    for i in double:
        b, t = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        linear(b + "img_mod.lin", t + "norm1.linear")
        linear(b + "txt_mod.lin", t + "norm1_context.linear")
        for leaf in ("weight", "bias"):
            for stream, names in (("img", ("to_q", "to_k", "to_v")), ("txt", ("add_q_proj", "add_k_proj", "add_v_proj"))):
                q, k, v = np.split(sd[f"{b}{stream}_attn.qkv.{leaf}"], 3, axis=0)
                for name, part in zip(names, (q, k, v)):
                    out[f"{t}attn.{name}.{leaf}"] = part
        out[t + "attn.norm_q.weight"] = sd[b + "img_attn.norm.query_norm.scale"]
        out[t + "attn.norm_k.weight"] = sd[b + "img_attn.norm.key_norm.scale"]
        out[t + "attn.norm_added_q.weight"] = sd[b + "txt_attn.norm.query_norm.scale"]
        out[t + "attn.norm_added_k.weight"] = sd[b + "txt_attn.norm.key_norm.scale"]
        linear(b + "img_attn.proj", t + "attn.to_out.0")
        linear(b + "txt_attn.proj", t + "attn.to_add_out")
        linear(b + "img_mlp.0", t + "ff.net.0.proj")
        linear(b + "img_mlp.2", t + "ff.net.2")
        linear(b + "txt_mlp.0", t + "ff_context.net.0.proj")
        linear(b + "txt_mlp.2", t + "ff_context.net.2")
    single = sorted({int(k.split(".")[1]) for k in sd if k.startswith("single_blocks.")})
    for i in single:
        b, t = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for leaf in ("weight", "bias"):
            fused = sd[f"{b}linear1.{leaf}"]
            q, k, v, mlp = np.split(fused, [d, 2 * d, 3 * d], axis=0)
            for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
                out[f"{t}{name}.{leaf}"] = part
        linear(b + "linear2", t + "proj_out")
        linear(b + "modulation.lin", t + "norm.linear")
        out[t + "attn.norm_q.weight"] = sd[b + "norm.query_norm.scale"]
        out[t + "attn.norm_k.weight"] = sd[b + "norm.key_norm.scale"]
    linear("final_layer.linear", "proj_out")
    for leaf in ("weight", "bias"):  # (shift, scale) -> (scale, shift)
        shift, scale = np.split(sd[f"final_layer.adaLN_modulation.1.{leaf}"], 2, axis=0)
        out[f"norm_out.linear.{leaf}"] = np.concatenate([scale, shift], axis=0)
    return out


def vae_to_diffusers(sd):
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up."))
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        module, leaf = ".".join(parts[:-1]), parts[-1]
        if module.startswith("decoder.mid.attn_1."):
            name = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[parts[3]]
            if leaf == "weight" and value.ndim == 4:
                value = value[:, :, 0, 0]  # 1x1 convolution -> Linear
            out[f"decoder.mid_block.attentions.0.{name}.{leaf}"] = value
            continue
        if module.startswith("decoder.mid.block_"):
            n = int(parts[2][len("block_"):]) - 1
            module = f"decoder.mid_block.resnets.{n}." + ".".join(parts[3:-1])
        elif module.startswith("decoder.up."):
            up = levels - 1 - int(parts[2])
            if parts[3] == "block":
                module = f"decoder.up_blocks.{up}.resnets.{parts[4]}." + ".".join(parts[5:-1])
            else:
                module = f"decoder.up_blocks.{up}.upsamplers.0.conv"
        elif module == "decoder.norm_out":
            module = "decoder.conv_norm_out"
        out[module.replace("nin_shortcut", "conv_shortcut") + "." + leaf] = value
    return out


def write_sharded(folder, tensors, shards):
    os.makedirs(folder, exist_ok=True)
    if shards == 1:
        write_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"), tensors)
        return
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        file = f"diffusion_pytorch_model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(os.path.join(folder, file), part)
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map}, f)


def compare(a_path, b_path):
    a, b = read_weights(a_path), read_weights(b_path)
    if sorted(a) != sorted(b):
        print(f"different tensors: {sorted(set(a) ^ set(b))[:5]}")
        return 1
    bad = [n for n in a if a[n].dtype != b[n].dtype or a[n].shape != b[n].shape or a[n].tobytes() != b[n].tobytes()]
    if bad:
        print(f"{len(bad)} of {len(a)} tensors differ, e.g. {bad[:3]}")
        return 1
    print(f"{len(a)} tensors identical")
    return 0


def main(argv):
    if argv[1] == "compare":
        return compare(argv[2], argv[3])
    sd = read_weights(argv[1])
    outdir = argv[2]
    shards = int(argv[argv.index("--shards") + 1]) if "--shards" in argv else 2
    prefix = argv[argv.index("--prefix") + 1] if "--prefix" in argv else ""
    os.makedirs(outdir, exist_ok=True)
    write_safetensors(os.path.join(outdir, "original.safetensors"), {prefix + k: v for k, v in sd.items()})
    vae = any(k.startswith("decoder.") for k in sd)
    qwen = "txt_norm.weight" in sd  # Qwen-Image: the weights already carry the checkpoint's diffusers names
    layout = sd if qwen else vae_to_diffusers(sd) if vae else transformer_to_diffusers(sd)
    write_sharded(os.path.join(outdir, "diffusers"), layout, shards)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
