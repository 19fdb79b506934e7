"""Run execution: the state machine, the worker, the loop, context building."""
