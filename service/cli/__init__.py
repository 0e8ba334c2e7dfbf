"""The ``lure`` command line: benchmarks now, the server and its client as they land."""
