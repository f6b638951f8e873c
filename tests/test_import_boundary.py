"""Import layering, checked in a fresh interpreter: framework-free modules load neither torch nor
tensorflow; serving and export (inference, serve, export) load nothing of islr.training."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FREE = [
    "islr", "islr.cli", "islr.config", "islr.errors", "islr.data.landmarks", "islr.data.kaggle",
    "islr.data.preprocess", "islr.data.cache", "islr.data.augment", "islr.data.splits",
    "islr.data.synthetic", "islr.data.dataset", "islr.data.datamodule", "islr.data.cleaning",
    "islr.data.validate", "islr.models.registry", "islr.backends", "islr.backends.base",
    "islr.training.trainer", "islr.training.callbacks", "islr.metrics", "islr.run_dir",
    "islr.training.pipeline", "islr.training.tensorboard", "islr.evaluation.evaluate", "islr.viz.plots",
    "islr.evaluation.cv", "islr.tuning.search", "islr.evaluation.report", "islr.evaluation.compare", "islr.inference.predictor", "islr.inference.ensemble",
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


# -- serving and export stand on shared ground, never on the trainer -----------------------------
SERVING = ("inference", "serve", "export")


def _serving_modules() -> list[str]:
    import pkgutil

    import islr

    root = Path(islr.__file__).parent
    names = []
    for package in SERVING:
        names.append(f"islr.{package}")
        names += [f"islr.{package}.{m.name}" for m in pkgutil.iter_modules([str(root / package)])]
    return names


def _imported_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level:
        return [f"{node.module}.{a.name}" for a in node.names]
    return []


def test_serving_and_export_load_no_training_module():
    names = _serving_modules()
    assert {"islr.inference.predictor", "islr.serve.app", "islr.export.onnx_export"} <= set(names)
    code = "\n".join(f"import {name}" for name in names)
    probe = code + "\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[:2] == ['islr', 'training']))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_serving_and_export_name_no_training_module_even_lazily():
    import islr

    root = Path(islr.__file__).parent
    for package in SERVING:
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                hits = [n for n in _imported_names(node) if n.split(".")[:2] == ["islr", "training"]]
                assert not hits, f"{path}: imports {hits}"


def test_the_lazy_import_check_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from islr.training.pipeline import train\n    from islr import training\n")
    names = [n for node in ast.walk(tree) for n in _imported_names(node)]
    assert names == ["islr.training.pipeline.train", "islr.training"]
