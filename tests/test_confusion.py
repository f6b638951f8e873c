"""Confusion summaries at 250 signs: hand-checked per-sign scores and pairs, readable figures,
a sortable per-sign table (clicked in headless Chromium) and the evaluation CSV/PNG."""

from __future__ import annotations

import csv
import io
import math
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from islr.evaluation.confusion import confusion_png, pair_classes, sign_rows
from islr.evaluation.report import confusion_sections
from islr.metrics import confusion_matrix
from islr.viz.htmlpage import Page

CHROMIUM = "/usr/bin/chromium"


def fabricated(n: int = 250, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels and predictions of ``n`` signs: 35% wrong, mostly towards one partner sign each."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n), rng.integers(8, 30, n))
    predictions = labels.copy()
    wrong = rng.random(len(labels)) < 0.35
    partner = (np.arange(n) + rng.integers(1, 4, n)) % n
    predictions[wrong] = np.where(rng.random(wrong.sum()) < 0.6, partner[labels[wrong]],
                                  rng.integers(0, n, wrong.sum()))
    return labels, predictions, [f"sign{i:03d}" for i in range(n)]


class Cells(HTMLParser):
    """Text of every table's cells, per table and row, and the tags seen."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[tuple[str, dict]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_sign_rows_and_pairs_by_hand():
    cm = np.array([[5, 3, 0, 0],
                   [1, 4, 0, 0],
                   [0, 0, 6, 0],
                   [2, 0, 0, 1]])
    rows = sign_rows(cm, ["a", "b", "c", "d"])
    a, b, c, d = rows
    assert (a.support, a.correct, a.recall, a.precision) == (8, 5, 5 / 8, 5 / 8)
    assert a.f1 == pytest.approx(2 * 5 / (8 + 8)) and (a.confused_with, a.confused_count) == ("b", 3)
    assert (b.recall, b.precision, b.confused_with, b.confused_count) == (4 / 5, 4 / 7, "a", 1)
    assert (c.recall, c.precision, c.confused_with, c.confused_count) == (1.0, 1.0, "", 0)
    assert (d.recall, d.precision, d.confused_with) == (1 / 3, 1.0, "a")
    # a sign never predicted and without samples: undefined rates
    empty = sign_rows(np.array([[2, 0], [0, 0]]), ["x", "y"])[1]
    assert math.isnan(empty.recall) and math.isnan(empty.precision) and math.isnan(empty.f1)
    # largest pairs: a->b (3), d->a (2), b->a (1); their signs in turn
    assert pair_classes(cm) == [0, 1, 3]
    assert pair_classes(cm, k=1) == [0]
    assert pair_classes(np.diag([3, 4])) == []


def test_confusion_png_has_labels_up_to_30_signs_and_two_panels_beyond():
    labels, predictions, names = fabricated(12)
    small = Image.open(io.BytesIO(confusion_png(confusion_matrix(labels, predictions, 12), names)))
    labels, predictions, names = fabricated(250)
    cm = confusion_matrix(labels, predictions, 250)
    big = Image.open(io.BytesIO(confusion_png(cm, names)))
    # the small one is square-ish; the large one puts the heat map beside the 25-sign sub-matrix
    assert 0.8 < small.size[0] / small.size[1] < 1.4
    assert big.size[0] > 1.6 * big.size[1] and 900 < big.size[1] < 1600
    assert len(pair_classes(cm)) == 25


def page_of(n: int) -> tuple[str, np.ndarray, list[str]]:
    labels, predictions, names = fabricated(n)
    cm = confusion_matrix(labels, predictions, n)
    page = Page("fabricated")
    images = confusion_sections(page, cm, names)
    assert images == (3 if n > 30 else 2)
    return page.render(), cm, names


def test_report_sections_at_250_signs():
    html, cm, names = page_of(250)
    parsed = Cells()
    parsed.feed(html)
    per_sign, pairs = parsed.tables
    assert per_sign[0][:5] == ["sign", "accuracy (recall)", "precision", "F1", "samples"]
    assert len(per_sign) == 251 and {r[0] for r in per_sign[1:]} == set(names)
    rows = {r.sign: r for r in sign_rows(cm, names)}
    worst = per_sign[1]
    assert worst[0] == min(rows.values(), key=lambda r: (r.recall, r.sign)).sign
    assert worst[1] == f"{rows[worst[0]].recall:.1%}" and int(worst[4]) == rows[worst[0]].support
    assert worst[5] == f"{rows[worst[0]].confused_with} ({rows[worst[0]].confused_count})"
    # 20 pairs, largest first, with counts and rates that match the matrix
    off = cm - np.diag(np.diag(cm))
    assert len(pairs) == 21 and int(pairs[1][2]) == off.max()
    t, p = names.index(pairs[1][0]), names.index(pairs[1][1])
    assert off[t, p] == off.max() and pairs[1][3] == f"{off[t, p] / cm[t].sum():.0%}"
    assert [int(r[2]) for r in pairs[1:]] == sorted((int(r[2]) for r in pairs[1:]), reverse=True)
    # self-contained: inline script and data: images only
    scripts = [a for t, a in parsed.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0]
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in parsed.tags if t == "img")
    assert sum(1 for t, a in parsed.tags if t == "table" and a.get("class") == "sortable") == 2


def test_few_signs_get_one_labelled_matrix():
    html, _, _ = page_of(12)
    assert "Confusion matrix</h2>" in html and "too many to label" not in html


def test_clicking_a_header_sorts_the_table_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    html, cm, names = page_of(250)
    path = tmp_path / "page.html"
    path.write_text(html)
    column = "([t, i]) => Array.from(document.querySelectorAll('table.sortable')[t].tBodies[0].rows)" \
             ".map(r => r.cells[i].textContent)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri())
            header = "table.sortable >> nth=0 >> th >> nth={}"
            page.click(header.format(4))  # samples, ascending
            samples = [int(v) for v in page.evaluate(column, [0, 4])]
            assert samples == sorted(cm.sum(axis=1).tolist())
            page.click(header.format(4))  # again: descending
            assert [int(v) for v in page.evaluate(column, [0, 4])] == sorted(samples, reverse=True)
            page.click(header.format(0))
            assert page.evaluate(column, [0, 0]) == sorted(names)
            page.click(header.format(2))  # precision: numeric, not text order ('9.0%' < '10.0%')
            precision = [float(v.rstrip("%")) for v in page.evaluate(column, [0, 2]) if v != "–"]
            assert precision == sorted(precision) and len(precision) > 200
            page.click("table.sortable >> nth=1 >> th >> nth=2")  # pairs by count
            counts = [int(v) for v in page.evaluate(column, [1, 2])]
            assert counts == sorted(counts)
            assert errors == []
        finally:
            browser.close()


def test_evaluation_outputs_at_250_signs(tmp_path):
    from islr.evaluation.evaluate import _write_outputs

    labels, predictions, names = fabricated(250)
    logits = np.eye(250, dtype=np.float32)[predictions]
    paths = _write_outputs(tmp_path, {"accuracy": 0.65}, logits, labels, names)
    with open(paths["per_sign"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["sign", "accuracy", "support", "precision", "f1", "most_confused_with",
                             "most_confused_count"]
    assert len(rows) == 250 and [float(r["accuracy"]) for r in rows] == sorted(float(r["accuracy"]) for r in rows)
    by_sign = {r.sign: r for r in sign_rows(confusion_matrix(labels, predictions, 250), names)}
    first = rows[0]
    expected = by_sign[first["sign"]]
    assert float(first["precision"]) == pytest.approx(expected.precision, abs=1e-4)
    assert (first["most_confused_with"], int(first["most_confused_count"])) == (expected.confused_with,
                                                                                 expected.confused_count)
    picture = Image.open(paths["confusion"])
    assert picture.size[0] > 1.6 * picture.size[1]
