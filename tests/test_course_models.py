"""Course-style models the way a student builds them, through quantize -> emulate -> validate -> the board:
token-id (Embedding) inputs, tabular models whose adapted Normalization sees features of very different
scales (moved out of the int8 graph: tinykeras.input_norm), long recurrent layers. Small, seeded, few epochs;
quality measured on held-out data."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mirrors import bench_input, mlperf_results

from tinykeras.cli import cli

NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")


def _keras(flavour: str):
    from tinykeras.keras_io import import_tf

    import_tf()
    if flavour == "keras3":
        keras = pytest.importorskip("keras")
        if not str(keras.__version__).startswith("3"):
            pytest.skip("needs Keras 3")
    else:
        keras = pytest.importorskip("tf_keras")
    keras.utils.set_random_seed(0)
    return keras


# ------------------------------------------------------------------------------------------------ token ids


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """Input((20,), int32) -> Embedding(300, 8) -> GlobalAveragePooling1D -> Dense(2), Keras 3, 2 epochs."""
    k = _keras("keras3")
    work = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 300, size=(400, 20)).astype(np.int32)
    y = ((x < 150).mean(axis=1) > 0.5).astype(np.int64)
    model = k.Sequential([k.Input((20,), dtype="int32"), k.layers.Embedding(300, 8),
                          k.layers.GlobalAveragePooling1D(), k.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:300], y[:300], epochs=2, verbose=0)
    model.save(work / "text.keras")
    np.savez(work / "rep.npz", x=x[:100])
    np.savez(work / "test.npz", x=x[300:340], y=y[300:340])
    res = CliRunner().invoke(cli, ["quantize", str(work / "text.keras"), "--rep-data", str(work / "rep.npz"),
                                   "-o", str(work / "q")])
    assert res.exit_code == 0, res.output
    return work


def test_token_ids_are_drawn_inside_the_vocabulary(text_model: Path) -> None:
    from tinykeras import testing
    from tinykeras.cgen import model_settings
    from tinykeras.inspect import load_model_info
    from tinykeras.types import index_limit

    tflite = text_model / "q" / "model.tflite"
    info = load_model_info(tflite)
    assert index_limit(info, 0) == 300  # read from the GATHER table, not assumed
    ids = testing.random_inputs(tflite, 64)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 300 and ids.max() > 200
    assert "#define TK_INPUT0_ID_LIMIT 300u" in model_settings(info)
    res = CliRunner().invoke(cli, ["emulate", str(tflite), "--runtime", "aot", "--json", "--no-tflite"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout[res.stdout.index("{"):])
    assert data["bit_exact"] and data["input"].startswith("random int32")


def test_bench_input_folds_words_into_the_vocabulary() -> None:
    raw = bench_input(80)
    ids = np.frombuffer(bench_input(80, id_limit=300), dtype="<i4")
    assert ids.min() >= 0 and ids.max() < 300
    assert np.array_equal(ids, np.frombuffer(raw, dtype="<u4") % 300)


@NEEDS_QEMU
@pytest.mark.slow
def test_text_model_runs_on_qemu_m4_with_valid_ids(text_model: Path, tmp_path: Path) -> None:
    """build --run measures it; the benchmark's id pattern gives TFLM's output bit for bit; validate --board
    sends the real int32 samples."""
    from standin import mlperf_reply

    from tinykeras.boards import load_board
    from tinykeras.device.port import open_port
    from tinykeras.inspect import load_model_info
    from tinykeras.target import qemu
    from tinykeras.tflm_host import TflmRunner

    tflite = text_model / "q" / "model.tflite"
    res = CliRunner().invoke(cli, ["build", "--board", "qemu_m4", "--model", str(tflite), "--run", "--runs", "2",
                                   "-o", str(tmp_path / "fw"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):])
    assert report["qemu"]["instructions_per_inference"] > 0
    info = load_model_info(tflite)
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    ids = np.frombuffer(bench_input(t_in.nbytes, 300), dtype="<i4").reshape(t_in.shape)
    expected = TflmRunner(tflite.read_bytes(), info).invoke(ids)[0]
    with qemu.qemu_session(tmp_path / "fw" / "build" / "firmware.elf", load_board("qemu_m4")) as url:
        port = open_port(url)
        try:
            mlperf_reply(port)
            q = t_out.quantization
            assert mlperf_reply(port, "results%")[0] == mlperf_results(expected, q.scale, q.zero_point)
        finally:
            port.close()
    res = CliRunner().invoke(cli, ["validate", str(tflite), "--data", str(text_model / "test.npz"), "--board",
                                   "qemu_m4", "--samples", "6", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["board"]["matches_host_tflm"]


# ------------------------------------------------------------------------------------------------ tabular

SCALES = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 5000.0, 0.001], np.float32)


def _tabular(kind: str, n: int = 900) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, 8)) * SCALES + 3 * SCALES).astype(np.float32)
    z = (x - 3 * SCALES) / SCALES
    if kind == "classifier":
        return x, ((z[:, 0] + z[:, 7] > 0).astype(np.int64) + 2 * (z[:, 4] - z[:, 1] > 0))
    return x, (z[:, 0] + 0.5 * z[:, 5] - z[:, 3] + 0.3 * z[:, 7] * z[:, 2]).astype(np.float32)[:, None]


def _wide_deep_module(path: Path) -> None:
    path.write_text('''
import keras


@keras.saving.register_keras_serializable(package="course")
class WideDeep(keras.Model):
    """A subclassed wide-and-deep regressor with its own adapted Normalization."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.Normalization()
        self.h1 = keras.layers.Dense(32, activation="relu")
        self.h2 = keras.layers.Dense(16, activation="relu")
        self.concat = keras.layers.Concatenate()
        self.head = keras.layers.Dense(1)

    def call(self, x):
        z = self.norm(x)
        return self.head(self.concat([z, self.h2(self.h1(z))]))
''')


def _tabular_model(case: str, x: np.ndarray, work: Path):
    flavour, kind = case.split("-", 1)
    k = _keras(flavour)
    L = k.layers
    if kind == "subclassed_wide_deep":
        _wide_deep_module(work / "course_layers.py")
        sys.path.insert(0, str(work))
        import course_layers

        model = course_layers.WideDeep()
        model.norm.adapt(x)
        model(x[:1])
        model.compile("adam", "mse")
    elif kind == "functional_classifier":
        norm = L.Normalization()
        norm.adapt(x)
        inp = k.Input((8,))
        t = L.Dense(16, activation="relu")(L.Dense(32, activation="relu")(norm(inp)))
        model = k.Model(inp, L.Dense(4, activation="softmax")(t))
        model.compile("adam", "sparse_categorical_crossentropy")
    else:
        norm = L.Normalization()
        norm.adapt(x)
        model = k.Sequential([k.Input((8,)), norm, L.Dense(32, activation="relu"), L.Dense(16, activation="relu"),
                              L.Dense(1)])
        model.compile("adam", "mse")
    return model


@pytest.mark.parametrize("case", ["keras3-subclassed_wide_deep", "tf_keras-functional_classifier",
                                  "keras3-sequential_regressor"])
def test_tabular_normalization_keeps_float_quality(case: str, tmp_path: Path) -> None:
    """These collapsed to a constant int8 output before; the float Normalization now runs before quantizing,
    and the int8 model is within 0.05 R² / 2 points top-1 of the float model on held-out data."""
    x, y = _tabular("classifier" if "classifier" in case else "regressor")
    model = _tabular_model(case, x[:600], tmp_path)
    model.fit(x[:600], y[:600], epochs=25, batch_size=32, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "rep.npz", x=x[:200])
    np.savez(tmp_path / "test.npz", x=x[600:], y=y[600:])
    custom = ["--custom-objects", str(tmp_path / "course_layers.py")] if "subclassed" in case else []
    res = CliRunner().invoke(cli, ["quantize", str(path), "--rep-data", str(tmp_path / "rep.npz"), "--data",
                                   str(tmp_path / "test.npz"), "-o", str(tmp_path / "q"), *custom])
    assert res.exit_code == 0, res.output
    assert "COLLAPSED" not in res.output and "applied outside the int8 model" in res.output
    settings = json.loads((tmp_path / "q" / "settings.json").read_text())
    entry = settings["input_normalization"][0]
    assert entry["class"] == "Normalization" and len(entry["scale"]) == 8
    assert "TK_INPUT0_NORM_SCALE" in (tmp_path / "q" / "model_settings.h").read_text()

    # validate reads the normalisation beside the model and feeds raw float features
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "q" / "model.tflite"), "--data",
                                   str(tmp_path / "test.npz"), "--keras", str(path), "--json", *custom])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])["outputs"][0]
    if "classifier" in case:
        assert out["accuracy"] >= out["reference_accuracy"] - 0.02, out
        assert out["reference_accuracy"] > 0.8, out
    else:
        assert out["labels_r2"] >= out["reference_labels_r2"] - 0.05, out
        assert out["reference_labels_r2"] > 0.8, out
    # emulate and tinykeras.testing apply it too
    from tinykeras import testing

    raw = testing.run_tflm(tmp_path / "q" / "model.tflite", x[600:640])
    ref = np.asarray(model(x[600:640]))
    got = testing.dequantized(tmp_path / "q" / "model.tflite", raw)
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95


TF_KERAS_WIDE_DEEP = """
import tf_keras as k


class WideDeepTf(k.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = k.layers.Normalization()
        self.h1 = k.layers.Dense(32, activation="relu")
        self.h2 = k.layers.Dense(16, activation="relu")
        self.head = k.layers.Dense(1)

    def call(self, x):
        z = self.norm(x)
        return self.head(k.layers.concatenate([z, self.h2(self.h1(z))]))
"""


def test_tf_keras_subclassed_savedmodel_gets_its_normalisation_moved_with_its_class(tmp_path: Path) -> None:
    """A tf_keras subclassed SavedModel revived without its class keeps the layer in its saved graph (it
    collapses): the warning names the class and --custom-objects; with it the layer is moved out and the int8
    model is within 0.05 R² of the float one on held-out data."""
    _keras("tf_keras")
    (tmp_path / "tf_layers.py").write_text(TF_KERAS_WIDE_DEEP)
    sys.path.insert(0, str(tmp_path))
    import tf_layers

    x, y = _tabular("regressor")
    model = tf_layers.WideDeepTf()
    model.norm.adapt(x[:600])
    model(x[:1])
    model.compile("adam", "mse")
    model.fit(x[:600], y[:600], epochs=25, batch_size=32, verbose=0)
    path = tmp_path / "wide_deep_savedmodel"
    model.save(path, save_format="tf")
    np.savez(tmp_path / "rep.npz", x=x[:200])
    np.savez(tmp_path / "test.npz", x=x[600:], y=y[600:])
    args = ["quantize", str(path), "--rep-data", str(tmp_path / "rep.npz"), "--data", str(tmp_path / "test.npz")]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "q0")])
    assert res.exit_code == 0, res.output
    assert "COLLAPSED" in res.output and "without its Python class 'WideDeepTf'" in res.output, res.output
    assert "--custom-objects" in res.output
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "q"), "--custom-objects",
                                   str(tmp_path / "tf_layers.py")])
    assert res.exit_code == 0, res.output
    assert "COLLAPSED" not in res.output and "applied outside the int8 model" in res.output
    report = json.loads((tmp_path / "q" / "report.json").read_text())
    out = report["comparison"]["outputs"][0]
    assert out["r2"] >= 0.95, out   # int8 against float on held-out data


@NEEDS_QEMU
@pytest.mark.slow
def test_firmware_normalises_raw_features_like_the_host(tmp_path: Path) -> None:
    """validate --board sends raw float features; the generated tk_input_norm.c normalises and quantizes them
    on qemu_m4, and output 0 equals the host TFLM result (bit for bit, at the 3 decimals read back)."""
    import tinykeras

    x, y = _tabular("regressor", 300)
    model = _tabular_model("tf_keras-sequential_regressor", x, tmp_path)
    model.fit(x, y, epochs=5, verbose=0)
    conv = tinykeras.quantize(model, x[:200], out_dir=tmp_path / "q")
    assert conv.input_norm[0] is not None
    np.savez(tmp_path / "test.npz", x=x[200:])
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "q" / "model.tflite"), "--data",
                                   str(tmp_path / "test.npz"), "--board", "qemu_m4", "--samples", "12", "--json"])
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout[res.stdout.index("{"):])["board"]
    assert board["sent"].startswith("raw float features") and board["matches_host_tflm"], board
    assert board["output_scale"] >= 0.002  # 3 decimals tell every int8 value apart: a bit-exact comparison


# ------------------------------------------------------------------------------------------------ recurrent


@pytest.mark.slow
def test_long_keras3_lstm_reaches_tflm_and_aot_bit_exact(tmp_path: Path) -> None:
    """The issue's model: LSTM(32) over 50 steps used to fail with "TFLM failed to allocate tensors" (the default
    host arena was too small for ~750 unrolled ops); now it converts, and aot matches TFLM bit for bit. A too
    small arena is reported naming the operator, the tensor and the bytes."""
    from tinykeras.errors import ModelError
    from tinykeras.inspect import load_model_info
    from tinykeras.tflm_host import TflmRunner

    k = _keras("keras3")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 50, 1)).astype(np.float32)
    y = (x[:, :25, 0].mean(axis=1) > 0).astype(np.int64) + (x[:, 25:, 0].mean(axis=1) > 0)
    model = k.Sequential([k.Input((50, 1)), k.layers.LSTM(32), k.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:100], y[:100], epochs=1, verbose=0)
    model.save(tmp_path / "lstm.keras")
    np.savez(tmp_path / "rep.npz", x=x[:40])
    np.savez(tmp_path / "test.npz", x=x[100:], y=y[100:])
    res = CliRunner().invoke(cli, ["quantize", str(tmp_path / "lstm.keras"), "--rep-data", str(tmp_path / "rep.npz"),
                                   "--data", str(tmp_path / "test.npz"), "-o", str(tmp_path / "q"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):])
    assert report["comparison"]["outputs"][0]["agreement"] >= 0.9
    tflite = tmp_path / "q" / "model.tflite"
    res = CliRunner().invoke(cli, ["emulate", str(tflite), "--runtime", "aot", "--json", "--no-tflite",
                                   "--samples", "4"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["bit_exact"]

    info = load_model_info(tflite)
    assert len(info.ops) > 500
    with pytest.raises(ModelError) as caught:
        TflmRunner(tflite.read_bytes(), info, arena_size=100_000)
    message = str(caught.value)
    assert "operator #0 RESHAPE" in message and "tensor #" in message and "100,000 B arena" in message, message
    assert "\n" not in message
    with pytest.raises(ModelError, match=r"before any operator was prepared.* tensors and .* operators; TFLM asked "
                                         r"for [\d,]+ B more than the 20,000 B arena holds"):
        TflmRunner(tflite.read_bytes(), info, arena_size=20_000)


def test_128_step_gru_with_thousands_of_tensors_converts_and_emulates_bit_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Keras 3 GRU over 128 steps unrolls into ~2,200 ops and ~2,600 tensors: TFLM's memory planner then says
    "Too many buffers" (its capacity grows with the arena) or crashes in too small an arena; the host
    interpreter and the arena measurement retry with a larger arena, and aot matches TFLM bit for bit."""
    k = _keras("keras3")
    x = np.random.default_rng(0).normal(size=(48, 128, 2)).astype(np.float32)
    model = k.Sequential([k.Input((128, 2)), k.layers.GRU(8), k.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "gru.keras")
    np.savez(tmp_path / "rep.npz", x=x[:32])
    res = CliRunner().invoke(cli, ["quantize", str(tmp_path / "gru.keras"), "--rep-data", str(tmp_path / "rep.npz"),
                                   "-o", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["emulate", str(tmp_path / "q" / "model.tflite"), "--runtime", "aot", "--json",
                                   "--no-tflite", "--samples", "3"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["bit_exact"] and out["arena"]["aot_bytes"] < out["arena"]["tflm_measured_bytes"], out

    # the retry itself, from a recording arena too small for TFLM's records (what a 128-unit GRU meets)
    from tinykeras import arena
    from tinykeras.inspect import load_model_info

    tflite = tmp_path / "q" / "model.tflite"
    info = load_model_info(tflite)
    monkeypatch.setitem(arena._RECORD_SIZES, info.sha256, 128 * 1024)
    assert arena.recorded_arena_bytes(tflite.read_bytes(), info) > 128 * 1024
    assert arena._RECORD_SIZES[info.sha256] >= 512 * 1024

    # the fit check's flash estimate covers the call of each of the ~2,200 ops (the linker found it short)
    if shutil.which("arm-none-eabi-gcc"):
        from tinykeras.target import qemu

        res = CliRunner().invoke(cli, ["build", "--model", str(tflite), "--board", "qemu_m4", "-o",
                                       str(tmp_path / "fw")])
        assert res.exit_code == 0, res.output
        fit = json.loads((tmp_path / "fw" / "tinykeras_build.json").read_text())["fit"]
        sizes = qemu.elf_sizes(qemu.compile_project(tmp_path / "fw"))
        assert sizes["flash"] <= fit["flash_needed"], (sizes, fit)


def test_fused_lstm_builds_with_tflm_when_aot_lacks_the_op(tmp_path: Path) -> None:
    """tf_keras LSTM -> UNIDIRECTIONAL_SEQUENCE_LSTM: with no --runtime, qemu_m4 takes TFLM and says so."""
    import tinykeras
    from tinykeras.boards import load_board
    from tinykeras.pipeline import _fallback_runtime

    k = _keras("tf_keras")
    model = k.Sequential([k.Input((16, 2)), k.layers.LSTM(8), k.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(32, 16, 2)).astype(np.float32)
    conv = tinykeras.quantize(model, x)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in conv.info.op_names
    said: list[str] = []
    board = load_board("qemu_m4")
    assert _fallback_runtime(board, None, "aot", conv.info, said.append) == "tflm"
    assert len(said) == 1 and "UNIDIRECTIONAL_SEQUENCE_LSTM" in said[0] and "--runtime tflm" in said[0]
    assert _fallback_runtime(board, "aot", "aot", conv.info, said.append) == "aot"  # asked for: kept (and refused)
