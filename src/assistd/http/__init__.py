"""HTTP edge: the app factory, request parsing, the one error map, thin routes."""
