"""Encode and decode cost per stored event and snapshot: the library's transcoder vs ours.

Runs ``--runs`` three-step workflows on a memory journal (started in batches of 50, as
``bench_engine.py`` does), keeps a copy of every value the journal's transcoder encoded
(events and snapshots), then times, per value:

- encoding with the library's ``JSONTranscoder`` and with ``JournalTranscoder``, and checks
  that both wrote the same bytes;
- decoding with the library's decoder (what the journal uses) and with orjson plus a Python
  pass over the ``_type_``/``_data_`` tags (the alternative measured and not taken).

    python benchmarks/bench_transcoder.py --runs 300
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder
from pydantic import BaseModel

from squidmesh_es import Ok, SquidMesh, Step, StepContext, Workflow
from squidmesh_es.runtime._transcoder import JournalTranscoder
from squidmesh_es.workflow import COMPLETE, JSONObject, manual, step, transition


class AddOne(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"x": int(str(input.get("x", 0))) + 1})


class BenchInput(BaseModel):
    x: int


class ThreeSteps(Workflow):
    payload = BenchInput
    triggers = [manual("go")]
    a = step(AddOne)
    b = step(AddOne)
    c = step(AddOne)
    transitions = [transition(a, to=b), transition(b, to=c), transition(c, to=COMPLETE)]


def record_values(runs: int) -> list[Any]:
    """Every value the journal's transcoder encoded while ``runs`` runs went to completion."""
    seen: list[Any] = []
    with SquidMesh.open("memory://", workflows=[ThreeSteps]) as mesh:
        transcoder = mesh.mapper.transcoder
        encode = transcoder.encode

        def keep(obj: Any) -> bytes:
            seen.append(copy.deepcopy(obj))
            return encode(obj)

        transcoder.encode = keep  # type: ignore[method-assign]
        for first in range(0, runs, 50):
            mesh.start_many(ThreeSteps, [{"x": i} for i in range(first, min(runs, first + 50))])
        mesh.drain(owner_id="bench", max_steps=10 * runs)
        mesh.queue_snapshots.wait()
    return seen


def untag_decoder(library: JSONTranscoder) -> Callable[[bytes], Any]:
    """orjson, then the library's object hook on every tagged dict, innermost first."""
    hook = library._decode_obj

    def untag(value: Any) -> Any:
        if type(value) is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = untag(item)
            return hook(value) if len(value) == 2 and "_type_" in value else value
        if type(value) is list:
            for i, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[i] = untag(item)
        return value

    return lambda data: untag(orjson.loads(data))


def per_value_us(fn: Callable[[Any], object], values: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for value in values:
            fn(value)
        best = min(best, time.perf_counter() - started)
    return best / len(values) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="workflows to record")
    parser.add_argument("--repeat", type=int, default=7, help="timings per figure (best kept)")
    args = parser.parse_args()

    recorded = record_values(args.runs)
    with SquidMesh.open("memory://") as mesh:
        ours = mesh.mapper.transcoder
        assert isinstance(ours, JournalTranscoder)
        library = JSONTranscoder()
        mesh.register_transcodings(library)
    kinds = {
        "events": [v for v in recorded if not {"topic", "state"} <= set(v)],
        "snapshots": [v for v in recorded if {"topic", "state"} <= set(v)],
    }
    print(f"{args.runs} runs of 3 steps: {len(recorded)} values encoded")
    print(f"{'':10} {'count':>6} {'bytes':>8} {'library':>9} {'journal':>9} {'x':>5}  same bytes")
    for kind, values in kinds.items():
        if not values:
            continue
        size = sum(len(library.encode(v)) for v in values) // len(values)
        lib = per_value_us(library.encode, values, args.repeat)
        fast = per_value_us(ours.encode, values, args.repeat)
        same = all(ours.encode(v) == library.encode(v) for v in values)
        print(
            f"encode {kind:10} {len(values):6} {size:8} {lib:8.2f}us {fast:8.2f}us "
            f"{lib / fast:4.1f}x  {same}"
        )
    untag = untag_decoder(library)
    for kind, values in kinds.items():
        if not values:
            continue
        data = [library.encode(v) for v in values]
        lib = per_value_us(library.decode, data, args.repeat)
        alt = per_value_us(untag, data, args.repeat)
        print(f"decode {kind:10} library {lib:8.2f}us  orjson+tag pass {alt:8.2f}us")


if __name__ == "__main__":
    main()
