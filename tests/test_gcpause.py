"""gc_paused: the cyclic collector is off inside, and back to how it was after (nested, raising, already off)."""

from __future__ import annotations

import gc
from pathlib import Path

import onnx
import pytest

from engine_core.gcpause import gc_paused
from engine_core.model.index import ModelIndex
from engine_core.model.synthetic import chain_model


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_enabled_after_nested_blocks() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block did not disable it: it leaves it to the outer one
    assert gc.isenabled()


def test_enabled_again_after_an_exception() -> None:
    gc.enable()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_model_index_load_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(50), path)
    gc.enable()
    index = ModelIndex.load(path)
    assert gc.isenabled() and len(index) == 50
    gc.disable()
    ModelIndex.load(path)
    assert not gc.isenabled()
