"""fit under DistributedDataParallel: 2 processes on the CPU (gloo) against 1 process."""

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from audiolab import distributed, training


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 8, generator=gen)  # batches of 16: 6 full ones and one of 4
    y = (x @ torch.randn(8, 3, generator=gen)).argmax(1)
    return (x, y), (x[:40], y[:40])


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))


def _fit(model, epochs, checkpoint=None, **kw):
    train, valid = _data()
    return training.fit(model, train, valid, nn.CrossEntropyLoss(), epochs=epochs, batch_size=16,
                        device="cpu", seed=3, checkpoint=checkpoint, progress=False, **kw)


def _worker(rank: int, world: int, port: int, folder: str, epochs: int, checkpoint: str | None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    writes = []
    real_save = training.save_checkpoint
    training.save_checkpoint = lambda state, path: (writes.append(1), real_save(state, path))
    try:
        model = _model()
        history = _fit(model, epochs, checkpoint)
    finally:
        training.save_checkpoint = real_save
        torch.distributed.destroy_process_group()
    out = Path(folder)
    torch.save(model.state_dict(), out / f"weights-{rank}.pt")
    (out / f"history-{rank}.json").write_text(json.dumps(
        {"history": history.to_dict(), "writes": len(writes)}))


class _Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.z_dim = 4  # read by the step through the DDP wrapper
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 8))

    def forward(self, z):
        return self.net(z)


def _gan():
    torch.manual_seed(0)
    return nn.ModuleDict({"G": _Generator(), "D": nn.Sequential(
        nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))})


def _gan_step(batch, ctx):
    # a two-player step as in chapter 8 (the noise is part of the data, to compare runs)
    x, z = batch
    G, D = ctx.model["G"], ctx.model["D"]
    fake = G(z[:, : G.z_dim])
    d_loss = F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean()
    ctx.minimize(d_loss, "d")
    g_loss = F.softplus(-D(fake)).mean()
    ctx.minimize(g_loss, "g")
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def _fit_gan(model):
    gen = torch.Generator().manual_seed(1)
    data = (torch.randn(96, 8, generator=gen) + 2, torch.randn(96, 4, generator=gen))
    optimizers = {"g": torch.optim.Adam(model["G"].parameters(), 1e-2),
                  "d": torch.optim.Adam(model["D"].parameters(), 1e-2)}
    return training.fit(model, data, step=_gan_step, optimizers=optimizers, epochs=2,
                        batch_size=16, device="cpu", seed=3, progress=False)


def _gan_worker(rank: int, world: int, port: int, folder: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    model = _gan()
    try:
        history = _fit_gan(model)
    finally:
        torch.distributed.destroy_process_group()
    torch.save(model.state_dict(), Path(folder) / f"gan-{rank}.pt")
    (Path(folder) / f"gan-{rank}.json").write_text(json.dumps(history.to_dict()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(world, folder, epochs, checkpoint=None):
    mp.spawn(_worker, args=(world, _free_port(), str(folder), epochs, checkpoint), nprocs=world)
    weights = [torch.load(folder / f"weights-{r}.pt") for r in range(world)]
    runs = [json.loads((folder / f"history-{r}.json").read_text()) for r in range(world)]
    return weights, runs


def _close(a, b):
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path: Path):
    reference = _model()
    ref_history = _fit(reference, 3)
    weights, runs = _run(2, tmp_path, 3)
    for w in weights:  # every rank ends with the weights of the one-process run
        _close(w, reference.state_dict())
    for run in runs:  # and records the same history
        for key in ("train_loss", "valid_loss"):
            values = [record[key] for record in run["history"]["epochs"]]
            assert values == pytest.approx(ref_history[key], rel=1e-4)


def test_a_two_player_step_with_two_optimisers_trains_as_on_one_process(tmp_path: Path):
    # chapter 8's pattern: a ModuleDict of generator and discriminator, each wrapped in DDP,
    # the step reading the generator's own attribute through the wrapper
    reference = _gan()
    ref_history = _fit_gan(reference)
    mp.spawn(_gan_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for rank in range(2):
        _close(torch.load(tmp_path / f"gan-{rank}.pt"), reference.state_dict())
        epochs = json.loads((tmp_path / f"gan-{rank}.json").read_text())["epochs"]
        reference_epochs = ref_history.to_dict()["epochs"]
        for e, r in zip(epochs, reference_epochs, strict=True):  # the same logged losses
            losses = {k: v for k, v in r.items() if "loss" in k}
            assert len(losses) == 2 and {k: e[k] for k in losses} == pytest.approx(losses, rel=1e-4)


def test_checkpoint_is_written_by_rank_0_only_and_resumes_on_one_process(tmp_path: Path):
    checkpoint = tmp_path / "run.pt"
    _, runs = _run(2, tmp_path, 2, str(checkpoint))
    assert [run["writes"] for run in runs] == [2, 0]  # one write per epoch, rank 0 only
    resumed = _model()
    history = _fit(resumed, 3, checkpoint)  # 2 epochs from the file, 1 more here
    assert len(history) == 3
    reference = _model()
    _fit(reference, 3)
    _close(resumed.state_dict(), reference.state_dict())


def test_shards_cover_every_example_once():
    batches = list(torch.arange(10).split(4))  # 4, 4, 2
    shards = [distributed.shard(batches, distributed.Group(r, 3, torch.device("cpu")))
              for r in range(3)]
    # the last batch (2 < 3 processes) is merged into the one before: 4, 6
    assert [len(s) for s in shards[0]] == [2, 2] and [len(s) for s in shards[2]] == [1, 2]
    seen = torch.cat([rows for shard in shards for rows in shard]).sort().values
    assert torch.equal(seen, torch.arange(10))
    with pytest.raises(ValueError, match="batch_size of at least"):
        distributed.shard([torch.arange(2)], distributed.Group(0, 3, torch.device("cpu")))


def test_a_launch_without_torchrun_environment_is_explained(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        _fit(_model(), 1, distributed=True)
