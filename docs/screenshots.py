"""Screenshots of every page of the app for the docs, taken in headless Chromium from a served app.

.venv/bin/python docs/screenshots.py                       # the shipped checkpoints → docs/screenshots/*.png
.venv/bin/python docs/screenshots.py --checkpoints DIR --out /tmp/shots --ckpt NAME
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.bench import CHROMIUM, EXCEPTION, PAGES, REPO, browser, full_page_screenshot, serve, wait_for_page

WIDTH = 1400


def shoot(checkpoints: Path, out: Path, ckpt: str | None = None, width: int = WIDTH) -> list[Path]:
    """One full-page PNG per page; raises if a page shows an exception (a screenshot of a traceback helps nobody)."""
    query = f"?ckpt={ckpt}" if ckpt else ""
    saved = []
    with serve(checkpoints) as url, browser(width=width) as page:
        page.set_default_timeout(120_000)  # a first page loads a model and records a trace
        for name, path in PAGES.items():
            page.goto(f"{url}/{path}{query}")
            wait_for_page(page, timeout=120)
            if page.locator(EXCEPTION).count():
                raise RuntimeError(f"{name} shows an exception: {page.locator(EXCEPTION).first.inner_text()}")
            png = out / f"{name}.png"
            full_page_screenshot(page, png)
            saved.append(png)
            print(f"{png}  ({png.stat().st_size // 1024} KiB)", flush=True)
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Save a screenshot of every page of the app.")
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=Path(os.environ.get("SLEEPCORE_CHECKPOINTS") or REPO / "checkpoints"),
        help="checkpoint folder to serve (default: $SLEEPCORE_CHECKPOINTS where set, else the repository's)",
    )
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="folder for the PNGs")
    p.add_argument("--ckpt", help="checkpoint every page opens (default: the app's own choice)")
    args = p.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    if not args.checkpoints.is_dir():
        print(f"no checkpoint folder at {args.checkpoints}", file=sys.stderr)
        return 1
    shoot(args.checkpoints.resolve(), args.out, args.ckpt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
