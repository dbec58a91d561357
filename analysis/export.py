"""Figures to SVG, PDF and PNG through kaleido (which drives the system Chromium); tables to Parquet or CSV.

Every file is written atomically (a temporary file in the same folder, then a rename). kaleido 1.x starts a
browser per export unless a sync server is running; `start_sync_server` keeps one open for the whole process,
which makes repeated exports ~0.2 s instead of seconds.
"""

from __future__ import annotations

import atexit
import os
import shutil
import threading
import warnings
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from sleepcore.checkpoint import atomic_write

FORMATS = ("svg", "pdf", "png")
TABLE_FORMATS = (".parquet", ".csv")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
DEFAULT_SIZE = (1280, 720)  # the talk template's size, for figures made without it

_server_lock = threading.Lock()
_server_started = False


class ExportError(RuntimeError):
    """A figure or table that cannot be exported, with a message that says what to do."""


def find_browser() -> str | None:
    """The Chromium kaleido will drive: $BROWSER_PATH (choreographer's override) or one on PATH."""
    override = os.environ.get("BROWSER_PATH")
    if override and Path(override).is_file():
        return override
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _start_server() -> None:
    """Start kaleido's sync server once per process, quietly doing without it where this kaleido has none."""
    global _server_started
    with _server_lock:
        if _server_started:
            return
        _server_started = True
        import kaleido

        start = getattr(kaleido, "start_sync_server", None)
        if start is None:
            return
        try:
            start(silence_warnings=True)
        except Exception:  # each export then starts its own browser, which is slower but works
            return
        stop = getattr(kaleido, "stop_sync_server", None)
        if stop is not None:
            atexit.register(stop, silence_warnings=True)  # leave no Chromium behind


def figure_size(fig: go.Figure) -> tuple[int, int]:
    """(width, height) in CSS pixels: the figure's own, else its template's, else the talk default."""
    template = fig.layout.template.layout if fig.layout.template is not None else None
    width = fig.layout.width or (template.width if template is not None else None) or DEFAULT_SIZE[0]
    height = fig.layout.height or (template.height if template is not None else None) or DEFAULT_SIZE[1]
    return int(width), int(height)


# What a figure export without a browser is told (after what needs it), here and by the CLI's checks.
NO_BROWSER = (
    "needs Chromium, which kaleido drives, and none was found (looked for $BROWSER_PATH and "
    + ", ".join(BROWSERS)
    + " on PATH); install it with `apt-get install chromium` (as root: apt-get update && apt-get install -y chromium)"
)


def figure_bytes(fig: go.Figure, format: str, scale: float = 1.0) -> bytes:
    """The figure rendered as svg, pdf or png bytes (png: figure_size × scale pixels)."""
    if format not in FORMATS:
        raise ValueError(f"unknown figure format {format!r}; valid formats: {', '.join(FORMATS)}")
    if find_browser() is None:
        raise ExportError(f"figure export {NO_BROWSER}")
    _start_server()
    width, height = figure_size(fig)
    with warnings.catch_warnings():
        # plotly passes browser options that a running server ignores; the warning says only that
        warnings.filterwarnings("ignore", message="The kopts argument is ignored")
        return pio.to_image(fig, format=format, width=width, height=height, scale=scale)


def export_figure(fig: go.Figure, path: str | Path, format: str | None = None, scale: float = 1.0) -> Path:
    """Write the figure to path as svg, pdf or png (format defaults to the path's suffix); returns the path."""
    path = Path(path)
    format = (format or path.suffix.lstrip(".")).lower()
    data = figure_bytes(fig, format, scale)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def export_table(df: pl.DataFrame, path: str | Path) -> Path:
    """Write a polars table to .parquet or .csv (by the path's suffix); returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        atomic_write(path, lambda tmp: df.write_parquet(tmp))
    elif suffix == ".csv":
        atomic_write(path, lambda tmp: df.write_csv(tmp))
    else:
        raise ValueError(f"unknown table format {path.suffix!r} for {path}; valid suffixes: {', '.join(TABLE_FORMATS)}")
    return path
