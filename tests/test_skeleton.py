"""One skeleton: the hand and pose edges of islr.data.landmarks are what every viewer draws."""

from __future__ import annotations

import ast
import json
import urllib.request

import numpy as np

from conftest import ROOT
from islr.data.landmarks import (
    FULL_MIRROR,
    HAND_COUNT,
    HAND_EDGES,
    LEFT_HAND_START,
    POSE_EDGES,
    POSE_START,
    RIGHT_HAND_START,
    ROWS_PER_FRAME,
)


def test_hand_edges_connect_all_21_points_once_each():
    assert len(set(HAND_EDGES)) == len(HAND_EDGES) == 21
    assert {p for edge in HAND_EDGES for p in edge} == set(range(HAND_COUNT))
    reached, frontier = {0}, [0]  # every point is reachable from the wrist
    while frontier:
        point = frontier.pop()
        for a, b in HAND_EDGES:
            for x, y in ((a, b), (b, a)):
                if x == point and y not in reached:
                    reached.add(y)
                    frontier.append(y)
    assert reached == set(range(HAND_COUNT))


def test_pose_edges_are_the_upper_body_and_left_right_symmetric():
    from islr.serve.session import POSE_DRAWN

    points = {p for edge in POSE_EDGES for p in edge}
    assert points == set(range(11, 25)) and max(points) < POSE_DRAWN  # the page gets pose points 0-24
    flipped = {tuple(sorted(int(FULL_MIRROR[POSE_START + p]) - POSE_START for p in edge)) for edge in POSE_EDGES}
    assert flipped == {tuple(sorted(edge)) for edge in POSE_EDGES}
    assert (11, 12) in POSE_EDGES and (11, 13) in POSE_EDGES and (12, 14) in POSE_EDGES


def test_plots_and_the_camera_overlay_import_the_one_definition():
    from islr.inference import live
    from islr.viz import plots

    assert plots.HAND_EDGES is HAND_EDGES and plots.POSE_EDGES is POSE_EDGES
    assert live.HAND_EDGES is HAND_EDGES and live.POSE_EDGES is POSE_EDGES


def _pair_lists(tree: ast.AST) -> list[int]:
    """Line numbers of tuple/list literals of at least 8 pairs of ints (what an edge list looks like)."""
    def is_pair(node: ast.AST) -> bool:
        return isinstance(node, ast.Tuple | ast.List) and len(node.elts) == 2 and all(
            isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts)

    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Tuple | ast.List) and len(node.elts) >= 8 and all(map(is_pair, node.elts))]


def test_no_other_module_keeps_its_own_edge_list():
    assert _pair_lists(ast.parse("E = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8))")) == [1]
    found = {}
    for path in (ROOT / "src" / "islr").rglob("*.py"):
        if path.name != "landmarks.py":
            lines = _pair_lists(ast.parse(path.read_text()))
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert not found, f"edge-like lists outside islr.data.landmarks: {found}"
    scripts = "\n".join(p.read_text() for p in (ROOT / "src" / "islr" / "serve" / "static").glob("*.js"))
    assert "cfg.hand_bones" in scripts and "cfg.pose_bones" in scripts  # the page draws what the server sends


def test_camera_overlay_draws_exactly_the_shared_edges(monkeypatch):
    import cv2

    from islr.inference.live import draw_overlay

    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0.05, 0.95, (ROWS_PER_FRAME, 3)).astype(np.float32)
    drawn = []
    monkeypatch.setattr(cv2, "line", lambda image, a, b, *args, **kw: drawn.append((a, b)))
    draw_overlay(np.zeros((400, 400, 3), np.uint8), landmarks, None, 0.0)

    def pixel(row: int) -> tuple[int, int]:
        return int(landmarks[row, 0] * 400), int(landmarks[row, 1] * 400)

    expected = [(pixel(POSE_START + a), pixel(POSE_START + b)) for a, b in POSE_EDGES]
    for start in (LEFT_HAND_START, RIGHT_HAND_START):
        expected += [(pixel(start + a), pixel(start + b)) for a, b in HAND_EDGES]
    assert sorted(drawn) == sorted(expected)


def test_the_served_page_gets_the_shared_edges():
    from test_serve import ConstantPredictor, app_server

    with app_server(ConstantPredictor(), workers=1) as url, urllib.request.urlopen(url + "/api/config", timeout=30) as r:
        config = json.loads(r.read())
    assert config["hand_bones"] == [list(edge) for edge in HAND_EDGES]
    assert config["pose_bones"] == [list(edge) for edge in POSE_EDGES]
