"""Workspace choice and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine_core.errors import TrtdbgError
from engine_core.workspace import Workspace, atomic_write_text


def test_read_only_model_folder_falls_back_to_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "m.onnx").write_bytes(b"")
    models.chmod(0o555)  # read-only even for root, by intent
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        ws = Workspace.for_model(models / "m.onnx")
        assert ws.note and "not writable" in ws.note
        assert ws.root.is_relative_to(tmp_path / "cache")
        ws.write_json("x.json", {"a": 1})
        assert sorted(os.listdir(models)) == ["m.onnx"]
    finally:
        models.chmod(0o755)
    assert Workspace.for_model(models / "m.onnx").root == models / ".trtdbg"


def test_atomic_write_replaces_whole_file_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_explicit_unwritable_workspace_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrtdbgError, match="not writable"):
        Workspace.for_model(None, "/proc/trtdbg-ws")
