"""Command line: ``python -m audiolab {info,data,lab,student,bench}`` (or ``audiolab``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import settings

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def find_notebook(chapter: str) -> Path:
    """The notebook of ``chapter``: a path, or a chapter number such as ``1`` or ``01``."""
    path = Path(chapter)
    if path.suffix == ".ipynb":
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such notebook")
        return path
    if not chapter.isdigit():
        raise ValueError(f"{chapter!r} is neither a notebook path nor a chapter number")
    matches = sorted(NOTEBOOKS.glob(f"{int(chapter):02d}_*.ipynb"))
    if not matches:
        available = ", ".join(p.name for p in sorted(NOTEBOOKS.glob("*.ipynb"))) or "none"
        raise FileNotFoundError(
            f"no notebook for chapter {chapter} in {NOTEBOOKS} (have: {available})"
        )
    return matches[0]


def execute_notebook(path: Path, output: Path, timeout: int = 1800) -> float:
    """Run a notebook top to bottom in a fresh kernel (cwd: its folder); save it to ``output``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    except Exception:
        # keep what ran, with the error in the failing cell, for reading (never over the original)
        failed = output.with_name(f"{output.stem}.failed.ipynb")
        nbformat.write(nb, failed)
        print(f"  the outputs up to the failing cell are in {failed}", file=sys.stderr)
        raise
    elapsed = time.perf_counter() - start
    tmp = output.with_name(f".{output.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, output)
    return elapsed


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _cmd_info(args: argparse.Namespace) -> int:
    info = settings.info()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"mode     {info['mode']}   (AUDIOLAB_MODE=quick|full overrides)")
    print(f"device   {info['device']}   {info['device_name']}")
    print(f"threads  {info['torch_threads']}")
    print(f"cache    {info['cache']}   (AUDIOLAB_CACHE overrides)")
    for name, version in info["versions"].items():
        print(f"  {name:18s} {version}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .datasets import SpokenDigits
    from .music import GMNotes, Mixtures
    from .speech import DigitStrings

    for size in args.size or [settings.mode()]:
        for corpus in (SpokenDigits, DigitStrings):
            start = time.perf_counter()
            splits = {s: corpus(s, size=size) for s in ("train", "valid", "test")}
            counts = ", ".join(
                f"{s} {len(d)} clips / {len(d.voices)} voices" for s, d in splits.items()
            )
            seconds = time.perf_counter() - start
            print(f"{corpus.__name__} ({size}): {counts}  [{seconds:.1f} s]")
        music_corpora = [
            (GMNotes, {}),
            (GMNotes, {"split_by": "pitch_velocity"}),
            (Mixtures, {}),
            (Mixtures, {"n_instruments": 1}),
        ]
        for corpus, options in music_corpora:
            start = time.perf_counter()
            counts = ", ".join(
                f"{s} {len(corpus(s, size=size, **options))}" for s in ("train", "valid", "test")
            )
            extra = "".join(f", {k}={v!r}" for k, v in options.items())
            seconds = time.perf_counter() - start
            print(f"{corpus.__name__} ({size}{extra}): {counts}  [{seconds:.1f} s]")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    if args.mode:
        os.environ["AUDIOLAB_MODE"] = args.mode
    status = 0
    for chapter in args.chapters:
        path = find_notebook(chapter)
        output = path if args.inplace else Path(args.output_dir) / path.name
        output.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {path.name} in {settings.mode()} mode ...", flush=True)
        try:
            elapsed = execute_notebook(path, output, timeout=args.timeout)
        except Exception as err:  # report and go on with the other chapters
            print(f"FAILED {path.name}: {type(err).__name__}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"  done in {elapsed:.0f} s -> {output}")
    return status


def _cmd_student(args: argparse.Namespace) -> int:
    from .student import write_student_editions

    chapters = args.chapters or sorted(str(p) for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    paths = [find_notebook(chapter) for chapter in chapters]
    for path in write_student_editions(paths, Path(args.output_dir)):
        print(f"student edition: {path}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.name == "features":
        print(json.dumps(bench.feature_speed(n_clips=args.clips, device=args.device), indent=1))
    elif args.name == "fit":
        results = []
        for model in args.model or ["cnn", "mlp"]:
            for batch_size in args.batch_size or [64, 256]:
                result = bench.fit_loops(
                    model, batch_size, steps=args.steps, device=args.device, size=args.size,
                    workers=(4, 0) if args.workers is None else (args.workers,),
                )
                print(json.dumps(result), flush=True)
                results.append(result)
        print(_loops_table(results))
    elif args.name == "profile":
        from . import profiling

        for batch_size in args.batch_size or [64]:
            result, text = profiling.profile_fit(batch_size, device=args.device, size=args.size,
                                                 trace_dir=args.trace_dir)
            print(text)
            print(json.dumps(result), flush=True)
    return 0


def _loops_table(results: list[dict]) -> str:
    """The fit benchmark as a Markdown table."""
    lines = ["| model | batch | loop | precision | clips/s | vs fit | TFLOP/s | of bf16 peak |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for loop, row in r["loops"].items():
            if "clips_per_s" not in row:
                lines.append(f"| {r['model']} | {r['batch_size']} | {loop} | | skipped: "
                             f"{row.get('skipped', '')} | | | |")
                continue
            peak = row.get("fraction_of_peak")
            lines.append(
                f"| {r['model']} | {r['batch_size']} | {loop} | {row.get('precision', '')} | "
                f"{row['clips_per_s']:,.0f} | {row['ratio_to_fit']:.2f} | "
                f"{row['tflop_per_s']:.3f} | {'' if peak is None else format(peak, '.2%')} |"
            )
    return "\n".join(lines)


def _cmd_scale(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    runs = []
    for gpus in sorted({1, args.gpus}):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "run.json"
            script = ["-m", "audiolab.scaling", "--workload", args.workload,
                      "--epochs", str(args.epochs), "--batch-size",
                      str(args.batch_size), "--size", args.size, "--out", str(out)]
            if gpus == 1:
                command = [sys.executable, *script]
            else:
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={gpus}", *script]
            print(f"$ {' '.join(command[1:])}", flush=True)
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "4"))
            done = subprocess.run(command, env=env, check=False)
            if done.returncode != 0 or not out.exists():
                print(f"audiolab scale: the run on {gpus} process(es) failed "
                      f"(exit code {done.returncode})", file=sys.stderr)
                return 1
            runs.append(json.loads(out.read_text()))
    base = runs[0]["clips_per_second"]
    for run in runs:
        run["speedup"] = round(run["clips_per_second"] / base, 2)
        run["efficiency"] = round(run["speedup"] / run["processes"], 2)
    print(json.dumps(runs, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiolab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="device, mode, versions and cache location")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("data", help="synthesise and cache the corpora")
    p.add_argument("--size", action="append", choices=settings.MODES, help="quick, full or both")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("lab", help="run chapter notebooks headless")
    p.add_argument("chapters", nargs="+", help="chapter numbers (1, 01) or notebook paths")
    p.add_argument("--mode", choices=settings.MODES, help="override AUDIOLAB_MODE")
    p.add_argument("--inplace", action="store_true", help="save outputs into the notebook itself")
    p.add_argument("--output-dir", default="_build/lab", help="where executed copies go")
    p.add_argument("--timeout", type=_count(1), default=1800, help="seconds allowed per cell")
    p.set_defaults(func=_cmd_lab)

    p = sub.add_parser("student", help="write the chapters without their exercise solutions")
    p.add_argument("chapters", nargs="*", help="chapter numbers or notebook paths (default: all)")
    p.add_argument("--output-dir", default="student", help="where the student copies go")
    p.set_defaults(func=_cmd_student)

    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("name", choices=["features", "fit", "profile"],
                   help="features: feature speed; fit: training loops side by side; profile: "
                   "where fit's step time goes (torch.profiler, chapter 3's CNN)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the best available)")
    p.add_argument("--clips", type=_count(1), default=256, help="features: clips per batch")
    p.add_argument("--steps", type=_count(1), default=200, help="fit: optimisation steps")
    p.add_argument("--batch-size", type=_count(1), action="append",
                   help="fit: examples per step (repeat for several; default 64 and 256)")
    p.add_argument("--model", choices=["cnn", "mlp"], action="append",
                   help="fit: chapter 3's CNN and/or the MFCC MLP (default both)")
    p.add_argument("--size", choices=settings.MODES, help="fit: SpokenDigits size")
    p.add_argument("--workers", type=_count(0), help="fit: DataLoader workers of the tutorial loop")
    p.add_argument("--trace-dir", default=None,
                   help="profile: write Chrome traces here (open in https://ui.perfetto.dev)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("scale", help="train chapter 3's classifier or chapter 8's GAN on 1 and "
                       "N GPUs (DDP)")
    p.add_argument("--workload", choices=["cnn", "gan"], default="cnn",
                   help="cnn: chapter 3's classifier; gan: chapter 8's conditional GAN")
    p.add_argument("--gpus", type=_count(1), default=2, help="processes (GPUs) of the big run")
    p.add_argument("--epochs", type=_count(1), default=8, help="epochs of each run")
    p.add_argument("--batch-size", type=_count(1), default=256, help="global batch size")
    p.add_argument("--size", choices=settings.MODES, default="full", help="SpokenDigits size")
    p.set_defaults(func=_cmd_scale)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as err:
        print(f"audiolab {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
