"""The board-independent benchmark C (firmware_templates/runtime/bench/tk_bench.c) built with the host gcc
against a fake port and a fake model: @tk records, the MLPerf Tiny command loop and each benchmark's input and
output conventions (mirrored by tinykeras.mlperf_models), warning-free C99."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mirrors import bench_input, mlperf_results

from tinykeras import mlperf_models
from tinykeras.resources import templates_dir

BENCH = templates_dir() / "runtime" / "bench"
WARN = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]

# A fixed fully connected layer 16 -> 4 (weights from a formula), mirrored by fake_model() below.
FAKE_MODEL = r"""
#include "tk_model_api.h"
static int8_t s_in[16];
static int8_t s_out[4];
static int s_fail_init, s_fail_invoke;
int tk_model_init(void) { return s_fail_init ? -1 : 0; }
int8_t *tk_input(void) { return s_in; }
const int8_t *tk_output(void) { return s_out; }
unsigned tk_input_bytes(void) { return 16u; }
unsigned tk_output_bytes(void) { return 4u; }
int tk_invoke(void) {
  unsigned j, i;
  if (s_fail_invoke) return -1;
  for (j = 0u; j < 4u; ++j) {
    int32_t acc = 0;
    for (i = 0u; i < 16u; ++i) {
      acc += (int32_t)s_in[i] * (int32_t)((int32_t)((i * 7u + j * 13u) % 31u) - 15);
    }
    acc >>= 6;
    s_out[j] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
  }
  return 0;
}
unsigned tk_arena_used(void) { return 20u; }
const char *tk_model_error(void) { return s_fail_init ? "arena too \"small\"" : "invoke broke"; }
void fake_fail(int init, int invoke) { s_fail_init = init; s_fail_invoke = invoke; }
"""

# A port on stdio: writes to stdout, reads the commands from stdin, a counter of 1000 per call.
FAKE_PORT = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tk_bench.h"
#include "tk_port.h"
void fake_fail(int init, int invoke);
static uint64_t s_now;
void tk_port_init(void) {}
void tk_port_write(const char *s, unsigned n) { fwrite(s, 1, n, stdout); }
int tk_port_read_char(void) { int c = getchar(); return c == EOF ? -1 : c; }
void tk_port_idle(void) {}
uint64_t tk_port_time_us(void) { s_now += 7u; return s_now; }
uint64_t tk_port_counter(void) { static uint64_t c; c += 1000u; return c; }
tk_counter_kind tk_port_counter_kind(void) { return TK_COUNTER_CYCLES; }
#ifndef INPUT_FORMAT
#define INPUT_FORMAT TK_MLPERF_INPUT_INT8
#define RESULTS_FORMAT TK_MLPERF_RESULTS_SCORES
#define DB_BYTES 16u
#endif
static uint8_t s_db[DB_BYTES];
int main(int argc, char **argv) {
  static const tk_bench_config cfg = {"host", "aot", "fake\"m", "0123456789abcdef", 100u, 20u, 1000000u,
                                      "micros", 3u, 1u, 64u, 0.25f, -3, "kws01", "host (fake)", s_db, DB_BYTES,
                                      INPUT_FORMAT, RESULTS_FORMAT, 0.5f, 3};
  int c;
  fake_fail(argc > 1 && argv[1][0] == 'i', argc > 1 && argv[1][0] == 'v');
  if (tk_bench_run(&cfg) != 0) return 1;
  while ((c = tk_port_read_char()) >= 0) tk_bench_feed(&cfg, (char)c);
  return 0;
}
"""

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt install gcc)")


def fake_model(x: bytes) -> np.ndarray:
    xi = np.frombuffer(x, dtype=np.int8).astype(np.int32)
    w = np.array([[((i * 7 + j * 13) % 31) - 15 for i in range(16)] for j in range(4)], dtype=np.int32)
    return np.clip((w @ xi) >> 6, -128, 127).astype(np.int8)


def _compile(d: Path, *defines: str) -> Path:
    (d / "fake_model.c").write_text(FAKE_MODEL)
    (d / "fake_port.c").write_text(FAKE_PORT)
    exe = d / "bench"
    subprocess.run(["gcc", *WARN, "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    f"-I{BENCH}", *defines, str(BENCH / "tk_bench.c"), str(d / "fake_model.c"),
                    str(d / "fake_port.c"), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


@pytest.fixture(scope="module")
def host_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(tmp_path_factory.mktemp("bench_c"))


def run(exe: Path, commands: str = "", *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], input=commands.encode(), capture_output=True, check=False,
                          timeout=30)


def records(out: bytes) -> list[dict]:
    return [json.loads(line[4:]) for line in out.decode().splitlines() if line.startswith("@tk ")]


@needs_gcc
def test_records_follow_the_protocol(host_bench: Path) -> None:
    proc = run(host_bench)
    assert proc.returncode == 0, proc.stderr.decode()
    recs = records(proc.stdout)
    assert [r["event"] for r in recs] == ["hello", "run", "run", "run", "done"]
    hello = recs[0]
    assert hello == {"v": 1, "event": "hello", "board": "host", "runtime": "aot", "model": 'fake"m',
                     "model_sha256": "0123456789abcdef", "model_bytes": 100, "arena_bytes": 20, "arena_used": 20,
                     "cpu_hz": 1000000, "timer": "micros", "runs": 3, "warmup": 1, "macs": 64}
    expected = fake_model(bench_input(16))
    for i, r in enumerate(recs[1:4]):
        assert r["i"] == i and r["us"] == 7 and r["cycles"] == 1000
        assert r["top"] == int(np.argmax(expected)) and r["score"] == int(expected.max())
    assert recs[-1] == {"v": 1, "event": "done", "runs": 3}
    assert proc.stdout.decode().endswith("m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n")


@needs_gcc
def test_init_and_invoke_failures_are_error_records(host_bench: Path) -> None:
    proc = run(host_bench, "", "init")
    assert proc.returncode == 1
    assert records(proc.stdout) == [{"v": 1, "event": "error", "msg": 'tk_model_init failed: arena too "small"'}]
    proc = run(host_bench, "", "vinvoke")
    recs = records(proc.stdout)
    assert [r["event"] for r in recs] == ["hello", "error"] and recs[1]["msg"] == "tk_invoke failed: invoke broke"


def replies(out: bytes) -> list[list[str]]:
    """The command replies after boot, split at each m-ready."""
    text = out.decode().split("m-init-done\r\nm-ready\r\n", 1)[1]
    return [[ln for ln in chunk.split("\r\n") if ln] for chunk in text.split("m-ready\r\n")[:-1]]


@needs_gcc
def test_mlperf_commands(host_bench: Path) -> None:
    x = bytes(range(200, 216))
    cmds = ("name%profile%timestamp%db load 16%" f"db {x[:8].hex()}%db {x[8:].hex()}%infer 2 1%results%"
            "bogus%db load 17%db 0g%db abc%infer 0%infer%  name \r\n%%" + "y" * 200 + "%"
            f"db load 16%db {x[:8].hex()}%infer 1 0%db 00%db print%help%stop%db 0g%")
    proc = run(host_bench, cmds)
    assert proc.returncode == 0, proc.stderr.decode()
    got = replies(proc.stdout)
    want_results = mlperf_results(fake_model(x), 0.25, -3)
    assert got[0] == ["m-name-dut-[host (fake)]"]
    assert got[1] == ["m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[kws01]"]
    assert got[2][0].startswith("m-lap-us-") and len(got[2]) == 1
    assert got[3] == ["m-[Expecting 16 bytes]"]
    assert got[4] == []
    assert got[5] == ["m-load-done"]
    infer = got[6]
    assert infer[:3] == ["m-warmup-start-1", "m-warmup-done", "m-infer-start-2"]
    assert infer[3].startswith("m-lap-us-") and infer[4].startswith("m-lap-us-")
    assert int(infer[4][9:]) > int(infer[3][9:])
    assert infer[5:] == ["m-infer-done", want_results]
    assert got[7] == [want_results]
    assert got[8] == ["e-[Unknown command: bogus]"]
    assert got[9] == ["e-[Supplied buffer size 17 exceeds maximum of 16]"]
    assert got[10] == ["e-[No input expected: send `db load N` first]"]  # the refused load takes no bytes
    assert got[11] == ["e-[Insufficent number of hex digits]"]
    assert got[12] == ["e-[Inference iterations must be >0]"]
    # after a refused `db load`, infer refuses to run: no fallback to the pattern, no zero padding
    assert got[13] == ["e-[Input db has 0 bytes, expected 16; send `db load 16` and all its bytes]"]
    assert got[14] == ["m-name-dut-[host (fake)]"]  # whitespace around a command is ignored
    assert got[15] == []                          # an empty command just answers m-ready
    assert got[16] == ["e-[Unknown command: " + "y" * 80 + "]"]  # the 80-byte command buffer
    assert got[17:19] == [["m-[Expecting 16 bytes]"], []]
    assert got[19] == ["e-[Input db has 8 bytes, expected 16; send `db load 16` and all its bytes]"]  # incomplete
    assert got[20] == []
    assert got[21] == ["m-buffer-c8-c9-ca-cb-cc-cd-ce-cf", "m-buffer-00-d1-d2-d3-d4-d5-d6-d7"]
    assert got[22][0] == "ULPMark for tinyML Firmware V0.0.1" and got[22][-1].startswith("results ")
    assert got[23][0].startswith("e-[Streaming wake word detection is not supported")
    assert got[24] == ["e-[Invalid hex digit]"]


@needs_gcc
def test_infer_before_any_db_load_runs_the_pattern(host_bench: Path) -> None:
    got = replies(run(host_bench, "infer 1 0%").stdout)
    assert got[0][-1] == mlperf_results(fake_model(bench_input(16)), 0.25, -3)


@needs_gcc
def test_uint8_input_is_shifted_by_128(tmp_path: Path) -> None:
    """ic01/vww01: the dataset's uint8 pixels minus 128 (the reference th_load_tensor)."""
    exe = _compile(tmp_path, "-DINPUT_FORMAT=TK_MLPERF_INPUT_UINT8", "-DRESULTS_FORMAT=TK_MLPERF_RESULTS_SCORES",
                   "-DDB_BYTES=16u")
    x = bytes([0, 1, 127, 128, 129, 255] + list(range(60, 70)))
    got = replies(run(exe, f"db load 16%db {x.hex()}%infer 1 0%").stdout)
    conv = mlperf_models.Conventions("ic01", "uint8", "scores")
    want = fake_model(mlperf_models.load_tensor(conv, x, 16, 1.0, 0).tobytes())
    assert got[-1][-1] == mlperf_models.results_line(conv, want, 0.25, -3)
    assert want.tolist() != fake_model(x).tolist()


@needs_gcc
def test_float32_input_is_quantized_and_scored_as_ad01(tmp_path: Path) -> None:
    """ad01: 4-byte floats quantized on the device (scale 0.5, zero point 3); one score, the reference's MSE."""
    exe = _compile(tmp_path, "-DINPUT_FORMAT=TK_MLPERF_INPUT_FLOAT32", "-DRESULTS_FORMAT=TK_MLPERF_RESULTS_MSE",
                   "-DDB_BYTES=64u")
    values = np.array([0.24, 0.25, 0.26, -0.25, -0.75, 1.25, 70.0, -70.0, 1e9, -1e9, 3.3, -3.3, 0.0, 9.74, 10.0,
                       -65.5], dtype="<f4")
    data = values.tobytes()
    cmds = "db load 64%" + "".join(f"db {data[k:k + 31].hex()}%" for k in range(0, 64, 31)) + "infer 3 1%db load 32%"
    got = replies(run(exe, cmds + "infer 1 0%").stdout)
    conv = mlperf_models.Conventions("ad01", "float32", "mse")
    q = mlperf_models.load_tensor(conv, data, 16, 0.5, 3)
    assert q.tolist()[:8] == [3, 4, 4, 2, 1, 6, 127, -128]  # half away from zero, clamped
    out = fake_model(q.tobytes())
    want = mlperf_models.results_line(conv, out, 0.25, -3, data[:16])  # 4 outputs vs the first 4 floats
    assert got[-3][-1] == want and got[-3][-1].count(",") == 0
    assert got[-1] == ["e-[Input db has 0 bytes, expected 64; send `db load 64` and all its bytes]"]


def test_mlperf_results_rounding() -> None:
    assert mlperf_results([-128, 0, 127], 1 / 256, -128) == "m-results-[0.000,0.500,0.996]"
    # 16/256 = 0.0625 exactly: printf's %0.3f rounds the tie to even
    assert mlperf_results([16, -16, 80], 1 / 256, 0) == "m-results-[0.062,-0.062,0.312]"
    assert mlperf_models.fixed3(0.0005) == "0.001"  # 0.0005f is a little above 0.0005
    assert mlperf_results([-3], 0.5, 0) == "m-results-[-1.500]"


def test_bench_input_matches_xorshift32() -> None:
    data = bench_input(5)
    x, want = 0x2545F491, []
    for _ in range(5):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        want.append(x >> 24)
    assert list(data) == want and len(set(bench_input(256))) > 100


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs arm-none-eabi-gcc (apt install gcc-arm-none-eabi)")
def test_bench_c_is_warning_free_for_cortex_m4(tmp_path: Path) -> None:
    proc = subprocess.run(["arm-none-eabi-gcc", *WARN, "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                           "-mfpu=fpv4-sp-d16", "-c", str(BENCH / "tk_bench.c"), "-o", str(tmp_path / "b.o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@needs_gcc
def test_headers_compile_as_cpp(tmp_path: Path) -> None:
    src = tmp_path / "x.cc"
    src.write_text('#include "tk_model_api.h"\n#include "tk_port.h"\n#include "tk_bench.h"\n'
                   'extern "C" int tk_invoke(void);\nint f() { return tk_invoke(); }\n')
    if shutil.which("g++") is None:
        pytest.skip("needs g++ (apt install g++)")
    proc = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", f"-I{BENCH}", "-c", str(src),
                           "-o", str(tmp_path / "x.o")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
