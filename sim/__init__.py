"""kvsim simulation library: config, hardware, caches, simulators, reports."""
