"""audiolab.training: the fit engine, its history, checkpoints, errors and custom steps.

Everything runs on small synthetic tensors on the CPU; the CUDA-only features (bf16 autocast,
torch.compile with its real backend) have tests that run only where CUDA is.
"""

import contextlib
import functools
import io
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from audiolab import training
from audiolab.classification import accuracy
from audiolab.training import (
    CheckpointError,
    EarlyStopping,
    History,
    StepContext,
    TrainingError,
    epoch_order,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)

matplotlib.use("Agg")
CUDA = torch.cuda.is_available()
TESTS = Path(__file__).resolve().parent


def blobs(n: int = 300, seed: int = 0, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in 8-D, labelled by which of 3 random directions they point along most."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=torch.Generator().manual_seed(99))).argmax(1)
    return x + noise * torch.randn(n, 8, generator=g), y


def mlp(seed: int = 0, hidden: int = 32, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 3))


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    x, y = blobs(300)
    return {"train": (x[:240], y[:240]), "valid": (x[240:], y[240:])}


def run(data, **kwargs) -> tuple[nn.Module, History]:
    """Train a fresh MLP on ``data`` (CPU, quiet) and return it with its history."""
    model = kwargs.pop("model", None) or mlp()
    kwargs = {
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "device": "cpu",
        "progress": False,
    } | kwargs
    history = fit(
        model, data["train"], data["valid"], kwargs.pop("loss", nn.CrossEntropyLoss()), **kwargs
    )
    return model, history


# --------------------------------------------------------------------------- training and history


def test_fit_learns_and_records_one_entry_per_epoch(data):
    model, history = run(data, epochs=6, metrics={"accuracy": accuracy})
    assert len(history) == 6 and history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history.keys() == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "lr",
        "seconds",
    ]
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["valid_accuracy"][-1] > 0.85
    assert history["lr"] == [1e-2] * 6 and all(s > 0 for s in history["seconds"])
    # valid metrics are those of the whole validation set, with the returned model
    x_valid, y_valid = data["valid"]
    outputs = predict(model, x_valid, device="cpu", batch_size=7)
    assert history["valid_accuracy"][-1] == pytest.approx(float(accuracy(outputs, y_valid)))
    loss = F.cross_entropy(outputs, y_valid)
    assert history["valid_loss"][-1] == pytest.approx(float(loss), rel=1e-5)
    assert model.training, "fit leaves the model in the mode it found it in"


def test_fit_is_the_plain_training_loop(data):
    """What fit does, written out: the loop that chapter 2 builds by hand gives the same curve."""
    (x, y), batch_size, lr = data["train"], 32, 1e-2
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in (1, 2, 3):
        total = 0.0
        for rows in epoch_order(len(x), seed=0, epoch=epoch).split(batch_size):
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(x))
    engine, history = run(data, batch_size=batch_size, lr=lr)
    assert history["train_loss"] == pytest.approx(losses, rel=1e-6)
    for a, b in zip(model.parameters(), engine.parameters(), strict=True):
        assert torch.equal(a, b)


def test_same_seed_gives_the_same_history_and_another_seed_another(data):
    first = run(data, seed=0, model=mlp(dropout=0.2))[1]
    second = run(data, seed=0, model=mlp(dropout=0.2))[1]
    other = run(data, seed=1, model=mlp(dropout=0.2))[1]
    assert first["train_loss"] == second["train_loss"]
    assert first["valid_loss"] == second["valid_loss"]
    assert first["train_loss"] != other["train_loss"]


def test_batches_cover_every_example_once_keeping_the_last_partial_batch():
    seen, sizes = [], []

    def step(batch, ctx):
        (index,) = batch
        seen.append(index.clone())
        sizes.append(len(index))
        return {"size": torch.tensor(float(len(index)))}

    history = fit(
        nn.Linear(1, 1), (torch.arange(70),), step=step, epochs=2, batch_size=32, device="cpu"
    )
    assert sizes == [32, 32, 6, 32, 32, 6]
    first, second = torch.cat(seen[:3]), torch.cat(seen[3:])
    assert sorted(first.tolist()) == list(range(70)) == sorted(second.tolist())
    assert not torch.equal(first, second), "a new order every epoch"
    assert torch.equal(first, epoch_order(70, seed=0, epoch=1))
    # the logged numbers are means weighted by batch size: (32² + 32² + 6²) / 70
    assert history["train_size"][0] == pytest.approx((2 * 32**2 + 6**2) / 70)


def test_tensor_dataset_and_transforms(data):
    calls = []

    def transform(x):
        calls.append(("transform", torch.is_inference_mode_enabled()))
        return 2 * x

    def augment(x):
        calls.append(("augment", torch.is_inference_mode_enabled()))
        assert not torch.is_grad_enabled(), "transforms run without gradient"
        return x

    doubled = {k: (2 * x, y) for k, (x, y) in data.items()}
    plain = run(doubled)[1]
    data_sets = {k: TensorDataset(*v) for k, v in data.items()}
    transformed = run(data_sets, transform=transform, train_transform=augment)[1]
    assert transformed["train_loss"] == plain["train_loss"]
    assert transformed["valid_loss"] == plain["valid_loss"]
    assert ("augment", True) not in calls, "train_transform is for training only"
    assert ("transform", True) in calls and ("transform", False) in calls


def test_optimizer_forms_scheduler_and_gradient_clipping(data):
    halving = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    _, history = run(data, optimizer=torch.optim.SGD, lr=0.1, scheduler=halving)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])

    model = mlp()
    momentum = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)
    before = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    run(data, model=model, optimizer=momentum, epochs=1, batch_size=240)
    moved = nn.utils.parameters_to_vector(model.parameters()).detach() - before

    model = mlp()
    run(
        data,
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        batch_size=240,
        grad_clip=1e-3,
    )
    clipped = nn.utils.parameters_to_vector(model.parameters()).detach() - before
    assert moved.norm() > 1e-2
    assert clipped.norm() == pytest.approx(0.1 * 1e-3, rel=1e-3), "one SGD step of norm lr·clip"


def test_early_stopping_stops_and_restores_the_best_weights():
    # random labels: the training loss keeps falling while the validation loss soon rises
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(80, 8, generator=g), torch.randint(0, 3, (80,), generator=g)
    data = {"train": (x[:40], y[:40]), "valid": (x[40:], y[40:])}
    stopping = EarlyStopping("valid_loss", mode="min", patience=3)
    model, history = run(data, model=mlp(hidden=128), epochs=100, lr=3e-2, early_stopping=stopping)
    assert history.stopped_epoch == len(history) < 100
    best = history.best("valid_loss", "min")
    assert history.best_epoch == best["epoch"] == len(history) - 3
    recomputed = F.cross_entropy(predict(model, x[40:], device="cpu"), y[40:])
    assert float(recomputed) == pytest.approx(best["valid_loss"], rel=1e-6)
    assert history.best("valid_loss")["valid_loss"] == min(history["valid_loss"])

    with pytest.raises(ValueError, match="valid is None"):
        fit(mlp(), data["train"], loss=nn.CrossEntropyLoss(), early_stopping=stopping)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")


def test_history_round_trip_repr_and_plot(data, tmp_path):
    _, history = run(data, metrics={"accuracy": accuracy})
    path = tmp_path / "h.pt"
    torch.save(history.to_dict(), path)
    again = History.from_dict(torch.load(path, weights_only=True))
    assert again.epochs == history.epochs
    assert "3 epochs" in repr(history) and "<table>" in history._repr_html_()
    with pytest.raises(KeyError, match="valid_f1"):
        history["valid_f1"]
    loss_ax, metric_ax = history.plot()
    assert loss_ax.get_xlabel() == "epoch" == metric_ax.get_xlabel()
    assert loss_ax.get_ylabel() == "loss" and metric_ax.get_ylabel() == "accuracy"
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == ["train_loss", "valid_loss"]
    assert history.plot(keys=["valid_loss"]).get_ylabel() == "loss"
    matplotlib.pyplot.close("all")


def test_progress_is_quiet_unless_asked(data, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # no terminal, no Jupyter: not interactive
    run(data, progress=None)
    assert capsys.readouterr().out == "" and sys.stderr.getvalue() == ""
    run(data, progress=True)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("epoch   1/3") and "valid_loss" in out[0]


def record_graphs(monkeypatch) -> list[list[tuple[int, ...]]]:
    """Make fit(compile=True) record the input shapes of every graph it compiles and run the
    graph eagerly (seconds, instead of ~20 s for the real compiler); returns the record."""
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return gm.forward

    monkeypatch.setattr(training, "COMPILE_BACKEND", recording_backend)
    return graphs


def test_compile_uses_static_shapes_and_keeps_the_last_batch(data, tmp_path, monkeypatch):
    graphs = record_graphs(monkeypatch)
    model, history = run(data, compile=True, epochs=3, checkpoint=tmp_path / "c.pt")
    plain = run(data, epochs=3)[1]
    assert history["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    assert set(load_checkpoint(tmp_path / "c.pt")["model"]) == set(model.state_dict())
    # 240 training examples in batches of 32: 7 full batches and a last one of 16, which is kept;
    # 60 validation examples: 32 + 28. Every graph has fixed sizes (no symbolic batch size),
    # one per shape and mode, compiled in the first epoch and reused in the next two.
    sizes = [dims for graph in graphs for shape in graph for dims in shape]
    assert all(type(d) is int for d in sizes), graphs
    inputs = {shape for graph in graphs for shape in graph if shape[1:] == (8,)}  # and W1
    assert inputs == {(32, 8), (16, 8), (28, 8)}, graphs
    assert len(graphs) == 4, graphs  # training: 32 and 16; evaluation: 32 and 28


def test_compile_leaves_the_transforms_eager(data, monkeypatch):
    graphs = record_graphs(monkeypatch)

    def transform(x):  # features on the device
        return torch.tanh(x) * 2.0

    def augment(x):  # random per call
        return x + 0.01 * torch.randn_like(x)

    compiled = run(data, compile=True, transform=transform, train_transform=augment, seed=3)[1]
    plain = run(data, transform=transform, train_transform=augment, seed=3)[1]
    assert compiled["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    # the model's 4 graphs (training 32 and 16, evaluation 32 and 28), each with the weights;
    # no graph of the transforms alone (a single input: x)
    assert len(graphs) == 4 and all(len(g) > 1 for g in graphs), graphs


def test_the_whole_step_is_graphed_only_where_it_is_safe():
    params = list(mlp().parameters())
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    adam = {"optimizer": torch.optim.Adam(params)}
    assert training._graphable(cuda, adam, {}, None)
    assert training._graphable(cuda, {"o": torch.optim.AdamW(params)}, {}, None)
    assert not training._graphable(cpu, adam, {}, None)
    assert not training._graphable(cuda, {"o": torch.optim.SGD(params, lr=0.1)}, {}, None)
    assert not training._graphable(cuda, adam, {"optimizer": object()}, None)  # a scheduler


class EmulatedGraph(training.GraphedStep):
    """Records nothing: its "replay" runs the step eagerly on the static inputs and writes the
    numbers into the same output tensors, as a CUDA graph's replay would."""

    def capture(self, static, ctx):
        self.captured = getattr(self, "captured", 0) + 1
        outputs = {}

        def replay():
            for key, value in self.step(static, ctx).items():
                if key in outputs:
                    outputs[key].copy_(value)
                else:
                    outputs[key] = value.clone()

        return replay, outputs


def test_graphed_step_warms_up_records_once_and_replays_full_batches(data, monkeypatch):
    monkeypatch.setattr(training, "_on_side_stream", lambda step, batch, ctx: step(batch, ctx))
    shapes = []

    def base(batch, ctx):
        shapes.append((ctx.training, len(batch[0])))
        return training.supervised_step()(batch, ctx)

    graphed = EmulatedGraph(base)
    _, history = run(data, step=graphed, epochs=3, seed=5)
    _, plain = run(data, epochs=3, seed=5)
    # same batches, same arithmetic: the copies into the static inputs and out of the static
    # outputs change nothing, and every step's number is its own (cloned before the next replay)
    assert history["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)
    assert history["valid_loss"] == pytest.approx(plain["valid_loss"], rel=1e-6)
    assert graphed.captured == 1 and graphed.failed is None
    assert graphed.shape == (((32, 8), torch.float32), ((32,), torch.int64))
    # 240 examples: 7 batches of 32 and one of 16 per epoch; 3 warm-up batches, then replays
    assert shapes.count((True, 16)) == 3 and shapes.count((True, 32)) == 21


def test_a_step_that_cannot_be_recorded_runs_eagerly_with_a_warning(data, monkeypatch):
    monkeypatch.setattr(training, "_on_side_stream", lambda step, batch, ctx: step(batch, ctx))

    class Unrecordable(training.GraphedStep):
        WARMUP = 1

        def capture(self, static, ctx):
            raise RuntimeError("operation not permitted when stream is capturing")

    graphed = Unrecordable(training.supervised_step())
    with pytest.warns(UserWarning, match="could not be recorded as a CUDA graph and runs eagerly"):
        _, history = run(data, step=graphed, epochs=2, seed=5)
    _, plain = run(data, epochs=2, seed=5)
    assert history["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)
    assert "not permitted" in graphed.failed


def test_a_failed_recording_that_breaks_the_eager_step_says_how_to_turn_graphs_off(data):
    class BrokenAfter(training.GraphedStep):
        WARMUP = 0

        def capture(self, static, ctx):
            raise RuntimeError("operation failed due to a previous error during capture")

    def step(batch, ctx):  # the eager step after the failed recording fails too
        raise RuntimeError("Offset increment outside graph capture encountered unexpectedly.")

    ctx = training.StepContext(model=mlp(), optimizers={"main": torch.optim.Adam(
        mlp().parameters())}, device=torch.device("cpu"), loss=F.cross_entropy)
    with pytest.warns(UserWarning, match="could not be recorded"), \
            pytest.raises(RuntimeError, match="GRAPH_WHOLE_STEP = False"):
        BrokenAfter(step)((data["train"][0][:32], data["train"][1][:32]), ctx)


def test_autocast_keeps_no_cast_cache_while_a_graph_is_recorded():
    ctx = training.StepContext(model=mlp(), optimizers={}, device=torch.device("cpu"), amp=True)
    assert ctx.autocast()._cache_enabled is not False
    ctx.graphed = True
    assert ctx.autocast()._cache_enabled is False


class _FakeCUDAGraph:
    """Stands in for torch.cuda.CUDAGraph on the CPU: recording runs the step once, replay
    does nothing (enough to watch what the recording does)."""

    def replay(self) -> None:
        pass


def test_recording_does_not_recompile_the_model(data, monkeypatch):
    # torch.compile guards on autocast's cache setting: if the recording step used another
    # setting than the warm-up steps, the model would be compiled again inside the capture
    # (on a GPU that breaks the capture: a compiler launches work of its own). GraphedStep's
    # real capture runs here with a fake graph; every step must see the same setting.
    monkeypatch.setattr(training, "_on_side_stream", lambda step, batch, ctx: step(batch, ctx))
    monkeypatch.setattr(training, "_make_capturable", lambda opt, device: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeCUDAGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph: contextlib.nullcontext())
    seen = []

    def base(batch, ctx):
        seen.append((ctx.training, ctx.autocast()._cache_enabled))
        return training.supervised_step()(batch, ctx)

    model = torch.compile(mlp(), backend="eager", dynamic=False)
    ctx = training.StepContext(model=model, optimizers={"main": torch.optim.Adam(
        model.parameters())}, device=torch.device("cpu"), loss=F.cross_entropy, amp=True)
    graphed = training.GraphedStep(base)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    x, y = data["train"][0][:32], data["train"][1][:32]
    for _ in range(graphed.WARMUP + 1):  # the warm-up steps, then the recording
        graphed((x, y), ctx)
    assert graphed.failed is None and graphed.replay is not None
    assert {cache for _, cache in seen} == {False}
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need CUDA")
def test_cuda_whole_step_graph_trains_like_eager(data, monkeypatch):
    monkeypatch.setattr(training, "COMPILE_BACKEND", "eager")  # the graph without inductor
    made, original = [], training.GraphedStep

    def record(step):
        made.append(original(step))
        return made[-1]

    monkeypatch.setattr(training, "GraphedStep", record)
    model = mlp(dropout=0.2)
    _, graphed = run(data, model=model, device="cuda", compile=True, amp=False, seed=2,
                     epochs=4, grad_clip=1.0)
    _, eager = run(data, model=mlp(dropout=0.2), device="cuda", amp=False, seed=2, epochs=4,
                   grad_clip=1.0)
    assert len(made) == 1 and made[0].replay is not None and made[0].failed is None
    assert graphed["train_loss"][-1] < graphed["train_loss"][0]
    # dropout masks come from the graph's own random offsets: close to eager, not identical
    assert graphed["valid_loss"][-1] == pytest.approx(eager["valid_loss"][-1], rel=0.2)


@pytest.mark.skipif(not CUDA, reason="torch.compile takes ~20 s on a CPU; bf16 autocast needs CUDA")
def test_cuda_bf16_and_real_compile(data):
    seen = []
    model = mlp()
    model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    model, history = run(data, model=model, device="cuda", compile=False)
    assert torch.bfloat16 in seen and next(model.parameters()).is_cuda
    model, history = run(data, model=mlp(), device="cuda", compile=True)
    assert history["train_loss"][-1] < history["train_loss"][0]


# --------------------------------------------------------------------------- errors


def test_a_nan_loss_names_epoch_and_batch_and_keeps_the_last_checkpoint(data, tmp_path):
    calls = 0

    def flaky_loss(outputs, targets):  # fine for two epochs (8 batches each), then NaN
        nonlocal calls
        calls += not torch.is_inference_mode_enabled()  # count training batches
        loss = F.cross_entropy(outputs, targets)
        return loss * math.nan if calls == 2 * 8 + 5 else loss

    path = tmp_path / "run.pt"
    with pytest.raises(TrainingError) as err:
        run(data, loss=flaky_loss, epochs=4, checkpoint=path)
    message = str(err.value)
    assert "train loss is nan at epoch 3, batch 5 of 8" in message
    assert "learning rate" in message and "epsilon" in message
    assert "data are finite" in message
    assert load_checkpoint(path)["epoch"] == 2


def test_nan_in_the_inputs_is_reported(data):
    x, y = data["train"]
    x = x.clone()
    x[100, 3] = math.nan
    with pytest.raises(TrainingError, match=r"(?s)epoch 1, batch \d+ of 8.*1 in the inputs"):
        run({"train": (x, y), "valid": data["valid"]})
    with pytest.raises(TrainingError, match="after the transforms the inputs contain 256"):
        run(data, transform=lambda b: torch.log(b.abs() * (b.abs() > 100)))


def test_shape_and_dtype_mismatches_are_explained(data):
    x, y = data["train"]
    with pytest.raises(TrainingError) as err:
        fit(mlp(), (x, y.float()), loss=nn.MSELoss(), device="cpu", batch_size=32)
    message = str(err.value)
    assert "(32, 3)" in message and "(32,)" in message and "torch.float32" in message
    assert "same shape" in message

    with pytest.raises(TrainingError) as err:
        fit(mlp(), (x, y[:, None]), loss=nn.CrossEntropyLoss(), device="cpu", batch_size=32)
    message = str(err.value)
    assert "model output has shape (32, 3) and dtype torch.float32" in message
    assert "targets have shape (32, 1) and dtype torch.int64" in message
    assert "class indices" in message

    with pytest.raises(ValueError, match=r"different first dimensions \(\(240, 8\), \(239,\)\)"):
        fit(mlp(), (x, y[1:]), loss=nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="give a loss"):
        fit(mlp(), (x, y))
    with pytest.raises(ValueError, match="custom step returns its own"):
        fit(mlp(), (x, y), step=gan_step, metrics={"accuracy": accuracy})


def test_out_of_memory_becomes_a_hint_to_reduce_the_batch_size(data):
    class Greedy(nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model = nn.Sequential(nn.Linear(8, 3), Greedy())
    with pytest.raises(
        TrainingError, match=r"batch_size=16: reduce batch_size \(e.g. batch_size=8"
    ):
        run(data, model=model, batch_size=16)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1, "history": {}, "config": {}}, path)
    real_save = torch.save

    def dying_save(obj, file):  # half the data, then the process "dies"
        real_save(obj, file)
        file.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(2)}, "epoch": 2, "history": {}}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"], "no temporary file left behind"


def test_a_damaged_or_foreign_checkpoint_gives_a_clear_error(data, tmp_path):
    path = tmp_path / "damaged.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(
        CheckpointError, match=r"damaged\.pt: it is damaged.*Delete it to start afresh"
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="damaged"):
        run(data, checkpoint=path)
    run(data, checkpoint=path, resume=False)  # starts afresh and overwrites it
    assert load_checkpoint(path)["epoch"] == 3

    with pytest.raises(
        CheckpointError, match=r"0.weight has shape \[32, 8\] there, \[16, 8\] here"
    ):
        run(data, model=mlp(hidden=16), checkpoint=path)


def test_a_finished_run_resumes_to_the_same_model(data, tmp_path):
    path = tmp_path / "run.pt"
    model, history = run(data, checkpoint=path)
    again, resumed = run(data, model=mlp(seed=5), checkpoint=path)
    assert resumed.epochs == history.epochs
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    state = load_checkpoint(path)
    assert set(state) >= {"model", "optimizers", "schedulers", "epoch", "history", "rng", "best"}


def resumable_run(checkpoint: str | None, kill_at_epoch: int | None = None) -> History:
    """4 epochs with dropout, AdamW and a scheduler; optionally SIGKILL itself in an epoch."""
    x, y = blobs(200, noise=0.3)
    data = {"train": (x[:160], y[:160]), "valid": (x[160:], y[160:])}
    batches = 0

    def spy(inputs):  # counts training batches (5 per epoch); kills the process mid-epoch
        nonlocal batches
        if not torch.is_inference_mode_enabled():
            batches += 1
            if kill_at_epoch is not None and batches == (kill_at_epoch - 1) * 5 + 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return inputs

    return run(
        data,
        model=mlp(dropout=0.3),
        epochs=4,
        optimizer=torch.optim.AdamW,
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3, gamma=0.5),
        transform=spy,
        checkpoint=checkpoint,
        metrics={"accuracy": accuracy},
    )[1]


def test_a_killed_run_resumes_exactly_where_it_stopped(tmp_path):
    uninterrupted = resumable_run(None)
    path = tmp_path / "killed.pt"
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_training; "
        f"test_training.resumable_run({str(path)!r}, kill_at_epoch=3)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert load_checkpoint(path)["epoch"] == 2, "killed in epoch 3, after epoch 2's checkpoint"

    resumed = resumable_run(str(path))
    for key in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "lr"):
        assert resumed[key] == uninterrupted[key], key


# --------------------------------------------------------------------------- custom steps


def gan_step(batch: tuple[torch.Tensor, ...], ctx: StepContext) -> dict[str, torch.Tensor]:
    """One step of a GAN: the critic d maximises log d(x) + log(1 - d(g(z))), then g fools it."""
    (real,) = batch
    g, d = ctx.model["g"], ctx.model["d"]
    ones, zeros = torch.ones_like(real), torch.zeros_like(real)
    with ctx.autocast():
        fake = g(torch.randn_like(real))
        d_loss = F.binary_cross_entropy_with_logits(d(real), ones)
        d_loss = d_loss + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
    if ctx.training:
        ctx.minimize(d_loss, "d")
    with ctx.autocast():
        g_loss = F.binary_cross_entropy_with_logits(d(fake), ones)  # non-saturating loss
    if ctx.training:
        ctx.minimize(g_loss, "g")
    return {"d_loss": d_loss, "g_loss": g_loss, "fake_mean": fake.mean()}


def gan_run(epochs: int, checkpoint: Path | None = None) -> tuple[nn.Module, History]:
    torch.manual_seed(0)
    real = 3 + 0.5 * torch.randn(512, 1)
    model = nn.ModuleDict(
        {"g": nn.Linear(1, 1), "d": nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))}
    )
    adam = functools.partial(torch.optim.Adam, lr=0.05, betas=(0.5, 0.9))
    optimizers = {"g": adam(model["g"].parameters()), "d": adam(model["d"].parameters())}
    history = fit(
        model,
        (real,),
        (real[:128],),
        step=gan_step,
        optimizers=optimizers,
        epochs=epochs,
        checkpoint=checkpoint,
        device="cpu",
        progress=False,
    )
    return model, history


def test_a_gan_step_with_two_optimisers_learns_a_mean_and_resumes(tmp_path):
    model, history = gan_run(30)
    assert history.keys() == [
        "epoch",
        "train_d_loss",
        "train_g_loss",
        "train_fake_mean",
        "valid_d_loss",
        "valid_g_loss",
        "valid_fake_mean",
        "lr_g",
        "lr_d",
        "seconds",
    ]
    late = history["train_fake_mean"][-10:]
    assert abs(sum(late) / len(late) - 3) < 0.3, "the generator's samples moved to the data's mean"
    assert abs(history["train_fake_mean"][0]) < 1

    path = tmp_path / "gan.pt"
    gan_run(12, path)
    _, resumed = gan_run(30, path)
    for key in ("train_d_loss", "train_g_loss", "valid_fake_mean"):
        assert resumed[key] == history[key], key
    assert set(load_checkpoint(path)["optimizers"]) == {"g", "d"}
