"""``--log-level`` and ``--log-format text|json`` of the long-running commands; only the CLI
configures logging, and every record it writes is redacted."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es.cli import main
from squidmesh_es.cli._logging import configure_logging
from squidmesh_es.redaction import RedactingFilter


@contextmanager
def fresh_root() -> Iterator[logging.Logger]:
    """The root logger without handlers, as in a fresh process; put back afterwards.

    Inside the test body: pytest adds its own handlers around the call, after fixtures.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_json_lines_carry_structured_fields_and_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fresh_root() as root:
        configure_logging("warning", "json")
        configure_logging("warning", "json")  # a second command in one process
        handlers = list(root.handlers)
        log = logging.getLogger("squidmesh_es.test")
        log.info("below the level")
        log.warning(
            "dsn %s",
            "postgresql://app:hunter2@db/prod",
            extra={"run_id": "r-1", "attempt": 2, "password": "hunter2"},
        )
        try:
            raise ValueError("token=hunter2")
        except ValueError:
            log.exception("step failed")

    lines = capsys.readouterr().err.splitlines()
    assert len(handlers) == 1
    assert len(lines) == 2 and "hunter2" not in "".join(lines)
    first, second = (json.loads(line) for line in lines)
    assert {k: first[k] for k in ("level", "logger", "message", "run_id", "attempt")} == {
        "level": "WARNING",
        "logger": "squidmesh_es.test",
        "message": "dsn postgresql://app:[REDACTED]@db/prod",
        "run_id": "r-1",
        "attempt": 2,
    }
    assert first["password"] == "[REDACTED]" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError" in second["exception"]


def test_a_host_configured_root_keeps_its_handlers_and_level() -> None:
    host = logging.StreamHandler()
    with fresh_root() as root:
        root.addHandler(host)
        root.setLevel(logging.ERROR)
        configure_logging("DEBUG", "json")
        after = (list(root.handlers), root.level)

    assert after == ([host], logging.ERROR)
    assert any(isinstance(f, RedactingFilter) for f in host.filters)


def test_text_lines_name_level_and_logger(capsys: pytest.CaptureFixture[str]) -> None:
    with fresh_root():
        configure_logging("DEBUG", "text")
        logging.getLogger("squidmesh_es.test").debug("shown at debug")

    assert capsys.readouterr().err.rstrip().endswith(" DEBUG squidmesh_es.test shown at debug")


@pytest.mark.parametrize(
    "command",
    [["worker", "--import", "json"], ["scheduler", "--import", "json"], ["projections", "run"]],
)
@pytest.mark.parametrize("option", [["--log-level", "LOUD"], ["--log-format", "xml"]])
def test_a_bad_log_option_is_a_usage_error(command: list[str], option: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, *option])

    assert result.exit_code == 2
    assert option[0] in result.output


def test_the_library_never_configures_logging_on_the_hosts_behalf() -> None:
    source = Path(__file__).resolve().parents[2] / "src" / "squidmesh_es"
    callers = [
        p.relative_to(source).as_posix()
        for p in source.rglob("*.py")
        if "basicConfig" in p.read_text() or "configure_logging(" in p.read_text()
    ]

    assert sorted(callers) == [
        "cli/_dashboard.py",
        "cli/_logging.py",
        "cli/_projections.py",
        "cli/_scheduler.py",
        "cli/_worker.py",
    ]


def test_projections_run_logs_one_json_object_per_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "squidmesh_es.cli", "projections", "run"]
        + ["--database-url", url, "--log-format", "json", "--log-level", "info"],
        env=dict(os.environ),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("following" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(10)

    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records]
    assert messages[0].startswith("following ") and "stopping projections (signal 15)" in messages
    assert {r["logger"] for r in records} >= {"squidmesh_es.cli.projections"}
