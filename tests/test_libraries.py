"""Model vs library: check_model / require_model_supported, inspect --check --board/--library,
quantize --per-tensor-dense, the shipped models on every board's library, and libraries/ops up to date."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras.boards import board_names, load_board
from tinykeras.cli import cli
from tinykeras.errors import BoardError, UnsupportedOpError
from tinykeras.inspect import inspect_bytes, load_model_info
from tinykeras.libraries import (
    REFERENCE_LIBRARY,
    board_library,
    library_ids,
    list_libraries,
    load_library,
)
from tinykeras.resources import models_dir
from tinykeras.runtime.support import check_model, require_model_supported
from tinykeras.types import ModelInfo, OpInfo, Quantization, TensorInfo

REPO = Path(__file__).resolve().parents[1]


def _tensor(index: int, shape: tuple[int, ...], scales: int = 1, constant: bool = False,
            dtype: str = "int8") -> TensorInfo:
    q = Quantization(scales=tuple(0.01 * (k + 1) for k in range(scales)), zero_points=(0,) * scales)
    return TensorInfo(index=index, name=f"t{index}", shape=shape, dtype=dtype, quantization=q, is_constant=constant,
                      buffer_index=index)


def _model(op: str, weight_scales: int, dtype: str = "int8") -> ModelInfo:
    """input [1, 8] -> RESHAPE (#0) -> ``op`` with [4, 8] weights of ``weight_scales`` scales (#1) -> [1, 4]."""
    tensors = (_tensor(0, (1, 8), dtype=dtype), _tensor(1, (1, 8)), _tensor(2, (4, 8), weight_scales, True),
               _tensor(3, (1, 4), dtype=dtype))
    ops = (OpInfo(0, "RESHAPE", 1, 22, (0,), (1,), {}, 0, 0, 16),
           OpInfo(1, op, 1, 9, (1, 2), (3,), {}, 32, 32, 12))
    return ModelInfo(path="m.tflite", sha256="0" * 64, model_bytes=0, tensors=tensors, ops=ops, inputs=(0,),
                     outputs=(3,), description="")


def test_per_channel_fully_connected_is_a_gap_on_chirale_only_where_recorded() -> None:
    per_channel = _model("FULLY_CONNECTED", 4)
    problems = check_model(per_channel, load_library("chirale-2.0.0"))
    assert [(p.kind, p.op, p.index, p.note) for p in problems] == [("gap", "FULLY_CONNECTED", 1, "4 scales")]
    assert "--per-tensor-dense" in problems[0].fix and "--runtime aot" in problems[0].fix
    assert check_model(per_channel, load_library("tflm-90b983c")) == []
    assert check_model(per_channel, load_library("esp-tflite-micro-1.3.8")) == []
    # One weight scale: every library computes it (all of them register FULLY_CONNECTED and RESHAPE).
    per_tensor = _model("FULLY_CONNECTED", 1)
    assert {lib.id: check_model(per_tensor, lib) for lib in list_libraries()} == {i: [] for i in library_ids()}


def test_op_missing_from_the_library_is_refused_in_one_line() -> None:
    chirale, tflm = load_library("chirale-2.0.0"), load_library(REFERENCE_LIBRARY)
    assert "BATCH_MATMUL" in tflm.ops and "BATCH_MATMUL" not in chirale.ops  # from the libraries' own sources
    info = _model("BATCH_MATMUL", 1)
    assert check_model(info, tflm) == []
    with pytest.raises(UnsupportedOpError) as err:
        require_model_supported(info, chirale)
    line = str(err.value)
    assert "\n" not in line
    assert "BATCH_MATMUL (operator #1)" in line and "Chirale_TensorFlowLite 2.0.0" in line
    assert "does not register" in line and "fix:" in line and REFERENCE_LIBRARY in line
    assert err.value.ops == [(1, "BATCH_MATMUL")]


def test_float_model_is_a_problem_on_every_library() -> None:
    info = _model("FULLY_CONNECTED", 1, dtype="float32")
    for lib in list_libraries():
        assert [p.kind for p in check_model(info, lib)] == ["not-int8"]


def test_every_board_names_a_known_library_or_none() -> None:
    for name in board_names():
        board = load_board(name)
        lib = board_library(board)
        if board.tflm is None:
            assert lib is None
        else:
            assert lib is not None and lib.id in library_ids()


@pytest.mark.parametrize("recipe", ["kws", "gesture", "sensor"])
def test_shipped_models_run_on_every_board_library(recipe: str) -> None:
    info = load_model_info(models_dir() / recipe / "model.tflite")
    libs = {lib.id: lib for lib in (board_library(load_board(b)) for b in board_names()) if lib is not None}
    libs[REFERENCE_LIBRARY] = load_library(REFERENCE_LIBRARY)
    for lib in libs.values():
        assert check_model(info, lib) == [], (recipe, lib.id)
    fc = [op for op in info.ops if op.op == "FULLY_CONNECTED"]
    assert fc and all(len(info.tensors[op.inputs[1]].quantization.scales) == 1 for op in fc)


# ---- real conversions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dense_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A seeded conv + dense classifier quantized twice with `tinykeras quantize`: per-channel (the default)
    and --per-tensor-dense (twice, to check the bytes repeat)."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(11)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    root = tmp_path_factory.mktemp("dense")
    keras.Model(inputs, outputs).save(root / "m.keras")
    np.savez(root / "rep.npz", x=np.random.default_rng(5).random((32, 6, 6, 1), dtype=np.float32))
    out = {}
    for name, extra in (("per_channel", []), ("per_tensor", ["--per-tensor-dense"]),
                        ("per_tensor_again", ["--per-tensor-dense"])):
        result = CliRunner().invoke(cli, ["quantize", str(root / "m.keras"), "--rep-data", str(root / "rep.npz"),
                                          "-o", str(root / name), *extra])
        assert result.exit_code == 0, result.output
        out[name] = root / name / "model.tflite"
    return out


def _scales(path: Path) -> dict[str, list[int]]:
    info = load_model_info(path)
    found: dict[str, list[int]] = {}
    for op in info.ops:
        if op.op in ("FULLY_CONNECTED", "CONV_2D"):
            found.setdefault(op.op, []).append(len(info.tensors[op.inputs[1]].quantization.scales))
    return found


def test_per_tensor_dense_gives_one_scale_per_fully_connected(dense_models: dict[str, Path]) -> None:
    assert _scales(dense_models["per_channel"]) == {"CONV_2D": [4], "FULLY_CONNECTED": [8, 3]}
    assert _scales(dense_models["per_tensor"]) == {"CONV_2D": [4], "FULLY_CONNECTED": [1, 1]}
    assert dense_models["per_tensor"].read_bytes() == dense_models["per_tensor_again"].read_bytes()


def test_per_tensor_dense_model_is_bit_exact_run_to_run(dense_models: dict[str, Path]) -> None:
    from tinykeras.tflm_host import TflmRunner, prepare_inputs

    data = dense_models["per_tensor"].read_bytes()
    info = inspect_bytes(data)
    x = prepare_inputs(np.random.default_rng(9).random((16, 6, 6, 1), dtype=np.float32), info.input_tensors()[0])
    first, second = TflmRunner(data, info).run_all(x), TflmRunner(data, info).run_all(x)
    assert first.dtype == np.int8 and np.array_equal(first, second)


def test_inspect_check_board_and_library_exit_codes(dense_models: dict[str, Path]) -> None:
    runner = CliRunner()
    per_channel, per_tensor = str(dense_models["per_channel"]), str(dense_models["per_tensor"])
    result = runner.invoke(cli, ["inspect", per_channel, "--check", "--board", "nano33ble"])
    assert result.exit_code == UnsupportedOpError.exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "FULLY_CONNECTED (operator #2, 8 scales), FULLY_CONNECTED (operator #3, 3 scales)" in lines[0]
    assert "Chirale_TensorFlowLite 2.0.0" in lines[0]
    assert "--per-tensor-dense" in lines[0]
    for args in (["--board", "nano33ble"], ["--library", "chirale-2.0.0"], ["--library", REFERENCE_LIBRARY]):
        result = runner.invoke(cli, ["inspect", per_tensor, "--check", *args])
        assert result.exit_code == 0, (args, result.output)
    result = runner.invoke(cli, ["inspect", per_channel, "--check", "--library", REFERENCE_LIBRARY])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["inspect", per_channel, "--check", "--board", "nope"])
    assert result.exit_code == BoardError.exit_code and "unknown board" in result.output.lower()
    result = runner.invoke(cli, ["inspect", per_channel, "--check", "--library", "chirale-2"])
    assert result.exit_code == BoardError.exit_code and "did you mean 'chirale-2.0.0'" in result.output
    result = runner.invoke(cli, ["inspect", per_channel, "--board", "nano33ble", "--library", REFERENCE_LIBRARY])
    assert result.exit_code == 2


def test_inspect_json_reports_support_per_library(dense_models: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(dense_models["per_channel"]), "--json", "--board", "nano33ble"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["libraries"]) == set(library_ids())
    assert data["libraries"][REFERENCE_LIBRARY]["supported"] is True
    chirale = data["libraries"]["chirale-2.0.0"]
    assert chirale["supported"] is False and {p["op"] for p in chirale["problems"]} == {"FULLY_CONNECTED"}
    assert data["checked_library"]["id"] == "chirale-2.0.0" and data["checked_library"]["problems"]


def test_libraries_and_boards_commands() -> None:
    result = CliRunner().invoke(cli, ["libraries", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert set(rows) == set(library_ids())
    assert rows["chirale-2.0.0"]["boards"] == ["nano33ble", "portenta_h7"] and rows["chirale-2.0.0"]["gaps"]
    assert all(row["ops"] == len(load_library(i).ops) > 50 for i, row in rows.items())
    result = CliRunner().invoke(cli, ["boards", "--json"])
    assert result.exit_code == 0, result.output
    boards = {b["name"]: b for b in json.loads(result.output)}
    assert boards["nano33ble"]["library"] == "chirale-2.0.0"


# ---- libraries/ops/*.json against the library trees (third_party_dir: tests/conftest.py) -------------------


def test_generated_library_ops_are_up_to_date(third_party_dir: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_libraries.py"), "--third-party", str(third_party_dir),
                    "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    for lib_id in library_ids():
        fresh = (tmp_path / f"{lib_id}.json").read_text()
        assert fresh == (REPO / "libraries" / "ops" / f"{lib_id}.json").read_text(), \
            f"libraries/ops/{lib_id}.json is stale: rerun scripts/gen_libraries.py"


def test_optimize_per_tensor_dense(dense_models: dict[str, Path], tmp_path: Path) -> None:
    """`tinykeras optimize --per-tensor-dense` (no other stage: float -> int8) writes per-tensor FC weights."""
    rng = np.random.default_rng(2)
    x, y = rng.random((48, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 48)
    np.savez(tmp_path / "d.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
    keras_model = dense_models["per_tensor"].parent.parent / "m.keras"
    result = CliRunner().invoke(cli, ["optimize", str(keras_model), "--data", str(tmp_path / "d.npz"),
                                      "--per-tensor-dense", "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert _scales(tmp_path / "out" / "model.tflite") == {"CONV_2D": [4], "FULLY_CONNECTED": [1, 1]}
    assert json.loads(result.stdout)["options"]["per_tensor_dense"] is True


def test_kernel_arena_is_added_per_kernels_and_core(reference_models: dict[str, Path]) -> None:
    """The library file's [[kernel_arena]]: CMSIS-NN's Helium FULLY_CONNECTED keeps one int32 kernel sum per
    unit in the arena on the Cortex-M55 only (without it AllocateTensors failed there); reference kernels and
    the DSP cores plan what the host measured."""
    from tinykeras.arena import plan_arena
    from tinykeras.runtime import tflm

    data = reference_models["ad01_int8"].read_bytes()
    info = inspect_bytes(data)
    host = plan_arena(data, info)
    units = sum(info.tensors[op.outputs[0]].shape[-1] for op in info.ops if op.op == "FULLY_CONNECTED")
    m55 = tflm.plan(data, info, load_board("qemu_m55"), kernels="cmsis-nn", arena=host).arena
    assert m55.planned_bytes == -(-(host.planned_bytes + 4 * units) // 16) * 16
    assert "Helium (MVE) FULLY_CONNECTED" in m55.margin_rule
    for board, kernels in (("qemu_m4", "cmsis-nn"), ("qemu_m55", "reference")):
        assert tflm.plan(data, info, load_board(board), kernels=kernels, arena=host).arena == host
