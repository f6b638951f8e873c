"""Shared fixtures: the genuine Kaggle files (skipped when absent) and small temporary data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ISLR_SHARED_DATA", ROOT.parent / "shared" / "data"))
REAL_ASL = SHARED_DATA / "asl-signs"
REAL_FULL_CSV = SHARED_DATA / "asl-signs-full-train.csv"
REAL_VIDEOS = SHARED_DATA / "videos"

# Tests must not fight over the 2 cores of the CI machine.
FAIL_ON_SKIP = os.environ.get("ISLR_FAIL_ON_SKIP", "") not in ("", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The genuine asl-signs files (522 sequences); the test is skipped when they are absent."""
    if not (REAL_ASL / "train.csv").exists():
        pytest.skip(f"genuine Kaggle files not found at {REAL_ASL}")
    return REAL_ASL


@pytest.fixture(scope="session")
def real_full_csv() -> Path:
    """The full competition train.csv metadata (94,477 rows, no landmark files)."""
    if not REAL_FULL_CSV.exists():
        pytest.skip(f"full train.csv metadata not found at {REAL_FULL_CSV}")
    return REAL_FULL_CSV


@pytest.fixture(scope="session")
def real_videos_dir() -> Path:
    """The four real signing clips."""
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"real videos not found at {REAL_VIDEOS}")
    return REAL_VIDEOS


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small learnable synthetic dataset in Kaggle layout (6 signs, 5 signers, 4 takes each)."""
    from islr.data.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, signs=6, participants=5, per_sign=4, seed=0, min_frames=10, max_frames=32)
    return out


@pytest.fixture(scope="session", params=["synthetic", pytest.param("genuine", marks=pytest.mark.real)])
def kaggle_dir(request, synth_dir) -> Path:
    """Kaggle-layout files, twice: the synthetic set (always runs) and the genuine one (marked real)."""
    return synth_dir if request.param == "synthetic" else request.getfixturevalue("real_data_dir")


def tiny_config(data_dir: Path, cache_dir: Path, framework: str = "torch", **overrides):
    """An ExperimentConfig for fast tests: small transformer, 2 epochs, no progress bars."""
    from islr.config import load_config

    items = {
        "data.data_dir": str(data_dir), "data.cache_dir": str(cache_dir), "data.workers": 1,
        "data.valid_size": 0.2, "data.test_size": 0.2,
        "train.framework": framework, "train.epochs": 2, "train.batch_size": 16, "train.progress": False,
        "train.tensorboard": False, "train.lr": 3e-3, "train.seed": 0,
        "model.name": "transformer",
        "model.params": {"d_model": 32, "num_heads": 2, "dim_feedforward": 64, "num_layers": 1},
    }
    items.update(overrides)
    return load_config(None, [f"{k}={v}" if not isinstance(v, dict) else f"{k}={v!r}" for k, v in items.items()])


REAL_FIXTURES = frozenset({"real_data_dir", "real_full_csv", "real_videos_dir"})


def pytest_runtest_setup(item) -> None:
    """A test that asks for the genuine files must be marked ``real`` (``-m "not real"`` leaves it out)."""
    used = REAL_FIXTURES & set(getattr(item, "fixturenames", ()))
    if used and item.get_closest_marker("real") is None:
        pytest.fail(f"{item.nodeid} uses {sorted(used)} but is not marked @pytest.mark.real", pytrace=False)


def pytest_sessionfinish(session, exitstatus) -> None:
    """With ``ISLR_FAIL_ON_SKIP=1`` (set by ``.ci/run``) any skipped test fails the run."""
    if not FAIL_ON_SKIP:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(f"ISLR_FAIL_ON_SKIP: {len(skipped)} test(s) skipped; CI requires every test to run", red=True)
        session.exitstatus = 1
