"""``cli_order`` with a notification after the charge: a safe target for migration."""

from __future__ import annotations

from deploy_v1 import Charge, Order, Reserve

from squidmesh_es.workflow import COMPLETE, Workflow, log, manual, step, transition


class CliOrder(Workflow):
    name = "cli_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    charge = step(Charge)
    notify = log("charged")
    transitions = [
        transition(reserve, to=charge),
        transition(charge, to=notify),
        transition(notify, to=COMPLETE),
    ]
