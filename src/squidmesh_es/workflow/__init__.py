"""Authoring: the workflow DSL, the normalized spec, validation and the step contract."""

__all__: list[str] = []
