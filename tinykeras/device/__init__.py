"""Read a serial benchmark (``docs/protocol.md``) from a board and compute the statistics on the host.

The reader lives in three modules, with this one re-exporting them for callers and scripts:

- :mod:`tinykeras.device.protocol`: the ``@tk`` protocol, pure (byte chunks in, events and a BenchReport out);
- :mod:`tinykeras.device.port`: where bytes come from (pyserial ports, sockets, replay files);
- :mod:`tinykeras.device.mlperf`: the MLPerf Tiny DUT driver and its reply parser.

How results are written is :mod:`tinykeras.report`. Never imports TensorFlow.

The reader survives boot garbage, non-UTF-8 bytes, partial lines, device log lines between records, a reset
mid-run (a second ``hello``), a disconnect, silence or chatter past the timeout, malformed numbers and
records: it always returns a :class:`BenchReport` of what it got, with ``complete`` false and ``status``
saying why.
"""

from __future__ import annotations

from tinykeras.device.mlperf import MLPERF_CHUNK, MlperfParser, collect_mlperf, parse_mlperf_chunks
from tinykeras.device.port import KNOWN_USB_IDS, PortReader, auto_port, collect, open_port, read_until, replay
from tinykeras.device.protocol import (
    COUNTERS,
    MARKER,
    MAX_LINE,
    MAX_RUNS,
    PROTOCOL_VERSION,
    STAT_KEYS,
    STATUS_TEXT,
    BenchReport,
    Event,
    ProtocolParser,
    Run,
    SessionBuilder,
    parse_chunks,
    stats,
)

__all__ = [
    "COUNTERS", "KNOWN_USB_IDS", "MARKER", "MAX_LINE", "MAX_RUNS", "MLPERF_CHUNK", "PROTOCOL_VERSION", "STATUS_TEXT",
    "STAT_KEYS", "BenchReport", "Event", "MlperfParser", "PortReader", "ProtocolParser", "Run", "SessionBuilder",
    "auto_port", "collect", "collect_mlperf", "open_port", "parse_chunks", "parse_mlperf_chunks", "read_until",
    "replay", "stats",
]
