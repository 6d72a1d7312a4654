"""Fuzzing support that ships with tinykeras: a seeded flatbuffer-aware model mutator (``models``), a
hostile serial "board" on a local TCP socket (``serial_server``) and the campaign driver behind
``scripts/fuzz.py`` (``campaign``). The test suite runs a bounded slice of each."""
