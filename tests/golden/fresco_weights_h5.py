"""Writes a Fresco weights file (docs/file-formats.md) from float64 torch tensors: one float32
dataset per tensor, key "a.b.c" -> /a/b/c; root attrs format="fresco-weights",
format_version=1, model=PRESET. Shared by the text encoders' golden scripts."""
import h5py
import numpy as np


def write_weights_file(path, model, weights):
    with h5py.File(path, "w") as f:
        for key, t in weights.items():
            f.create_dataset(key.replace(".", "/"), data=t.numpy().astype(np.float32))
        f.attrs["format"] = "fresco-weights"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["model"] = model
