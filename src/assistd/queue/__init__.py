"""Run queue: which runs wait for a worker."""
