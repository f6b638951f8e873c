"""Model files cannot run code, and checkpoints survive faults.

Every file of a trained run directory that a command reads (checkpoints, config.yaml,
sign_map.json, split.json, history.json), old pickle checkpoints and an export's sidecar are
replaced by code-running payloads; every command that loads a model must refuse them with one
error line naming the file, and the payload must never run. Then: truncated, corrupted and
half-written checkpoints, a full disk, a NaN loss (both frameworks), and an exact resume with
RAdam + Lookahead.
"""

from __future__ import annotations

import errno
import os
import pickle
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config  # noqa: E402
from islr.checkpoint_format import read_checkpoint  # noqa: E402
from islr.cli import main  # noqa: E402
from islr.errors import ModelError, TrainingError, WriteError  # noqa: E402
from tiny_run import tiny_torch_run  # noqa: E402

torch.set_num_threads(1)


class Payload:
    """Unpickling this runs ``touch MARKER`` (what a hostile model file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps({"format": "islr-torch-1", "state": Payload(marker), "extra": {}})


def yaml_payload(marker: Path) -> str:
    return f'!!python/object/apply:os.system ["touch {marker}"]\n'


def torch_payload(path: Path, marker: Path, fmt: str = "islr-torch-1") -> None:
    torch.save({"format": fmt, "state": Payload(marker), "extra": {}}, path)


# -- runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_run(synth_dir, tmp_path_factory) -> Path:
    return tiny_torch_run(synth_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def tf_run(synth_dir, tmp_path_factory) -> Path:
    from islr.training.pipeline import train

    root = tmp_path_factory.mktemp("tf_run")
    train(tiny_config(synth_dir, root / "cache", framework="tensorflow", **{"train.epochs": 1}), root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def onnx_export(torch_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert main(["export", str(torch_run), "--format", "onnx", "--out", str(out), "--check-count", "0"]) == 0
    return out


@pytest.fixture
def parquet(synth_dir) -> Path:
    return sorted((synth_dir / "train_landmark_files").rglob("*.parquet"))[0]


def copy_run(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


def refused(argv: list[str], named: Path, marker: Path, capsys) -> str:
    """Run ``islr argv``: non-zero exit, exactly one error line, naming ``named``; payload never ran."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0, (argv, out, err)
    assert "Traceback" not in err
    assert len(errors) == 1 and str(named) in errors[0], (argv, err)
    assert not marker.exists(), f"the payload ran during {argv}"
    return errors[0]


def commands(run: Path, tmp_path: Path, parquet: Path) -> dict[str, list]:
    """Every command that loads the model of ``run`` (outputs under tmp_path)."""
    return {
        "predict": ["predict", run, parquet],
        "predict-last": ["predict", run, parquet, "--checkpoint", "last"],
        "evaluate": ["evaluate", run, "--split", "valid", "--out", tmp_path / "ev"],
        "export": ["export", run, "--format", "onnx", "--out", tmp_path / "m.onnx", "--check-count", "0"],
        "report": ["report", run, "--split", "valid", "--out", tmp_path / "r.html"],
        "resume": ["train", "--resume", run],
        "live": ["live", "--video", tmp_path / "clip.mp4", "--model", run, "--no-window", "--json", tmp_path / "p.jsonl"],
    }


# Which commands read which file of a torch run.
TORCH_CASES = [
    ("checkpoints/best.safetensors", "pickle", ["predict", "evaluate", "export", "report", "live", "resume"]),
    ("checkpoints/last.safetensors", "pickle", ["resume", "predict-last"]),
    ("checkpoints/best.safetensors", "torch", ["predict", "export"]),
    ("config.yaml", "pickle", ["predict", "evaluate", "export", "report", "live", "resume"]),
    ("config.yaml", "yaml", ["predict", "evaluate", "export", "report", "live", "resume"]),
    ("sign_map.json", "pickle", ["predict", "evaluate", "export", "report", "live"]),
    ("split.json", "pickle", ["evaluate", "report"]),
    ("history.json", "pickle", ["report"]),
]


def plant(path: Path, kind: str, marker: Path) -> None:
    if kind == "pickle":
        path.write_bytes(pickle_payload(marker))
    elif kind == "yaml":
        path.write_text(yaml_payload(marker))
    else:
        torch_payload(path, marker)


def test_the_payloads_are_live(tmp_path):
    """Guard: each payload does run code when loaded the unsafe way, so the tests below can fail."""
    import yaml

    marker = tmp_path / "marker"
    pickle.loads(pickle_payload(marker))
    assert marker.exists()
    marker.unlink()
    yaml.unsafe_load(yaml_payload(marker))
    assert marker.exists()
    marker.unlink()
    torch_payload(tmp_path / "old.pt", marker)
    torch.load(tmp_path / "old.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(("name", "kind", "verbs"), TORCH_CASES, ids=[f"{c[0]}-{c[1]}" for c in TORCH_CASES])
def test_torch_run_files_with_payloads_are_refused(torch_run, tmp_path, parquet, capsys, name, kind, verbs):
    run = copy_run(torch_run, tmp_path)
    marker = tmp_path / "marker"
    plant(run / name, kind, marker)
    argv = commands(run, tmp_path, parquet)
    for verb in verbs:
        refused(argv[verb], run / name, marker, capsys)


def test_old_pickle_checkpoints_are_refused_with_the_conversion_command(torch_run, tmp_path, parquet, capsys):
    run = copy_run(torch_run, tmp_path)
    marker = tmp_path / "marker"
    for tag in ("best", "last"):
        (run / "checkpoints" / f"{tag}.safetensors").unlink()
        torch_payload(run / "checkpoints" / f"{tag}.pt", marker)
    argv = commands(run, tmp_path, parquet)
    for verb, tag in (("predict", "best"), ("evaluate", "best"), ("export", "best"), ("live", "best"),
                      ("report", "best"), ("predict-last", "last"), ("resume", "last")):
        line = refused(argv[verb], run / "checkpoints" / f"{tag}.pt", marker, capsys)
        assert "islr convert-checkpoint" in line and "trust" in line


def test_tensorflow_run_files_with_payloads_are_refused(tf_run, tmp_path, parquet, capsys):
    marker = tmp_path / "marker"
    cases = [("checkpoints/best.safetensors", ["predict", "evaluate", "export"]),
             ("checkpoints/last.safetensors", ["resume", "predict-last"]),
             ("config.yaml", ["predict", "evaluate"]), ("sign_map.json", ["predict", "evaluate"])]
    for i, (name, verbs) in enumerate(cases):
        run = copy_run(tf_run, tmp_path / str(i))
        plant(run / name, "pickle", marker)
        argv = commands(run, tmp_path / str(i), parquet)
        argv["export"] = ["export", run, "--format", "tflite", "--out", tmp_path / "m.tflite", "--check-count", "0"]
        for verb in verbs:
            refused(argv[verb], run / name, marker, capsys)
    run = copy_run(tf_run, tmp_path / "old")
    (run / "checkpoints" / "best.safetensors").unlink()
    (run / "checkpoints" / "best.pkl").write_bytes(pickle_payload(marker))
    line = refused(["predict", run, parquet], run / "checkpoints" / "best.pkl", marker, capsys)
    assert "islr convert-checkpoint" in line


def test_a_torch_checkpoint_is_not_loaded_by_the_tensorflow_backend(torch_run, tf_run, tmp_path, parquet, capsys):
    run = copy_run(tf_run, tmp_path)
    shutil.copyfile(torch_run / "checkpoints" / "best.safetensors", run / "checkpoints" / "best.safetensors")
    line = refused(["predict", run, parquet], run / "checkpoints" / "best.safetensors", tmp_path / "marker", capsys)
    assert "a torch checkpoint; this run uses tensorflow" in line


def test_export_sidecar_with_a_payload_is_refused(onnx_export, tmp_path, parquet, capsys):
    from islr.inference.exported import sidecar_path

    model = tmp_path / "model.onnx"
    shutil.copyfile(onnx_export, model)
    marker = tmp_path / "marker"
    sidecar_path(model).write_bytes(pickle_payload(marker))
    refused(["predict", model, parquet], sidecar_path(model), marker, capsys)
    refused(["live", "--video", tmp_path / "clip.mp4", "--model", model, "--no-window", "--json", tmp_path / "p.jsonl"],
            sidecar_path(model), marker, capsys)


# -- convert-checkpoint ---------------------------------------------------------------------------
def test_convert_checkpoint_turns_a_trusted_old_run_into_a_safe_one(torch_run, tmp_path, parquet, capsys):
    from islr.backends.torch_backend import state_to_numpy

    run = copy_run(torch_run, tmp_path)
    expected = {}
    for tag in ("best", "last"):  # write what an older islr wrote: torch.save of the same content
        new = read_checkpoint(run / "checkpoints" / tag, "torch")
        state = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in new.state.items()}
        state["model"] = {k: torch.from_numpy(v) for k, v in new.state["model"].items()}
        state["cuda_rng"] = []  # old files: every visible GPU's state
        torch.save({"format": "islr-torch-1", "state": {**state, "optimizer": _torch_tree(new.state["optimizer"])},
                    "extra": new.extra}, run / "checkpoints" / f"{tag}.pt")
        (run / "checkpoints" / f"{tag}.safetensors").unlink()
        expected[tag] = new
    assert main(["predict", str(run), str(parquet)]) == 2
    capsys.readouterr()
    assert main(["convert-checkpoint", str(run)]) == 0
    out = capsys.readouterr().out
    assert "trust" in out and "best.safetensors" in out and "last.safetensors" in out
    for tag in ("best", "last"):
        converted = read_checkpoint(run / "checkpoints" / f"{tag}.safetensors", "torch")
        assert converted.extra["sign_map"] == expected[tag].extra["sign_map"]
        assert converted.state["cuda_rng"] is None
        for key, value in expected[tag].state["model"].items():
            np.testing.assert_array_equal(converted.state["model"][key], value)
        assert state_to_numpy(converted.state["torch_rng"]).tobytes() == expected[tag].state["torch_rng"].tobytes()
    assert main(["predict", str(run), str(parquet)]) == 0
    capsys.readouterr()
    # A single file to --out; an existing target is kept unless --force.
    assert main(["convert-checkpoint", str(run / "checkpoints" / "best.pt"), "--out", str(tmp_path / "b.safetensors")]) == 0
    assert read_checkpoint(tmp_path / "b.safetensors").framework == "torch"
    assert main(["convert-checkpoint", str(run / "checkpoints" / "best.pt")]) == 2
    assert "already exists" in capsys.readouterr().err


def _torch_tree(tree):
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree)
    if isinstance(tree, dict):
        return {k: _torch_tree(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_torch_tree(v) for v in tree)
    return tree


def test_convert_checkpoint_of_an_old_tensorflow_pickle(tf_run, tmp_path, parquet, capsys):
    run = copy_run(tf_run, tmp_path)
    new = read_checkpoint(run / "checkpoints" / "best", "tensorflow")
    with open(run / "checkpoints" / "best.pkl", "wb") as handle:
        pickle.dump({"format": "islr-tensorflow-1", "state": new.state, "extra": new.extra}, handle)
    (run / "checkpoints" / "best.safetensors").unlink()
    assert main(["convert-checkpoint", str(run / "checkpoints" / "best.pkl")]) == 0
    converted = read_checkpoint(run / "checkpoints" / "best.safetensors", "tensorflow")
    for mine, theirs in zip(converted.state["model"], new.state["model"], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    capsys.readouterr()
    assert main(["predict", str(run), str(parquet)]) == 0


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "random bytes", "bit flip", "empty"])
def test_damaged_last_checkpoint_on_resume_is_a_clear_error(torch_run, tmp_path, capsys, damage):
    """Refused with the file named (no silent fall-back to best, which may be epochs older)."""
    run = copy_run(torch_run, tmp_path)
    last = run / "checkpoints" / "last.safetensors"
    data = last.read_bytes()
    if damage == "truncated":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "random bytes":
        last.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "bit flip":
        flipped = bytearray(data)
        flipped[-10] ^= 0x01  # inside the last tensor's data: only the checksum can tell
        last.write_bytes(bytes(flipped))
    else:
        last.write_bytes(b"")
    line = refused(["train", "--resume", run], last, tmp_path / "marker", capsys)
    assert "not a valid islr checkpoint" in line
    assert "best.safetensors" in line  # says how to resume from the best checkpoint instead
    if damage == "bit flip":
        assert "checksum" in line


def test_a_failed_checkpoint_write_keeps_the_previous_file_and_leaves_no_temp(torch_run, tmp_path, capsys, monkeypatch):
    import islr.checkpoint_format as fmt

    run = copy_run(torch_run, tmp_path)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}

    def disk_full(path, tensors, metadata):
        with open(path, "wb") as handle:
            handle.write(b"\0" * 4096)  # part of it reached the disk, then the disk was full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fmt, "_write_file", disk_full)
    code = main(["train", "--resume", str(run), "--train.epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0]
    assert str(run / "checkpoints") in errors[0]
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert after == before  # best and last unchanged, no temporary file left behind


def test_a_failed_save_through_the_backend_raises_write_error(torch_run, tmp_path, monkeypatch):
    import islr.checkpoint_format as fmt
    from islr.inference.predictor import RunPredictor

    run = copy_run(torch_run, tmp_path)
    backend = RunPredictor(run, "last").backend
    last = run / "checkpoints" / "last.safetensors"
    data = last.read_bytes()
    monkeypatch.setattr(fmt, "_write_file", lambda path, tensors, meta: (path.write_bytes(b"x" * 10), _enospc())[1])
    with pytest.raises(WriteError, match="no space left on device") as info:
        backend.save_checkpoint(run / "checkpoints" / "last", {"epoch": 0})
    assert info.value.path == str(last)
    assert last.read_bytes() == data and sorted(p.name for p in last.parent.iterdir()) == ["best.safetensors", "last.safetensors"]


def _enospc():
    raise OSError(errno.ENOSPC, "No space left on device")


# -- non-finite loss ------------------------------------------------------------------------------
def _poisoned_batches(n: int, bad: int, features: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n):
        x = rng.normal(size=(4, 6, features)).astype(np.float32)
        if i == bad:
            x[:] = np.nan
        batches.append({"x": x, "mask": np.ones((4, 6), bool), "y": rng.integers(0, 3, 4).astype(np.int64)})
    return batches


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
@pytest.mark.parametrize("check_every", [1, 4])
def test_non_finite_loss_names_the_first_bad_batch(synth_dir, tmp_path, framework, check_every):
    from islr.backends import get_backend

    cfg = tiny_config(synth_dir, tmp_path, framework=framework)
    backend = get_backend(framework)
    backend.setup(cfg, 10, 3, 8)
    backend.check_every = check_every  # 4: the accelerator path, reading losses 4 batches at a time
    seen = []
    with pytest.raises(TrainingError) as info:
        backend.train_epoch(_poisoned_batches(8, bad=5, features=10), 2, lambda i, logs: seen.append(i))
    assert (info.value.epoch, info.value.batch) == (2, 5)
    assert "epoch 3 at batch 5" in str(info.value) and "nan" in str(info.value)
    assert seen == [0, 1, 2, 3, 4]  # callbacks saw every good batch and nothing after the bad one


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_a_diverging_resume_stops_with_the_checkpoints_unchanged(torch_run, tf_run, tmp_path, capsys, framework):
    run = copy_run(torch_run if framework == "torch" else tf_run, tmp_path)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    code = main(["train", "--resume", str(run), "--train.epochs", "2", "--train.lr", "1e30", "--train.warmup_epochs", "0"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "the training loss became" in errors[0] and "in epoch 2 at batch" in errors[0]
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before


# -- resume with RAdam + Lookahead ------------------------------------------------------------------
def test_radam_lookahead_resume_equals_the_uninterrupted_run(synth_dir, tmp_path):
    from islr.backends.torch_backend import Lookahead
    from islr.training import pipeline

    # Batch 12: 6 steps an epoch, so Lookahead's every-5-steps sync falls inside epochs, after the resume.
    overrides = {"train.epochs": 3, "train.optimizer": "radam_lookahead", "train.batch_size": 12,
                 "train.warmup_epochs": 0.5, "model.params": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32,
                                                              "num_layers": 1, "dropout": 0.2}}
    straight = pipeline.train(tiny_config(synth_dir, tmp_path / "cache", **overrides), tmp_path / "a")

    from tiny_run import StopAfter

    cfg = tiny_config(synth_dir, tmp_path / "cache", **overrides)
    pipeline.train(cfg, tmp_path / "b", callbacks=(StopAfter(2),))
    lrs = []

    class Spy:
        def on_epoch_end(self, trainer, epoch, logs):
            opt = trainer.backend.optimizer
            assert isinstance(opt, Lookahead) and opt.param_groups is opt.inner.param_groups
            lrs.append((logs["lr"], [g["lr"] for g in opt.inner.param_groups]))

    resumed = pipeline.train(cfg, tmp_path / "b", resume=True, callbacks=(Spy(),))
    assert lrs and all(group_lrs == [lr, lr] for lr, group_lrs in lrs)  # the schedule reaches the live groups
    assert [round(r["loss"], 6) for r in resumed.history] == [round(r["loss"], 6) for r in straight.history]
    wa = read_checkpoint(tmp_path / "a" / "checkpoints" / "last", "torch").state
    wb = read_checkpoint(tmp_path / "b" / "checkpoints" / "last", "torch").state
    for key in wa["model"]:
        np.testing.assert_allclose(wb["model"][key], wa["model"][key], atol=1e-6, err_msg=key)
    assert wa["optimizer"]["steps"] == wb["optimizer"]["steps"] == 18


def test_only_the_current_cuda_rng_state_is_saved(synth_dir, tmp_path):
    from islr.backends import get_backend

    backend = get_backend("torch")
    backend.setup(tiny_config(synth_dir, tmp_path, **{"train.device": "cpu"}), 10, 3, 1)
    state = backend.state()
    assert state["cuda_rng"] is None  # a CPU run touches no CUDA device, whatever is visible
    backend.save_checkpoint(tmp_path / "c", {})
    assert read_checkpoint(tmp_path / "c", "torch").state["cuda_rng"] is None
    backend.load_checkpoint(tmp_path / "c")


def test_unexpected_content_in_a_well_formed_checkpoint_is_refused(synth_dir, tmp_path):
    """A file that parses but holds the wrong things (names, shapes, kinds) is refused by name."""
    import json

    from safetensors.numpy import save

    from islr.backends import get_backend
    from islr.checkpoint_format import encode

    backend = get_backend("torch")
    backend.setup(tiny_config(synth_dir, tmp_path, **{"train.device": "cpu"}), 10, 3, 1)
    backend.save_checkpoint(tmp_path / "good", {"epoch": 0})
    good = read_checkpoint(tmp_path / "good", "torch")
    bad_shape = dict(good.state, model={k: np.zeros(3, np.float32) for k in good.state["model"]})
    (tmp_path / "shape.safetensors").write_bytes(encode("torch", bad_shape, {}))
    with pytest.raises(ModelError, match=r"shape\.safetensors: does not fit"):
        backend.load_checkpoint(tmp_path / "shape")
    (tmp_path / "keys.safetensors").write_bytes(encode("torch", {**good.state, "hook": "os.system"}, {}))
    with pytest.raises(ModelError, match=r"keys\.safetensors: .*unexpected \['hook'\]"):
        backend.load_checkpoint(tmp_path / "keys")
    (tmp_path / "epoch.safetensors").write_bytes(encode("torch", good.state, {"epoch": "1; rm -rf"}))
    with pytest.raises(ModelError, match=r"extra/epoch: expected int"):
        backend.load_checkpoint(tmp_path / "epoch")
    # A hand-made header: an unknown node kind, and a tensor the skeleton does not mention.
    meta = {"format": "islr-checkpoint", "version": "1", "framework": "torch"}
    tree = {"$dict": [["state", {"$pickle": "gASV..."}], ["extra", {"$dict": []}]]}
    (tmp_path / "kind.safetensors").write_bytes(save({}, metadata={**meta, "tree": json.dumps(tree), "sha256": _sha({})}))
    with pytest.raises(ModelError, match=r"unknown node kind '\$pickle'"):
        read_checkpoint(tmp_path / "kind")
    stray = {"w": np.zeros(2, np.float32)}
    tree = {"$dict": [["state", {"$dict": []}], ["extra", {"$dict": []}]]}
    (tmp_path / "stray.safetensors").write_bytes(save(stray, metadata={**meta, "tree": json.dumps(tree), "sha256": _sha(stray)}))
    with pytest.raises(ModelError, match="no part of the checkpoint refers to: w"):
        read_checkpoint(tmp_path / "stray")


def _sha(tensors):
    from islr.checkpoint_format import _digest

    return _digest(tensors)


@pytest.mark.parametrize("content", ["pickle", "not a list", "empty"])
def test_ensemble_file_with_a_payload_or_wrong_shape_is_refused(torch_run, tmp_path, parquet, capsys, content):
    from islr.inference.ensemble import ENSEMBLE_FILE, write_ensemble

    marker = tmp_path / "pwned"
    ensemble = write_ensemble(tmp_path / "ens", [copy_run(torch_run, tmp_path)])
    target = ensemble / ENSEMBLE_FILE
    if content == "pickle":
        plant(target, "pickle", marker)
    else:
        target.write_text('{"members": "../run"}' if content == "not a list" else '{"members": []}')
    refused(["predict", ensemble, parquet], target, marker, capsys)


def test_model_stats_file_with_a_payload_is_refused(torch_run, tmp_path, capsys):
    from islr.evaluation.report import STATS_FILE

    marker = tmp_path / "pwned"
    run = copy_run(torch_run, tmp_path)
    plant(run / STATS_FILE, "pickle", marker)
    refused(["compare", run], run / STATS_FILE, marker, capsys)
    (run / STATS_FILE).write_text('{"parameters": 1, "os_system": "touch"}')
    refused(["compare", run], run / STATS_FILE, marker, capsys)
