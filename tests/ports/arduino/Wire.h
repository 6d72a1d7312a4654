/* Stand-in (tests only): Wire is not used by the benchmark. */
