"""Look at a report as a person would: render ``report.html`` in headless Chromium to a PNG.

    python docs/render_report.py [REPORT_HTML] [-o docs/report.png] [--height 1400]

REPORT_HTML defaults to ``reports/latest/report.html``. Chromium comes from the distribution
(``apt-get install chromium``); the page needs no network and no script, so it renders offline
(the test suite checks the page holds no script). Exit 2 when no Chromium is found.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    """The first headless-capable Chromium on PATH."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def render(html: Path, png: Path, width: int = 1200, height: int = 1400, timeout: float = 60) -> None:
    """Write a ``width`` x ``height`` screenshot of ``html`` to ``png`` (offline)."""
    exe = browser()
    if exe is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="render-report-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-server=127.0.0.1:9",  # nothing can be fetched: a page that needs the network shows it
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}",
            html.resolve().as_uri(),
        ]
        subprocess.run(cmd, capture_output=True, timeout=timeout, check=True)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"{exe} wrote no screenshot to {png}")


def main() -> int:
    """Render the report named on the command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", nargs="?", default="reports/latest/report.html")
    ap.add_argument("-o", "--output", default="docs/report.png")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    try:
        render(Path(args.html), Path(args.output), args.width, args.height)
    except FileNotFoundError as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
