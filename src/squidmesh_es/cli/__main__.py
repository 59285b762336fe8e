"""``python -m squidmesh_es.cli``: the ``squidmesh`` command without its console script."""

from squidmesh_es.cli import main

main()
