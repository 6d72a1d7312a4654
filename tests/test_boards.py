"""Board files: every shipped board validates; bad files fail with a message naming the key and a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinykeras.boards import board_names, list_boards, load_board, load_board_file
from tinykeras.cli import cli
from tinykeras.errors import BoardError
from tinykeras.resources import boards_dir

PLATFORMIO_BOARDS = ("esp32", "esp32s3", "nano33ble", "nucleo_l4r5zi", "pico", "pico2", "teensy41", "portenta_h7",
                     "uno_r4_minima", "xiao_esp32c3", "esp32c6", "xiao_esp32s3", "nano_esp32")


def test_every_issue_board_is_shipped_and_valid() -> None:
    names = board_names()
    for name in PLATFORMIO_BOARDS:
        assert name in names
    for board in list_boards():
        assert board.sources, board.name
        assert board.limits.app_flash_bytes > 0 and board.limits.app_ram_bytes > 0
        if board.kind == "platformio":
            assert board.default_runtime == "tflm"
            assert board.tflm is not None and board.platformio is not None
            # a pinned library: an exact version and commit, the reason recorded beside it
            lib = board.tflm.lib
            assert not any(ch in lib.version for ch in "^~*<>="), lib.version
            assert len(lib.commit) == 40 and lib.reason.strip()
            assert board.tflm.kernels in lib.kernels
            if lib.lib_dep:
                assert lib.lib_dep.endswith(lib.version)


@pytest.mark.parametrize("name,api,counter", [
    ("esp32", "esp_timer_get_time", True), ("esp32s3", "esp_timer_get_time", True),
    ("nano33ble", "dwt", True), ("nucleo_l4r5zi", "dwt", True), ("pico", "time_us_64", False),
])
def test_timer_sources(name: str, api: str, counter: bool) -> None:
    board = load_board(name)
    assert board.timer.api == api
    assert (board.timer.cycles is not None) == counter
    if api == "dwt":
        assert any("TRCENA" in s for s in board.timer.enable)
        assert any("CYCCNTENA" in s for s in board.timer.enable)


def test_reference_board_facts() -> None:
    nucleo = load_board("nucleo_l4r5zi")
    assert (nucleo.mcu.core, nucleo.mcu.clock_hz) == ("cortex-m4", 120_000_000)
    assert (nucleo.limits.flash_bytes, nucleo.limits.ram_bytes) == (2 * 1024 * 1024, 640 * 1024)
    assert load_board("pico").mcu.fpu is False


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _esp32_text(**replace: str) -> str:
    text = (boards_dir() / "esp32.toml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_unknown_key_gets_did_you_mean(tmp_path: Path) -> None:
    path = _write(tmp_path, "esp32", _esp32_text(**{"clock_hz =": "clock_hzz ="}))
    with pytest.raises(BoardError, match=r"unknown key 'mcu.clock_hzz'; did you mean 'mcu.clock_hz'\?"):
        load_board_file(path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "esp32", _esp32_text(**{"[serial]": "[serail]"}))
    with pytest.raises(BoardError, match=r"unknown key 'serail'; did you mean 'serial'\?"):
        load_board_file(path)


def test_wrong_type_and_bad_choice(tmp_path: Path) -> None:
    path = _write(tmp_path, "esp32", _esp32_text(**{"baud = 115200": 'baud = "fast"'}))
    with pytest.raises(BoardError, match="'serial.baud' must be a int"):
        load_board_file(path)
    path = _write(tmp_path, "esp32", _esp32_text(**{'api = "esp_timer_get_time"': 'api = "esp_timer"'}))
    with pytest.raises(BoardError, match="did you mean 'esp_timer_get_time'"):
        load_board_file(path)


def test_name_must_match_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "other", _esp32_text())
    with pytest.raises(BoardError, match="must equal the file name 'other'"):
        load_board_file(path)


def test_cortex_m7_needs_lar_unlock(tmp_path: Path) -> None:
    text = (boards_dir() / "nucleo_l4r5zi.toml").read_text().replace('name = "nucleo_l4r5zi"', 'name = "m7"')
    text = text.replace('core = "cortex-m4"', 'core = "cortex-m7"')
    with pytest.raises(BoardError, match="LAR = 0xC5ACCE55"):
        load_board_file(_write(tmp_path, "m7", text))
    text = text.replace('  "DWT->CYCCNT = 0;",', '  "DWT->LAR = 0xC5ACCE55;",\n  "DWT->CYCCNT = 0;",')
    assert "DWT->LAR = 0xC5ACCE55;" in load_board_file(_write(tmp_path, "m7", text)).timer.enable


def test_unknown_board_did_you_mean() -> None:
    with pytest.raises(BoardError, match=r"unknown board 'nano33'; did you mean 'nano33ble'\?"):
        load_board("nano33")


def test_boards_cli_json_and_table() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["boards", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [b["name"] for b in data] == board_names()
    esp32 = next(b for b in data if b["name"] == "esp32")
    assert esp32["clock_hz"] == 240_000_000 and esp32["timer"] == "esp_timer_get_time"
    assert esp32["library"] == "esp-tflite-micro-1.3.8" and esp32["framework"] == "espidf"
    table = runner.invoke(cli, ["boards"])
    assert table.exit_code == 0
    for name in board_names():
        assert name in table.output


def test_docs_board_table_is_current() -> None:
    import os
    import re

    from tinykeras.boards import markdown_table

    doc_path = Path(__file__).resolve().parents[1] / "docs" / "boards.md"
    doc = doc_path.read_text()
    pattern = re.compile(r"(<!-- BEGIN BOARD TABLE.*?-->\n)(.*?)(<!-- END BOARD TABLE -->)", re.S)
    table = markdown_table()
    if os.environ.get("TINYKERAS_UPDATE_GOLDEN") == "1":
        doc = pattern.sub(lambda m: m.group(1) + table + m.group(3), doc)
        doc_path.write_text(doc)
    match = pattern.search(doc)
    assert match is not None, "docs/boards.md lost its BEGIN/END BOARD TABLE markers"
    assert match.group(2) == table, "docs/boards.md is stale: TINYKERAS_UPDATE_GOLDEN=1 pytest tests/test_boards.py"
