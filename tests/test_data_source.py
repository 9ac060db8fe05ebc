"""Random data, feed checks and data sources (random / script / loaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine_core.data.generate import RandomDataLoader, parse_val_range
from engine_core.data.source import make_data_source
from engine_core.data.store import save_inputs
from engine_core.data.validate import check_feed
from engine_core.errors import TrtdbgError
from engine_core.types import TensorMeta

METAS = [
    TensorMeta("image", np.dtype(np.float32), ("batch", 3, "height", "width")),
    TensorMeta("ids", np.dtype(np.int64), ("batch", "seq")),
    TensorMeta("keep", np.dtype(np.bool_), ("batch", 4)),
]


def _feed(**changes: np.ndarray) -> dict[str, np.ndarray]:
    feed = {
        "image": np.zeros((1, 3, 8, 8), np.float32),
        "ids": np.zeros((1, 5), np.int64),
        "keep": np.ones((1, 4), bool),
    }
    feed.update(changes)
    return feed


# ---- value ranges and random data


def test_parse_val_range_polygraphy_syntax() -> None:
    assert parse_val_range(["[0,1]", "x:[-1,1]", "ns:in:[2.5,1e3]"]) == {
        "": (0.0, 1.0),
        "x": (-1.0, 1.0),
        "ns:in": (2.5, 1000.0),
    }
    assert parse_val_range(["[-5,5],ids:[0,30000]"]) == {"": (-5.0, 5.0), "ids": (0.0, 30000.0)}
    for bad in ["[1,0]", "x:[1]", "0,1", "x:[a,b]", "[0,inf]", "[0,1e999]"]:
        with pytest.raises(TrtdbgError, match=r"value range"):
            parse_val_range([bad])


def test_random_data_is_deterministic_and_uses_seed_plus_iteration() -> None:
    shapes = {"image": (1, 3, 8, 8), "ids": (1, 5), "keep": (1, 4)}
    run1 = list(RandomDataLoader(METAS, shapes, seed=1, iterations=2))
    run2 = list(RandomDataLoader(METAS, shapes, seed=1, iterations=2))
    seed2 = next(iter(RandomDataLoader(METAS, shapes, seed=2)))
    for name in shapes:
        assert np.array_equal(run1[0][name], run2[0][name])
        assert np.array_equal(run1[1][name], seed2[name])
    assert not np.array_equal(run1[0]["image"], run1[1]["image"])
    assert {k: (v.dtype, v.shape) for k, v in run1[0].items()} == {
        "image": (np.float32, (1, 3, 8, 8)),
        "ids": (np.int64, (1, 5)),
        "keep": (np.bool_, (1, 4)),
    }


def test_random_value_ranges_per_dtype() -> None:
    metas = [
        TensorMeta("f16", np.dtype(np.float16), (20000,)),
        TensorMeta("f64", np.dtype(np.float64), (20000,)),
        TensorMeta("i32", np.dtype(np.int32), (20000,)),
        TensorMeta("u8", np.dtype(np.uint8), (20000,)),
        TensorMeta("b", np.dtype(np.bool_), (20000,)),
    ]
    ranges = parse_val_range(["[-2,3]", "u8:[-5,300]", "b:[0,1]"])
    feed = next(iter(RandomDataLoader(metas, {m.name: m.shape for m in metas}, val_range=ranges)))
    assert feed["f16"].dtype == np.float16 and -2 <= feed["f16"].min() and feed["f16"].max() <= 3
    assert feed["f64"].min() < -1.9 and feed["f64"].max() > 2.9
    assert set(np.unique(feed["i32"])) == {-2, -1, 0, 1, 2, 3}  # inclusive integer range
    assert feed["u8"].min() == 0 and feed["u8"].max() == 255  # clipped to the dtype
    assert feed["b"].dtype == np.bool_ and 0 < feed["b"].mean() < 1


def test_random_loader_errors() -> None:
    with pytest.raises(TrtdbgError, match="unknown input 'nope'"):
        RandomDataLoader(METAS, {"image": (1, 3, 2, 2), "ids": (1, 2), "keep": (1, 4)}, val_range={"nope": (0, 1)})
    with pytest.raises(TrtdbgError, match="cannot generate random data for input 's' of dtype str"):
        next(iter(RandomDataLoader([TensorMeta("s", np.dtype(np.str_), (2,))], {"s": (2,)})))
    with pytest.raises(TrtdbgError, match="holds no uint8 value"):
        next(iter(RandomDataLoader([TensorMeta("u", np.dtype(np.uint8), (2,))], {"u": (2,)}, val_range={"": (-9, -1)})))


# ---- check_feed


def test_check_feed_accepts_a_good_feed() -> None:
    assert check_feed(_feed(), METAS, "it 0") == []


@pytest.mark.parametrize(
    ("feed", "pattern"),
    [
        (
            {"image": np.zeros((1, 3, 8, 8), np.float32), "ids": np.zeros((1, 5), np.int64)},
            r"it 3: missing input 'keep'; the model expects: image, ids, keep",
        ),
        (_feed(extra=np.zeros(1)), r"it 3: 'extra' is not a model input; the model expects: image, ids, keep"),
        (
            _feed(image=np.zeros((1, 3, 8, 8), np.float64)),
            r"it 3: input 'image' has dtype float64, the model expects float32; cast it with .astype\(np.float32\)",
        ),
        (
            _feed(image=np.zeros((1, 4, 8, 8), np.float32)),
            r"input 'image' has shape 1x4x8x8, the model shape is \[batch, 3, height, width\]",
        ),
        (
            _feed(ids=np.zeros((1, 5, 1), np.int64)),
            r"input 'ids' has shape 1x5x1, the model shape is \[batch, seq\]; give 2 dims",
        ),
        (_feed(ids=[[1, 2]]), r"input 'ids' has type list, not numpy.ndarray"),
    ],
)
def test_check_feed_errors(feed: dict, pattern: str) -> None:
    with pytest.raises(TrtdbgError, match=pattern):
        check_feed(feed, METAS, "it 3")


def test_check_feed_warns_on_nan_and_inf() -> None:
    image = np.zeros((1, 3, 8, 8), np.float32)
    image[0, 0, 0, :3] = np.nan
    image[0, 1, 0, 0] = -np.inf
    assert check_feed(_feed(image=image), METAS, "it 1") == ["it 1: input 'image' has 3 NaN and 1 Inf values"]


# ---- data sources


def test_random_source_describe_and_check() -> None:
    source = make_data_source(METAS, shapes=["image:1x3x32x32"], seed=7, val_range=["ids:[0,100]"], iterations=2)
    assert source.describe() == (
        "random, seed 7, 2 iterations, range [0,1] ids:[0,100], shapes image:1x3x32x32 ids:1x128 keep:1x4"
    )
    feeds = list(source)
    assert len(feeds) == 2 and source.iterations == 2 and source.warnings == []
    assert feeds[0]["ids"].max() > 1


def test_loaded_source_checks_every_feed_up_front(tmp_path: Path) -> None:
    save_inputs(tmp_path / "a.json", [_feed(), _feed()])
    nan_image = np.full((1, 3, 8, 8), np.nan, np.float32)
    save_inputs(tmp_path / "b.npz", [_feed(image=nan_image)])
    source = make_data_source(METAS, load_inputs=[str(tmp_path / "a.json"), str(tmp_path / "b.npz")], seed=3)
    assert source.describe() == f"loaded {tmp_path / 'a.json'}, {tmp_path / 'b.npz'} (3 iterations)"
    assert source.warnings == [
        "seed ignored: inputs come from the loaded inputs",
        f"{tmp_path / 'b.npz'} iteration 0: input 'image' has 192 NaN and 0 Inf values",
    ]
    assert len(list(source)) == 3 and len(source.warnings) == 2  # re-iterating adds no duplicates

    save_inputs(tmp_path / "bad.json", [_feed(), _feed(ids=np.zeros((1, 5), np.int32))])
    with pytest.raises(
        TrtdbgError, match=r"bad.json iteration 1: input 'ids' has dtype int32, the model expects int64"
    ):
        make_data_source(METAS, load_inputs=[str(tmp_path / "bad.json")])


def test_script_source(tmp_path: Path) -> None:
    script = tmp_path / "inputs.py"
    script.write_text(
        "import numpy as np\n"
        "def load_data():\n"
        "    yield {'image': np.zeros((1, 3, 8, 8), np.float32), 'ids': np.zeros((1, 5), np.int64), 'keep': np.ones((1, 4), bool)}\n"
        "    yield {'image': np.zeros((1, 3, 8, 8), np.float32), 'ids': np.zeros((1, 5), np.int64)}\n"
    )
    source = make_data_source(METAS, script=str(script), iterations=4, val_range=["[0,2]"])
    assert source.describe() == f"script {script}:load_data" and source.iterations is None
    assert source.warnings == ["value range, iterations ignored: inputs come from the data loader script"]
    feeds = iter(source)
    assert next(feeds)["ids"].shape == (1, 5)
    with pytest.raises(TrtdbgError, match=r"inputs.py:load_data, iteration 1: missing input 'keep'"):
        next(feeds)


def test_script_and_loaded_inputs_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(TrtdbgError, match="cannot be used together"):
        make_data_source(METAS, script="x.py", load_inputs=["a.json"])
