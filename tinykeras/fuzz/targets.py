"""Coverage-guided fuzz targets: untrusted bytes in, a result or a :class:`TinyKerasError` out.

Each target is a plain function of ``bytes`` that the coverage-guided runner (``tinykeras.fuzz.coverage``,
atheris/libFuzzer) calls millions of times; any exception outside the error hierarchy, and any broken
invariant (an ``AssertionError`` raised here), is a finding. Seed corpora come from the project's own files
(models, serial logs, board/library/settings files); dictionaries hold the flatbuffer identifier and the
protocol keywords, so mutations reach deep states quickly.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tinykeras.errors import TinyKerasError
from tinykeras.resources import boards_dir, libraries_dir, models_dir

REPO = Path(__file__).resolve().parents[2]
_SCRATCH = Path(tempfile.mkdtemp(prefix="tinykeras-fuzz-"))


@dataclass(frozen=True)
class Target:
    """A fuzz target: what it feeds, its seeds and its dictionary (libFuzzer ``-dict`` entries)."""

    name: str
    description: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    dictionary: tuple[bytes, ...] = ()


def _chunks(data: bytes) -> Iterator[bytes]:
    """Split ``data`` into chunks whose size the first byte chooses (1..256): partial lines and records."""
    if not data:
        return
    size, body = data[0] + 1, data[1:]
    for k in range(0, len(body), size):
        yield body[k:k + size]


def _json_clean(value: object) -> None:
    """Reports must serialise to strict JSON (no NaN/inf), or the files users keep would be invalid."""
    json.dumps(value, allow_nan=False)


# --- the model reader and verifier ------------------------------------------------------------------------

def run_inspect(data: bytes) -> None:
    """inspect on bytes: verifier + reader, then what `inspect --check`/`carray` do with an accepted model."""
    from tinykeras.cgen import c_sources
    from tinykeras.inspect import inspect_bytes
    from tinykeras.runtime.support import support_summary

    try:
        info = inspect_bytes(data, path="fuzz.tflite")
    except TinyKerasError:
        return
    assert info.model_bytes == len(data), "inspect reports another size than it read"
    assert info.macs >= 0 and info.activation_peak_bytes >= 0, "negative MACs or activation bytes"
    _json_clean(support_summary(info))
    try:
        files = c_sources(data, info, name="g_model")
    except TinyKerasError:
        return
    assert all(isinstance(text, str) for text in files.files.values()), "carray produced a non-text file"


def run_aot(data: bytes) -> None:
    """bytes -> generated C: refused (one error of the hierarchy) or generated, never anything else."""
    from tinykeras.aot import generate
    from tinykeras.inspect import inspect_bytes

    try:
        info = inspect_bytes(data, path="fuzz.tflite")
        program = generate(data, info, name="fuzz")
    except TinyKerasError:
        return
    assert program.arena_bytes >= 0, "negative arena"
    assert "tk_model.c" in program.files or any(n.endswith(".c") for n in program.files), "no C generated"


# --- the serial protocol parsers ----------------------------------------------------------------------------

def run_tk_protocol(data: bytes) -> None:
    """@tk records as a board would send them, in chunks: a report (maybe with noise counted), never a raise."""
    from tinykeras.device.protocol import MAX_RUNS, parse_chunks

    report = parse_chunks(_chunks(data), source="fuzz")
    out = report.to_json()
    _json_clean(out)
    assert len(report.runs) <= MAX_RUNS, "more runs kept than the announced-runs cap"


def run_mlperf(data: bytes) -> None:
    """An MLPerf Tiny DUT transcript, in chunks: a report, never a raise."""
    from tinykeras.device.mlperf import parse_mlperf_chunks

    report = parse_mlperf_chunks(_chunks(data), source="fuzz")
    _json_clean(report.to_json())


# --- the file loaders ---------------------------------------------------------------------------------------

def _scratch_file(name: str, data: bytes) -> Path:
    path = _SCRATCH / name
    path.write_bytes(data)
    return path


def run_board_file(data: bytes) -> None:
    """A board .toml file: validated into a Board or refused with a BoardError."""
    from tinykeras.boards import load_board_file

    try:
        board = load_board_file(_scratch_file("fuzz.toml", data))
    except TinyKerasError:
        return
    assert board.limits.app_flash_bytes >= 0 and board.limits.app_ram_bytes >= 0, "negative free memory"


def run_library_file(data: bytes) -> None:
    """A library .toml file (as in libraries/): validated into a Library or refused."""
    from tinykeras.libraries import load_library_file

    try:
        load_library_file(_scratch_file("fuzz-lib.toml", data), check_id=False)
    except TinyKerasError:
        return


def run_settings(data: bytes) -> None:
    """settings.json beside a model (labels, name, feature front end), as `build` reads it."""
    from tinykeras.pipeline import _labels, _model_settings, front_end

    model = _scratch_file("model.tflite", b"")
    _scratch_file("settings.json", data)
    try:
        settings = _model_settings(model)
        _labels(settings)
        fe = front_end(settings, model)
    except TinyKerasError:
        return
    if fe is not None:
        _json_clean(fe.to_json())


def run_labels(data: bytes) -> None:
    """A --labels text file: a list of labels or a DataError."""
    from tinykeras.datacheck import read_text_lines

    try:
        labels = read_text_lines(_scratch_file("labels.txt", data))
    except TinyKerasError:
        return
    assert all(isinstance(label, str) for label in labels)


def warm_imports() -> None:
    """Import every module the targets reach, so the coverage runner instruments them all at once."""
    import importlib

    for module in ("tinykeras.inspect", "tinykeras.verify", "tinykeras.cgen", "tinykeras.libraries",
                   "tinykeras.runtime.support",
                   "tinykeras.aot", "tinykeras.aot.generator", "tinykeras.aot.planner", "tinykeras.aot.fixedpoint",
                   "tinykeras.device.protocol", "tinykeras.device.mlperf", "tinykeras.boards", "tinykeras.pipeline",
                   "tinykeras.recipes.frontend", "tinykeras.datacheck"):
        importlib.import_module(module)


# --- seeds and dictionaries ---------------------------------------------------------------------------------

def _read(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in sorted(paths) if p.is_file()]


def model_seeds() -> list[bytes]:
    """The shipped models and the MLPerf Tiny reference models of the test data."""
    reference = REPO / "tests" / "data" / "reference_models"
    return _read([*models_dir().glob("*/model.tflite"), *reference.glob("*.tflite")])


def serial_seeds() -> list[bytes]:
    """Recorded sessions (real QEMU logs and the hostile-board recordings), each prefixed by a chunk size."""
    return [b"\x3f" + d for d in _read(list((REPO / "tests" / "data" / "bench").glob("*.log")))]


def board_seeds() -> list[bytes]:
    return _read(list(boards_dir().glob("*.toml")))


def library_seeds() -> list[bytes]:
    return _read(list(libraries_dir().glob("*.toml")))


def settings_seeds() -> list[bytes]:
    return _read(list(models_dir().glob("*/settings.json")))


def label_seeds() -> list[bytes]:
    return [b"yes\nno\nup\ndown\n", b"\xef\xbb\xbfcat\r\ndog\r\n", b"a\n\nb\n"]


FLATBUFFER_DICT = (b"TFL3", b"\x1c\x00\x00\x00TFL3", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00",
                   b"\x80\x00\x00\x00", b"\x00\x00\x80\x3f", b"\x00\x00\xc0\x7f", b"serving_default")
TK_DICT = (b"@tk ", b'"v": 1', b'"event": "hello"', b'"event": "run"', b'"event": "done"', b'"event": "error"',
           b'"runs": ', b'"us": ', b'"cycles": ', b'"index": ', b'"arena_used": ', b"\r\n", b"NaN", b"1e309", b"-1")
MLPERF_DICT = (b"m-ready", b"m-name-dut-[", b"m-model-[", b"m-lap-us-", b"m-results-[", b"m-warmup-start",
               b"m-warmup-done", b"m-infer-start", b"m-infer-done", b"e-[", b"]\r\n", b"m-timestamp-mode-", b"%")
TOML_DICT = (b"[mcu]", b"[limits]", b"[timer]", b"[serial]", b"[platformio]", b"[tflm]", b"[qemu]", b'kind = "qemu"',
             b'kind = "platformio"', b"flash_bytes = ", b"ram_bytes = ", b"reserved_ram_bytes = ", b"clock_hz = ",
             b'name = "', b"[[gaps]]", b"[delivery]", b"[api]", b"[build]", b'id = "', b"= [", b"= {", b"= -1",
             b"= 1e400", b'= "', b"\n")
SETTINGS_DICT = (b'"labels": [', b'"name": "', b'"features": {', b'"kind": "mfcc"', b'"kind": "log_mel"',
                 b'"kind": "imu"', b'"sample_rate": ', b'"frame_length": ', b'"frame_step": ', b'"num_mel_bins": ',
                 b'"num_coefficients": ', b"null", b"-1", b"1e309", b"[]", b"{}")

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("inspect", "flatbuffer reader + verifier (inspect on bytes), support summary, C array",
           run_inspect, model_seeds, FLATBUFFER_DICT),
    Target("aot", "aot generator: bytes -> generated C or a clean refusal", run_aot, model_seeds, FLATBUFFER_DICT),
    Target("tk_protocol", "@tk benchmark-record parser (bytes in chunks -> report)", run_tk_protocol,
           serial_seeds, TK_DICT),
    Target("mlperf", "MLPerf Tiny DUT transcript parser", run_mlperf, serial_seeds, MLPERF_DICT),
    Target("board_file", "board .toml loader and validator", run_board_file, board_seeds, TOML_DICT),
    Target("library_file", "library .toml loader and validator", run_library_file, library_seeds, TOML_DICT),
    Target("settings", "settings.json beside a model (labels, name, feature front end)", run_settings,
           settings_seeds, SETTINGS_DICT),
    Target("labels", "--labels text file", run_labels, label_seeds, ()),
)}


def dictionary_text(target: Target) -> str:
    """The target's dictionary in libFuzzer's ``-dict`` format (one quoted, escaped entry per line)."""
    def escape(entry: bytes) -> str:
        return "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in entry)

    return "".join(f'kw{k}="{escape(e)}"\n' for k, e in enumerate(target.dictionary))

