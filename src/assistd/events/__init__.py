"""Event bus: run events fan out from the worker to every open stream."""
