"""Text embedders: the local all-MiniLM-L6-v2 and OpenAI-compatible upstreams."""
