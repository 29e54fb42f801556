"""Typed experiment configuration: `schema` (the objects), `loader` (YAML, `base:`, `--set`)."""
