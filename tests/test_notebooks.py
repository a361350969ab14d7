"""Every notebook in notebooks/ runs top to bottom, non-interactively, as CI runs it (nbclient + ipykernel).

The notebooks use the database named by ``GRIDGOV_DATABASE_URL`` when it is set: here a fresh migrated test
database, so they do not start a cluster of their own. A cell that raises fails the test with its traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, fresh_db_url, monkeypatch, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("GRIDGOV_DATABASE_URL", fresh_db_url)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("leaflet" in str(o.get("data", {}).get("text/html", "")).lower() for o in outputs)


def test_there_is_a_notebook():
    assert any(p.name == "workload.ipynb" for p in NOTEBOOKS)
