"""Fixtures for the app's tests: tiny checkpoints trained into a temporary folder (seconds), served by name.

Two Rule 110 sleep models (N = 1 and N = 2), the two attention-only baselines (which have no fast weights), an
N = 2 sleep model of each other task (Depo, gsm), and the N = 2 wake-loop control, so every page is tested on
each kind of checkpoint and task; their RESULTS.json (every count, 8 examples per depth) as `sleepcore eval --all
--results-json` writes it. The tests never read the shipped checkpoints/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.bench import MAIN
from sleepcore.results import evaluate_all, write_results_json

APP = str(MAIN)
SLEEPERS = ("tiny-n1", "tiny-n2")
BASELINES = ("tiny-attn-only", "tiny-full-attention")
OTHER_TASKS = ("tiny-depo-n2", "tiny-gsm-n2")
WAKE_LOOP = ("tiny-wake-loop-n2",)  # the control that spends its passes when answering
ALL = SLEEPERS + BASELINES + OTHER_TASKS + WAKE_LOOP
CARD = "# {name}\n\nA {variant} {preset} model (N = {passes}) trained for 6 steps to test the app. Not a result.\n"


def train_tiny(out: Path, passes: int = 1, variant: str = "hybrid", preset: str = "tiny") -> None:
    from sleepcore.presets import build
    from sleepcore.train import train

    small = {} if preset == "tiny" else {"batch_size": 8}
    configs = build(preset, passes, variant=variant, steps=6, eval_every=6, save_every=6, eval_examples=16, **small)
    train(out, *configs, progress=False, eval_per_depth=4, extra={"preset": preset, "variant": variant})
    (out / "README.md").write_text(CARD.format(name=out.name, variant=variant, preset=preset, passes=passes))


def make_tiny_checkpoints(root: Path) -> Path:
    threads = torch.get_num_threads()
    for n in (1, 2):
        train_tiny(root / f"tiny-n{n}", passes=n)
    for variant in ("attn-only", "full-attention"):
        train_tiny(root / f"tiny-{variant}", variant=variant)
    train_tiny(root / WAKE_LOOP[0], passes=2, variant="wake-loop")
    for name, preset in zip(OTHER_TASKS, ("depo-mini", "gsm-mini"), strict=True):
        train_tiny(root / name, passes=2, preset=preset)
    write_results_json(root / "RESULTS.json", evaluate_all(8, 777, root=root, progress=False), 8, 777)
    torch.set_num_threads(threads)  # train() sets its own thread count; the rest of the suite keeps its own
    return root


@pytest.fixture(scope="session")
def app_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tiny checkpoints' folder, with SLEEPCORE_CHECKPOINTS pointing at it for the session (restored after)."""
    root = make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLEEPCORE_CHECKPOINTS", str(root))
        yield root


@pytest.fixture
def with_a_broken_checkpoint(app_checkpoints: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two good checkpoints and one whose config.json is from a format this code does not read."""
    import streamlit as st

    for name in SLEEPERS:
        (tmp_path / name).symlink_to(app_checkpoints / name)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"format": 99}')
    (broken / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    st.cache_data.clear()  # the app caches the list of names without the folder in its key
    yield
    st.cache_data.clear()


@pytest.fixture
def checkpoints_like(app_checkpoints: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A checkpoints folder holding the tiny ones (linked), to add to: the app reads it for this test only."""
    import streamlit as st

    for name in ALL:
        (tmp_path / name).symlink_to(app_checkpoints / name)
    (tmp_path / "RESULTS.json").symlink_to(app_checkpoints / "RESULTS.json")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    st.cache_data.clear()  # the app caches the list of names without the folder in its key
    yield tmp_path
    st.cache_data.clear()
