"""Model backends: one small interface, a registry from model names, implementations."""
