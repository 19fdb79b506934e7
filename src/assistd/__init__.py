"""assistd: a self-hosted server for OpenAI's Assistants API v2."""

__version__ = "0.1.0"
