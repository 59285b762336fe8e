"""``cli_order`` deployed without its charge step."""

from __future__ import annotations

from deploy_v1 import Order, Reserve

from squidmesh_es.workflow import COMPLETE, Workflow, manual, step, transition


class CliOrder(Workflow):
    name = "cli_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    transitions = [transition(reserve, to=COMPLETE)]
