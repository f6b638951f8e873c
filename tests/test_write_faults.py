"""A full disk while writing the cache, an export, evaluation outputs, a report or the validation
CSV: one clear WriteError naming the file, the previous good files intact, no half-written file
under a final name (and no temporary file left behind)."""

from __future__ import annotations

import builtins
import errno
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import islr.data.cache as cache_mod
from islr.cli import main
from islr.config import PreprocessConfig
from islr.data.cache import build_cache, open_store
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.preprocess import prepare
from islr.data.synthetic import generate
from islr.errors import WriteError
from islr.evaluation.evaluate import write_all
from tiny_kaggle import checksums
from tiny_run import tiny_torch_run

CFG = PreprocessConfig(landmarks="hands", length_mode="variable", normalization="none")
FULL = "no space left on device"


class _FillingFile:
    """A file that takes ``budget`` more bytes, then fails like a full disk."""

    def __init__(self, real, budget: int):
        self._real, self._budget = real, budget

    def write(self, data):
        view = memoryview(data if not isinstance(data, str) else data.encode())
        if len(view) > self._budget:
            if self._budget:
                self._real.write(data[: self._budget])
            self._budget = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(view)
        return self._real.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()

    def __iter__(self):
        return iter(self._real)

    def __getattr__(self, name):
        return getattr(self._real, name)


class DiskFull:
    """Patch ``open`` so that writing to a file whose name contains ``match`` fills the disk after
    ``budget`` bytes; the first ``skip`` such files are written normally."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, match: str, budget: int = 100, skip: int = 0):
        self.match, self.budget, self.skip, self.failed = match, budget, skip, []
        real = builtins.open

        def faulty_open(file, mode="r", *args, **kwargs):
            handle = real(file, mode, *args, **kwargs)
            name = str(file) if isinstance(file, str | Path) else ""
            if any(c in mode for c in "wax") and self.match in Path(name).name:
                if self.skip:
                    self.skip -= 1
                    return handle
                self.failed.append(name)
                return _FillingFile(handle, self.budget)
            return handle

        monkeypatch.setattr(builtins, "open", faulty_open)
        monkeypatch.setattr(io, "open", faulty_open)  # what pathlib's write_bytes/write_text use


def _temps(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, signs=3, participants=3, per_sign=2, seed=5, min_frames=6, max_frames=20)
    return out


@pytest.fixture
def samples(data_dir, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    return read_train_csv(data_dir)


def _counting_chunks(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cache_mod._prepare_chunk
    monkeypatch.setattr(cache_mod, "_prepare_chunk", lambda task: (calls.append(task[0]), real(task))[1])
    return calls


def _check_store(store, samples) -> None:
    assert len(store) == len(samples) and not store.errors
    for i in (0, len(samples) // 2, len(samples) - 1):
        np.testing.assert_array_equal(store[i], prepare(read_landmarks(samples[i].path), CFG))


def test_cache_disk_full_while_writing_data_npy(samples, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    full = DiskFull(monkeypatch, "data.npy", budget=5000)
    with pytest.raises(WriteError) as info:
        build_cache(samples, CFG, cache, workers=1, progress=False)
    (root,) = [p for p in cache.iterdir() if p.is_dir()]
    assert info.value.path == str(root / "data.npy") and info.value.reason == FULL
    assert len(full.failed) == 1 and full.failed[0] != str(root / "data.npy")  # a temporary name was filled
    assert not (root / "data.npy").exists() and not (root / "meta.json").exists()
    assert _temps(cache) == []
    n_shards = len(list((root / "shards").glob("*.npz")))
    assert n_shards == (len(samples) + 3) // 4  # the prepared work is kept
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    calls = _counting_chunks(monkeypatch)
    store = build_cache(samples, CFG, cache, workers=1, progress=False)
    assert calls == [] and not store.hit  # resumed: only the assembly was redone
    _check_store(store, samples)


def test_cache_disk_full_while_writing_a_shard(samples, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    DiskFull(monkeypatch, ".npz", budget=100, skip=2)
    with pytest.raises(WriteError, match=rf"shards/000002\.npz: could not write \({FULL}\)"):
        build_cache(samples, CFG, cache, workers=1, progress=False)
    (root,) = [p for p in cache.iterdir() if p.is_dir()]
    assert sorted(p.name for p in (root / "shards").iterdir()) == ["000000.npz", "000001.npz"]
    assert _temps(cache) == []
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    calls = _counting_chunks(monkeypatch)
    store = build_cache(samples, CFG, cache, workers=1, progress=False)
    assert calls == list(range(2, (len(samples) + 3) // 4))
    _check_store(store, samples)


@pytest.mark.parametrize("name", ["index.csv", "errors.csv", "meta.json"])
def test_cache_disk_full_while_finishing(samples, tmp_path, monkeypatch, name):
    cache = tmp_path / "cache"
    DiskFull(monkeypatch, name, budget=10)
    with pytest.raises(WriteError, match=rf"{name}: could not write \({FULL}\)"):
        build_cache(samples, CFG, cache, workers=1, progress=False)
    (root,) = [p for p in cache.iterdir() if p.is_dir()]
    assert not (root / name).exists() and not (root / "meta.json").exists() and _temps(cache) == []
    with pytest.raises(Exception, match="not a complete cache store"):
        open_store(root)
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    _check_store(build_cache(samples, CFG, cache, workers=1, progress=False), samples)


def test_a_failed_build_leaves_the_previous_store_alone(samples, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    good = build_cache(samples, CFG, cache, workers=1, progress=False)
    before = checksums(good.path)
    DiskFull(monkeypatch, "data.npy")
    other = PreprocessConfig(landmarks="kaggle118", length_mode="variable", normalization="none")
    with pytest.raises(WriteError):
        build_cache(samples, other, cache, workers=1, progress=False)
    monkeypatch.undo()
    assert checksums(good.path) == before
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    assert build_cache(samples, CFG, cache, workers=1, progress=False).hit


def test_preprocess_command_says_it_in_one_line(data_dir, tmp_path, capsys, monkeypatch):
    DiskFull(monkeypatch, "data.npy")
    code = main(["preprocess", str(data_dir), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                 "--workers", "1", "--preprocess.landmarks", "hands"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "data.npy: could not write (no space left" in err
    assert "the previous file, if any, is unchanged" in err


def test_a_real_kernel_write_failure_while_building(data_dir, tmp_path, monkeypatch):
    """RLIMIT_FSIZE (64 KiB) makes the kernel itself refuse the bytes of data.npy past the limit,
    while the small shards still fit: a genuine short write, then a resume without the limit."""
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import resource, signal
        import islr.data.cache as cache_mod
        from islr.config import PreprocessConfig
        from islr.data.kaggle import read_train_csv
        from islr.errors import WriteError
        cache_mod.CHUNK_SIZE = 2
        samples = read_train_csv({str(data_dir)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            cache_mod.build_cache(samples, PreprocessConfig(landmarks="hands", length_mode="variable",
                                  normalization="none"), {str(cache)!r}, workers=1, progress=False)
        except WriteError as exc:
            print(exc.path, exc.reason, sep="|")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (root,) = [p for p in cache.iterdir() if p.is_dir()]
    assert done.stdout.strip() == f"{root / 'data.npy'}|File too large"
    assert not (root / "data.npy").exists() and _temps(cache) == []
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 2)
    calls = _counting_chunks(monkeypatch)
    samples = read_train_csv(data_dir)
    store = build_cache(samples, CFG, cache, workers=1, progress=False)
    assert calls == [] and store.path == root and store.data.nbytes > 65536
    _check_store(store, samples)


def test_validation_report_disk_full_keeps_the_previous_report(data_dir, tmp_path, capsys, monkeypatch):
    report = tmp_path / "out" / "report.csv"
    assert main(["validate", str(data_dir), "--report", str(report), "--workers", "1"]) == 0
    before = report.read_bytes()
    DiskFull(monkeypatch, "report.csv", budget=50)
    code = main(["validate", str(data_dir), "--report", str(report), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {report}: could not write ({FULL})" in err
    assert report.read_bytes() == before and _temps(tmp_path) == []


def test_several_outputs_are_written_all_or_none(tmp_path, monkeypatch):
    names = ["metrics.json", "per_sign_accuracy.csv", "confusion_matrix.png"]
    for name in names:
        (tmp_path / name).write_text(f"old {name}")
    DiskFull(monkeypatch, "confusion_matrix.png", budget=3)
    with pytest.raises(WriteError) as info:
        write_all({tmp_path / n: b"new " * 100 for n in names})
    assert info.value.path == str(tmp_path / "confusion_matrix.png")
    assert [(tmp_path / n).read_text() for n in names] == [f"old {n}" for n in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    monkeypatch.undo()
    write_all({tmp_path / n: b"new" for n in names})
    assert [(tmp_path / n).read_bytes() for n in names] == [b"new"] * 3


def test_evaluation_outputs_disk_full_keeps_the_previous_set(synth_dir, tmp_path_factory, tmp_path, monkeypatch):
    from islr.evaluation.evaluate import evaluate_run

    run = tiny_torch_run(synth_dir, tmp_path_factory)
    out = tmp_path / "eval"
    evaluate_run(run, out_dir=out)
    before = checksums(out)
    assert sorted(before) == ["confusion_matrix.png", "metrics.json", "per_sign_accuracy.csv"]
    DiskFull(monkeypatch, "confusion_matrix.png", budget=200)
    with pytest.raises(WriteError, match=rf"confusion_matrix\.png: could not write \({FULL}\)"):
        evaluate_run(run, out_dir=out)
    assert checksums(out) == before and _temps(out) == []


def test_report_disk_full_keeps_the_previous_report(synth_dir, tmp_path_factory, tmp_path, monkeypatch):
    from islr.evaluation.report import build_report

    run = tiny_torch_run(synth_dir, tmp_path_factory)
    out = tmp_path / "report.html"
    build_report(run, out, examples=0)
    before = out.read_bytes()
    assert before.startswith(b"<!DOCTYPE html>")
    DiskFull(monkeypatch, "report.html", budget=4096)
    with pytest.raises(WriteError, match=rf"report\.html: could not write \({FULL}\)"):
        build_report(run, out, examples=0)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# Exports: the real converters are replaced by stand-ins that write or return bytes, so these tests
# exercise only the final write (the converters themselves are tested in test_export.py).


def test_onnx_export_disk_full_stops_and_keeps_the_previous_model(tmp_path, monkeypatch):
    import torch

    from islr.export import onnx_export

    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous good model")
    routes: list[str] = []

    def fills_the_disk(model, path, route, input_dim, frames):
        routes.append(route)
        Path(path).write_bytes(b"half")
        raise RuntimeError("export failed") from OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_export, "_export", fills_the_disk)
    with pytest.raises(WriteError) as info:
        onnx_export.export_onnx(torch.nn.Linear(4, 2), 4, out, fixed_frames=8)
    assert info.value.path == str(out) and info.value.reason == FULL
    assert routes == ["dynamo"]  # a full disk is not "try the next route"
    assert out.read_bytes() == b"the previous good model" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_onnx_export_failing_every_route_keeps_the_previous_model(tmp_path, monkeypatch):
    import torch

    from islr.errors import ModelError
    from islr.export import onnx_export

    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous good model")

    def unsupported(model, path, route, input_dim, frames):
        Path(path).write_bytes(b"garbage")
        raise RuntimeError(f"{route} cannot trace this")

    monkeypatch.setattr(onnx_export, "_export", unsupported)
    with pytest.raises(ModelError, match="tried dynamo: dynamo cannot trace this; legacy"):
        onnx_export.export_onnx(torch.nn.Linear(4, 2), 4, out, fixed_frames=8)
    assert out.read_bytes() == b"the previous good model" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_tflite_and_kaggle_exports_disk_full(tmp_path, monkeypatch):
    from islr.export import kaggle_export, tflite_export

    blob = b"TFL3" + bytes(5000)
    monkeypatch.setattr(tflite_export, "features_module", lambda *a, **k: None)
    monkeypatch.setattr(tflite_export, "convert", lambda module: blob)
    monkeypatch.setattr(tflite_export, "verify_tflite", lambda *a, **k: 0.0)
    monkeypatch.setattr(kaggle_export, "kaggle_module", lambda *a, **k: None)
    monkeypatch.setattr(kaggle_export, "convert", lambda module: blob)
    monkeypatch.setattr(kaggle_export, "verify_kaggle", lambda *a, **k: 0.0)
    for name in ("features.tflite", "model.tflite"):
        (tmp_path / name).write_bytes(b"previous " + name.encode())
    DiskFull(monkeypatch, ".tflite", budget=1000)
    with pytest.raises(WriteError, match=rf"features\.tflite: could not write \({FULL}\)"):
        tflite_export.export_tflite(object(), 8, tmp_path / "features.tflite")
    with pytest.raises(WriteError, match=rf"model\.tflite: could not write \({FULL}\)"):
        kaggle_export.export_kaggle(object(), PreprocessConfig(), 3, tmp_path / "model.tflite")
    assert (tmp_path / "features.tflite").read_bytes() == b"previous features.tflite"
    assert (tmp_path / "model.tflite").read_bytes() == b"previous model.tflite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.tflite", "model.tflite"]
    monkeypatch.undo()
    monkeypatch.setattr(tflite_export, "features_module", lambda *a, **k: None)
    monkeypatch.setattr(tflite_export, "convert", lambda module: blob)
    monkeypatch.setattr(tflite_export, "verify_tflite", lambda *a, **k: 0.0)
    assert tflite_export.export_tflite(object(), 8, tmp_path / "features.tflite").size == len(blob)
    assert (tmp_path / "features.tflite").read_bytes() == blob


def test_run_history_sidecar_and_exclusions_disk_full_keep_the_previous_files(tmp_path, monkeypatch):
    import pandas as pd

    from islr.data.cleaning import EXCLUSION_COLUMNS, write_exclusions
    from islr.inference.exported import sidecar_path, write_sidecar
    from islr.run_dir import RunDir

    run = RunDir(tmp_path / "run").create()
    rows = [{"epoch": i, "loss": 1.0 / (i + 1), "note": "x" * 200} for i in range(20)]
    run.write_history(rows[:2])
    model = tmp_path / "model.onnx"
    write_sidecar(model, CFG, ["a", "b"])
    table = pd.DataFrame([{c: 1 for c in EXCLUSION_COLUMNS}] * 50)
    write_exclusions(table.iloc[:1], tmp_path / "exclusions.csv")
    before = {p: p.read_bytes() for p in (run.path / "history.json", run.path / "history.csv",
                                          sidecar_path(model), tmp_path / "exclusions.csv")}
    DiskFull(monkeypatch, ".tmp", budget=100)
    with pytest.raises(WriteError, match=FULL):
        run.write_history(rows)
    with pytest.raises(WriteError, match=FULL):
        write_sidecar(model, CFG, [f"sign{i}" for i in range(50)])
    with pytest.raises(WriteError, match=FULL):
        write_exclusions(table, tmp_path / "exclusions.csv")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in before} == before
    assert _temps(tmp_path) == []
