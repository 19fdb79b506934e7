"""The code interpreter's sandbox: per-thread Python kernels isolated from the host.

``base`` is the interface the executor uses (``Sandbox``) and what an execution returns;
``process`` runs one driver process per thread behind it; ``bubblewrap`` isolates that
process with bwrap (the default); ``guest`` is the code that runs inside.
"""
