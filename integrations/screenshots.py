"""Render pages of the Prefect UI to PNG with headless Chromium (Debian's `chromium`), e.g. for docs/.

    .venv/bin/python -m labelflow.integrations.screenshots http://127.0.0.1:4200/runs docs/prefect-ui-runs.png

The UI is a single-page app: --virtual-time-budget lets its scripts load the runs before the picture is taken.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def screenshot(
    url: str, output: Path, *, width: int = 1600, height: int = 1000, budget_ms: int = 15000
) -> Path:
    """Write a PNG of ``url``; raises RuntimeError if Chromium is missing or wrote nothing."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed: apt-get install --no-install-recommends chromium")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                f"--window-size={width},{height}",
                f"--screenshot={output.resolve()}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    if not output.exists() or output.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot of {url}")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("output", type=Path)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    print(screenshot(args.url, args.output, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
