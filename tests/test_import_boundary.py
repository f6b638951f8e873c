"""Framework-free modules import neither torch nor tensorflow (checked in a fresh interpreter)."""

import subprocess
import sys

import pytest

FREE = [
    "islr", "islr.cli", "islr.config", "islr.errors", "islr.data.landmarks", "islr.data.kaggle",
    "islr.data.preprocess", "islr.data.cache", "islr.data.augment", "islr.data.splits",
    "islr.data.synthetic", "islr.data.dataset", "islr.data.datamodule", "islr.data.cleaning",
    "islr.data.validate", "islr.models.registry", "islr.backends", "islr.backends.base",
    "islr.training.trainer", "islr.training.callbacks", "islr.metrics", "islr.run_dir",
    "islr.training.pipeline", "islr.training.tensorboard", "islr.evaluate", "islr.plots",
    "islr.cv", "islr.tune", "islr.report", "islr.compare", "islr.inference.predictor", "islr.inference.ensemble",
    "islr.inference.live", "islr.inference.exported", "islr.export", "islr.checkpoint_format",
    "islr.commands.convert_checkpoint",
]


def loaded_frameworks(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras'}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(eval(out.strip().splitlines()[-1]))


def test_framework_free_modules_import_no_framework():
    code = "\n".join(f"import {name}" for name in FREE) + "\nfrom islr.cli import build_parser\nbuild_parser()"
    assert loaded_frameworks(code) == set()


@pytest.mark.parametrize(("framework", "other"), [("torch", "tensorflow"), ("tensorflow", "torch")])
def test_each_framework_path_leaves_the_other_alone(framework, other):
    code = f"from islr.models.registry import list_models\nfrom islr.backends import get_backend\nlist_models('{framework}')\nget_backend('{framework}')"
    loaded = loaded_frameworks(code)
    assert other not in loaded
    assert ("torch" if framework == "torch" else "tensorflow") in loaded
