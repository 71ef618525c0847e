"""Attacks: craft x′ from x against a model."""

__all__: list[str] = []
