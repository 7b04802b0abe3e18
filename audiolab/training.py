"""One training engine for every chapter: :func:`fit`.

``fit(model, (x, y), (x_val, y_val), nn.CrossEntropyLoss())`` trains ``model`` on tensors that fit
in the device's memory. They are moved to the device once; each epoch shuffles them with a
generator seeded from ``(seed, epoch)`` and cuts them into batches by indexing on the device, so a
step does no per-example Python work. Around that loop the engine adds what every chapter needs:
features computed on the device (``transform=``), bf16 mixed precision on CUDA, ``torch.compile``,
gradient clipping, a progress bar, a :class:`History` that plots in one call, early stopping with
the best weights restored, atomic checkpoints that a killed run resumes from, and errors that say
what went wrong (a NaN loss, a full GPU, outputs and targets of different shapes).

GAN and VAE training use the same engine through ``step=``, a function that does one training
step and returns the numbers to log; :class:`StepContext` gives it the model, the optimisers and
helpers (``ctx.autocast()``, ``ctx.minimize(loss)``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from . import checks, settings
from . import distributed as distributed_
from .cache import write_atomically

Data = tuple[Tensor, ...] | list[Tensor] | TensorDataset
Metric = Callable[[Tensor, Tensor], Tensor | float]
Step = Callable[[tuple[Tensor, ...], "StepContext"], Mapping[str, float | Tensor]]
OptimizerArg = Optimizer | type[Optimizer] | Callable[[Iterable[nn.Parameter]], Optimizer]

#: Training steps between two checks that every number the steps returned is finite; after
#: each good check a copy of the weights is kept, to go back to if a NaN follows. On the CPU the
#: numbers are read at each check; on a GPU they are checked on the device and read once per
#: epoch, since reading them means waiting for the GPU to catch up.
CHECK_EVERY = 16


class TrainingError(RuntimeError):
    """Training cannot go on: a non-finite loss, a full GPU, mismatched shapes, a bad checkpoint.

    The first line of the message says what happened; the next ones say why it may have
    happened and what to do. When :func:`fit` stops on a NaN or infinite number, ``history``
    holds the epochs completed before it (otherwise it is ``None``).
    """

    history: History | None = None


class CheckpointError(TrainingError):
    """A checkpoint file cannot be read, or it belongs to another model."""


# --------------------------------------------------------------------------- history


class History:
    """What happened in each epoch: losses, metrics, learning rate and time.

    ``history.epochs`` is a list of dicts such as ``{"epoch": 1, "train_loss": 0.9,
    "valid_loss": 1.0, "valid_accuracy": 0.7, "lr": 0.001, "seconds": 2.1}``;
    ``history["valid_loss"]`` is the list of one key's values, one per epoch.

    Attributes
    ----------
    epochs
        One record per epoch, in order.
    stopped_epoch
        The epoch after which early stopping ended training (``None`` if it did not).
    best_epoch
        The epoch whose weights early stopping restored (``None`` without early stopping).
    """

    def __init__(
        self,
        epochs: Iterable[dict[str, float]] = (),
        stopped_epoch: int | None = None,
        best_epoch: int | None = None,
    ) -> None:
        self.epochs = [dict(record) for record in epochs]
        self.stopped_epoch = stopped_epoch
        self.best_epoch = best_epoch

    def append(self, record: dict[str, float]) -> None:
        """Add one epoch's record."""
        self.epochs.append(dict(record))

    def keys(self) -> list[str]:
        """Every recorded key, in order of first appearance."""
        return list(dict.fromkeys(key for record in self.epochs for key in record))

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str) -> list[float]:
        if key not in self.keys():
            raise KeyError(f"{key!r} was not recorded; the history has {self.keys()}")
        return [record.get(key, math.nan) for record in self.epochs]

    def best(self, monitor: str = "valid_loss", mode: str = "min") -> dict[str, float]:
        """The record of the epoch with the lowest (``mode="min"``) or highest value of ``monitor``.

        Ties go to the earliest epoch; NaN values never win.
        """
        values = self[monitor]
        finite = [i for i, v in enumerate(values) if not math.isnan(v)]
        if not finite:
            raise ValueError(f"no epoch has a value of {monitor!r}")
        pick = min if _check_mode(mode) == "min" else max
        return self.epochs[pick(finite, key=lambda i: values[i])]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (lists, dicts, numbers), e.g. for a checkpoint or JSON."""
        return {
            "epochs": [dict(record) for record in self.epochs],
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """The inverse of :meth:`to_dict`."""
        return cls(data["epochs"], data.get("stopped_epoch"), data.get("best_epoch"))

    def plot(self, keys: Sequence[str] | None = None, ax: Any = None) -> Any:
        """Plot losses and metrics against the epoch (losses and metrics on separate axes).

        Parameters
        ----------
        keys
            What to plot (default: every loss and metric, not ``lr`` and ``seconds``).
        ax
            A matplotlib Axes, or one per group (losses, metrics). Given one Axes while there are
            both losses and metrics, the metrics go on a twin y-axis. Default: a new figure.

        Returns
        -------
        matplotlib.axes.Axes or list of Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt
        from matplotlib.axes import Axes

        if keys is None:
            keys = [k for k in self.keys() if k not in ("epoch", "lr", "seconds")]
            keys = [k for k in keys if not k.startswith("lr_")]
        losses = [k for k in keys if "loss" in k]
        groups = [g for g in (losses, [k for k in keys if k not in losses]) if g]
        if not groups:
            raise ValueError("nothing to plot: the history is empty")
        if ax is None:
            _, axes = plt.subplots(1, len(groups), figsize=(4.8 * len(groups), 3.2), squeeze=False)
            axes = list(axes[0])
        elif isinstance(ax, Axes):
            axes = [ax, ax.twinx()][: len(groups)]
        else:
            axes = list(ax)
        epochs = self["epoch"]
        for a, group in zip(axes, groups, strict=False):
            names = list(dict.fromkeys(_unprefixed(k) for k in group))
            for key in group:
                a.plot(
                    epochs,
                    self[key],
                    label=key,
                    color={"train": "C0", "valid": "C1"}.get(key.split("_")[0], "C2"),
                    linestyle=["-", "--", ":", "-."][names.index(_unprefixed(key)) % 4],
                    marker="o" if len(epochs) <= 30 else None,
                    markersize=3,
                )
            a.set(xlabel="epoch", ylabel=names[0] if len(names) == 1 else ", ".join(names))
            a.grid(alpha=0.3)
            a.legend(loc="best", fontsize="small")
            if self.best_epoch is not None:
                a.axvline(self.best_epoch, color="grey", linewidth=0.8, linestyle=":")
        return axes[0] if len(axes) == 1 else axes

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(0 epochs)"
        last = ", ".join(
            f"{k}={v:.4g}" for k, v in self.epochs[-1].items() if k not in ("epoch", "seconds")
        )
        extra = f", stopped after epoch {self.stopped_epoch}" if self.stopped_epoch else ""
        extra += f", best epoch {self.best_epoch}" if self.best_epoch else ""
        return f"History({len(self)} epochs{extra}; last: {last})"

    def _repr_html_(self) -> str:
        keys = self.keys()
        head = "".join(f"<th>{k}</th>" for k in keys)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_fmt(r.get(k, math.nan))}</td>" for k in keys) + "</tr>"
            for r in self.epochs
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _unprefixed(key: str) -> str:
    return key.split("_", 1)[1] if key.startswith(("train_", "valid_")) else key


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' (lower is better) or 'max', got {mode!r}")
    return mode


# --------------------------------------------------------------------------- early stopping


@dataclass(frozen=True)
class EarlyStopping:
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor
        A key of the history, e.g. ``"valid_loss"`` or ``"valid_accuracy"``.
    mode
        ``"min"`` when lower is better (losses), ``"max"`` when higher is (accuracy).
    patience
        How many epochs without improvement to allow before stopping.
    min_delta
        An epoch improves on the best only when it is better by more than this.
    restore_best
        Load the best epoch's weights into the model when :func:`fit` returns.
    """

    monitor: str = "valid_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1 epoch, got {self.patience}")

    def best_epoch(self, history: History) -> int:
        """The epoch with the best value so far (gains of ``min_delta`` or less are ignored)."""
        best_epoch, best = history.epochs[0]["epoch"], None
        for record in history.epochs:
            value = record[self.monitor]
            if math.isnan(value):
                continue
            gain = (
                math.inf if best is None else best - value if self.mode == "min" else value - best
            )
            if gain > self.min_delta:
                best_epoch, best = record["epoch"], value
        return best_epoch

    def should_stop(self, history: History) -> bool:
        """Whether the last ``patience`` epochs brought no improvement."""
        return history.epochs[-1]["epoch"] - self.best_epoch(history) >= self.patience


# --------------------------------------------------------------------------- the step


@dataclass
class StepContext:
    """What a step function gets besides the batch.

    A custom step (``fit(..., step=my_step)``) is called as ``my_step(batch, ctx)`` for every
    training batch, with ``ctx.training`` True: it runs the forward pass inside
    ``with ctx.autocast():``, updates the weights (``ctx.minimize(loss, "d")``, or by hand) and
    returns the numbers to log, e.g. ``{"d_loss": d_loss, "g_loss": g_loss}``; they are averaged
    over the epoch and recorded as ``train_d_loss``, ``train_g_loss``. When ``fit`` has ``valid``
    data, the step is also called on its batches with ``ctx.training`` False inside
    ``torch.inference_mode()``: then it must only compute and return the numbers (recorded as
    ``valid_...``).

    Attributes
    ----------
    model
        The model (compiled when ``compile=True``).
    optimizers
        The optimisers by name; a single one is also ``ctx.optimizer``.
    device
        Where the model and the data are.
    loss
        The ``loss`` given to :func:`fit` (may be ``None``).
    amp
        Whether :meth:`autocast` turns on bf16 mixed precision (CUDA with ``amp=True``).
    grad_clip
        The largest gradient norm allowed, or ``None``.
    max_label
        The largest class label of the data when the loss takes class indices
        (:class:`~torch.nn.CrossEntropyLoss`, :class:`~torch.nn.NLLLoss`); the default step
        checks it against the model's number of outputs.
    epoch, step
        The current epoch (from 1) and batch index within the epoch (from 0).
    training
        ``True`` for training steps, ``False`` for validation.
    """

    model: nn.Module
    optimizers: dict[str, Optimizer]
    device: torch.device
    loss: Callable[[Tensor, Tensor], Tensor] | None = None
    amp: bool = False
    grad_clip: float | None = None
    epoch: int = 0
    step: int = 0
    training: bool = True
    max_label: int | None = None
    #: The step is recorded and replayed as a CUDA graph (:class:`GraphedStep`): autocast keeps
    #: no cast cache, in every step of the run (warm-up, recording, eager batches), because a
    #: graph must not capture the cache and ``torch.compile`` guards on the cache setting: a
    #: setting that changed at the recording would recompile the model inside the capture.
    graphed: bool = False

    @property
    def optimizer(self) -> Optimizer:
        """The optimiser, when there is exactly one."""
        if len(self.optimizers) != 1:
            raise ValueError(
                f"there are {len(self.optimizers)} optimisers ({', '.join(self.optimizers)}): "
                "use ctx.optimizers[name]"
            )
        return next(iter(self.optimizers.values()))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when mixed precision is on, else a context that does nothing."""
        return _autocast(self.device, self.amp, cache=not self.graphed)

    def clip_gradients(self, parameters: Iterable[Tensor] | None = None) -> None:
        """Scale the gradients down to norm ``grad_clip`` (if set) (default: all the model's)."""
        if self.grad_clip is not None:
            params = self.model.parameters() if parameters is None else parameters
            nn.utils.clip_grad_norm_(params, self.grad_clip)

    def minimize(self, loss: Tensor, optimizer: str | Optimizer | None = None) -> None:
        """One gradient step on ``loss``: zero the gradients, backpropagate, clip, step.

        ``optimizer`` is an optimiser or its name in :attr:`optimizers` (default: the only one).
        Only the parameters of that optimiser are clipped and updated.
        """
        if optimizer is None:
            optimizer = self.optimizer
        elif isinstance(optimizer, str):
            optimizer = self.optimizers[optimizer]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.clip_gradients(p for group in optimizer.param_groups for p in group["params"])
        optimizer.step()


def _autocast(
    device: torch.device, amp: bool, cache: bool = True
) -> contextlib.AbstractContextManager:
    if amp:  # a CUDA graph must not capture autocast's cache of cast weights
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def supervised_step(metrics: Mapping[str, Metric] | None = None) -> Step:
    """The default step: ``loss(model(*inputs), targets)``, one optimiser step, metrics.

    A batch is ``(*inputs, targets)``. The returned numbers are the loss and each metric of
    this batch's outputs.
    """
    metrics = dict(metrics or {})

    def step(batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        *inputs, targets = batch
        with ctx.autocast():
            outputs = ctx.model(*inputs)
            _check_labels_fit(ctx.max_label, outputs)
            loss = compute_loss(ctx.loss, outputs, targets)
        if ctx.training:
            ctx.minimize(loss)
        numbers = {"loss": loss.detach()}
        for name, metric in metrics.items():
            numbers[name] = metric(outputs.detach().float(), targets)
        return numbers

    return step


def _check_labels_fit(max_label: int | None, outputs: Tensor) -> None:
    """Class labels must index the model's outputs (a CUDA kernel would assert, not explain)."""
    if max_label is not None and isinstance(outputs, Tensor) and outputs.ndim >= 2:
        if max_label >= outputs.shape[1]:
            raise ValueError(
                f"the targets hold the class label {max_label}, but the model outputs "
                f"{outputs.shape[1]} scores per example (classes 0 to {outputs.shape[1] - 1}): "
                "give the model's last layer one output per class, or fix the labels"
            )


def compute_loss(loss: Callable[[Tensor, Tensor], Tensor], outputs: Tensor, targets: Tensor):
    """``loss(outputs, targets)``, with a readable error when the two do not fit together."""
    if (
        isinstance(loss, _SAME_SHAPE_LOSSES)
        and isinstance(outputs, Tensor)
        and outputs.shape != targets.shape
    ):
        # these losses would broadcast (64, 1) against (64,) to (64, 64) with only a warning
        raise TrainingError(_mismatch_message(loss, outputs, targets))
    try:
        return loss(outputs, targets)
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, IndexError) as err:
        raise TrainingError(_mismatch_message(loss, outputs, targets, str(err))) from err


_SAME_SHAPE_LOSSES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
)

_LOSS_HINTS = {
    "crossentropy": "the output should be (batch, classes) logits and the targets (batch,) class "
    "indices (torch.long, 0 to classes-1), or (batch, classes) probabilities",
    "nll": "the output should be (batch, classes) log-probabilities and the targets (batch,) "
    "class indices (torch.long, 0 to classes-1)",
    "bcewithlogits": "the output (logits) and the targets (floats in [0, 1]) should have the same "
    "shape: e.g. squeeze the output's last axis, or unsqueeze the targets",
    "bce": "the output (probabilities) and the targets (floats in [0, 1]) should have the same "
    "shape: e.g. squeeze the output's last axis, or unsqueeze the targets",
}
_REGRESSION = {"mse", "l1", "smoothl1", "huber"}
_REGRESSION_HINT = (
    "the output and the targets should have the same shape and both be floating point: e.g. "
    "squeeze the output's last axis, or unsqueeze the targets"
)


def _mismatch_message(loss: Callable, outputs: Any, targets: Any, error: str = "") -> str:
    name = getattr(loss, "__name__", type(loss).__name__)
    key = name.lower().replace("_", "").removesuffix("loss")
    key = {"binarycrossentropy": "bce", "binarycrossentropywithlogits": "bcewithlogits"}.get(
        key, key
    )
    hint = _LOSS_HINTS.get(key, _REGRESSION_HINT if key in _REGRESSION else None)
    hint = f"for {name} {hint}" if hint else "check that the model's last layer fits the targets"
    return (
        f"the loss {name} cannot compare the model's output with the targets: the model output "
        f"has {_describe(outputs)} but the targets have {_describe(targets)}; {hint}."
        + (f" (PyTorch said: {error})" if error else "")
    )


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"type {type(x).__name__}"


# --------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train: Data,
    valid: Data | None = None,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: OptimizerArg | None = None,
    lr: float = 1e-3,
    scheduler: Callable[[Optimizer], Any] | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    train_transform: Callable[[Tensor], Tensor] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
    amp: bool = True,
    compile: bool = False,
    grad_clip: float | None = None,
    early_stopping: EarlyStopping | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    step: Step | None = None,
    optimizers: Mapping[str, Optimizer] | None = None,
    seed: int = 0,
    progress: bool | None = None,
    distributed: bool | None = None,
) -> History:
    """Train ``model`` and return its :class:`History`; the model is trained in place.

    Parameters
    ----------
    model
        The network. It is moved to ``device`` and stays there.
    train, valid
        ``(inputs, targets)`` tensors (or more inputs: ``(*inputs, targets)``, the model is
        called as ``model(*inputs)``), or a :class:`~torch.utils.data.TensorDataset`, or a
        dataset with ``.waveforms`` and ``.labels`` (such as
        :class:`audiolab.datasets.SpokenDigits`). They are moved to ``device`` once, so they must
        fit in its memory. Each epoch visits the training examples in a new random order and
        keeps the last, smaller batch. ``valid`` is evaluated after every epoch.
    loss
        ``loss(outputs, targets)``, e.g. ``nn.CrossEntropyLoss()``; needed unless ``step`` is
        given.
        float64 tensors are converted to the model's floating-point type (float32 for most
        models). Class labels for :class:`~torch.nn.CrossEntropyLoss` and
        :class:`~torch.nn.NLLLoss` must be 0 to classes-1 (``-100``, which these losses would
        silently skip, is refused).
    epochs, batch_size
        Number of passes over ``train``, examples per step (positive integers).
    optimizer
        An optimiser of ``model.parameters()``, an optimiser class (called with ``lr``), or a
        function of the parameters that makes one (e.g. ``functools.partial(torch.optim.SGD,
        lr=0.1, momentum=0.9)``). Default: ``torch.optim.Adam`` with learning rate ``lr``.
    lr
        Learning rate of the default optimiser (or of an optimiser class).
    scheduler
        A function of the optimiser that makes a learning-rate scheduler, e.g.
        ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10, 0.5)``; stepped once per epoch.
    transform
        Applied to each batch of the first input on the device, without gradient, in float32,
        in training and evaluation: e.g. features such as MFCCs computed on the GPU.
    train_transform
        Applied before ``transform`` in training only, e.g. data augmentation.
    metrics
        Functions ``metric(outputs, targets)`` by name, e.g. ``{"accuracy": accuracy}``;
        ``valid_<name>`` is computed on the whole validation set after each epoch and
        ``train_<name>`` is the running mean over the epoch's batches (as the model changes).
        Only with the default step: a custom step returns its own numbers.
    device
        ``"cpu"``, ``"cuda"`` or a :class:`torch.device`; default :func:`audiolab.settings.device`.
    amp
        bf16 mixed precision (autocast) on CUDA; ignored on the CPU, which runs in float32.
    compile
        Run the model through :func:`torch.compile` with static shapes (one graph for the full
        batches and one for the last, smaller batch, which is kept) and, on CUDA, CUDA graphs.
        With the default step, Adam or AdamW and no scheduler, the whole training step
        (forward, loss, backward, clipping, update) is recorded as one CUDA graph after
        :attr:`GraphedStep.WARMUP` eager steps and replayed for every full batch
        (:class:`GraphedStep`); otherwise the model's own graphs are
        (``mode="reduce-overhead"``). ``transform`` and ``train_transform`` are not compiled:
        compiling chapter 2's MFCC transform as well made the MLP's epochs 6-10 % slower on an
        H200 (the DCT splits it into several graphs); a model that needs its features compiled
        computes them inside (chapter 3's CNN). It costs
        its compile time at the start (tens of seconds for chapter 3's CNN on a GPU, more on
        a CPU) and pays only for models whose steps are bound by kernel launches; measure
        with ``python -m audiolab bench fit``.
    grad_clip
        Clip the gradient norm to this value (a positive number) before each optimiser step.
    early_stopping
        Stop when a monitored value stops improving, and restore the best epoch's weights.
    checkpoint
        A file written (atomically) after every epoch: model, optimisers, schedulers, history,
        random-number states. If it exists and ``resume`` is true, training continues from it
        (up to ``epochs`` in all; a run that early stopping ended stays ended), and the result
        is the same as that of an uninterrupted run. Every other setting saved in it (optimiser
        and its hyperparameters, scheduler, ``batch_size``, ``seed``, ``grad_clip``, ``amp``,
        loss, metrics, early stopping, data shapes) must match this call's, or a
        :class:`CheckpointError` names the difference and nothing is loaded. The file carries a
        SHA-256 checksum of its contents, checked when it is read.
    resume
        Whether to continue from an existing ``checkpoint`` (``False``: start afresh and
        overwrite it).
    step
        A custom training step ``step(batch, ctx)`` for training that is not ``loss(model(x), y)``,
        such as GANs and VAEs: see :class:`StepContext`.
    optimizers
        Several optimisers by name for a custom step, e.g. ``{"g": ..., "d": ...}``; instead of
        ``optimizer``. They are checkpointed, and ``scheduler`` makes one scheduler for each.
    seed
        Seeds Python, NumPy and PyTorch at the start (:func:`audiolab.settings.seed_everything`)
        and the shuffling of every epoch: the same seed gives the same history on the CPU.
    progress
        Show a progress bar per epoch and print one line per epoch. Default: only when
        interactive (Jupyter, or a terminal).
    distributed
        Data-parallel training over the processes of a ``torchrun`` launch (one per GPU) with
        PyTorch's DistributedDataParallel: see :mod:`audiolab.distributed`. Default: when the
        environment says this process is one of several (``WORLD_SIZE`` > 1). ``batch_size`` is
        the global batch, shared by the processes; the history is the same on every process.

    Returns
    -------
    History
        One record per epoch.

    Raises
    ------
    TrainingError
        On a NaN or infinite training or validation number (naming the epoch, the batch and the
        usual causes; the model is left with its last finite weights, or early stopping's best
        ones), when the GPU runs out of memory, or when the loss cannot compare outputs and
        targets.
    CheckpointError
        When the checkpoint cannot be read, is damaged, or was saved by another model or with
        other settings.
    TypeError, ValueError
        For arguments of the wrong type or out of range (``epochs=2.5``, ``grad_clip=0``, ...).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = checks.integer("epochs", epochs)
    batch_size = checks.integer("batch_size", batch_size)
    lr = checks.number("lr", lr, positive=True)
    seed = checks.integer("seed", seed, minimum=0)
    if grad_clip is not None:
        grad_clip = checks.number("grad_clip", grad_clip, positive=True)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(
            f"early_stopping must be an EarlyStopping(...), got {type(early_stopping).__name__}"
        )
    if checkpoint is not None:
        _check_checkpoint_path(Path(checkpoint))
    dev = device if isinstance(device, torch.device) else settings.device(device)
    group = None
    if distributed or (distributed is None and distributed_.launched()):
        group = distributed_.setup(dev)
        dev = group.device
    dtype = _float_type(model)
    train = _as_tensors(train, "train", dtype)
    valid = _as_tensors(valid, "valid", dtype) if valid is not None else None
    _check_arguments(train, valid, loss, step, metrics, epochs, batch_size, early_stopping)
    max_label = _check_labels(loss, train, valid) if step is None else None
    was_training = model.training
    model.to(dev)
    opts = _make_optimizers(model, optimizer, optimizers, lr)
    schedulers = {name: scheduler(opt) for name, opt in opts.items()} if scheduler else {}
    graphed = compile and step is None and _graphable(dev, opts, schedulers, group)
    local_model = _compile(model, dev, cuda_graphs=not graphed) if compile else model
    ctx = StepContext(
        model=distributed_.wrap(local_model, group) if group else local_model,
        optimizers=opts,
        device=dev,
        loss=loss,
        amp=amp and dev.type == "cuda",
        grad_clip=grad_clip,
        max_label=max_label,
    )
    train_step = step or supervised_step(metrics)
    if graphed:
        train_step = GraphedStep(train_step)
    config = _config(model, opts, schedulers, seed, batch_size)
    config["settings"] = _run_settings(
        opts, schedulers, grad_clip, amp, loss, step, metrics, early_stopping, train, valid
    )
    history, best = History(), None
    settings.seed_everything(seed)
    if group is not None and group.rank:  # other random draws (augmentation) on other ranks
        settings.seed_everything(seed + 7919 * group.rank)
    if checkpoint is not None and resume and Path(checkpoint).exists():
        history, best = _resume(checkpoint, model, opts, schedulers, config)
    train = _to_device(train, dev, "train")
    valid = _to_device(valid, dev, "valid") if valid is not None else None
    show = (_interactive() if progress is None else progress) and (group is None or group.main)
    train_transforms = [t for t in (train_transform, transform) if t is not None]

    restore_best = early_stopping is not None and early_stopping.restore_best
    with _out_of_memory_hint(ctx, batch_size):
        for epoch in range(len(history) + 1, epochs + 1):
            if history.stopped_epoch is not None:
                break
            start = time.perf_counter()
            ctx.epoch = epoch
            rates = _learning_rates(opts)
            record = {"epoch": epoch}
            try:
                record |= _train_epoch(
                    train_step, ctx, train, batch_size, train_transforms, seed, show, group
                )
            except _NonFinite as bad:
                kept = _kept_weights(model, best if restore_best else None, history, bad.safe)
                err = _nonfinite_error(bad, kept, ctx, train, train_transforms)
                err.history = history
                raise err from None
            if valid is not None:
                if group is None:
                    numbers = _evaluate(ctx, valid, batch_size, transform, metrics, step)
                else:  # every rank: the same weights, rank 0's buffers, the whole set
                    numbers = _evaluate_distributed(
                        ctx, local_model, valid, batch_size, transform, metrics, step
                    )
                bad_key = next((k for k, v in numbers.items() if not math.isfinite(v)), None)
                if bad_key is not None:
                    kept = _kept_weights(model, best if restore_best else None, history, None)
                    err = _nonfinite_valid_error(bad_key, numbers[bad_key], epoch, kept, valid)
                    err.history = history
                    raise err
                record |= numbers
            record |= rates | {"seconds": time.perf_counter() - start}
            history.append(record)
            for s in schedulers.values():
                s.step()
            if early_stopping is not None:
                best = _track_best(early_stopping, history, model, best)
            if checkpoint is not None and (group is None or group.main):
                state = _checkpoint(model, opts, schedulers, history, best, config)
                save_checkpoint(state, checkpoint)
            if group is not None:
                distributed_.barrier()
            if show:
                print(_summary(record, epochs), flush=True)

    if best is not None and early_stopping is not None and early_stopping.restore_best:
        model.load_state_dict(best["model"])
        history.best_epoch = best["epoch"]
    model.train(was_training)
    return history


def _reads_at_checks(device: torch.device, group: distributed_.Group | None) -> bool:
    """Whether the steps' numbers are read at every check (every :data:`CHECK_EVERY` steps): on
    the CPU, where reading costs nothing, and in distributed runs, where the ranks must agree on
    stopping. Otherwise (a GPU) they are read once, at the end of the epoch."""
    return device.type == "cpu" or group is not None


def _train_epoch(
    step: Step,
    ctx: StepContext,
    data: tuple[Tensor, ...],
    batch_size: int,
    transforms: list[Callable[[Tensor], Tensor]],
    seed: int,
    show: bool,
    group: distributed_.Group | None = None,
) -> dict[str, float]:
    """One pass over ``data`` in a fresh random order; the means of what ``step`` returned.

    In a distributed run, this rank's share of every global batch; the means are over all ranks.
    On a GPU nothing waits for the device inside the epoch: the numbers stay on it, are checked
    for NaN there every :data:`CHECK_EVERY` steps (keeping a copy of the weights while all are
    finite) and are read once, at the end.
    """
    ctx.model.train()
    ctx.training = True
    order = epoch_order(len(data[0]), seed, ctx.epoch).to(ctx.device)
    batches = order.split(batch_size)
    if group is not None:
        batches = distributed_.shard(batches, group)
    tally = _Tally(ctx.device)
    reads = _reads_at_checks(ctx.device, group)
    # A NaN is found only at a check, when it may already have reached the weights: keep a copy
    # of the weights as they were at the last check that found every number finite.
    live = [t for t in ctx.model.state_dict().values() if isinstance(t, Tensor)]
    safe = [t.detach().clone() for t in live]
    safe_after: int | Tensor = 0  # the copy holds the weights after this many batches
    if not reads:  # kept on the device: all numbers finite so far, and safe_after
        finite = torch.ones((), dtype=torch.bool, device=ctx.device)
        safe_after = torch.zeros((), dtype=torch.int64, device=ctx.device)
    with tqdm(batches, desc=f"epoch {ctx.epoch}", leave=False, disable=not show) as bar:
        for index, rows in enumerate(bar):
            ctx.step = index
            tally.add(index, step(_batch(data, rows, transforms), ctx), len(rows))
            last = index + 1 == len(batches)
            if (index + 1) % CHECK_EVERY and not last:
                continue
            if not reads:
                if not last:  # on the device, without waiting for it
                    finite = finite & tally.unfolded_finite()
                    with torch.no_grad():
                        for target, saved in zip(live, safe, strict=True):
                            saved.copy_(torch.where(finite, target.detach(), saved))
                    safe_after = torch.where(finite, index + 1, safe_after)
                continue
            bad = tally.first_nonfinite()
            if group is not None and distributed_.any_rank(bad is not None, ctx.device):
                bad = bad or (index, "a number on another process", math.nan)
            if bad is not None:
                _restore(live, safe)
                raise _NonFinite(*bad, batches=batches, safe=int(safe_after))
            if not last:
                with torch.no_grad():
                    torch._foreach_copy_(safe, [t.detach() for t in live])
                safe_after = index + 1
            if show:
                bar.set_postfix(tally.means(), refresh=False)
    if not reads:
        bad = tally.first_nonfinite()  # the one wait for the device in the epoch
        if bad is not None:
            _restore(live, safe)
            raise _NonFinite(*bad, batches=batches, safe=int(safe_after))
    means = tally.means() if group is None else tally.global_means()
    return {f"train_{k}": v for k, v in means.items()}


def _restore(live: list[Tensor], saved: list[Tensor]) -> None:
    with torch.no_grad():
        torch._foreach_copy_(live, saved)


class _NonFinite(Exception):  # noqa: N818 (internal signal, turned into a TrainingError)
    """A NaN or infinite number at ``step``; the model was put back to its weights after
    ``safe`` batches of the epoch."""

    def __init__(
        self, step: int, key: str, value: float, *, batches: Sequence[Tensor], safe: int
    ) -> None:
        super().__init__(key)
        self.step, self.key, self.value, self.batches, self.safe = step, key, value, batches, safe


def _kept_weights(model: nn.Module, best: dict | None, history: History, safe: int | None) -> str:
    """Load early stopping's best weights if there are some; say which weights the model has."""
    if best is not None:
        model.load_state_dict(best["model"])
        history.best_epoch = best["epoch"]
        return f"early stopping's best weights, from epoch {best['epoch']}"
    epoch = len(history) + 1
    if safe is None:
        return f"its weights from the end of epoch {epoch}"
    if safe > 0:
        return f"its last finite weights, from after batch {safe} of epoch {epoch}"
    if epoch > 1:
        return f"its last finite weights, from the end of epoch {epoch - 1}"
    return "its weights from before training"


@torch.inference_mode()
def _evaluate(
    ctx: StepContext,
    data: tuple[Tensor, ...],
    batch_size: int,
    transform: Callable[[Tensor], Tensor] | None,
    metrics: Mapping[str, Metric] | None,
    step: Step | None,
) -> dict[str, float]:
    """Loss and metrics on ``data`` (model in eval mode, no gradients), as ``valid_<name>``.

    With the default step, the loss and the metrics are those of all outputs at once; a custom
    ``step`` is run on each batch and what it returns is averaged.
    """
    ctx.model.eval()
    ctx.training = False
    if step is None:
        *inputs, targets = data
        outputs = _outputs(ctx.model, inputs, transform, batch_size, ctx.autocast)
        scores = {"loss": compute_loss(ctx.loss, outputs, targets)}
        scores |= {name: fn(outputs, targets) for name, fn in (metrics or {}).items()}
        return {f"valid_{k}": float(v) for k, v in scores.items()}
    tally = _Tally(ctx.device)
    transforms = [transform] if transform is not None else []
    order = torch.arange(len(data[0]), device=ctx.device)
    for index, rows in enumerate(order.split(batch_size)):
        ctx.step = index
        tally.add(index, step(_batch(data, rows, transforms), ctx), len(rows))
    return {f"valid_{k}": v for k, v in tally.means().items()}


def _evaluate_distributed(
    ctx: StepContext,
    local_model: nn.Module,
    data: tuple[Tensor, ...],
    batch_size: int,
    transform: Callable[[Tensor], Tensor] | None,
    metrics: Mapping[str, Metric] | None,
    step: Step | None,
) -> dict[str, float]:
    """:func:`_evaluate` on every rank with rank 0's buffers and the unwrapped model; rank 0's
    numbers are given to all, so that every rank records the same history."""
    import torch.distributed as dist

    for buffer in local_model.buffers():
        dist.broadcast(buffer, src=0)
    wrapped, ctx.model = ctx.model, local_model
    try:
        numbers = _evaluate(ctx, data, batch_size, transform, metrics, step)
    finally:
        ctx.model = wrapped
    shared = [numbers]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def _outputs(
    model: nn.Module,
    inputs: Sequence[Tensor],
    transform: Callable[[Tensor], Tensor] | None,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> Tensor:
    """``model(*inputs)`` batch by batch, concatenated, in float32."""
    outputs = []
    for start in range(0, len(inputs[0]), batch_size):
        first, *rest = (x[start : start + batch_size] for x in inputs)
        if transform is not None:
            first = transform(first)
        with autocast():
            outputs.append(model(first, *rest).float())
    return torch.cat(outputs)


def predict(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    amp: bool = True,
) -> Tensor:
    """The model's outputs for ``inputs`` (in eval mode, batch by batch), on the CPU in float32.

    ``inputs`` is a tensor or a sequence of tensors (the model is called as ``model(*inputs)``);
    ``transform`` is applied to each batch of the first input on the device, as in :func:`fit`.
    ``device`` defaults to the model's. The model's training mode is restored afterwards.
    float64 inputs are converted to the model's floating-point type.
    """
    if device is None:
        params = list(model.parameters())
        dev = params[0].device if params else settings.device()
    else:
        dev = device if isinstance(device, torch.device) else settings.device(device)
    batch_size = checks.integer("batch_size", batch_size)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    dtype = _float_type(model)
    inputs = [_as_tensors((x,), "inputs", dtype)[0] for x in inputs]
    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.inference_mode():
            inputs = [torch.as_tensor(x).to(dev) for x in inputs]
            autocast = lambda: _autocast(dev, amp and dev.type == "cuda")  # noqa: E731
            return _outputs(model, inputs, transform, batch_size, autocast).cpu()
    finally:
        model.train(was_training)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The order in which epoch ``epoch`` visits ``n`` examples: a function of ``(seed, epoch)``.

    It needs no generator state, so a run resumed from a checkpoint shuffles as the
    uninterrupted run would have.
    """
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))


def _batch(
    data: tuple[Tensor, ...], rows: Tensor, transforms: Sequence[Callable[[Tensor], Tensor]]
) -> tuple[Tensor, ...]:
    """The rows ``rows`` of every tensor, with ``transforms`` applied to the first."""
    first, *rest = (t[rows] for t in data)
    with torch.no_grad():
        for fn in transforms:
            first = fn(first)
    return (first, *rest)


class _Tally:
    """Batch-size-weighted means of the numbers that steps return.

    Numbers that are tensors stay where they are (on the GPU) until they are read: all the
    pending ones at once, in one transfer, by :meth:`first_nonfinite` or :meth:`means`. On the
    device, :meth:`unfolded_finite` checks them without reading them.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.steps: list[int] = []
        self.keys: list[str] = []
        self.sizes: list[int] = []
        self.values: list[Tensor | float] = []  # floats once read
        self.read = 0  # values[:read] are floats
        self.checked = 0  # values[:checked] were checked by first_nonfinite
        self.folded = 0  # values[:folded] were checked on the device by unfolded_finite

    def add(self, step: int, numbers: Mapping[str, float | Tensor], n: int) -> None:
        for key, value in numbers.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise TrainingError(
                        f"the step returned {key!r} with shape {tuple(value.shape)}: "
                        "log single numbers"
                    )
                value = value.detach().reshape(())
                if value.device.type != self.device.type:  # e.g. a CPU number from a GPU step
                    value = float(value)
            else:
                value = float(value)
            self.steps.append(step)
            self.keys.append(key)
            self.sizes.append(n)
            self.values.append(value)

    def _read_pending(self) -> None:
        pending = [i for i in range(self.read, len(self.values))
                   if isinstance(self.values[i], Tensor)]
        if pending:
            numbers = torch.stack([self.values[i].float() for i in pending]).tolist()
            for i, number in zip(pending, numbers, strict=True):
                self.values[i] = number
        self.read = len(self.values)

    def unfolded_finite(self) -> Tensor:
        """Whether every number added since the last call is finite: a boolean on the device,
        computed without waiting for it."""
        new = self.values[self.folded :]
        self.folded = len(self.values)
        tensors = [v for v in new if isinstance(v, Tensor)]
        finite = all(math.isfinite(v) for v in new if not isinstance(v, Tensor))
        if not tensors:
            return torch.tensor(finite, device=self.device)
        all_finite = torch.isfinite(torch.stack([t.float() for t in tensors])).all()
        return all_finite if finite else torch.zeros_like(all_finite)

    def first_nonfinite(self) -> tuple[int, str, float] | None:
        """``(step, key, value)`` of the first NaN or infinite number since the last call."""
        self._read_pending()
        found = next(
            ((self.steps[i], self.keys[i], self.values[i])
             for i in range(self.checked, len(self.values))
             if not math.isfinite(self.values[i])),
            None,
        )
        self.checked = len(self.values)
        return found

    def _sums(self) -> tuple[dict[str, float], dict[str, int]]:
        self._read_pending()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for key, value, n in zip(self.keys, self.values, self.sizes, strict=True):
            sums[key] = sums.get(key, 0.0) + value * n
            counts[key] = counts.get(key, 0) + n
        return sums, counts

    def means(self) -> dict[str, float]:
        sums, counts = self._sums()
        return {k: sums[k] / counts[k] for k in sums}

    def global_means(self) -> dict[str, float]:
        """:meth:`means` over the examples of every rank of a distributed run."""
        sums, counts = self._sums()
        if not sums:
            return {}
        keys = list(sums)
        local = torch.tensor([sums[k] for k in keys] + [float(counts[k]) for k in keys],
                             dtype=torch.float64, device=self.device)
        total = distributed_.all_sum(local).tolist()
        return {k: total[i] / total[len(keys) + i] for i, k in enumerate(keys)}


def _nonfinite_error(
    bad: _NonFinite,
    kept: str,
    ctx: StepContext,
    data: tuple[Tensor, ...],
    transforms: Sequence[Callable[[Tensor], Tensor]],
) -> TrainingError:
    """The error for a NaN/inf number in training, with what the batch's data looked like."""
    batch = tuple(t[bad.batches[bad.step]] for t in data)
    counts = [int((~torch.isfinite(t)).sum()) if t.is_floating_point() else 0 for t in batch]
    if any(counts):
        found = (
            f"This batch's data contain non-finite values ({counts[0]} in the inputs, "
            f"{sum(counts[1:])} in the other tensors): clean the data (torch.nan_to_num, or drop "
            "those examples)."
        )
    else:
        transformed = _batch(batch, torch.arange(len(batch[0]), device=ctx.device), transforms)
        n_bad = int((~torch.isfinite(transformed[0])).sum())
        found = (
            f"This batch's data are finite, but after the transforms the inputs contain {n_bad} "
            "non-finite values (a log of zero in the features?)."
            if n_bad
            else "This batch's data are finite, so the model or the loss made the non-finite value."
        )
    lrs = ", ".join(f"{k}={v:.3g}" for k, v in _learning_rates(ctx.optimizers).items())
    return TrainingError(
        f"train {bad.key} is {bad.value} at epoch {ctx.epoch}, batch {bad.step + 1} of "
        f"{len(bad.batches)}; training stopped and the model keeps {kept} (the last checkpoint, "
        "if any, is from the previous epoch).\n"
        f"{found}\n"
        f"Typical causes: a learning rate too high ({lrs}: try 10 times smaller, or "
        "grad_clip=1.0); a log of zero or a division by zero in the loss or the model (add a "
        "small epsilon, e.g. torch.log(p + 1e-8), or use a stable loss such as BCEWithLogitsLoss "
        "instead of a sigmoid followed by BCELoss); NaN or inf values in the data."
    )


def _nonfinite_valid_error(
    key: str, value: float, epoch: int, kept: str, data: tuple[Tensor, ...]
) -> TrainingError:
    """The error for a NaN/inf validation number after ``epoch``."""
    counts = [int((~torch.isfinite(t)).sum()) if t.is_floating_point() else 0 for t in data]
    if any(counts):
        found = (
            f"The validation data contain {sum(counts)} NaN or infinite values ({counts[0]} in "
            "the inputs): clean them (torch.nan_to_num, or drop those examples)."
        )
    else:
        found = (
            "The validation data are finite and the training numbers were finite, so the model "
            "(in eval mode), a transform or the loss made the non-finite value on these data."
        )
    return TrainingError(
        f"{key} is {value} after epoch {epoch}; training stopped and the model keeps {kept} "
        "(this epoch was not recorded or checkpointed).\n"
        f"{found} Early stopping and the history would be meaningless with it."
    )


@contextlib.contextmanager
def _out_of_memory_hint(ctx: StepContext, batch_size: int) -> Iterator[None]:
    """Re-raise CUDA out-of-memory errors as a :class:`TrainingError` that says what to do."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        if ctx.training:
            where = f"in training at epoch {ctx.epoch}, batch {ctx.step + 1},"
        else:
            where = f"in the validation after epoch {ctx.epoch}"
        raise TrainingError(
            f"the GPU ran out of memory {where} with batch_size={batch_size}: reduce "
            f"batch_size (e.g. batch_size="
            f"{max(1, batch_size // 2)}) or the model's size, or free GPU memory held by other "
            "tensors (del them, then torch.cuda.empty_cache()). "
            f"(PyTorch said: {str(err).splitlines()[0]})"
        ) from err


# --------------------------------------------------------------------------- set-up helpers


def _float_type(model: nn.Module) -> torch.dtype:
    """The floating-point type of the model's parameters (float32 when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _as_tensors(data: Any, name: str, dtype: torch.dtype | None = None) -> tuple[Tensor, ...]:
    if isinstance(data, TensorDataset):
        tensors = data.tensors
    elif hasattr(data, "waveforms") and hasattr(data, "labels"):
        tensors = (data.waveforms, data.labels)
    elif isinstance(data, tuple | list):
        tensors = tuple(data)
    else:
        raise TypeError(
            f"{name} must be a tuple of tensors such as (inputs, targets), or a TensorDataset; "
            f"got {type(data).__name__}"
        )
    try:
        tensors = tuple(torch.as_tensor(t) for t in tensors)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must hold tensors or NumPy arrays of numbers ({type(err).__name__}: {err})"
        ) from err
    if dtype is not None and dtype != torch.float64:  # NumPy's float64 -> the model's type
        tensors = tuple(t.to(dtype) if t.dtype == torch.float64 else t for t in tensors)
    if not tensors or any(t.ndim == 0 for t in tensors):
        raise ValueError(f"{name} must hold at least one tensor with one row per example")
    if len({len(t) for t in tensors}) != 1:
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(
            f"the {name} tensors have different first dimensions ({shapes}): the inputs and the "
            "targets need one row per example"
        )
    if len(tensors[0]) == 0:
        raise ValueError(f"{name} is empty")
    return tensors


def _check_arguments(
    train: tuple[Tensor, ...],
    valid: tuple[Tensor, ...] | None,
    loss: Callable | None,
    step: Step | None,
    metrics: Mapping[str, Metric] | None,
    epochs: int,
    batch_size: int,
    early_stopping: EarlyStopping | None,
) -> None:
    if step is None and loss is None:
        raise ValueError("give a loss, e.g. loss=nn.CrossEntropyLoss(), or a custom step=")
    if step is None and len(train) < 2:
        raise ValueError("train must be (inputs, targets) when training with a loss")
    if valid is not None and len(valid) != len(train):
        raise ValueError(f"train has {len(train)} tensors but valid has {len(valid)}")
    if step is not None and metrics:
        raise ValueError("metrics= go with the default step; a custom step returns its own numbers")
    if early_stopping and early_stopping.monitor.startswith("valid_") and valid is None:
        raise ValueError(f"early stopping monitors {early_stopping.monitor!r} but valid is None")


_CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)


def _check_labels(
    loss: Any, train: tuple[Tensor, ...], valid: tuple[Tensor, ...] | None
) -> int | None:
    """For losses that take class indices: refuse negative labels; return the largest one."""
    if not isinstance(loss, _CLASS_INDEX_LOSSES):
        return None
    largest = None
    for name, data in (("train", train), ("valid", valid)):
        if data is None or data[-1].is_floating_point() or data[-1].dtype == torch.bool:
            continue
        targets = data[-1]
        low, high = int(targets.min()), int(targets.max())
        if low < 0:
            count = int((targets < 0).sum())
            raise ValueError(
                f"the {name} targets hold the class label {low} (negative labels: {count}); "
                f"{type(loss).__name__} needs labels 0 to classes-1 and would silently "
                "skip the label -100. Fix the labels, or drop those examples from the data"
            )
        largest = high if largest is None else max(largest, high)
    return largest


def _check_checkpoint_path(path: Path) -> None:
    if path.is_dir():
        raise CheckpointError(
            f"the checkpoint path {path} is a folder, not a file: give a file name inside it, "
            f"e.g. checkpoint={str(path / 'run.pt')!r}"
        )


def _make_optimizers(
    model: nn.Module,
    optimizer: OptimizerArg | None,
    optimizers: Mapping[str, Optimizer] | None,
    lr: float,
) -> dict[str, Optimizer]:
    if optimizers is not None:
        if optimizer is not None:
            raise ValueError("give optimizer= or optimizers=, not both")
        return dict(optimizers)
    if optimizer is None:
        # the fused CUDA kernel does Adam's whole update in one launch per group of tensors,
        # instead of one multi-tensor launch per arithmetic operation (foreach): the same update
        # rule, rounded in another order, and faster for small models
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=_fusable(model) or None)
    elif not isinstance(optimizer, Optimizer) and not callable(optimizer):
        raise TypeError(
            "optimizer must be an optimiser, an optimiser class or a function of the parameters, "
            f"got {type(optimizer).__name__}"
        )
    elif isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
        optimizer = optimizer(model.parameters(), lr=lr)
    elif not isinstance(optimizer, Optimizer):
        optimizer = optimizer(model.parameters())
    return {"optimizer": optimizer}


def _fusable(model: nn.Module) -> bool:
    """Whether a fused optimiser can take ``model``'s parameters: all on CUDA, floating point."""
    parameters = list(model.parameters())
    return bool(parameters) and all(p.is_cuda and p.is_floating_point() for p in parameters)


#: The compiler of ``fit(compile=True)`` (tests swap in a recording backend).
COMPILE_BACKEND: Any = "inductor"
#: ``fit(compile=True)`` records the whole default step as one CUDA graph where it can
#: (:class:`GraphedStep`); ``False`` compiles the model alone (with its own CUDA graphs).
GRAPH_WHOLE_STEP: bool = True


def _compile(model: nn.Module, device: torch.device, cuda_graphs: bool = True) -> nn.Module:
    """``torch.compile`` with static shapes; on CUDA, with CUDA graphs unless ``cuda_graphs`` is
    false (when :class:`GraphedStep` records the whole step as one graph instead).

    ``dynamic=False``: one graph per input shape, so an epoch has two (the full batches and the
    last, smaller one, which keeps every example in every epoch) plus those of evaluation, and
    no graph with symbolic sizes. On CUDA, ``mode="reduce-overhead"`` records each graph's
    kernels once as a CUDA graph and replays them with one launch.
    """
    options: dict[str, Any] = {"dynamic": False}
    if cuda_graphs and device.type == "cuda" and COMPILE_BACKEND == "inductor":
        options["mode"] = "reduce-overhead"
    return torch.compile(model, backend=COMPILE_BACKEND, **options)


def _graphable(
    device: torch.device,
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, Any],
    group: distributed_.Group | None,
) -> bool:
    """Whether ``fit(compile=True)`` records the default step as one CUDA graph: on CUDA, one
    process, no scheduler (a graph replays the learning rate it was recorded with), and Adam or
    AdamW (which can keep their step counts on the device: ``capturable``)."""
    return (
        GRAPH_WHOLE_STEP
        and device.type == "cuda"
        and group is None
        and not schedulers
        and all(type(opt) in (torch.optim.Adam, torch.optim.AdamW) for opt in optimizers.values())
    )


class GraphedStep:
    """A training step recorded once as a CUDA graph and replayed for every full batch.

    ``fit(compile=True)`` wraps its default step in this on CUDA (see :func:`_graphable`). The
    forward pass, the loss, the backward pass, gradient clipping and the optimiser's update of
    one batch are recorded as one CUDA graph, which the host then launches with a single call
    per step: the Python and kernel-launch overhead of a step of a small model (most of its
    time on a large GPU) is paid once. How:

    - the first :attr:`WARMUP` full batches run eagerly on a side stream (compilation, cuDNN's
      algorithm search and the optimiser's state happen there, not in the graph);
    - the next one is recorded: the batch is copied into static input tensors, the optimisers
      are switched to ``capturable`` (step counts on the device) and the step is captured, with
      autocast's weight-cast cache off; the step's numbers are then the graph's static outputs;
    - every later batch of that shape is copied into the static inputs and the graph replayed;
      its numbers are copied out (the next replay overwrites them). Batches of another shape
      (the last, smaller one of an epoch) and validation run eagerly, on the same weights.

    If recording fails (e.g. a metric that reads a number on the host), the step runs eagerly
    from then on, with a warning that says why.
    """

    #: Eager full batches before the graph is recorded.
    WARMUP = 3

    def __init__(self, step: Step) -> None:
        self.step = step
        self.shape: tuple | None = None  # the batches that are graphed: the first shape trained
        self.warm = 0
        self.replay: Callable[[], None] | None = None
        self.static: tuple[Tensor, ...] = ()
        self.outputs: dict[str, Tensor] = {}
        self.failed: str | None = None

    def __call__(self, batch: tuple[Tensor, ...], ctx: StepContext) -> Mapping[str, Any]:
        ctx.graphed = True  # the same autocast setting in every step: see StepContext.graphed
        if not ctx.training or self.failed is not None:
            return self.step(batch, ctx)
        shape = tuple((tuple(t.shape), t.dtype) for t in batch)
        if self.shape is None:
            self.shape = shape
        if shape != self.shape:
            return self.step(batch, ctx)
        if self.replay is None:
            if self.warm < self.WARMUP:
                self.warm += 1
                return _on_side_stream(self.step, batch, ctx)
            try:
                self.static = tuple(t.clone() for t in batch)
                self.replay, self.outputs = self.capture(self.static, ctx)
            except Exception as err:  # noqa: BLE001 (anything that cannot be recorded)
                self.failed = f"{type(err).__name__}: {err}"
                warnings.warn(f"fit(compile=True): the step could not be recorded as a CUDA "
                              f"graph and runs eagerly ({self.failed[:300]})", stacklevel=2)
                try:
                    return self.step(batch, ctx)
                except RuntimeError as after:  # e.g. CUDA's random generator left mid-capture
                    raise RuntimeError(
                        f"fit(compile=True): recording the step as a CUDA graph failed "
                        f"({self.failed[:200]}) and the step cannot run eagerly after it "
                        f"({after}); set audiolab.training.GRAPH_WHOLE_STEP = False to compile "
                        "the model alone, and please report the model that failed"
                    ) from after
        for static, t in zip(self.static, batch, strict=True):
            static.copy_(t)
        self.replay()
        return {k: v.clone() if isinstance(v, Tensor) else v for k, v in self.outputs.items()}

    def capture(
        self, static: tuple[Tensor, ...], ctx: StepContext
    ) -> tuple[Callable[[], None], dict[str, Any]]:
        """Record the step on ``static`` as a CUDA graph: its replay and its static outputs."""
        for opt in ctx.optimizers.values():
            _make_capturable(opt, ctx.device)
            opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = dict(self.step(static, ctx))
        return graph.replay, outputs


def _on_side_stream(step: Step, batch: tuple[Tensor, ...], ctx: StepContext) -> Mapping[str, Any]:
    """``step(batch, ctx)`` on a side CUDA stream, as PyTorch asks of warm-up before capture."""
    main = torch.cuda.current_stream(ctx.device)
    side = torch.cuda.Stream(ctx.device)
    side.wait_stream(main)
    with torch.cuda.stream(side):
        numbers = step(batch, ctx)
    main.wait_stream(side)
    return numbers


def _make_capturable(optimizer: Optimizer, device: torch.device) -> None:
    """Let ``optimizer`` (Adam, AdamW) be recorded in a CUDA graph: step counts on the device."""
    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, Tensor) and step.device != device:
            state["step"] = step.to(device=device, dtype=torch.float32)


def _to_device(tensors: tuple[Tensor, ...], device: torch.device, name: str) -> tuple[Tensor, ...]:
    try:
        return tuple(t.to(device) for t in tensors)
    except torch.cuda.OutOfMemoryError as err:
        gigabytes = sum(t.numel() * t.element_size() for t in tensors) / 1e9
        raise TrainingError(
            f"the {name} data ({gigabytes:.2f} GB) do not fit in the GPU's memory, and fit keeps "
            "all of them there: train on a subset, store the inputs in float16, or use the CPU"
        ) from err


def _learning_rates(optimizers: Mapping[str, Optimizer]) -> dict[str, float]:
    if len(optimizers) == 1:
        return {"lr": next(iter(optimizers.values())).param_groups[0]["lr"]}
    return {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in optimizers.items()}


def _track_best(
    stopping: EarlyStopping, history: History, model: nn.Module, best: dict | None
) -> dict:
    """Copy the weights if the last epoch is the best; mark the history when it is time to stop."""
    if stopping.monitor not in history.epochs[-1]:
        raise ValueError(
            f"early stopping monitors {stopping.monitor!r}, which is not recorded; the history "
            f"has {history.keys()}"
        )
    epoch = stopping.best_epoch(history)
    if best is None or best["epoch"] != epoch:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best = {"epoch": epoch, "model": weights}
    if stopping.should_stop(history):
        history.stopped_epoch = history.epochs[-1]["epoch"]
    return best


def _summary(record: Mapping[str, float], epochs: int) -> str:
    numbers = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "seconds"))
    return f"epoch {record['epoch']:>3}/{epochs}  {numbers}  ({record['seconds']:.1f} s)"


def _interactive() -> bool:
    """True in a Jupyter kernel or when stderr is a terminal: where a progress bar helps."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return sys.stderr.isatty()


# --------------------------------------------------------------------------- checkpoints


#: Key of the checksum record that :func:`save_checkpoint` adds to a checkpoint.
INTEGRITY_KEY = "integrity"


def state_digest(state: Any) -> str:
    """SHA-256 (hex) of a checkpoint's contents: every key, number, string and tensor byte.

    It is computed from the values, not from the file, so that the same state always gives the
    same digest, however :func:`torch.save` lays the file out.
    """
    digest = hashlib.sha256()
    _feed(digest, state)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"{{{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__}[{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` atomically, with a SHA-256 checksum of the contents.

    The data go to a temporary file in the same folder, which then replaces ``path`` in one
    step: a process killed while writing leaves the previous checkpoint intact. The checksum
    (:func:`state_digest`) is stored in the file under :data:`INTEGRITY_KEY`;
    :func:`load_checkpoint` checks it.
    """
    path = Path(path)
    _check_checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in state.items() if k != INTEGRITY_KEY}
    state[INTEGRITY_KEY] = {"sha256": state_digest(state)}
    write_atomically(path, lambda file: torch.save(state, file))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (with ``weights_only=True``, onto the CPU).

    Its SHA-256 checksum is checked: a file changed on disk (even one byte of a tensor) is
    refused. A checkpoint without a checksum (written by an older audiolab) is read with a
    warning.

    Returns
    -------
    dict
        ``model`` (state dict), ``optimizers``, ``schedulers`` (state dicts by name), ``epoch``
        (the last one completed), ``history`` (:meth:`History.to_dict`; rebuild it with
        :meth:`History.from_dict`), ``rng`` (random-number states), ``best`` (early stopping's
        best epoch and weights, or ``None``) and ``config`` (model class, tensor shapes and the
        run's settings).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    CheckpointError
        If the path is a folder, or the file cannot be read, or it is damaged.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_checkpoint_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a dict")
        missing = {"model", "epoch", "history", "config"} - set(state)
        if missing:
            raise KeyError(f"it has no {', '.join(sorted(missing))}")
    except PermissionError as err:
        raise CheckpointError(
            f"cannot read the checkpoint {path}: permission denied; check the file's permissions"
        ) from err
    except Exception as err:
        said = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"cannot read the checkpoint {path}: it is damaged (e.g. cut short) or was not written "
            "by audiolab.training.fit. Delete it to start afresh (or pass resume=False to "
            f"overwrite it). ({type(err).__name__}: {said})"
        ) from err
    record = state.pop(INTEGRITY_KEY, None)
    if record is None:
        warnings.warn(
            f"the checkpoint {path} has no checksum (written by an older audiolab): it cannot be "
            "checked for damage",
            stacklevel=2,
        )
    elif not isinstance(record, dict) or record.get("sha256") != state_digest(state):
        raise CheckpointError(
            f"the checkpoint {path} is damaged: its contents do not match the SHA-256 checksum "
            "stored in it (bytes changed on disk or in a copy). Delete it to start afresh (or "
            "pass resume=False to overwrite it)."
        )
    return state


def _config(
    model: nn.Module,
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, Any],
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (and a note of the settings)."""
    return {
        "model": type(model).__name__,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        "optimizers": sorted(optimizers),
        "schedulers": sorted(schedulers),
        "seed": seed,
        "batch_size": batch_size,
    }


def _plain(value: Any) -> Any:
    """Settings as plain Python data (numbers, strings, lists, dicts) that compare with ==."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return type(value).__name__


def _name(fn: Any) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _run_settings(
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, Any],
    grad_clip: float | None,
    amp: bool,
    loss: Any,
    step: Step | None,
    metrics: Mapping[str, Metric] | None,
    early_stopping: EarlyStopping | None,
    train: tuple[Tensor, ...],
    valid: tuple[Tensor, ...] | None,
) -> dict[str, Any]:
    """Every setting of a run that a resumed run must share (the epochs may grow)."""
    return {
        "optimizers": {
            name: {
                "class": type(opt).__name__,
                "groups": [
                    {k: _plain(v) for k, v in group.items() if k != "params"}
                    for group in opt.param_groups
                ],
            }
            for name, opt in optimizers.items()
        },
        "schedulers": {
            name: {
                "class": type(sched).__name__,
                "settings": {
                    k: _plain(v)
                    for k, v in sched.state_dict().items()
                    if not k.startswith("_") and k not in ("last_epoch", "verbose")
                },
            }
            for name, sched in schedulers.items()
        },
        "grad_clip": grad_clip,
        "amp": bool(amp),
        "loss": type(loss).__name__ if isinstance(loss, nn.Module) else _name(loss),
        "step": _name(step),
        "metrics": sorted(metrics or {}),
        "early_stopping": _plain(dataclasses.asdict(early_stopping)) if early_stopping else None,
        "train data": [[*t.shape, str(t.dtype)] for t in train],
        "valid data": None if valid is None else [[*t.shape, str(t.dtype)] for t in valid],
    }


_UNSET = "(not set)"


#: Optimiser options that choose an implementation, not the arithmetic: a run may resume with
#: another (e.g. a checkpoint of a CPU run continued on a GPU with the fused Adam).
_IMPLEMENTATION_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _setting_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"lr 0.001 there, 0.5 here"`` for every setting that differs (an old run's first)."""
    found = []

    def differ(what: str, a: Any, b: Any) -> None:
        if a != b:
            found.append(f"{what} {a!r} there, {b!r} here")

    for kind in ("optimizers", "schedulers"):
        saved, current = old.get(kind, {}), new.get(kind, {})
        for name in sorted(set(saved) & set(current)):
            where = "" if kind == "optimizers" and len(current) == 1 else f"{name} "
            label = "optimizer" if kind == "optimizers" else "scheduler"
            a, b = saved[name], current[name]
            if a.get("class") != b.get("class"):
                found.append(f"{where}{label} {a.get('class')} there, {b.get('class')} here")
                continue
            if kind == "schedulers":
                pairs = [("", a.get("settings", {}), b.get("settings", {}))]
            else:
                ga, gb = a.get("groups", []), b.get("groups", [])
                if len(ga) != len(gb):
                    found.append(f"{where}parameter groups {len(ga)} there, {len(gb)} here")
                    continue
                pairs = [
                    ("" if len(gb) == 1 else f"group {i} ", x, y)
                    for i, (x, y) in enumerate(zip(ga, gb, strict=True))
                ]
            for group, x, y in pairs:
                for key in [*y, *(k for k in x if k not in y)]:
                    if key in _IMPLEMENTATION_KEYS:
                        continue
                    differ(f"{where}{group}{key}", x.get(key, _UNSET), y.get(key, _UNSET))
    for key in new:
        if key not in ("optimizers", "schedulers") and key in old:
            differ(key, old[key], new[key])
    return found


def _check_config(saved: Mapping[str, Any], current: Mapping[str, Any], path: Path) -> None:
    problems = []
    if saved.get("model") != current["model"]:
        problems.append(f"it holds a {saved.get('model')}, the model is a {current['model']}")
    old, new = saved.get("shapes", {}), current["shapes"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            problems.append(f"{key} has shape {old.get(key)} there, {new.get(key)} here")
    for key in ("optimizers", "schedulers"):
        if saved.get(key) != current[key]:
            problems.append(f"it has {key} {saved.get(key)}, this run {current[key]}")
    if problems:
        shown = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
        raise CheckpointError(
            f"the checkpoint {path} does not belong to this model and run: {shown}. Use another "
            "checkpoint file, delete this one, or pass resume=False to start afresh (overwriting "
            "it)."
        )
    differences = [
        f"{key} {saved[key]!r} there, {current[key]!r} here"
        for key in ("batch_size", "seed")
        if key in saved and saved[key] != current[key]
    ]
    if isinstance(saved.get("settings"), Mapping):
        differences += _setting_differences(saved["settings"], current.get("settings", {}))
    if differences:
        shown = "; ".join(differences[:6]) + ("; ..." if len(differences) > 6 else "")
        raise CheckpointError(
            f"the checkpoint {path} was saved by a run with other settings: {shown}. Resuming "
            "would mix two different runs in one history, so nothing was loaded. To continue that "
            "run, pass the same settings again; to start afresh, pass resume=False (overwriting "
            "the checkpoint) or use another checkpoint file."
        )


def _checkpoint(
    model: nn.Module,
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, Any],
    history: History,
    best: dict | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizers": {k: opt.state_dict() for k, opt in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "epoch": len(history),
        "history": history.to_dict(),
        "rng": _rng_state(),
        "best": best,
        "config": config,
    }


def _resume(
    path: str | Path,
    model: nn.Module,
    optimizers: Mapping[str, Optimizer],
    schedulers: Mapping[str, Any],
    config: Mapping[str, Any],
) -> tuple[History, dict | None]:
    """Load everything a checkpoint holds into this run; return its history and best weights.

    Every check comes first; if loading still fails half-way, the model, the optimisers, the
    schedulers and the random-number states are put back as they were.
    """
    path = Path(path)
    state = load_checkpoint(path)
    _check_config(state["config"], config, path)
    backup = (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {k: copy.deepcopy(opt.state_dict()) for k, opt in optimizers.items()},
        {k: copy.deepcopy(s.state_dict()) for k, s in schedulers.items()},
        _rng_state(),
    )
    try:
        history = History.from_dict(state["history"])
        if state["epoch"] != len(history):
            raise ValueError(f"epoch {state['epoch']} but {len(history)} epochs of history")
        best = state.get("best")
        if best is not None:
            shapes = {k: list(v.shape) for k, v in best["model"].items()}
            if shapes != config["shapes"] or not isinstance(best["epoch"], int):
                raise ValueError("early stopping's best weights do not fit the model")
        model.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        _set_rng_state(state["rng"])
    except Exception as err:
        model.load_state_dict(backup[0])
        for name, opt in optimizers.items():
            opt.load_state_dict(backup[1][name])
        for name, sched in schedulers.items():
            sched.load_state_dict(backup[2][name])
        _set_rng_state(backup[3])
        said = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"cannot resume from the checkpoint {path}: its contents do not fit this run "
            f"({type(err).__name__}: {said}); nothing was changed. Delete it, or pass "
            "resume=False to start afresh (overwriting it)."
        ) from err
    return history, best


def _rng_state() -> dict[str, Any]:
    """Every global random-number state, as tensors and plain Python values."""
    _, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state)
    version, mt, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), cached],
        "python": [version, torch.tensor(mt, dtype=torch.int64), gauss],
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt.tolist()), gauss))
