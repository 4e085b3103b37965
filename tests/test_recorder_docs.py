"""The recorder's service examples under docs/: the systemd unit's command line and the
compose file parse, and name only real commands, options and images."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from pmstore.cli._parser import build_parser
from pmstore.recorder import RecorderConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _record_args(command: list[str]) -> list[str]:
    """The arguments after ``pmstore`` in a command line."""
    at = next(i for i, word in enumerate(command) if word.endswith("pmstore"))
    return command[at + 1 :]


def _check_record(args: list[str]) -> None:
    parsed = build_parser().parse_args(args)
    assert parsed.command == "record"
    config = RecorderConfig(
        archive_dir=Path(parsed.archive), dsn="", shard_size=parsed.shard_size,
        metrics_port=parsed.metrics_port,
    )  # fmt: skip
    config.check()
    assert parsed.metrics_port == 9464 and parsed.no_progress


def test_the_systemd_unit_runs_pmstore_record() -> None:
    unit = (DOCS / "pmstore-record.service").read_text()
    lines = [line for line in unit.splitlines() if not line.startswith("#")]
    [exec_start] = [line for line in lines if line.startswith("ExecStart=")]
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    _check_record(_record_args(command))
    assert "KillSignal=SIGTERM" in lines and "[Install]" in lines


def test_the_compose_file_parses_and_names_real_images_and_commands() -> None:
    compose = yaml.safe_load((DOCS / "docker-compose.recorder.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("timescale/timescaledb:")  # Community edition
    assert services["db"]["image"].endswith("-pg15")
    recorder = services["recorder"]
    assert recorder["image"] == "python:3.11-slim"
    script = recorder["command"][-1]
    steps = [shlex.split(step) for step in script.split("&&")]
    assert steps[1] == ["pmstore", "migrate"]
    assert steps[2][0] == "exec"
    _check_record(_record_args(steps[2]))
    assert recorder["environment"]["PMSTORE_DSN"].startswith("postgresql://")
    assert set(compose["volumes"]) == {"pgdata", "archive"}
