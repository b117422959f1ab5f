"""The folders draw the architecture: imports run down the layers only and take no private names
(scripts/import_graph.py holds the rule; this runs it)."""

from conftest import load_repo_script


def test_imports_run_down_the_layers_and_take_no_private_names():
    graph = load_repo_script("scripts/import_graph.py")
    edges, breaks = graph.graph()
    assert breaks == []
    assert ("engine", "store") in edges and ("tasks", "engine") in edges  # the check sees real arrows


def test_an_upward_import_is_caught(tmp_path, monkeypatch):
    graph = load_repo_script("scripts/import_graph.py")
    fake = tmp_path / "softeval"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "files.py").write_text("from softeval.engine.models import load_model\n")
    (fake / "engine").mkdir()
    (fake / "engine" / "models.py").write_text("from softeval.store.files import _private_helper\n")
    monkeypatch.setattr(graph, "SRC", fake)
    _, breaks = graph.graph()
    assert any("store → engine runs up" in b for b in breaks)
    assert any("takes private _private_helper" in b for b in breaks)
