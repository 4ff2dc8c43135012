"""The full run of notebook 10: train each mixer on MQAR, then linear attention with a growing key dimension.

    nice .venv/bin/python -m benchmarks.capstone_mqar

writes benchmarks/results/capstone_mqar.json and .png (the settings are linattn_ref.models.FULL, with the time cap
lifted so that every model trains all FULL["steps"] steps; the notebook keeps the cap, 45 s per model).
"""
import json
import platform
from pathlib import Path

import torch

from linattn_ref import models
from linattn_ref.viz import nb10_capstone as viz

OUT = Path(__file__).parent / "results"


def trained(kind, cfg, d_key=None):
    record = models.train_one(kind, cfg, d_key, progress=False)[1]
    print(kind, record["d_key"], record["state_size"], record["steps"], record["seconds"], record["accuracy"],
          flush=True)
    return record


def main():
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and kinder to a shared machine
    cfg = {**models.FULL, "max_seconds": 600.0}  # every model gets all its steps, however busy the machine
    mixers = [trained(kind, cfg) for kind in models.MIXERS]
    sweep = [next(r for r in mixers if r["kind"] == "linear")]
    sweep += [trained("linear", cfg, d) for d in cfg["feature_dims"] if d != cfg["d_key"]]
    sweep.sort(key=lambda r: r["d_key"])
    results = {"command": "nice .venv/bin/python -m benchmarks.capstone_mqar", "config": cfg,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {models.default_device()}",
               "mixers": mixers, "feature_sweep": sweep}
    OUT.mkdir(exist_ok=True)
    (OUT / "capstone_mqar.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results)


def plot(results):
    """The PNG from the JSON: `python -c "from benchmarks.capstone_mqar import *; plot(viz.load_results())"`."""
    fig = viz.plot_results(results["mixers"], results["feature_sweep"], label="full run")
    fig.savefig(OUT / "capstone_mqar.png", dpi=110)


if __name__ == "__main__":
    main()
