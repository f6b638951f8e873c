"""Wall time and peak memory of every pipeline step on a large dataset (e.g. a 10% replica).

    python benchmarks/scale.py DATA_DIR [DATA_DIR ...] [--work DIR] [--full 94477] [--small DIR]

Each DATA_DIR (Kaggle layout, e.g. ``islr synth OUT --like asl-signs-full-train.csv --fraction
0.1``) goes through, each step a fresh ``islr`` process under ``/usr/bin/time -v``:

  preprocess with --workers 1, then --workers 2 (cold stores, in separate cache folders), the
  recipe's preprocessing (kaggle-1st, workers 2), one epoch of the default transformer and of the
  recipe (configs/experiments/kaggle-1st.yaml, their stores already built), then evaluate,
  report and export --format kaggle of the transformer run.

Columns: wall seconds; CPU seconds (user + system over the process tree, sampled, so the last
0.1 s of a process may be missed: the steadier number on a shared CPU); peak RSS of the largest
single process (``time -v``); peak RSS summed over the whole process tree (pool workers
included; /proc sampled every 0.1 s) and its anonymous part (RssAnon: without the
memory-mapped store and shared libraries, whose pages the kernel can drop); the most processes
alive at once (more than one: a worker pool ran); the 1-minute load average at the start.
With ``--small DIR`` (default: the 522 genuine files) preprocess runs there too with workers 1
and 2, to show that a small job stays in one process.

The machine's CPU may be shared: absolute times are then noisy. The ratio that matters is
preprocess workers 1 / workers 2 (printed per dataset). With two or more datasets the full-size
times are a least-squares line through (sequences, seconds), evaluated at ``--full`` sequences
(with one dataset: proportional to the sequences); export does not depend on the data and is
not projected. A projection, not a measurement.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISLR = [sys.executable, "-m", "islr"]
RECIPE = str(ROOT / "configs" / "experiments" / "kaggle-1st.yaml")
GENUINE = ROOT.parent / "shared" / "data" / "asl-signs"
FULL_SEQUENCES = 94_477
# Steps whose work does not grow with the dataset (the model is exported; its check files are
# fixed): they are not projected.
SIZE_FREE = {"export kaggle"}


@dataclass
class Step:
    data: str
    sequences: int
    name: str
    seconds: float
    largest_mb: float
    tree_mb: float
    anon_mb: float
    cpu_seconds: float
    processes: int
    load: float
    ok: bool


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """Resident kB of one process: all of it (VmRSS) or only its anonymous memory (RssAnon)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of a process and its descendants, and the most processes at once."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.anon_kb = 0
        self.processes = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            tree, todo = [], [self.pid]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo += _children(pid)
            # The time(1) wrapper itself is not part of the work.
            work = tree[1:]
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in work))
            self.anon_kb = max(self.anon_kb, sum(_rss_kb(p, "RssAnon") for p in work))
            self.processes = max(self.processes, sum(1 for p in work if _rss_kb(p)))
            for p in work:
                self.cpu[p] = max(self.cpu.get(p, 0.0), _cpu_seconds(p))
            time.sleep(self.interval)


def measure(name: str, args: list[str], data: str, sequences: int, log: Path) -> Step:
    """Run ``islr args`` under ``time -v``; print and return its measurements."""
    load = os.getloadavg()[0]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-v", *ISLR, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
    text = log.read_text()
    largest = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    step = Step(data, sequences, name, seconds, int(largest.group(1)) / 1024 if largest else float("nan"),
                sampler.peak_kb / 1024, sampler.anon_kb / 1024, sum(sampler.cpu.values()), sampler.processes, load, code == 0)
    flag = "" if step.ok else f"  FAILED (exit {code}, see {log})"
    print(f"  {name:<28} {seconds:8.1f} s  largest {step.largest_mb:7.0f} MB  tree {step.tree_mb:7.0f} MB  anon {step.anon_mb:7.0f} MB  "
          f"CPU {step.cpu_seconds:6.1f} s  processes {step.processes}  load {load:4.1f}{flag}", flush=True)
    return step


def sequences_of(data_dir: Path) -> int:
    with open(data_dir / "train.csv", newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def run_dataset(data_dir: Path, work: Path, steps: set[str]) -> list[Step]:
    """Every step on one dataset; stores and runs go under ``work``."""
    n = sequences_of(data_dir)
    label = data_dir.name
    print(f"{label}: {n:,} sequences", flush=True)
    out = work / label
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data, c1, c2 = str(data_dir), str(out / "cache-w1"), str(out / "cache-w2")
    plan = [
        ("preprocess workers 1", ["preprocess", data, "--cache-dir", c1, "--workers", "1", "--no-progress"]),
        ("preprocess workers 2", ["preprocess", data, "--cache-dir", c2, "--workers", "2", "--no-progress"]),
        ("preprocess recipe w2", ["preprocess", data, "--config", RECIPE, "--cache-dir", c2, "--workers", "2",
                                  "--no-progress"]),
        ("train transformer 1 ep", ["train", "--data-dir", data, "--cache-dir", c2, "--epochs", "1",
                                    "--run-dir", str(out / "run-transformer"), "--no-progress"]),
        ("train recipe 1 ep", ["train", "--data-dir", data, "--config", RECIPE, "--cache-dir", c2, "--epochs", "1",
                               "--run-dir", str(out / "run-recipe"), "--no-progress"]),
        ("evaluate", ["evaluate", str(out / "run-transformer"), "--out", str(out / "eval")]),
        ("report", ["report", str(out / "run-transformer"), "--out", str(out / "report.html")]),
        ("export kaggle", ["export", str(out / "run-transformer"), "--format", "kaggle",
                           "--out", str(out / "model.tflite")]),
    ]
    results = []
    for name, args in plan:
        if steps and not any(name.startswith(s) for s in steps):
            continue
        results.append(measure(name, args, label, n, out / f"{name.replace(' ', '_')}.log"))
    by = {s.name: s for s in results}
    if "preprocess workers 1" in by and "preprocess workers 2" in by:
        ratio = by["preprocess workers 1"].seconds / by["preprocess workers 2"].seconds
        print(f"  preprocess speed-up workers 2 / workers 1: {ratio:.2f}x", flush=True)
    return results


def small_check(data_dir: Path, work: Path) -> list[Step]:
    """Preprocess a small dataset with workers 1 and 2: both should stay in one process."""
    n = sequences_of(data_dir)
    print(f"{data_dir.name} (small): {n:,} sequences", flush=True)
    out = work / "small"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return [measure(f"preprocess workers {w}", ["preprocess", str(data_dir), "--cache-dir", str(out / f"c{w}"),
                                                "--workers", str(w), "--no-progress"], data_dir.name, n,
                    out / f"w{w}.log") for w in (1, 2)]


def _fit(points: list[tuple[int, float]], full: int) -> float:
    """``y`` at ``full``: a least-squares line through two or more sizes, else proportional."""
    if len({x for x, _ in points}) >= 2:
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        return my + slope * (full - mx)
    x, y = points[0]
    return y * full / x


def projection(results: list[Step], full: int) -> dict[str, tuple[float, float]]:
    """Per step at ``full`` sequences: (CPU seconds, wall seconds).

    CPU seconds follow :func:`_fit` over every size measured (CPU time hardly depends on the
    machine's load); wall seconds are scaled from the largest size measured, at its load.
    """
    out = {}
    for name in dict.fromkeys(s.name for s in results):
        done = [s for s in results if s.name == name and s.ok]
        if name in SIZE_FREE or not done:
            continue
        largest = max(done, key=lambda s: s.sequences)
        out[name] = (_fit([(s.sequences, s.cpu_seconds) for s in done], full),
                     largest.seconds * full / largest.sequences)
    return out


def table(results: list[Step], full: int) -> str:
    """The markdown table, then the projection."""
    lines = ["| dataset | sequences | step | wall s | CPU s | peak RSS largest process MB "
             "| peak RSS all processes MB | of which anonymous MB | processes | load at start |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in results:
        wall = f"{s.seconds:.1f}" if s.ok else f"{s.seconds:.1f} (failed)"
        lines.append(f"| {s.data} | {s.sequences:,} | {s.name} | {wall} | {s.cpu_seconds:.1f} | {s.largest_mb:.0f} "
                     f"| {s.tree_mb:.0f} | {s.anon_mb:.0f} | {s.processes} | {s.load:.1f} |")
    big = [s for s in results if s.sequences > 1000]
    if big:
        lines += ["", f"Projection to {full:,} sequences (a projection, not a measurement; CPU: line through the "
                  "sizes measured, or proportional with one; wall: scaled from the largest size at its load):", "",
                  "| step | projected CPU s | projected wall s | projected wall min |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {cpu:.0f} | {wall:.0f} | {wall / 60:.1f} |" for k, (cpu, wall) in projection(big, full).items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=None, help="stores, runs and logs (default: a temp folder)")
    parser.add_argument("--full", type=int, default=FULL_SEQUENCES, help="sequences of the full dataset")
    parser.add_argument("--small", default=str(GENUINE) if GENUINE.exists() else "",
                        help="small dataset for the one-process check ('' to skip)")
    parser.add_argument("--steps", nargs="*", default=[], help="only steps starting with these names")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="islr-scale-"))
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores, load average at start {os.getloadavg()[0]:.1f} (a shared CPU makes absolute times noisy)")
    results: list[Step] = []
    for data_dir in args.data_dirs:
        results += run_dataset(data_dir, work, set(args.steps))
    if args.small:
        results += small_check(Path(args.small), work)
    print()
    print(table(results, args.full))
    return 0 if all(s.ok for s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
