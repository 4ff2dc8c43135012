"""Notebook 10's experiment on a GPU: how long each mixer trains at the notebook's settings, and at larger ones.

    python -m benchmarks.capstone_gpu [--out DIR] [--larger-seconds S]

On a machine with CUDA, trains every mixer with linattn_ref.models.FULL (all its steps, no time cap), then with
LARGER (a longer sequence, more pairs and a bigger vocabulary, stopped after S seconds per model), and writes
DIR/capstone_gpu.json (default benchmarks/results/): steps, seconds and accuracy per mixer and setting.
"""
import argparse
import json
import platform
from pathlib import Path

import torch

from linattn_ref import models

LARGER = {**models.FULL, "vocab_size": 256, "seq_len": 128, "train_pairs": (4, 8, 16, 32), "steps": 5000,
          "batch_size": 64}


def run(cfg):
    rows = []
    for kind in models.MIXERS:
        record = models.train_one(kind, cfg, progress=False)[1]
        record.pop("loss")
        print(kind, record, flush=True)
        rows.append(record)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--larger-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    device = models.default_device()
    full = {**models.FULL, "max_seconds": None}
    larger = {**LARGER, "max_seconds": args.larger_seconds}
    results = {"command": "python -m benchmarks.capstone_gpu", "device": device,
               "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
               "machine": f"{platform.machine()}, torch {torch.__version__}",
               "full": {"config": full, "mixers": run(full)}, "larger": {"config": larger, "mixers": run(larger)}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "capstone_gpu.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
