"""``tinykeras report``: one self-contained HTML page of a model on its boards, from the JSON files the other
commands write (``--from``) and the ones it computes itself (written beside the page first).

``sources`` reads and recognises the files, ``collect`` computes missing ones with the library functions the
commands use, ``render`` (template, CSS and JS under ``templates/``) turns them into the page, ``svg`` and
``graph`` draw the charts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tinykeras.errors import InputFileError


def data_dir_for(page: Path) -> Path:
    """Where the JSON the page is computed from goes: ``<page stem>-data/`` beside the page."""
    return page.with_name(f"{page.stem}-data")


def write_report(model_path: Path, page: Path, *, sources: list[Path] | tuple[Path, ...] = (), boards: str = "all",
                 data: Path | None = None, keras: Path | None = None, run: bool = False, fit: bool = True,
                 custom_objects: str | None = None, log: Callable[[str], None] = lambda _m: None) -> Path:
    """Compute what is missing into ``<page>-data/``, then render ``page`` from it and ``sources``."""
    from tinykeras.fsutil import write_text_atomic
    from tinykeras.htmlreport.collect import collect
    from tinykeras.htmlreport.render import render
    from tinykeras.htmlreport.sources import display_path, load_sources
    from tinykeras.recipes.frontend import settings_beside

    model_path = Path(model_path)
    page = Path(page)
    if model_path.suffix != ".tflite":
        raise InputFileError(f"{model_path}: the report reads an int8 .tflite; convert a Keras model first "
                             "(tinykeras quantize MODEL.keras --rep-data REP.npz)")
    if page.suffix.lower() not in (".html", ".htm"):
        raise InputFileError(f"-o {page}: the report is one HTML file; name it e.g. report.html")
    given = load_sources([Path(p) for p in sources], page.parent)   # bad --from input fails before any output
    collected = data_dir_for(page)
    collect(model_path, collected, boards=boards if fit else None, data=data, keras=keras, run=run,
            custom_objects=custom_objects, log=log)
    found = load_sources([collected], page.parent)
    found.items += [s for s in given.items if s.path not in {f.path for f in found.items}]
    settings = settings_beside(model_path)
    if isinstance(settings, dict):
        found.settings = settings
        found.settings_path = display_path(model_path.parent / "settings.json", page.parent)
    from tinykeras.keras_io import model_name

    label = str((found.settings or {}).get("name") or "") or model_name(model_path)
    write_text_atomic(page, render(found, f"tinykeras report: {label}", label))
    log(f"wrote {page} (figures from {len(found.items)} JSON files; computed ones in {collected})")
    return page
