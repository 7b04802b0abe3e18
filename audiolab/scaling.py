"""Scaling out: chapter 3's digit classifier trained by :func:`audiolab.training.fit` on 1 or
more GPUs, with its throughput measured. Run by ``python -m audiolab scale`` (which launches
it through ``torchrun``), or directly::

    torchrun --nproc-per-node 2 -m audiolab.scaling --epochs 8 --batch-size 256 --out run.json

Every process runs this same script; :func:`audiolab.training.fit` finds the launch in the
environment and trains with DistributedDataParallel (:mod:`audiolab.distributed`). Rank 0
writes one JSON record: processes, global batch, clips per second (epochs after the first,
which pays for start-up), the final validation and test accuracy, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def train(epochs: int, batch_size: int, size: str, seed: int = 0) -> dict[str, Any]:
    """Train chapter 3's :class:`~audiolab.models.DigitCNN` with its recipe; the record."""
    import torch

    from audiolab import distributed, settings
    from audiolab.classification import accuracy
    from audiolab.datasets import SpokenDigits
    from audiolab.models import DigitCNN, train_digit_classifier
    from audiolab.training import predict

    data = {s: SpokenDigits(s, size=size) for s in ("train", "valid", "test")}
    torch.manual_seed(seed)
    model = DigitCNN(frontend=True)
    start = time.perf_counter()
    history = train_digit_classifier(model, data["train"], data["valid"], size=size,
                                     epochs=epochs, batch_size=batch_size, seed=seed)
    seconds = time.perf_counter() - start
    world = 1
    if distributed.launched():
        import torch.distributed as dist

        world = dist.get_world_size()
    steady = history["seconds"][1:] or history["seconds"]
    return {
        "processes": world,
        "device": settings.describe(),
        "global_batch": batch_size,
        "epochs": len(history),
        "clips_per_second": round(len(data["train"]) * len(steady) / sum(steady), 1),
        "valid_accuracy": round(history["valid_accuracy"][-1], 4),
        "test_accuracy": round(float(accuracy(predict(model, data["test"].waveforms),
                                              data["test"].labels)), 4),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiolab.scaling", description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", choices=("quick", "full"), default="full")
    parser.add_argument("--out", type=Path, help="JSON file for rank 0's record")
    args = parser.parse_args(argv)
    record = train(args.epochs, args.batch_size, args.size)
    from audiolab import distributed

    rank0 = not distributed.launched()
    if not rank0:
        import torch.distributed as dist

        rank0 = dist.get_rank() == 0
    if rank0:
        text = json.dumps(record)
        print(text, flush=True)
        if args.out:
            args.out.write_text(text)
    if distributed.launched():
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
