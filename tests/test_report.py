"""The HTML evaluation report: hand-checked helpers, a structural check of a real report, a browser screenshot."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config  # noqa: E402
from islr.evaluation.report import (  # noqa: E402
    build_report,
    checkpoint_mb,
    confused_pairs,
    most_confused_signs,
    read_model_stats,
)

torch.set_num_threads(1)
CHROMIUM = Path("/usr/bin/chromium")


class Collector(HTMLParser):
    """Every tag with its attributes, and the visible text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    from islr.training.pipeline import train

    root = tmp_path_factory.mktemp("report")
    result = train(tiny_config(synth_dir, root / "cache", **{"train.epochs": 2}), root / "run")
    return result


def test_most_confused_and_pairs_by_hand():
    # rows: true, columns: predicted
    cm = np.array([[5, 3, 0, 0],
                   [1, 4, 0, 0],
                   [0, 0, 6, 0],
                   [2, 0, 0, 1]])
    names = ["a", "b", "c", "d"]
    # errors involving a: 3 + 1 + 2 = 6; b: 3 + 1 = 4; d: 2; c: none
    assert most_confused_signs(cm) == [0, 1, 3]
    assert most_confused_signs(cm, k=2) == [0, 1]
    assert confused_pairs(cm, names) == [("a", "b", 3, 3 / 8, 1), ("d", "a", 2, 2 / 3, 0), ("b", "a", 1, 1 / 5, 3)]
    assert most_confused_signs(np.diag([3, 4])) == [] and confused_pairs(np.diag([3, 4]), ["x", "y"]) == []


def test_report_is_one_self_contained_page(trained, tmp_path):
    out = tmp_path / "report.html"
    result = build_report(trained.run_dir, out, examples=2)
    text = out.read_text()
    page = Collector()
    page.feed(text)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == result.images
    pngs = [s for s in images if s.startswith("data:image/png;base64,")]
    gifs = [s for s in images if s.startswith("data:image/gif;base64,")]
    wrong = result.metrics["accuracy"] < 1.0
    # curves, per-sign accuracy, and a confusion matrix plus 2 animated mistakes when there are mistakes
    assert len(pngs) == (3 if wrong else 2) and len(gifs) == (2 if wrong else 0)
    for src in images:
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert picture.size[0] > 100
    for src in gifs:
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).n_frames > 1
    # nothing is loaded from outside the file
    assert not [a for t, a in page.tags if t == "link" or (t == "script" and "src" in a)
                or (t == "img" and not a["src"].startswith("data:"))]

    visible = " ".join(page.text)
    m = result.metrics
    assert m["n"] == 24 and m["accuracy"] == pytest.approx(trained.test_metrics["accuracy"])
    for shown in (f"{m['accuracy']:.1%}", f"{m['top5']:.1%}", f"{m['macro_f1']:.3f}", "signer-independent",
                  "Most-confused pairs", f"{trained.num_parameters:,}", "d_model: 32", "latency per sequence"):
        assert shown in visible, shown
    stats = read_model_stats(trained.run_dir)
    assert stats == result.stats and stats.parameters == trained.num_parameters
    assert stats.threads == 1 and stats.latency_ms > 0
    assert stats.checkpoint_mb == pytest.approx(checkpoint_mb(trained.run_dir), abs=1e-3)
    assert stats.checkpoint_mb == pytest.approx((Path(trained.run_dir) / "checkpoints" / "best.safetensors").stat().st_size / 1e6, abs=1e-3)


def test_signer_dependent_split_is_named(synth_dir, tmp_path):
    from islr.training.pipeline import train

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 1, "data.split": "random_stratified"})
    run = train(cfg, tmp_path / "run").run_dir
    result = build_report(run, tmp_path / "r.html", examples=0)
    visible = (tmp_path / "r.html").read_text()
    assert "signer-dependent" in visible and "(signer-independent)" not in visible
    assert json.loads((Path(run) / "split.json").read_text())["split"].startswith("random")
    assert result.notes == ["no mistake GIFs: none requested (examples=0)"]


def test_cli_report(trained, tmp_path, capsys):
    from islr.cli import main

    assert main(["report", str(trained.run_dir), "--out", str(tmp_path / "cli.html"), "--examples", "0"]) == 0
    assert "embedded images" in capsys.readouterr().out and (tmp_path / "cli.html").stat().st_size > 10_000


def test_report_renders_in_chromium(trained, tmp_path):
    out = tmp_path / "report.html"
    build_report(trained.run_dir, out, examples=1)
    shot = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2400", out.resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    picture = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert picture.shape == (2400, 1200, 3)

    def share(colour, tolerance=40):
        return (np.abs(picture - np.array(colour)).sum(axis=-1) < tolerance).mean()

    # Page background and white section cards, dark text, and the embedded plots decoded and drawn:
    # matplotlib's first line colour (training curves) and, with mistakes, the confusion matrix's dark blue.
    assert share((245, 246, 248), 4) > 0.05 and share((255, 255, 255), 1) > 0.3
    assert (picture.sum(axis=-1) < 300).mean() > 0.005
    assert share((31, 119, 180)) * picture[..., 0].size > 500
    assert len(np.unique(picture.reshape(-1, 3)[::7], axis=0)) > 200
