"""The app on damaged checkpoints and URLs, under AppTest: weights cut short, a config.json that cannot be used or
has no weights beside it, damaged or partial probe tables, a checkpoints folder that is a file or missing, and
values too long to echo. Each page says what is wrong and what to do, once, and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The fixtures are used by name: pytest finds them in this module.
from app_fixtures import ALL, app_checkpoints, checkpoints_like  # noqa: F401
from test_app import assert_clean, figure, open_page, texts

pytestmark = pytest.mark.usefixtures("app_checkpoints")
FEATURED = "depo-k4-n4"  # app.data.FEATURED: the checkpoint a page opens on when the URL names none


def _copy(src: Path, dst: Path, **config) -> Path:
    """dst: src's files linked, with config.json rewritten with `config`'s sections updated (where given)."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name != "config.json" or not config:
            (dst / f.name).symlink_to(f)
    if config:
        info = json.loads((src / "config.json").read_text())
        for section, values in config.items():
            info[section] = {**info[section], **values} if isinstance(values, dict) else values
        (dst / "config.json").write_text(json.dumps(info))
    return dst


@pytest.fixture
def damaged(checkpoints_like: Path) -> Path:  # noqa: F811
    """The tiny checkpoints and, beside them: FEATURED and a Rule 110 model of N = 4 (so Compare's default for
    tiny-n1) with their weights cut short; one with a config.json and no weights; one whose config.json is not JSON;
    one of a task this code does not know."""
    root = checkpoints_like
    for name, src, passes in ((FEATURED, "tiny-depo-n2", 2), ("tiny-n4-cut", "tiny-n2", 4)):
        folder = _copy(root / src, root / name, sleep={"passes": passes})
        weights = (root / src / "model.safetensors").read_bytes()
        (folder / "model.safetensors").unlink()
        (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_bytes((root / "tiny-n2" / "config.json").read_bytes())
    _copy(root / "tiny-n2", root / "garbage-config")
    (root / "garbage-config" / "config.json").unlink()
    (root / "garbage-config" / "config.json").write_text("{not json")
    _copy(root / "tiny-n2", root / "unknown-task", task={"name": "chess"})
    return root


@pytest.mark.usefixtures("damaged")
def test_a_default_checkpoint_that_cannot_be_loaded_is_named_as_the_default():
    at = open_page("explorer")
    assert not at.exception
    (error,) = texts(at.error)
    assert error.startswith(
        f"Checkpoint '{FEATURED}' (the featured checkpoint, as the URL names none that can be shown) cannot "
    )
    assert error.endswith("Pick another checkpoint in the sidebar.")
    assert at.selectbox(key="select_ckpt").value == FEATURED, "the sidebar is there to pick another"
    (error,) = texts(open_page("explorer", {"ckpt": FEATURED}).error)  # named in the URL: not a default
    assert error.startswith(f"Checkpoint '{FEATURED}' cannot be loaded: ")

    at = open_page("compare", {"ckpt": "tiny-n1"})
    assert not at.exception
    (error,) = texts(at.error)
    assert error.startswith(
        "Right checkpoint 'tiny-n4-cut' (the sleep model whose N differs most from the left one's, as the URL names "
        "none that can be shown) cannot be loaded: "
    )
    assert error.endswith("Pick another right checkpoint in the sidebar.")
    at.selectbox(key="select_cmp").set_value("tiny-n2").run()
    assert_clean(at)
    assert texts(at.subheader) == ["tiny-n1 (N = 1)", "tiny-n2 (N = 2)"]


@pytest.mark.usefixtures("damaged")
@pytest.mark.parametrize(
    "page, params, why",
    [
        ("explorer", {"ckpt": "no-weights"}, "it has a config.json but no model.safetensors"),
        ("sweep", {"ckpt": "no-weights"}, "it has a config.json but no model.safetensors"),
        ("compare", {"ckpt": "tiny-n1", "cmp": "no-weights"}, "it has a config.json but no model.safetensors"),
        ("compare", {"ckpt": "tiny-n1", "cmp": "unknown-task"}, "chess"),
        ("compare", {"ckpt": "tiny-n1", "cmp": "garbage-config"}, "config.json"),
    ],
)
def test_a_checkpoint_that_exists_but_cannot_be_used_is_named_with_the_reason(page, params, why):
    at = open_page(page, params)
    assert not at.exception, texts(at.exception)
    asked = params.get("cmp", params["ckpt"])
    (warning,) = [w for w in texts(at.warning) if asked in w]
    assert warning.startswith(f"Checkpoint '{asked}' in the URL exists but cannot be used: ") and why in warning
    assert "Unknown" not in warning and "\n" not in warning


@pytest.mark.usefixtures("damaged")
def test_the_overview_names_a_folder_with_half_a_checkpoint():
    at = open_page("overview")
    assert not at.exception
    errors = texts(at.error)
    assert "Checkpoint skipped: no-weights: it has a config.json but no model.safetensors" in errors
    assert any(e.startswith("Checkpoint skipped: garbage-config: ") for e in errors)


@pytest.mark.parametrize("what, says", [("file", "is a file, not a folder"), ("missing", "does not exist")])
@pytest.mark.parametrize("page", ["overview", "explorer", "compare"])
def test_a_checkpoints_folder_that_is_not_one_is_named(page, what, says, tmp_path, monkeypatch):
    import streamlit as st

    root = tmp_path / "ckpts"
    if what == "file":
        root.write_text("")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(root))
    st.cache_data.clear()
    at = open_page(page)
    st.cache_data.clear()
    assert not at.exception
    (warning,) = texts(at.warning)
    assert warning.startswith(f"The checkpoints folder {root} ($SLEEPCORE_CHECKPOINTS) {says}"), warning
    assert "Train one" not in warning and "train one" not in warning


@pytest.mark.parametrize("page", ["explorer", "probes"])
def test_an_example_that_does_not_parse_says_the_seeded_one_is_shown(page):
    at = open_page(page, {"ckpt": "tiny-n2", "depth": "2", "seed": "4"})
    if page == "probes":  # the typed example is asked about below the probes: fit them first
        at.select_slider(key="probe_examples").set_value(64)
        at.button(key="fit_probes").click().run()
    at.text_area(key="custom_text").input("garbage").run()
    at.toggle(key="use_custom").set_value(True).run()
    assert not at.exception
    (error,) = texts(at.error)
    assert "does not parse" in error and "Showing the seeded example (depth 2, seed 4) instead" in error


@pytest.fixture(scope="module")
def probe_table(app_checkpoints):  # noqa: F811
    """tiny-n2's probes table as `sleepcore probe` writes it (layers 1 and 3; trained and random_init rows)."""
    from analysis.probes import probe_checkpoint

    return probe_checkpoint(app_checkpoints / "tiny-n2", examples=16, seeds=(0,), progress=False)


def _own(root: Path, name: str) -> Path:
    """root/name, a link to a tiny checkpoint shared by the session, made a folder of links to its files, so that
    files can be added to it for one test."""
    src = (root / name).resolve()
    (root / name).unlink()
    return _copy(src, root / name)


def _ship_probes(root: Path, table=None, raw: bytes | None = None) -> None:
    """tiny-n2 in `root` shipping this probes table (or these bytes as its probes.parquet)."""
    import streamlit as st

    from analysis.probes import PROBES_FILE

    path = _own(root, "tiny-n2") / PROBES_FILE
    path.write_bytes(raw) if raw is not None else table.write_parquet(path)
    st.cache_data.clear()


def test_a_damaged_probe_table_is_told_once(checkpoints_like):  # noqa: F811
    _ship_probes(checkpoints_like, raw=b"not parquet")
    at = open_page("probes", {"ckpt": "tiny-n2"})
    assert not at.exception
    (warning,) = texts(at.warning)
    assert warning.startswith("The probe table shipped with this checkpoint is not used: ")
    assert "SLEEPCORE_CHECKPOINTS=" in warning and "sleepcore probe tiny-n2 --out" in warning
    assert not at.error and not any("No probe table ships" in i for i in texts(at.info)), texts(at.info)
    assert at.button(key="fit_probes"), "and offers to fit probes here"
    at = open_page("explorer", {"ckpt": "tiny-n2"})
    at.segmented_control(key="view").set_value("Probes").run()
    (warning,) = texts(at.warning)
    assert warning.startswith("The probe table shipped with this checkpoint is not used: ")
    assert not at.error and not at.info, texts(at.info)


@pytest.mark.parametrize(
    "keep, held",
    [
        ("another layer", "layer 3: the trained and the untrained model"),
        ("random_init", "layer 1: the untrained model only"),
    ],
)
def test_a_probe_table_without_the_layer_says_what_it_holds(checkpoints_like, probe_table, keep, held):  # noqa: F811
    """tiny-n2 has fast weights in layer 1 alone: a table of another layer's probes (3, as a model with more fast-weight
    layers has), or of the untrained model's alone, has no curve of the trained model to draw."""
    import polars as pl

    if keep == "another layer":
        table = probe_table.with_columns(layer=pl.lit(3, pl.Int32))
    else:
        table = probe_table.filter(pl.col("baseline") == "random_init")
    _ship_probes(checkpoints_like, table)
    at = open_page("probes", {"ckpt": "tiny-n2", "layer": "1"})
    assert_clean(at)
    fact = at.selectbox(key="fact").value
    (info,) = texts(at.info)
    if keep == "another layer":
        assert info == f"The probe table holds no probes of {fact} at layer 1; of {fact} it holds {held}."
        assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-probe_random")]
    else:  # the untrained model's curve is drawn; the trained model's side says it has none
        assert info == f"The probe table holds no probes of {fact} on the trained model at layer 1."
        figure(at, "probe_random")
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-probe_trained")]
    assert not [d for d in at.dataframe if list(d.value.columns)[:1] == ["pass"]], "no empty table"

    at = open_page("explorer", {"ckpt": "tiny-n2", "layer": "1"})
    at.segmented_control(key="view").set_value("Probes").run()
    assert_clean(at)
    (info,) = texts(at.info)
    assert "holds no probes of the trained model at layer 1" in info and held in info


def test_commands_shown_for_another_checkpoints_folder_name_it(checkpoints_like):  # noqa: F811
    import streamlit as st

    from sleepcore.results import SWEEP_FILE

    root = checkpoints_like
    prefix = f"SLEEPCORE_CHECKPOINTS={root} "
    at = open_page("probes", {"ckpt": "tiny-n2"})
    (info,) = [i for i in texts(at.info) if i.startswith("No probe table ships")]
    assert f"`{prefix}sleepcore probe tiny-n2 --out {root}/tiny-n2/probes.parquet`" in info

    card = root / "tiny-n1-card"
    _copy(root / "tiny-n1", card)
    (card / "README.md").unlink()
    (card / "README.md").write_bytes(b"\xff\xfe not utf-8")
    st.cache_data.clear()
    at = open_page("overview")
    assert any(f"`{prefix}sleepcore ship --refresh-cards`" in m for m in texts(at.markdown))

    (_own(root, "tiny-n2") / SWEEP_FILE).write_bytes(b"not parquet")
    st.cache_data.clear()
    at = open_page("sweep", {"ckpt": "tiny-n2"})
    (warning,) = texts(at.warning)
    assert f"write it again with: {prefix}sleepcore sweep tiny-n2 --out {root}/tiny-n2/{SWEEP_FILE}" in warning


@pytest.mark.parametrize("ckpt", ["x" * 20000, "a\x00b", "..", "tiny-n2/../tiny-n1"])
def test_a_name_that_is_no_folder_is_unknown_and_echoed_short(ckpt: str):
    at = open_page("explorer", {"ckpt": ckpt, "depth": "9" * 6000})
    assert not at.exception, texts(at.exception)
    unknown, depth = texts(at.warning)
    assert unknown.startswith("Unknown checkpoint ") and depth.startswith(f"Depth '{'9' * 40}'… (6,000 characters)")
    assert len(unknown) < 400 and len(depth) < 200, (unknown, depth)
