"""Scaling out: a chapter's training by :func:`audiolab.training.fit` on 1 or more GPUs, with
its throughput measured. Two workloads: chapter 3's digit classifier (``cnn``) and chapter 8's
conditional GAN (``gan``, the chapter's own networks, recipe and training step, taken from its
notebook by :func:`audiolab.chapter_code.run_cells`). Run by ``python -m audiolab scale`` (which
launches it through ``torchrun``), or directly::

    torchrun --nproc-per-node 2 -m audiolab.scaling --workload cnn --epochs 8 --batch-size 256

Every process runs this same script; :func:`audiolab.training.fit` finds the launch in the
environment and trains with DistributedDataParallel (:mod:`audiolab.distributed`). Rank 0
writes one JSON record: workload, processes, global batch, clips per second (epochs after the
first, which pays for start-up), the final accuracy (for the GAN: the digit classifier's
accuracy on the requested digits and the Inception Score ratio), and the wall time. Pretrained
models and corpora must be cached first (a run on one process does it).
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
        "workload": "cnn",
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


GAN_RECIPE = "BCE + DiffAugment + AC"  # chapter 8's conditional model


def train_gan(epochs: int, batch_size: int, size: str, seed: int = 0) -> dict[str, Any]:
    """Train chapter 8's conditional GAN (its recipe with the auxiliary classifier); the record.

    The chapter's notebook runs up to the cell that defines its training functions (data, the
    judging classifier, networks, step), in mode ``size``; then ``new_gan`` and ``train_more``
    train for ``epochs`` epochs at the global batch ``batch_size``, and rank 0 judges
    ``CONFIG["n_eval"]`` generated clips of requested digits.
    """
    import os

    import torch

    from audiolab import distributed, settings
    from audiolab.chapter_code import run_cells
    from audiolab.cli import find_notebook

    os.environ["AUDIOLAB_MODE"] = size
    rank, world = 0, 1
    if distributed.launched():
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
        if torch.cuda.is_available():  # "cuda" in the chapter's cells: this rank's GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    chapter = run_cells(find_notebook("8"), until="def train_more(")
    chapter["CONFIG"]["batch_size"] = batch_size
    if GAN_RECIPE not in chapter["RECIPES"]:
        raise ValueError(f"chapter 8 has no recipe {GAN_RECIPE!r} (it has "
                         f"{', '.join(chapter['RECIPES'])}): update GAN_RECIPE")
    run = chapter["new_gan"](GAN_RECIPE, seed, conditional=True)
    start = time.perf_counter()
    history = chapter["train_more"](run, epochs)
    seconds = time.perf_counter() - start
    steady = history["seconds"][1:] or history["seconds"]
    clips = len(chapter["images"]["train"])
    record = {
        "workload": "gan",
        "processes": world,
        "device": settings.describe(),
        "global_batch": batch_size,
        "epochs": len(history),
        "steps": len(run["trace"]),
        "clips_per_second": round(clips * len(steady) / sum(steady), 1),
        "seconds": round(seconds, 1),
        "chapter_setup_seconds": round(chapter["__seconds__"], 1),
    }
    if rank == 0:
        requested = torch.arange(chapter["CONFIG"]["n_eval"]) % 10
        judged = chapter["scores"](run["model"]["G_ema"], y=requested)
        record["accuracy_on_requested_digit"] = round(judged["accuracy"], 4)
        record["is_ratio"] = round(float(judged["IS"] / chapter["IS_REAL"]), 3)
        record["discriminator_loss_last_200_steps"] = round(
            float(chapter["loss_trace"](run)[-200:, 0].mean()), 3)
    return record


WORKLOADS = {"cnn": train, "gan": train_gan}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiolab.scaling", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", choices=("quick", "full"), default="full")
    parser.add_argument("--out", type=Path, help="JSON file for rank 0's record")
    args = parser.parse_args(argv)
    record = WORKLOADS[args.workload](args.epochs, args.batch_size, args.size)
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
