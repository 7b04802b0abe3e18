"""Fault injection: audiolab under kills, races, damaged files, hostile checkpoints, bad input.

Each test is an attack that once gave a wrong result, a leak or a raw error (issue 9); together
they run on a 2-core CPU in well under a minute. The last test checks that every message quoted
in the book's "When things go wrong" page (book/troubleshooting.md) is one audiolab really gives.
"""

from __future__ import annotations

import functools
import io
import math
import os
import random
import signal
import struct
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn

from audiolab import (
    audio,
    augment,
    bench,
    cache,
    classification,
    cli,
    datasets,
    features,
    models,
    noise,
    recognition,
    training,
)
from audiolab.training import (
    CheckpointError,
    EarlyStopping,
    TrainingError,
    fit,
    load_checkpoint,
    save_checkpoint,
)

TESTS = Path(__file__).resolve().parent
PAGE = TESTS.parent / "book" / "troubleshooting.md"
DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: no such process


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AUDIOLAB_CACHE", str(folder))
    return folder


def blobs(n: int = 160, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


RUN = {"device": "cpu", "progress": False, "batch_size": 32, "lr": 1e-2}


def train(checkpoint: Path | None = None, model: nn.Module | None = None, **kwargs):
    x, y = blobs()
    model = model or mlp()
    kwargs = RUN | {"epochs": 4, "optimizer": torch.optim.AdamW} | kwargs
    history = fit(model, (x[:128], y[:128]), (x[128:], y[128:]), nn.CrossEntropyLoss(),
                  checkpoint=checkpoint, **kwargs)  # fmt: skip
    return model, history


# --------------------------------------------------------------------------- kill and resume


def killed_child(checkpoint: str, moment: str, when: int) -> None:
    """Run in a subprocess: train, and SIGKILL this process at ``moment`` number ``when``."""
    count = 0

    def die_after(n: int) -> None:
        nonlocal count
        count += 1
        if count == n:
            os.kill(os.getpid(), signal.SIGKILL)

    if moment == "batch":  # in the middle of an epoch

        def spy(x: torch.Tensor) -> torch.Tensor:
            if not torch.is_inference_mode_enabled():
                die_after(when)
            return x

        train(Path(checkpoint), transform=spy)
    else:  # while a checkpoint is being written: half a file on disk, not yet renamed
        real_save = torch.save

        def dying_save(obj, file, *args, **kwargs):
            real_save(obj, file, *args, **kwargs)
            if count + 1 == when:
                file.truncate(max(1, file.tell() // 2))
                file.flush()
            die_after(when)

        torch.save = dying_save
        try:
            train(Path(checkpoint))
        finally:
            torch.save = real_save


def in_child(fn, *args) -> int:
    """Run ``fn(*args)`` in a forked child process (it has torch imported already: fast)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            torch.set_num_threads(1)  # as DataLoader workers do after a fork
            fn(*args)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    """The child's exit code, or minus the signal that ended it (as subprocess reports)."""
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_kill_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path: Path):
    rng = random.Random(os.environ.get("AUDIOLAB_FAULT_SEED", "9"))
    # 4 epochs of 4 training batches: die in one of batches 2-15, or while writing checkpoint 2
    moments = [("batch", rng.randint(2, 15)), ("batch", rng.randint(2, 15)), ("save", 2)]
    paths = [tmp_path / f"run{i}.pt" for i in range(len(moments))]
    children = [
        in_child(killed_child, str(path), moment, when)
        for path, (moment, when) in zip(paths, moments, strict=True)
    ]
    whole_model, whole = train()  # meanwhile, the uninterrupted run
    for child, (moment, when) in zip(children, moments, strict=True):
        assert wait(child) == -signal.SIGKILL, (moment, when)
    assert list(tmp_path.glob(".run2.pt.*.tmp")), "the kill during the write left its temporary"
    for path in paths:
        model, resumed = train(path)
        assert resumed.epochs == [r | {"seconds": resumed.epochs[i]["seconds"]}
                                  for i, r in enumerate(whole.epochs)]  # fmt: skip
        for a, b in zip(model.parameters(), whole_model.parameters(), strict=True):
            assert torch.equal(a, b)
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert not leftovers, f"the next write sweeps what killed writes left: {leftovers}"


# --------------------------------------------------------------------------- defect 1: NaN


def nan_at(batch: int):
    calls = 0

    def loss(outputs, targets):
        nonlocal calls
        calls += not torch.is_inference_mode_enabled()
        value = F.cross_entropy(outputs, targets)
        return value * math.nan if calls == batch else value

    return loss


def test_a_nan_leaves_the_model_at_its_last_finite_weights():
    x, y = blobs(640)
    model = mlp()
    with pytest.raises(TrainingError) as err:  # 20 batches an epoch; NaN at epoch 2, batch 19
        fit(model, (x, y), None, nan_at(20 + 19), epochs=3, **RUN)
    first = str(err.value).splitlines()[0]
    assert "train loss is nan at epoch 2, batch 19 of 20" in first
    assert "the model keeps its last finite weights, from after batch 16 of epoch 2" in first
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(err.value.history) == 1
    # and they are the weights an identical run had after 16 batches of epoch 2
    ref = mlp()
    spy_calls = 0

    def stop(outputs, targets):
        nonlocal spy_calls
        spy_calls += 1
        if spy_calls == 20 + 17:
            raise KeyboardInterrupt
        return F.cross_entropy(outputs, targets)

    with pytest.raises(KeyboardInterrupt):
        fit(ref, (x, y), None, stop, epochs=3, **RUN)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_without_reads_inside_an_epoch_a_nan_leaves_the_same_weights(monkeypatch):
    # On a GPU the numbers are checked on the device and read once, at the end of the epoch
    # (training._reads_at_checks is false there); the same path, run here on the CPU, must stop
    # with the same message and the same last finite weights as the CPU's path.
    x, y = blobs(640)
    results = []
    for reads in (training._reads_at_checks, lambda device, group: False):
        monkeypatch.setattr(training, "_reads_at_checks", reads)
        model = mlp()
        with pytest.raises(TrainingError) as err:
            fit(model, (x, y), None, nan_at(20 + 19), epochs=3, **RUN)
        results.append((str(err.value).splitlines()[0], model))
    (cpu_message, cpu_model), (device_message, device_model) = results
    assert device_message == cpu_message
    assert "last finite weights, from after batch 16 of epoch 2" in device_message
    for a, b in zip(device_model.parameters(), cpu_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_without_reads_inside_an_epoch_the_numbers_are_read_once_per_epoch(monkeypatch):
    monkeypatch.setattr(training, "_reads_at_checks", lambda device, group: False)
    reads, read = [], training._Tally._read_pending

    def counting(self):
        pending = sum(isinstance(v, torch.Tensor) for v in self.values[self.read :])
        if pending:
            reads.append(pending)
        read(self)

    monkeypatch.setattr(training._Tally, "_read_pending", counting)
    x, y = blobs(640)
    history = fit(mlp(), (x, y), None, F.cross_entropy, epochs=2, **RUN)
    assert reads == [20, 20]  # one transfer per epoch, of the losses of its 20 batches
    monkeypatch.undo()
    assert history.epochs == [r | {"seconds": h["seconds"]} for r, h in zip(
        fit(mlp(), (x, y), None, F.cross_entropy, epochs=2, **RUN).epochs, history.epochs,
        strict=True)]  # the same numbers as the CPU's path


def test_a_resumed_run_may_use_another_optimiser_implementation(tmp_path):
    # e.g. a checkpoint of a CPU run continued on a GPU, where fit's Adam is the fused one
    path = tmp_path / "run.pt"
    train(path, epochs=2, optimizer=functools.partial(torch.optim.AdamW, foreach=True))
    _, resumed = train(path, epochs=3, optimizer=functools.partial(torch.optim.AdamW,
                                                                    foreach=False))
    assert len(resumed) == 3
    with pytest.raises(CheckpointError, match="lr"):  # the arithmetic must still match
        train(path, epochs=4, optimizer=functools.partial(torch.optim.AdamW, lr=0.5))


def test_a_nan_with_early_stopping_restores_the_best_weights():
    x, y = blobs(200)
    model = mlp()
    stopping = EarlyStopping("valid_loss", patience=5)
    with pytest.raises(TrainingError, match=r"early stopping's best weights, from epoch \d"):
        fit(model, (x[:160], y[:160]), (x[160:], y[160:]), nan_at(5 * 3 + 2), epochs=6,
            early_stopping=stopping, **RUN)  # fmt: skip
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_validation_numbers_are_an_error():
    x, y = blobs(200)
    xv = x[160:].clone()
    xv[3, 2] = math.inf
    with pytest.raises(TrainingError) as err:
        fit(mlp(), (x[:160], y[:160]), (xv, y[160:]), nn.CrossEntropyLoss(), epochs=2,
            early_stopping=EarlyStopping(), **RUN)  # fmt: skip
    assert str(err.value).startswith("valid_loss is nan after epoch 1; training stopped")
    assert "1 in the inputs" in str(err.value)


# --------------------------------------------------------------------------- defect 2: resume


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "done.pt"
    train(path, epochs=2)
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"lr": 0.5}, "lr 0.01 there, 0.5 here"),
        ({"batch_size": 7}, "batch_size 32 there, 7 here"),
        ({"seed": 9}, "seed 0 there, 9 here"),
        ({"optimizer": functools.partial(torch.optim.SGD, lr=0.01)}, "optimizer AdamW there"),
        ({"grad_clip": 1.0}, "grad_clip None there, 1.0 here"),
        ({"early_stopping": EarlyStopping()}, "early_stopping None there"),
        ({"metrics": {"accuracy": classification.accuracy}}, "metrics [] there"),
    ],
)
def test_resume_refuses_other_settings_and_touches_nothing(finished, tmp_path, change, named):
    path = tmp_path / "run.pt"
    path.write_bytes(finished.read_bytes())
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="was saved by a run with other settings") as err:
        train(path, model=model, epochs=3, **change)
    assert named in str(err.value) and "resume=False" in str(err.value)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), "nothing is loaded before the checks pass"
    assert load_checkpoint(path)["epoch"] == 2


def test_resume_with_more_epochs_still_works(finished, tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(finished.read_bytes())
    _, history = train(path, epochs=3)
    assert len(history) == 3


# --------------------------------------------------------------------------- defect 6: integrity


def flip_tensor_byte(path: Path) -> None:
    """Flip one bit inside the first tensor's data (not in the pickle: it still loads)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    name_len, extra_len = struct.unpack(
        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
    )
    raw[info.header_offset + 30 + name_len + extra_len + 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_hostile_and_damaged_checkpoints(finished, tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(finished.read_bytes())
    flip_tensor_byte(path)
    with pytest.raises(CheckpointError, match="do not match the SHA-256 checksum"):
        load_checkpoint(path)
    model = mlp()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match="damaged"):
        train(path, model=model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="not written by audiolab"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()

    torch.save([1, 2, 3], path)  # a list, not a checkpoint
    with pytest.raises(CheckpointError, match="not a dict"):
        load_checkpoint(path)

    # a self-consistent checksum over contents that do not fit: refused, nothing changed
    state = load_checkpoint(finished)
    state["optimizers"] = {"optimizer": {"state": {}, "param_groups": []}}
    save_checkpoint(state, path)
    with pytest.raises(CheckpointError, match="nothing was changed"):
        train(path, model=model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_checkpoint_path_that_is_a_folder_has_its_own_message(tmp_path):
    for resume in (True, False):
        with pytest.raises(CheckpointError, match="is a folder, not a file"):
            train(tmp_path, resume=resume)
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(tmp_path)


# --------------------------------------------------------------------------- defect 5: leaks


def test_write_atomically_cleans_up_and_sweeps_what_dead_processes_left(tmp_path):
    target = tmp_path / "clip.wav"
    stale = tmp_path / f".clip.wav.{DEAD_PID}-abcd.tmp"
    alive = tmp_path / f".clip.wav.{os.getppid()}-abcd.tmp"  # a writer still at work
    stale.write_bytes(b"RIFF half")
    alive.write_bytes(b"RIFF half")
    audio.save(target, np.zeros(100, dtype=np.float32), 8000)
    assert not stale.exists() and alive.exists() and target.exists()

    def interrupted(file):
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.write_atomically(tmp_path / "x.pt", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "clip.wav"]


def test_espeak_scratch_folder_is_in_the_cache_and_swept(cache_dir, monkeypatch):
    seen = []

    def fake_worker(requests, output):
        seen.append(Path(output).parent)
        return [np.zeros(10, dtype=np.int16) for _ in requests]

    monkeypatch.setattr(datasets.espeak, "synthesize_in_subprocess", fake_worker)
    cache_dir.mkdir(parents=True, exist_ok=True)
    left = cache_dir / f"{datasets.SCRATCH_PREFIX}{DEAD_PID}-x"  # a killed build's scratch
    left.mkdir()
    (left / "chunk0.npz").write_bytes(b"x" * 1000)
    waves = datasets._synthesize([{"text": "one"}, {"text": "two"}, {"text": "three"}])
    assert len(waves) == 3
    assert seen and all(folder.parent == cache_dir for folder in seen)
    assert not left.exists() and not any(folder.exists() for folder in seen)


def race_child(marker: str, kill: bool) -> None:
    """Run in a subprocess: build a cache entry; with ``kill``, die while writing it."""
    if kill:
        real = np.savez

        def dying(file, **arrays):
            real(file, **arrays)
            file.truncate(100)
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        np.savez = dying
    else:
        time.sleep(0.5)  # the killed builder takes the lock first

    def build():
        with open(marker, "a") as f:
            f.write("built\n")
        return {"x": np.arange(1000) * 7}

    arrays = cache.cached_arrays("race", {"n": 1000}, build, version=1)
    assert arrays["x"].tolist() == list(range(0, 7000, 7))


def test_three_processes_build_one_corpus_while_one_is_killed(cache_dir, tmp_path):
    marker = tmp_path / "builds.txt"
    children = [in_child(race_child, str(marker), kill) for kill in (False, True, False)]
    codes = [wait(child) for child in children]
    assert codes[0] == codes[2] == 0 and codes[1] == -signal.SIGKILL
    builds = marker.read_text().count("built")
    assert builds == 2, "built by the killed process, then once more by one of the two others"
    arrays = cache.cached_arrays("race", {"n": 1000}, lambda: {"x": np.zeros(1)}, version=1)
    assert arrays["x"][-1] == 6993
    assert not list(cache_dir.glob(".*.tmp")), "the killed writer's temporary was swept"


# --------------------------------------------------------------------------- defect 4: audio I/O


def test_float_file_beyond_full_scale_is_clipped_with_a_warning(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 2.0, -3.0, 0.1], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.warns(audio.AudioClippedWarning, match=r"loud.wav: samples reach 3"):
        wave, _ = audio.load(path)
    assert wave.tolist() == [0.5, 1.0, -1.0, pytest.approx(0.1)]


def test_streaming_wav_with_unknown_data_size_is_read(tmp_path):
    path = tmp_path / "stream.wav"
    sf.write(path, np.linspace(-0.5, 0.5, 800, dtype=np.float32), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 0xFFFFFFFF)
    at = raw.index(b"data")
    raw[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    assert len(sf.read(path)[0]) == 800  # soundfile reads it
    wave, rate = audio.load(path)
    assert len(wave) == 800 and rate == 8000


def test_permission_problems_are_reported_as_such(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    audio.save(path, np.zeros(100, dtype=np.float32), 8000)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio, "open", denied, raising=False)  # as for a file mode 000
    with pytest.raises(PermissionError, match="locked.wav: permission denied"):
        audio.load(path)
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "mkstemp", denied)  # as in a read-only folder
    with pytest.raises(PermissionError, match=r"cannot write .*out\.wav: permission denied"):
        audio.save(tmp_path / "out.wav", np.zeros(100, dtype=np.float32), 8000)


def test_save_contracts(tmp_path):
    stereo = np.zeros((2, 500), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(samples, channels\) layout pass wave.T"):
        audio.save(tmp_path / "a.wav", stereo.T, 8000)
    audio.save(tmp_path / "a.wav", stereo, 8000)
    assert sf.info(tmp_path / "a.wav").channels == 2
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere.*a\.wav: the folder"):
        audio.save(tmp_path / "nowhere" / "a.wav", stereo, 8000)
    assert not list(tmp_path.glob("**/.*.tmp"))


# --------------------------------------------------------------------------- bad arguments

x1 = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
nan_wave = x1.copy()
nan_wave[7] = np.nan
xy = blobs()
BAD = {
    # defect 3: numbers that were silently wrong or gave raw torch errors
    "fit grad_clip=0": (lambda: train(grad_clip=0), ValueError, "grad_clip must be positive"),
    "fit grad_clip<0": (lambda: train(grad_clip=-1.0), ValueError, "grad_clip must be positive"),
    "fit epochs=2.5": (lambda: train(epochs=2.5), TypeError, "epochs must be a whole number"),
    "fit batch 2.5": (lambda: train(batch_size=2.5), TypeError, "batch_size must be a whole"),
    "fit batch 0": (lambda: train(batch_size=0), ValueError, "batch_size must be positive"),
    "fit epochs=True": (lambda: train(epochs=True), TypeError, "epochs must be a whole number"),
    "fit lr=nan": (lambda: train(lr=math.nan), ValueError, "lr must be a finite number"),
    "fit label -100": (
        lambda: fit(mlp(), (xy[0], torch.full((160,), -100)), loss=nn.CrossEntropyLoss(), **RUN),
        ValueError,
        "would silently skip the label -100",
    ),
    "fit label 7": (
        lambda: fit(mlp(), (xy[0], xy[1] * 7), loss=nn.CrossEntropyLoss(), **RUN),
        ValueError,
        "hold the class label 7, but the model outputs 2",
    ),
    "hop_length=0": (lambda: features.stft(x1, hop_length=0), ValueError, "hop_length must be"),
    "mfcc sr=True": (lambda: features.mfcc(x1, True), TypeError, "whole number of Hz"),
    "SpokenDigits sr=True": (
        lambda: datasets.SpokenDigits(sample_rate=True),
        TypeError,
        "whole number of Hz",
    ),
    "FSDD duration=-1": (
        lambda: datasets.FSDD(".", duration=-1),
        ValueError,
        "duration must be positive",
    ),
    "bench steps": (lambda: bench.fit_loops(steps=-100), ValueError, "steps must be positive"),
    "bench batch": (lambda: bench.fit_loops(batch_size=0), ValueError, "batch_size must be"),
    "bench model": (lambda: bench.fit_loops("rnn"), ValueError, "model must be 'cnn' or 'mlp'"),
    # defect 4
    "save sr=0": (lambda: audio.save("a.wav", x1, 0), ValueError, "positive number of Hz"),
    "save sr=-1": (lambda: audio.save("a.wav", x1, -1), ValueError, "positive number of Hz"),
    "load sr=True": (lambda: audio.load("a.wav", True), TypeError, "whole number of Hz"),
    "resample 0 Hz": (lambda: audio.resample(x1, 0, 8000), ValueError, "positive number of Hz"),
    "player sr=0.5": (lambda: audio.player(x1, 0.5), TypeError, "whole number of Hz"),
    # defect 7
    "mfcc empty": (lambda: features.mfcc(torch.zeros(0), 16000), ValueError, "holds no samples"),
    "mfcc n_mfcc=0": (lambda: features.mfcc(x1, 16000, n_mfcc=0), ValueError, "n_mfcc must be"),
    "mfcc column": (lambda: features.mfcc(x1[:, None], 16000), ValueError, "column vector"),
    "log-mel NaN": (
        lambda: features.log_mel_spectrogram(nan_wave, 16000),
        ValueError,
        "the features would be NaN",
    ),
    "stft ints": (lambda: features.stft(np.arange(9)), TypeError, "floating-point"),
    "stft center=False short": (
        lambda: features.stft(x1[:100], center=False),
        ValueError,
        "at least n_fft=2048",
    ),
    "mel f_max": (lambda: features.mel_filterbank(8000, f_max=5000), ValueError, "Nyquist"),
    "griffin_lim shape": (
        lambda: features.griffin_lim(np.ones((10, 5), dtype=np.float32)),
        ValueError,
        "n_fft//2+1 = 1025",
    ),
    "griffin_lim n_iter": (
        lambda: features.griffin_lim(np.ones((1025, 5), dtype=np.float32), n_iter=0),
        ValueError,
        "n_iter must be positive",
    ),
    # other public functions
    "white n=True": (lambda: noise.white(True), ValueError, "positive integer"),
    "hum sr=True": (lambda: noise.hum(100, True), TypeError, "whole number of Hz"),
    "colored nan": (lambda: noise.colored(100, math.nan), ValueError, "exponent must be"),
    "mix NumPy": (lambda: noise.mix_at_snr(x1, x1, 5.0), TypeError, "must be tensors"),
    "mix snr nan": (
        lambda: noise.mix_at_snr(torch.ones(9), torch.ones(9), math.nan),
        ValueError,
        "snr_db is NaN",
    ),
    "AddNoise p=True": (lambda: augment.AddNoise(p=True), TypeError, "p must be a number"),
    "AddNoise sr=0": (lambda: augment.AddNoise(sample_rate=0), ValueError, "Hz"),
    "SpeedPerturb sr": (lambda: augment.SpeedPerturb(sample_rate=True), TypeError, "Hz"),
    "SpecAugment 2.5": (lambda: augment.SpecAugment(freq_mask=2.5), TypeError, "freq_mask"),
    "accuracy empty": (
        lambda: classification.accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
        ValueError,
        "no examples",
    ),
    "ctc blank": (
        lambda: recognition.ctc_greedy_decode(torch.zeros(1, 4, 5), blank=-1),
        ValueError,
        "blank must be a class index",
    ),
    "pretrained epochs": (
        lambda: models.pretrained_digit_classifier(epochs=2.5),
        TypeError,
        "epochs must be a whole number",
    ),
    "predict batch": (lambda: training.predict(mlp(), xy[0], batch_size=0), ValueError, "batch"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_arguments_give_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, kind, fragment = BAD[name]
    with pytest.raises(kind) as err:
        call()
    assert fragment in str(err.value)


def test_float64_inputs_are_accepted():
    x, y = blobs()
    model, history = mlp(), None
    history = fit(model, (x.double().numpy(), y.numpy()), (x.double(), y), nn.CrossEntropyLoss(),
                  epochs=1, **RUN)  # fmt: skip
    assert math.isfinite(history["valid_loss"][0])
    assert training.predict(model, x.double()).dtype == torch.float32
    assert features.mfcc(x1.astype(np.float64), 16000).dtype == torch.float32
    spec = features.stft(x1, n_fft=256).abs().numpy()  # griffin_lim takes NumPy, as documented
    back = features.griffin_lim(spec, n_fft=256, n_iter=2, length=len(x1))
    assert isinstance(back, torch.Tensor) and back.shape == (len(x1),)


def test_the_command_line_refuses_bad_counts(capsys):
    for argv in (["bench", "fit", "--batch-size", "0"], ["bench", "fit", "--steps", "-100"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- the book's page


def quoted_errors(tmp_path: Path) -> dict[str, str]:
    """The real message of each error the troubleshooting page quotes, by quoted fragment."""
    found: dict[str, str] = {}

    def catch(fragment: str, call, kind=Exception) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                call()
            except kind as err:
                found[fragment] = str(err)
                return
        said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert said, f"{fragment!r}: no error and no warning"
        found[fragment] = said[-1]

    x, y = blobs()
    ckpt = tmp_path / "run.pt"
    train(ckpt, epochs=1)
    catch("training stopped and the model keeps", lambda: fit(mlp(), xy, None, nan_at(2), **RUN))
    bad_valid = (x.clone().fill_(math.nan), y)
    catch("valid_loss is nan after epoch",
          lambda: fit(mlp(), xy, bad_valid, nn.CrossEntropyLoss(), **RUN))  # fmt: skip
    catch("was saved by a run with other settings", lambda: train(ckpt, lr=0.5))
    catch("does not belong to this model and run",
          lambda: train(ckpt, model=nn.Sequential(nn.Linear(8, 2))))  # fmt: skip
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(ckpt.read_bytes())
    flip_tensor_byte(damaged)
    catch("its contents do not match the SHA-256 checksum", lambda: load_checkpoint(damaged))
    damaged.write_bytes(b"not a checkpoint")
    catch("it is damaged (e.g. cut short) or was not written by audiolab.training.fit",
          lambda: load_checkpoint(damaged))  # fmt: skip
    catch("is a folder, not a file", lambda: load_checkpoint(tmp_path))
    catch("would silently skip the label -100", BAD["fit label -100"][0])
    catch("but the model outputs", BAD["fit label 7"][0])
    catch("cannot compare the model's output with the targets",
          lambda: fit(mlp(), (x, y.float()), loss=nn.MSELoss(), **RUN))  # fmt: skip
    catch("must be a whole number (an int)", BAD["fit epochs=2.5"][0])
    catch("must be a whole number of Hz", BAD["mfcc sr=True"][0])
    catch("grad_clip must be positive", BAD["fit grad_clip=0"][0])
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio " * 50)
    catch("not a readable audio file", lambda: audio.load(notes))
    audio.save(tmp_path / "full.wav", x1, 8000)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "full.wav").read_bytes()[:3000])
    catch("truncated: the header announces", lambda: audio.load(tmp_path / "cut.wav"))
    sf.write(tmp_path / "loud.wav", np.array([0.1, 2.0]), 8000, subtype="FLOAT")
    catch("they were clipped to [-1, 1]", lambda: audio.load(tmp_path / "loud.wav"))
    catch("for soundfile's (samples, channels) layout pass wave.T",
          lambda: audio.save(tmp_path / "a.wav", np.zeros((500, 2)), 8000))  # fmt: skip
    catch("exceeds 1.0; scale the signal before saving",
          lambda: audio.save(tmp_path / "a.wav", 2 * x1, 8000))  # fmt: skip
    catch("does not exist; create it first",
          lambda: audio.save(tmp_path / "no" / "a.wav", x1, 8000))  # fmt: skip
    catch("the features would be NaN", BAD["log-mel NaN"][0])
    catch("column vector?", BAD["mfcc column"][0])
    entry = cache.entry_path("demo", {}, 1)
    cache.cached_arrays("demo", {}, lambda: {"x": np.arange(3)}, version=1)
    entry.write_bytes(entry.read_bytes()[:50])
    rebuild = functools.partial(cache.cached_arrays, "demo", {}, lambda: {"x": np.arange(3)}, 1)
    catch("deleting it and rebuilding the corpus", rebuild)
    return found


def test_the_troubleshooting_page_quotes_the_real_messages(tmp_path):
    page = PAGE.read_text(encoding="utf-8")
    assert page.startswith("# When things go wrong")
    for fragment, message in quoted_errors(tmp_path).items():
        assert fragment in message, f"audiolab no longer says {fragment!r}; it says {message!r}"
        assert f"`{fragment}" in page or fragment in page, f"the page does not quote {fragment!r}"
