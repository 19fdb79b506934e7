"""Code that runs inside the sandbox, with the sandbox's own Python (stdlib only).

This folder, and nothing else of assistd, is mounted read-only into every sandbox (at
``/opt/assistd``): the host's sandbox implementations only read its path. Nothing in the
server imports these modules.
"""
