"""``islr tune --storage postgresql://...``: worker processes share one study on a real PostgreSQL.

The fixture starts a throw-away server from the PostgreSQL 15 binaries (as the ``postgres``
user; the tests run as root, as in CI) in a temporary folder and stops it afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from conftest import tiny_config
from islr.cli import main
from islr.config import save_config
from islr.tuning.search import make_storage, sqlalchemy_url

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SPACE = """
params:
  train.lr: {type: float, low: 1e-3, high: 1.0e-2, log: true}
  model.params.dropout: {type: float, low: 0.0, high: 0.3}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: str) -> None:
    done = subprocess.run(["su", "postgres", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql://islr@127.0.0.1:PORT/postgres`` of a server that lives for this module."""
    root = Path(tempfile.mkdtemp(prefix="islr-pg-"))  # postgres must reach it: not under pytest's 0700 tmp
    data, port = root / "data", _free_port()
    shutil.chown(root, "postgres", "postgres")
    _as_postgres(f"{PG_BIN / 'initdb'} -D {data} -A trust -U islr")
    _as_postgres(f"{PG_BIN / 'pg_ctl'} -D {data} -w -l {root / 'log'} "
                 f"-o '-p {port} -k {root} -c listen_addresses=127.0.0.1' start")
    try:
        yield f"postgresql://islr@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(f"{PG_BIN / 'pg_ctl'} -D {data} -w -m fast stop")
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_urls_use_psycopg3() -> None:
    assert sqlalchemy_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_two_worker_processes_share_one_study(postgres_url, synth_dir, tmp_path, capsys) -> None:
    config = tmp_path / "base.yaml"
    save_config(tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 1}), config)
    (tmp_path / "space.yaml").write_text(SPACE)
    argv = ["tune", "--framework", "torch", "--model", "transformer", "--config", str(config),
            "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "out"), "--pruner", "none",
            "--data-dir", str(synth_dir), "--storage", postgres_url, "--study", "shared"]
    assert main([*argv, "--jobs", "2", "--trials", "2"]) == 0
    assert postgres_url in capsys.readouterr().out
    study = optuna.load_study(study_name="shared", storage=make_storage(postgres_url))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # one trial from each process
    assert not (tmp_path / "out" / "study.db").exists()  # nothing went to the SQLite default
    # The same command again (here in this process) continues the study on the server.
    assert main([*argv, "--trials", "3"]) == 0
    study = optuna.load_study(study_name="shared", storage=make_storage(postgres_url))
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    assert len({t.user_attrs["worker"] for t in study.get_trials()}) == 3
