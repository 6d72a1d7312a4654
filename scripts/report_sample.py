"""Write the sample report of the shipped kws model (docs/report/kws.html, its JSON in docs/report/kws-data/)
and the screenshot the README shows (docs/report/kws.png), with headless Chromium.

    python scripts/report_sample.py [--from DIR ...]

Runs `tinykeras report models/kws/model.tflite --data models/kws/test.npz --keras models/kws/model.keras --run`:
fit on every board, int8 vs float on the held-out set, benchmark and per-layer profile on qemu_m4 (aot). Extra
--from folders (e.g. a `build --board qemu_m4 --runtime tflm --run` project) are copied into
docs/report/from/<name>/ (their JSON only) and shown beside it, so the committed page names files that exist.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinykeras.htmlreport import browser, write_report  # noqa: E402

KWS = REPO / "models" / "kws"
OUT = REPO / "docs" / "report"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="sources", action="append", type=Path, default=[],
                        help="output folder of another command to show beside (its *.json are copied)")
    args = parser.parse_args()
    copies = []
    for src in args.sources:
        dest = OUT / "from" / src.resolve().name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for path in sorted(src.glob("*.json")):
            shutil.copyfile(path, dest / path.name)
        copies.append(dest)
    page = write_report(KWS / "model.tflite", OUT / "kws.html", sources=copies, data=KWS / "test.npz",
                        keras=KWS / "model.keras", run=True, log=lambda m: print(m, file=sys.stderr))
    loaded = browser.load(page)
    if loaded.console:
        print(f"console messages: {loaded.console}", file=sys.stderr)
        return 1
    browser.screenshot(page, OUT / "kws.png", width=1280, height=2200)
    print(f"wrote {page.relative_to(REPO)} and {(OUT / 'kws.png').relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
