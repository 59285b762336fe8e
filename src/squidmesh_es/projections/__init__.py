"""Followers that derive the catalog, index and inspection projections."""

__all__: list[str] = []
