"""``tinykeras report``: the HTML page, opened in headless Chromium from disk.

The kws page is built once with everything the command computes itself (fit on every board, int8 quality
against the float model, benchmark and profile on qemu_m4 when the toolchain is here); an unseen model
(MLPerf Tiny ResNet: residual ADDs) once without data. Each page is loaded in Chromium: no console message,
its scripts ran, and every key figure on it equals the JSON file and key it names.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinykeras.cli import cli
from tinykeras.htmlreport import browser
from tinykeras.htmlreport.graph import layout

REPO = Path(__file__).resolve().parents[1]
KWS = REPO / "models" / "kws"
HAVE_QEMU = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))
needs_browser = pytest.mark.skipif(browser.find_browser() is None,
                                   reason="no Chromium: apt-get install chromium (scripts/setup.sh), or set "
                                          "TINYKERAS_CHROMIUM to a Chromium binary")


def _report(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["report", *map(str, args)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def kws_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("report") / "kws.html"
    _report([KWS / "model.tflite", "--data", KWS / "test.npz", "--keras", KWS / "model.keras", "-o", page]
            + (["--run"] if HAVE_QEMU else []))
    return page


@pytest.fixture(scope="module")
def resnet_page(tmp_path_factory: pytest.TempPathFactory, reference_models: dict[str, Path]) -> Path:
    page = tmp_path_factory.mktemp("report") / "resnet.html"
    _report([reference_models["pretrainedResnet_quant"], "-o", page])
    return page


class Figures(HTMLParser):
    """Every ``.fig`` span (attributes and text) and the sources table (index -> file)."""

    def __init__(self) -> None:
        super().__init__()
        self.figs: list[dict[str, str]] = []
        self.sources: dict[str, str] = {}
        self._fig: dict[str, str] | None = None
        self._in_sources = False
        self._cells: list[str] | None = None
        self._body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self._body = a
        if tag == "span" and a.get("class") == "fig":
            self._fig = {**a, "text": ""}
        if tag == "section":
            self._in_sources = a.get("id") == "sources"
        if self._in_sources and tag == "tr":
            self._cells = []
        if self._cells is not None and tag == "td":
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._fig is not None:
            self.figs.append(self._fig)
            self._fig = None
        if tag == "tr" and self._cells:
            self.sources[self._cells[0].strip()] = self._cells[2].strip()
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._fig is not None:
            self._fig["text"] += data
        if self._cells:
            self._cells[-1] += data


def _lookup(data: object, path: str) -> object:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]  # type: ignore[index]
    return data


def _shown(text: str) -> tuple[float, int, bool]:
    """The number a reader sees, its decimals and whether it is a percentage."""
    match = re.search(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?", text)
    assert match, f"no number in {text!r}"
    raw = match.group(0).replace(",", "")
    decimals = len(raw.split(".")[1]) if "." in raw and "e" not in raw else 0
    return float(raw), decimals, text.strip().endswith("%")


def check_page(page: Path) -> Figures:
    """Load ``page`` in Chromium and check its console and every figure against its source file."""
    loaded = browser.load(page)
    assert loaded.console == [], f"console messages: {loaded.console}"
    parsed = Figures()
    parsed.feed(loaded.dom)
    assert parsed._body.get("data-ready") == "1", "the page's script did not run to the end"
    assert "data-js-errors" not in parsed._body
    assert parsed.figs, "no figures on the page"
    cache: dict[str, object] = {}
    for fig in parsed.figs:
        rel = parsed.sources[fig["data-src"]]
        if rel not in cache:
            cache[rel] = json.loads((page.parent / rel).read_text())
        value = _lookup(cache[rel], fig["data-k"])
        where = f"{rel}:{fig['data-k']}"
        assert json.loads(fig["data-v"]) == value, where
        shown, decimals, percent = _shown(fig["text"])
        expected = float(value) * (100 if percent else 1)  # type: ignore[arg-type]
        assert math.isclose(shown, expected, rel_tol=6e-4, abs_tol=0.51 * 10 ** -decimals), (where, fig["text"], value)
    return parsed


@needs_browser
def test_kws_page_in_chromium_shows_its_json(kws_page: Path) -> None:
    parsed = check_page(kws_page)
    kinds = {p.split("/")[-1] for p in parsed.sources.values()}
    assert {"inspect.json", "fit.json", "validate.json"} <= kinds
    if HAVE_QEMU:
        assert {"bench.json", "profile.json", "validate-qemu_m4.json"} <= kinds
    keys = {(parsed.sources[f["data-src"]].split("/")[-1], f["data-k"]) for f in parsed.figs}
    assert ("inspect.json", "totals.macs") in keys and ("validate.json", "outputs.0.agreement") in keys
    assert any(k[0] == "fit.json" and k[1].endswith("fit.ram_needed") for k in keys)
    assert any(k[0] == "fit.json" and k[1].endswith("estimate.ms") for k in keys)   # tinykeras.latency, labelled
    html = kws_page.read_text()
    assert "yes, no, up, down" in html                        # class labels from settings.json
    assert "confusion matrix of output" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything"
    png = browser.screenshot(kws_page, kws_page.with_suffix(".png"))
    assert png.stat().st_size > 20_000


@needs_browser
def test_unseen_resnet_page_draws_branches(resnet_page: Path) -> None:
    check_page(resnet_page)
    html = resnet_page.read_text()
    assert html.count("joins 2 branches") >= 3                # the residual ADDs
    assert "Not measured" in html and "No benchmark" in html


def test_page_is_byte_identical_and_reads_from(tmp_path: Path, resnet_page: Path) -> None:
    """Same inputs, same bytes; --from takes another page's data folder."""
    first, second = tmp_path / "a" / "r.html", tmp_path / "b" / "r.html"
    model = REPO / "tests" / "data" / "reference_models" / "ad01_int8.tflite"
    for page in (first, second):
        _report([model, "--boards", "qemu_m4,nano33ble", "--from", resnet_page.with_name("resnet-data"), "-o", page])
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--from", "missing-dir"], 2, "--from missing-dir: no such file or folder"),
    (["--boards", "esp23"], 5, "did you mean 'esp32'"),
    (["--keras", "m.keras"], 2, "--keras needs --data"),
    (["-o", "report.pdf"], 2, "one HTML file"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], code: int, words: str) -> None:
    out = ["-o", str(tmp_path / "r.html")] if "-o" not in args else []
    result = CliRunner().invoke(cli, ["report", str(KWS / "model.tflite"), *args, *out])
    assert result.exit_code == code, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r-data").exists()


def test_graph_layout_branches_inputs_outputs() -> None:
    """Two inputs, a residual ADD and two outputs: the ADD joins two rows, each input/output its own node."""
    def tensor(i: int, const: bool = False) -> dict[str, object]:
        return {"index": i, "name": f"t{i}", "shape": [1, 4], "dtype": "int8", "constant": const}

    def op(i: int, name: str, ins: list[int], out: int) -> dict[str, object]:
        return {"index": i, "op": name, "inputs": [tensor(k) for k in ins], "outputs": [tensor(out)], "macs": 0}

    summary = {"inputs": [tensor(0), tensor(1)], "outputs": [tensor(4), tensor(5)],
               "ops": [op(0, "FULLY_CONNECTED", [0], 2), op(1, "FULLY_CONNECTED", [2], 3),
                       op(2, "ADD", [3, 1], 4), op(3, "LOGISTIC", [2], 5)]}
    nodes, edges = layout(summary)
    assert {"in0", "in1", "out0", "out1"} <= set(nodes)
    assert nodes["op2"]["branch"] and set(nodes["op2"]["preds"]) == {"op1", "in1"}
    assert ("in1", "op2", "1x4") in edges and nodes["op2"]["row"] == 3


def _tune_json(path: Path) -> dict[str, object]:
    """A tune.json-shaped search of six trials (made-up figures, fronts from tinykeras.tune.pareto_front)."""
    from tinykeras.tune import pareto_front

    trials = []
    for k, (acc, ins, ram, ok) in enumerate([(0.80, 3.1e6, 6000, True), (0.86, 5.2e6, 9000, True),
                                             (0.84, 7.9e6, 12000, True), (0.90, 24e6, 25000, True),
                                             (0.91, 40e6, 260000, False), (0.70, 2.0e6, 4000, True)]):
        trials.append({"trial_id": f"{k:02d}", "status": "completed", "trained": True, "feasible": ok,
                       "metrics": {"val_accuracy": acc, "instructions": ins, "ram_bytes": ram, "flash_bytes": ram * 3},
                       "hyperparameters": {"blocks": k + 1, "width": 0.5}})
    trained = [t for t in trials if t["feasible"]]
    report = {"recipe": "kws", "board": "nano33ble", "algorithm": "bayesian", "objective": "val_accuracy",
              "limits": {"board": "nano33ble", "ram_bytes": 196608, "flash_bytes": 851968, "latency_ms": None,
                         "clock_hz": 64000000},
              "trials_total": 6, "trials_completed": 6, "trials_failed": 0, "trials_feasible": 5,
              "front_latency": pareto_front(trained, "val_accuracy", "instructions"),
              "front_ram": pareto_front(trained, "val_accuracy", "ram_bytes"), "best": "03", "trials": trials}
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


@needs_browser
def test_comparisons_and_pareto_front(tmp_path: Path, reference_models: dict[str, Path]) -> None:
    """Two benchmark sessions side by side with ratios, and a search's Pareto fronts, from their JSON files."""
    from tinykeras.device.protocol import parse_chunks

    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("qemu_m4_aot_ad01", "tk_esp32_clean"):
        data = (REPO / "tests" / "data" / "bench" / f"{name}.log").read_bytes()
        (runs / f"{name}.json").write_text(json.dumps(parse_chunks([data]).to_json()))
    tune = _tune_json(tmp_path / "tune.json")
    page = tmp_path / "out" / "ad01.html"
    _report([reference_models["ad01_int8"], "--no-fit", "--from", runs, "--from", tmp_path / "tune.json", "-o", page])
    parsed = check_page(page)
    html = page.read_text()
    assert "Side by side" in html and "(×" in html and "Pareto front" in html
    shown = {(parsed.sources[f["data-src"]], f["data-k"]) for f in parsed.figs}
    assert ("../runs/tk_esp32_clean.json", "latency_us.p50") in shown
    assert ("../tune.json", "trials.3.metrics.val_accuracy") in shown
    assert tune["front_latency"] and all(f"trial {i}:" in html for i in tune["front_latency"])


def test_validate_html(tmp_path: Path) -> None:
    """``validate --html``: the metrics JSON is written beside the page, which shows it."""
    page = tmp_path / "v.html"
    result = CliRunner().invoke(cli, ["validate", str(KWS / "model.tflite"), "--data", str(KWS / "test.npz"),
                                      "--samples", "40", "--html", str(page)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "v-validate.json").read_text())
    html = page.read_text()
    assert 'data-k="outputs.0.accuracy"' in html and f'data-v="{report["outputs"][0]["accuracy"]}"' in html
    assert "confusion matrix of output" in html


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "not readable JSON"),
    ('{"hello": 1}', "not an output of a tinykeras command"),
])
def test_from_a_file_that_is_not_a_command_output(tmp_path: Path, content: str, words: str) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(content)
    result = CliRunner().invoke(cli, ["report", str(KWS / "model.tflite"), "--no-fit", "--from", str(bad),
                                      "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r-data").exists()
