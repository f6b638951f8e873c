"""The documentation site: builds with --strict (no missing reference), covers every module and the seed's API."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = ROOT / "docs"
SEED = ROOT.parent / "shared" / "seed" / "000_c68bcba78dbdc8a6.txt"


@pytest.fixture(scope="module")
def seed_doc() -> str:
    """The seed project's documentation (beside the data, not in a clone); skipped when absent."""
    if not SEED.exists():
        pytest.skip(f"seed documentation not found at {SEED}")
    return SEED.read_text()


def test_site_builds_strict_without_warnings(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "WARNING" not in output, output[-3000:]
    mapping = (site / "seed-mapping" / "index.html").read_text()
    # cross-references became links into the API reference
    assert 'href="../api/data/#islr.data.augment.frame_dropout"' in mapping
    assert 'href="../api/models/#islr.models.torch.transformer.TransformerSequenceClassifier"' in mapping
    api = (site / "api" / "tune" / "index.html").read_text()
    assert "Read a search space" in api and 'id="islr.tuning.search.run_search"' in api
    assert not list(site.rglob("*.py"))  # the griffe extension is not published


def test_every_module_is_in_the_api_reference():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (islr(?:\.\w+)*)\s*$", page.read_text(), re.M))
    package = ROOT / "src" / "islr"
    top = {f"islr.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    top |= {f"islr.{p.name}" for p in package.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(name for name in top if name not in documented)
    assert not missing, f"add a '::: name' line to a page of docs/api/ for {missing}"


def seed_api_names(text: str) -> set[str]:
    """Functions, classes and config constants the seed's documentation lists."""
    calls = re.findall(r"^\s*`?(?:class )?((?:[a-z_]+\.)+[A-Za-z_]+)\(", text, re.M)
    calls += re.findall(r"`?(dl_utils\.[a-z_A-Z]+)\(", text)
    constants = re.findall(r"^\s*`?config\.([A-Z_]+) =", text, re.M)
    names = {c.rsplit(".", 1)[-1] for c in calls if not c.rsplit(".", 1)[-1].startswith("_")}
    return names | set(constants)


def test_seed_api_names_by_hand():
    text = "`augmentations.frame_dropout(frames)`\nclass trainer.Trainer(x)\n`config.BATCH_SIZE = 128`\n" \
           "Type`log_dict``dl_utils.to_PT_DataLoader(dataset)`\n  __init__(self)\n"
    assert seed_api_names(text) == {"frame_dropout", "Trainer", "BATCH_SIZE", "to_PT_DataLoader"}


@pytest.mark.real
def test_every_seed_function_class_and_setting_is_mapped(seed_doc):
    names = seed_api_names(seed_doc)
    assert len(names) > 100  # 68 settings and every function and class of the seed
    mapping = (DOCS / "seed-mapping.md").read_text()
    cells = set(re.findall(r"`(?:[a-z_]+\.)*([A-Za-z_]+)(?:\(|`)", mapping))
    missing = sorted(n for n in names if n not in cells)
    assert not missing, f"docs/seed-mapping.md does not map {missing}"


def test_sphinx_roles_become_checked_cross_references(tmp_path):
    import griffe

    pkg = tmp_path / "islr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Top."""\n')
    (pkg / "a.py").write_text(
        '"""See :func:`islr.a.f`, :func:`~islr.a.f`, :func:`g`, :class:`Thing` and :class:`Nowhere`."""\n'
        "def f():\n    pass\n\ndef g():\n    pass\n"
    )
    (pkg / "b.py").write_text('"""B."""\nclass Thing:\n    """Uses :meth:`go`."""\n    def go(self):\n        pass\n')
    extensions = griffe.load_extensions(str(DOCS / "_ext" / "sphinx_roles.py"))
    loaded = griffe.load("islr", search_paths=[str(tmp_path)], extensions=extensions)
    assert loaded["a"].docstring.value == (
        "See [`islr.a.f`][islr.a.f], [`f`][islr.a.f], [`g`][islr.a.g], [`Thing`][islr.b.Thing] and `Nowhere`."
    )
    assert loaded["b.Thing"].docstring.value == "Uses [`go`][islr.b.Thing.go]."
