"""API keys: the queries services and the executor use, returning typed records."""

from __future__ import annotations
