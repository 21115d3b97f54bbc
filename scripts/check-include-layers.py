#!/usr/bin/env python3
"""The include-layer check (docs/architecture.md, "Layers"): every #include "..." of a source file
must name a file of its own layer or of a layer below it. The per-layer link check catches a
missing symbol; this catches the header-only edges it cannot see (an inline member, a struct).
Prints each forbidden edge as file:line and exits 1 when there is one."""
import pathlib
import re
import sys

# Layer of a repository path: the first rule whose prefix matches (the order matters: the
# hooks and the CUDA backend class sit in folders of other layers).
RULES = [
    ("src/core/", "core"),
    ("cuda/cuda_backend.", "backend"),  # compiled into fresco_backend (cuda/sources.cmake)
    ("cuda/", "cuda"),
    ("src/backend/", "backend"),
    ("io/", "io"),
    ("mpi/comm/", "comm"),
    ("src/text/", "text"),
    ("src/model/hooks.hpp", "hooks"),
    ("src/model/sequence_shard.", "hooks"),
    ("src/model/", "model"),
    ("mpi/plans/", "plans"),
    ("src/runtime/", "runtime"),
    ("src/cli/", "cli"),
]

# What each layer may include besides itself (the arrows of docs/architecture.md, closed).
ALLOWED = {
    "core": set(),
    "cuda": {"core"},
    "backend": {"core", "cuda"},
    "io": {"core"},
    "comm": {"core", "cuda"},
    "text": {"core"},
    "hooks": {"backend", "core", "cuda"},
    "model": {"hooks", "backend", "io", "text", "core"},
    "plans": {"hooks", "comm", "backend", "core", "cuda"},
    "runtime": {"model", "plans", "hooks", "comm", "io", "text", "backend", "core", "cuda"},
    "cli": {"runtime", "model", "plans", "hooks", "comm", "io", "text", "backend", "core", "cuda"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    for prefix, layer in RULES:
        if path.startswith(prefix):
            return layer
    return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    files = 0
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".hpp", ".cpp", ".cu", ".cuh", ".h"} or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        source_layer = layer_of(rel)
        if source_layer is None:
            continue  # tests, fuzz, build trees: not a layer
        files += 1
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target_layer = layer_of(m.group(1))
            if target_layer is None or target_layer == source_layer:
                continue  # generated headers (fresco/version.hpp), same layer
            if target_layer not in ALLOWED[source_layer]:
                problems.append(f"{rel}:{n}: {source_layer} includes {m.group(1)} ({target_layer}), "
                                f"which is not below it")
    for p in problems:
        print(p)
    print(f"check-include-layers: {files} files, {len(problems)} forbidden include(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
