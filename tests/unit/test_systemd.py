"""sd_notify pieces, and the deploy files: the unit verifies, the container files are sane."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mastwatch.config import load_config
from mastwatch.systemd import SystemdNotifier, socket_address, watchdog_interval

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_abstract_namespace_address_starts_with_nul() -> None:
    assert socket_address("@mastwatch/notify") == b"\0mastwatch/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready() is False


def test_messages_reach_a_bound_datagram_socket(tmp_path: Path) -> None:
    path = Path("/tmp") / f"mw-unit-{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        try:
            notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(path)})
            assert notifier.ready(status="polling 3 sources")
            assert notifier.reloading()
            notifier.close()
            assert listener.recv(4096) == b"READY=1\nSTATUS=polling 3 sources"
            reloading = listener.recv(4096).decode().splitlines()
        finally:
            path.unlink()
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=")


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.stopping() is False
    assert notifier.watchdog() is False  # still no exception
    notifier.close()


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    # verify checks that ExecStart's binary exists: point it at this checkout's entry point
    entry = Path(sys.executable).with_name("mastwatch")
    assert entry.exists()
    text = (DEPLOY / "mastwatch.service").read_text(encoding="utf-8")
    unit = tmp_path / "mastwatch.service"
    unit.write_text(text.replace("/opt/mastwatch/venv/bin/mastwatch", str(entry)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=mastwatch",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "EnvironmentFile=-",
        "LoadCredential=",
    ):
        assert directive in text


def test_compose_file_is_yaml_with_the_sqlite_service_and_the_ha_profile() -> None:
    compose = YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    single = services["mastwatch"]
    assert "profiles" not in single  # the default: one daemon on SQLite
    assert "state:/var/lib/mastwatch" in single["volumes"]
    assert single["ports"] == ["127.0.0.1:9470:9470"]
    assert services["mastwatch-ha"]["profiles"] == ["ha"]
    ha = services["mastwatch-ha"]
    assert ha["deploy"]["replicas"] == 3
    assert ha["secrets"] == ["postgres-url"]
    assert "./config.ha.toml:/etc/mastwatch/config.toml:ro" in ha["volumes"]
    ha_config = load_config(DEPLOY / "config.ha.toml")
    assert ha_config.store.url_file == Path("/run/secrets/postgres-url")
    assert services["postgres"]["profiles"] == ["ha"]
    assert set(compose["volumes"]) == {"state", "pgdata"}


def test_dockerfile_runs_unprivileged_with_exec_form_and_a_healthcheck() -> None:
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line for line in lines if line and not line.startswith(("#", " "))]
    assert instructions[-1].startswith('ENTRYPOINT ["mastwatch", "run"')  # exec form
    user = next(line for line in instructions if line.startswith("USER "))
    assert not user.split()[1].startswith(("0", "root"))
    health = " ".join(lines[lines.index(next(x for x in lines if x.startswith("HEALTHCHECK"))) :])
    assert "/healthz" in health
    assert "curl" not in health
    assert any(line.startswith("VOLUME") and "/var/lib/mastwatch" in line for line in lines)
    assert lines[0].startswith("#")


@pytest.mark.parametrize("name", ["config.container.toml"])
def test_container_config_is_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mastwatch.config import load_config, resolve_secrets  # noqa: PLC0415

    monkeypatch.delenv("MASTWATCH_WEB_TOKEN", raising=False)
    config = load_config(DEPLOY / name)
    assert config.web.host == "0.0.0.0"
    resolve_secrets(config, {})  # allowed without a token: allow_unauthenticated is set
