"""TensorBoard's own loader reads back every scalar a training run logged, with its step and value,
and writing the events loads no deep-learning framework."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tiny_config
from islr.training.pipeline import train
from islr.training.tensorboard import scalar_logs, scalar_tag

torch.set_num_threads(1)

# The grouped tags, spelled out so that a renamed tag fails here; other keys keep their name.
GROUPED = {"loss": "loss/train", "val_loss": "loss/valid", "accuracy": "accuracy/train",
           "val_accuracy": "accuracy/valid", "val_top5": "top5/valid", "lr": "lr/train"}


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tags_and_what_is_logged():
    assert {k: scalar_tag(k) for k in GROUPED} == GROUPED
    assert scalar_tag("val_macro_f1") == "val_macro_f1" and scalar_tag("epoch_time") == "epoch_time"
    logged = scalar_logs({"loss": 1, "val_loss": math.nan, "flag": True, "name": "x", "lr": np.float64(0.5)})
    assert logged == {"loss/train": 1.0, "lr/train": 0.5}  # NaN, bools and text are left out


def test_tensorboard_reads_back_every_scalar_of_a_training_run(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 3, "train.tensorboard": True})
    train(cfg, tmp_path / "run")
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    events = read_events(tmp_path / "run" / "tensorboard")

    expected: dict[str, list[tuple[int, np.float32]]] = {}
    for row in history:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float) and not math.isnan(value):
                expected.setdefault(GROUPED.get(key, key), []).append((row["epoch"], np.float32(value)))
    assert set(GROUPED.values()) <= set(expected)  # loss, accuracy, top-5 and lr were in the history
    assert {"epoch_time", "samples_per_s", "val_macro_f1"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert got == [(step, float(value)) for step, value in points], tag  # exact at float32

    images = events.Images("confusion_matrix/valid")
    assert len(images) == 1 and images[0].step == 2
    png = Image.open(io.BytesIO(images[0].encoded_image_string))
    assert png.format == "PNG" and png.size == (images[0].width, images[0].height) and min(png.size) >= 320


WRITE_EVENTS = """
import sys
from islr.evaluation.confusion import confusion_png
from islr.training.tensorboard import TensorBoardLogger
import numpy as np
logger = TensorBoardLogger(sys.argv[1])
for step in range(4):
    logger.add_scalars(step, {"loss": 1.0 / (step + 1), "val_accuracy": 0.1 * step, "lr": 3e-3})
png = confusion_png(np.eye(3, dtype=int) * 5, ["a", "b", "c"])
logger.add_png(3, "confusion_matrix/valid", png)
logger.on_train_end(None, {})
print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras', 'jax'}))
"""


def test_writing_events_loads_no_framework(tmp_path):
    done = subprocess.run([sys.executable, "-c", WRITE_EVENTS, str(tmp_path)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    events = read_events(tmp_path)
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == [(s, float(np.float32(1 / (s + 1)))) for s in range(4)]
    assert [e.value for e in events.Scalars("accuracy/valid")] == [float(np.float32(0.1 * s)) for s in range(4)]
    assert [e.value for e in events.Scalars("lr/train")] == [float(np.float32(3e-3))] * 4
    assert events.Images("confusion_matrix/valid")[0].step == 3
