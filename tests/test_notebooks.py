"""The notebooks run top to bottom with ``VISTUDY_QUICK=1`` and are committed without outputs.

Like NumPyro's ``test/test_examples.py``, the learning path is executed by the tests with tiny
settings (the notebooks' own quick mode), in a fresh ``python3`` kernel started by nbclient. The
kernel imports this checkout (``PYTHONPATH`` starts with the repository root), so the notebooks
are tested against the code next to them, not against an older installed copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "01_linear_regression",
    "02_random_intercepts",
    "03_logistic_random_intercepts",
    "04_sd_ratio_study",
    "05_your_own_data",
)


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_learning_path_is_complete_and_linked_from_the_readme():
    assert sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb")) == list(NOTEBOOKS)
    readme = (ROOT / "README.md").read_text()
    for name in NOTEBOOKS:
        assert f"(notebooks/{name}.ipynb)" in readme, f"README does not link {name}.ipynb"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or an execution count; strip them "
        "(e.g. `jupyter nbconvert --clear-output --inplace`) before committing"
    )
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_a_quick_switch_in_its_first_code_cell(name):
    first = _code_cells(_read(name))[0].source
    assert 'QUICK = os.environ.get("VISTUDY_QUICK") == "1"' in first


# The kernel's one IPython startup file: after each cell, the heap is settled as a study worker
# settles it after each run (`study.runs.settle_after_runs`), and frozen at exit. It changes no
# output; notebook 1 ran in 17 s instead of 21-22 s.
SETTLE_AFTER_CELLS = """
import atexit, gc

from study.runs import settle_heap

get_ipython().events.register("post_run_cell", lambda result: settle_heap())
atexit.register(gc.freeze)
"""


@pytest.fixture(scope="session")
def ipython_dir(tmp_path_factory) -> Path:
    """A fresh IPython directory: the user's own profile and startup files stay out of the
    tests, and `SETTLE_AFTER_CELLS` is its one startup file."""
    path = tmp_path_factory.mktemp("ipython")
    startup = path / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-settle.py").write_text(SETTLE_AFTER_CELLS)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_quick_mode(name, monkeypatch, ipython_dir, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    # The notebooks write their results under `tempfile.mkdtemp()`: into this test's folder,
    # which pytest clears, instead of leaving three or four folders in /tmp per suite.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("VISTUDY_QUICK", "1")
    monkeypatch.delenv("VISTUDY_RESULTS", raising=False)
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    notebook = _read(name)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    outputs = [output for cell in _code_cells(notebook) for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name}: no cell displayed a figure"
    if name in ("04_sd_ratio_study", "05_your_own_data"):
        assert list(tmp_path.glob("vistudy-*")), f"{name} wrote its results elsewhere"
