"""The deployment recipes in examples/ run what they claim: no Docker engine or systemd here,
so each is parsed and its command line goes through the real CLI and configuration.

* ``examples/Containerfile``: every instruction is one Docker knows; ENTRYPOINT + CMD are in
  exec form (the server is PID 1 and gets SIGTERM), make a ``snsmiddleware serve`` command
  line our parser accepts, and with the image's ENV and INI the application assembles; the
  build stage's COPY list is enough to build the wheel (built from exactly those files).
* ``examples/snsmiddleware.service``: ``systemd-analyze verify`` finds nothing to say (where
  systemd is installed); ExecStart parses with our CLI; the stop time-out leaves room for the
  graceful shutdown; the exit status it does not restart on is the CLI's configuration error.
* ``examples/production.ini``: the application assembles from it, and ``serve --config``
  logs with its logging sections (a real server process, stopped with SIGTERM).
* The trusted-proxy settings reach waitress: a real server behind a "proxy" on 127.0.0.1
  sees the forwarded client address and scheme, and refuses nonsense before serving.
"""

from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snsmiddleware.cli import build_parser, main
from snsmiddleware.errors import ConfigurationError
from snsmiddleware.server import (
    DEFAULT_PROXY_HEADERS,
    PROXY_HEADERS,
    PROXY_OPTIONS,
    Assembly,
    ServerSettings,
    assemble,
    configure_logging,
    make_server,
)

from ._mail_helpers import FAKE_AWS_ENV
from ._net import free_port, wait_for_port
from ._pip import run_with_index
from ._project import ROOT

EXAMPLES = ROOT / "examples"
PRODUCTION_INI = EXAMPLES / "production.ini"

# --- examples/Containerfile ----------------------------------------------------------------

#: The instructions of the Dockerfile reference (BuildKit, podman/buildah read the same).
DOCKER_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


def containerfile_stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each build stage: comments dropped, ``\\`` continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the file ends inside a continued line"
    stages: list[list[Instruction]] = []
    for text in logical:
        keyword, _, arguments = text.strip().partition(" ")
        assert keyword.upper() == keyword and keyword in DOCKER_INSTRUCTIONS, text
        if keyword == "FROM":
            stages.append([])
        assert stages, "the first instruction must be FROM"
        stages[-1].append(Instruction(keyword, arguments.strip()))
    return stages


def env_values(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                name, equals, value = pair.partition("=")
                assert equals, f"ENV in the key=value form: {pair}"
                values[name] = value
    return values


def copies(instructions: list[Instruction]) -> list[tuple[list[str], str]]:
    """``(sources, destination)`` of each COPY from the build context (not ``--from``)."""
    found = []
    for instruction in instructions:
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            *sources, destination = instruction.arguments.split()
            found.append((sources, destination))
    return found


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    matching = [i for i in instructions if i.keyword == keyword]
    assert len(matching) == 1, f"expected one {keyword}, found {matching}"
    return matching[0]


CONTAINERFILE = EXAMPLES / "Containerfile"


def test_containerfile_runs_a_serve_command_our_cli_accepts() -> None:
    *_, final = containerfile_stages(CONTAINERFILE)
    argv = only(final, "ENTRYPOINT").exec_form() + only(final, "CMD").exec_form()
    assert argv[:2] == ["snsmiddleware", "serve"], argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.config == "/etc/snsmiddleware/production.ini"
    # The INI it names is copied into the image from the repository.
    sources = {destination: sources for sources, destination in copies(final)}
    assert sources[args.config] == ["examples/production.ini"]
    assert only(final, "STOPSIGNAL").arguments == "SIGTERM"
    assert only(final, "USER").arguments not in {"0", "root"}, "the server runs unprivileged"


def test_containerfile_environment_and_ini_assemble() -> None:
    *_, final = containerfile_stages(CONTAINERFILE)
    image_env = env_values(final)
    assert only(final, "EXPOSE").arguments == image_env["SNSMIDDLEWARE_PORT"]
    environ = {**FAKE_AWS_ENV, **image_env}
    assembly = assemble({}, environ, PRODUCTION_INI)
    assert (assembly.settings.host, assembly.settings.port) == ("0.0.0.0", 8080)
    assert assembly.settings.trusted_proxy == "*"
    assert assembly.settings.trusted_proxy_headers == DEFAULT_PROXY_HEADERS


def test_containerfile_copies_exist_and_its_python_is_supported() -> None:
    stages = containerfile_stages(CONTAINERFILE)
    for stage in stages:
        for sources, _ in copies(stage):
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        image = stage[0].arguments.split()[0]
        version = re.fullmatch(r"python:(3\.\d+)-slim", image)
        assert version, image
        classifier = f"Programming Language :: Python :: {version[1]}"
        assert classifier in (ROOT / "setup.cfg").read_text(encoding="utf-8")


@pytest.mark.packaging
def test_containerfile_build_stage_copies_enough_to_build_the_wheel(tmp_path: Path) -> None:
    """The wheel is built from the build stage's COPY sources and nothing else."""
    build, *_ = containerfile_stages(CONTAINERFILE)
    context = tmp_path / "src"
    for sources, destination in copies(build):
        for source in sources:
            target = (
                context / destination / Path(source).name
                if destination.endswith("/")
                else (context / destination)
            )
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)
    out = tmp_path / "wheels"
    run_with_index(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(context)],
        what="building the wheel from the Containerfile's build context",
        timeout=600,
    )
    assert len(list(out.glob("snsmiddleware-*.whl"))) == 1


# --- examples/snsmiddleware.service --------------------------------------------------------

UNIT = EXAMPLES / "snsmiddleware.service"


def unit_sections() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_unit_runs_a_serve_command_our_cli_accepts() -> None:
    unit = unit_sections()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "snsmiddleware"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert Path(args.config).name == PRODUCTION_INI.name  # the INI in examples/


def test_unit_waits_for_the_graceful_shutdown_and_stops_on_a_bad_config() -> None:
    service = unit_sections()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    stop = timedelta(seconds=int(service["TimeoutStopSec"]))
    assert stop > ServerSettings.shutdown_timeout + timedelta(seconds=5)
    assert service["RestartPreventExitStatus"] == "2"
    assert main(["serve", "--config", "/nonexistent/production.ini"]) == 2
    state = service["StateDirectory"]
    assert service["WorkingDirectory"] == f"/var/lib/{state}"  # outbox/ and var/ live there


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd checks every directive (unknown keys and bad values are reported, not fatal:
    the test fails on any output). ExecStart must name an existing program, so the copy
    checked points it at this environment's console script."""
    program = Path(sys.executable).parent / "snsmiddleware"
    assert program.exists()
    text = UNIT.read_text(encoding="utf-8")
    original = shlex.split(unit_sections()["Service"]["ExecStart"])[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={original}", f"ExecStart={program}"))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# --- examples/production.ini: serve --config applies its logging ---------------------------


def test_serve_config_logs_with_the_ini_logging_sections(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNSMIDDLEWARE_", "AWS_"))}
    env.update(FAKE_AWS_ENV, SNSMIDDLEWARE_PORT=str(port))
    program = Path(sys.executable).parent / "snsmiddleware"
    process = subprocess.Popen(
        [str(program), "serve", "--config", str(PRODUCTION_INI)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    # [formatter_plain]: "LEVEL logger: message", no time stamp (journald adds it).
    assert re.search(r"^INFO snsmiddleware\.serve: ", err, re.MULTILINE), err
    assert re.search(r"^INFO snsmiddleware\.graceful: shut down in", err, re.MULTILINE), err
    assert not re.search(r"^\d{4}-\d\d-\d\d", err, re.MULTILINE), "basicConfig's format"


def test_a_broken_logging_section_stops_the_start(tmp_path: Path) -> None:
    """In a process of its own: a failing fileConfig has already closed the old handlers."""
    broken = tmp_path / "broken.ini"
    text = PRODUCTION_INI.read_text(encoding="utf-8")
    broken.write_text(text.replace("class = StreamHandler", "class = NoSuchHandler"))
    program = Path(sys.executable).parent / "snsmiddleware"
    done = subprocess.run(
        [str(program), "serve", "--config", str(broken)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "the logging sections of" in done.stderr and "NoSuchHandler" in done.stderr
    assert "Traceback" not in done.stderr
    assert configure_logging(EXAMPLES / "paste.ini") is False  # no [loggers]: defaults stay


# --- the proxy in front ---------------------------------------------------------------------


def client_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """What an application behind the server sees of the client."""
    start_response("200 OK", [("Content-Type", "application/json")])
    seen = {"remote": environ["REMOTE_ADDR"], "scheme": environ["wsgi.url_scheme"]}
    seen["forwarded_for"] = environ.get("HTTP_X_FORWARDED_FOR")
    return [json.dumps(seen).encode()]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Any]:
    """``serving(environ)``: a real server with those SNSMIDDLEWARE_* settings and the
    :func:`client_view` app; answers ``GET /`` sent with forwarding headers."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(environ: dict[str, str]) -> dict[str, Any]:
        settings = assemble({"port": str(free_port())}, environ).settings
        built: list[Any] = []
        ready = threading.Event()

        def serve() -> None:  # built off the main thread: no signal handlers installed
            built.append(make_server(Assembly(client_view, settings, "test")))
            ready.set()
            built[0].run()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert ready.wait(10)
        running.append((built[0], thread))
        wait_for_port(settings.port)
        connection = http.client.HTTPConnection("127.0.0.1", settings.port, timeout=10)
        try:
            connection.request(
                "GET", "/", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
            )
            response = connection.getresponse()
            assert response.status == 200
            return dict(json.loads(response.read()))
        finally:
            connection.close()

    yield start
    for server, thread in running:
        server.stop()
        thread.join(timeout=30)


def test_a_trusted_proxys_headers_give_the_client_address_and_scheme(serving: Any) -> None:
    seen = serving({"SNSMIDDLEWARE_TRUSTED_PROXY": "127.0.0.1"})
    assert (seen["remote"], seen["scheme"]) == ("203.0.113.7", "https")


def test_without_a_trusted_proxy_forwarding_headers_are_dropped(serving: Any) -> None:
    seen = serving({})
    assert (seen["remote"], seen["scheme"], seen["forwarded_for"]) == ("127.0.0.1", "http", None)


def test_another_peer_is_not_trusted(serving: Any) -> None:
    seen = serving({"SNSMIDDLEWARE_TRUSTED_PROXY": "192.0.2.10"})
    assert (seen["remote"], seen["scheme"], seen["forwarded_for"]) == ("127.0.0.1", "http", None)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SNSMIDDLEWARE_TRUSTED_PROXY_HEADERS": "x-forwarded-for"}, "without trusted_proxy"),
        ({"SNSMIDDLEWARE_TRUSTED_PROXY_COUNT": "2"}, "without trusted_proxy"),
        (
            {
                "SNSMIDDLEWARE_TRUSTED_PROXY": "*",
                "SNSMIDDLEWARE_TRUSTED_PROXY_HEADERS": "x-real-ip",
            },
            "unknown header",
        ),
        (
            {
                "SNSMIDDLEWARE_TRUSTED_PROXY": "*",
                "SNSMIDDLEWARE_TRUSTED_PROXY_HEADERS": "forwarded x-forwarded-for",
            },
            "exclude each other",
        ),
    ],
)
def test_proxy_settings_that_make_no_sense_stop_the_start(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        assemble({}, environ)


def test_our_proxy_header_names_are_waitress_own() -> None:
    from waitress.adjustments import KNOWN_PROXY_HEADERS

    assert frozenset(KNOWN_PROXY_HEADERS) == PROXY_HEADERS


def test_readme_documents_each_proxy_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### TLS in front of waitress") :]
    for name in PROXY_OPTIONS:
        assert f"| `{name}` | `SNSMIDDLEWARE_{name.upper()}` |" in section, name
    assert f"| `{' '.join(sorted(DEFAULT_PROXY_HEADERS))}` |" in section
