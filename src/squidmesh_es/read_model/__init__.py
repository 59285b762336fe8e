"""Read models: pure builders of snapshots, explanations, graphs and listings."""

__all__: list[str] = []
