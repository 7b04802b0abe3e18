"""Data-parallel training on several processes (GPUs) for :func:`audiolab.training.fit`.

``fit`` runs unchanged under ``torchrun``: launched as ``torchrun --nproc-per-node N script.py``
(or ``python -m audiolab scale --gpus N``), every process calls ``fit`` with the same arguments,
and ``fit`` finds the launch in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). Then

- each process (a *rank*) uses GPU ``LOCAL_RANK`` (or the CPU, with the ``gloo`` backend) and
  keeps the whole data set on it, as ``fit`` always does (data that fits on one GPU fits on each);
- every epoch, all ranks draw the same shuffled order of the examples and cut it into the same
  *global* batches of ``batch_size`` examples; rank ``r`` takes the ``r``-th of ``N`` near-equal
  parts of each global batch (what ``DistributedSampler`` gives a data loader). The last global
  batch is merged into the one before if it has fewer than ``N`` examples, so every example is
  still seen once per epoch and no rank gets an empty batch;
- the model is wrapped in PyTorch's :class:`~torch.nn.parallel.DistributedDataParallel` (each
  part of a :class:`~torch.nn.ModuleDict`, such as a GAN's ``"G"`` and ``"D"``, separately), which
  averages the gradients over the ranks during the backward pass: one optimiser step on a global
  batch, as on one GPU with ``batch_size`` examples per step;
- the numbers a step logs are summed over the ranks (weighted by their batch sizes) before they
  are averaged, a NaN on any rank stops every rank, validation runs on every rank with the same
  weights (so every rank records the same history and early stopping agrees), and only rank 0
  prints and writes the checkpoint (atomically); any number of ranks can resume from it.

The effective batch is ``batch_size`` whatever ``N`` is, so the learning rate needs no change;
to use the extra GPUs for a larger batch, raise ``batch_size`` (and usually the learning rate,
roughly in proportion for SGD, less for Adam). Batch-norm statistics are computed per rank (on
``batch_size / N`` examples), as DistributedDataParallel does by default; the running statistics
are rank 0's.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Group:
    """This process's place in a distributed run."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that prints and writes files)."""
        return self.rank == 0


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process (or a
    process group is already initialised)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device | None) -> Group:
    """Join the process group (initialising it from ``torchrun``'s environment if needed).

    The device: GPU ``LOCAL_RANK`` when CUDA is available and ``device`` is not the CPU (backend
    NCCL), else the CPU (backend gloo).
    """
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed: train on one process")
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"distributed training needs {', '.join(missing)} in the environment: launch "
                "with `torchrun --nproc-per-node N script.py` (or `python -m audiolab scale`)"
            )
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    return Group(rank, world, dev)


class DataParallelModule(DistributedDataParallel):
    """:class:`~torch.nn.parallel.DistributedDataParallel` that also answers the wrapped
    model's own attributes, so that a training step written for one GPU (``G.z_dim``,
    ``model.n_classes``) runs unchanged on several."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module, group: Group) -> nn.Module:
    """``model`` in DistributedDataParallel (a ModuleDict: each part with parameters; a part
    without trainable parameters, such as a GAN's moving-average generator, stays as it is)."""
    ids = [group.device.index] if group.device.type == "cuda" else None

    def ddp(module: nn.Module) -> nn.Module:
        if not any(p.requires_grad for p in module.parameters()):
            return module
        return DataParallelModule(module, device_ids=ids)

    if isinstance(model, nn.ModuleDict):
        return nn.ModuleDict({name: ddp(part) for name, part in model.items()})
    return ddp(model)


def shard(batches: list[Tensor] | tuple[Tensor, ...], group: Group) -> list[Tensor]:
    """This rank's rows of every global batch (see the module's description)."""
    batches = list(batches)
    if len(batches) > 1 and len(batches[-1]) < group.world:
        batches[-2:] = [torch.cat(batches[-2:])]
    if batches and len(batches[0]) < group.world:
        raise ValueError(
            f"a batch of {len(batches[0])} example(s) cannot be shared by {group.world} "
            "processes: use a batch_size of at least the number of processes"
        )
    return [rows.tensor_split(group.world)[group.rank] for rows in batches]


def all_sum(values: Tensor) -> Tensor:
    """Sum of ``values`` over the ranks (every rank gets the sum)."""
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank."""
    return bool(all_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def barrier() -> None:
    """Wait for every rank (a no-op outside a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
