"""The standalone budget-alert server: configuration, validation at start, and waitress.

Settings come, lowest precedence first, from the embedded defaults (which run anywhere:
127.0.0.1:8080, a file outbox, a local de-duplication store), ``SNSMIDDLEWARE_*``
environment variables and command-line flags. With an INI file (PasteDeploy style, the one
``pserve`` also runs) the application comes from the file instead, and the environment
variables are offered to it for ``%(name)s`` interpolation.

Everything is checked before the server binds its port: an unknown key, a missing topic
allowlist or an outbox that cannot be written stops the start with a message that names the
problem, rather than failing on the first alert.

This module assembles (:func:`assemble`) and serves (:func:`make_server`); the CLI only
parses flags and prints what was built. Defaults are the constructors' own: the server's in
:class:`ServerSettings`, the middleware's and the app's in their signatures (only the
options given are passed on).
"""

from __future__ import annotations

import configparser
import errno
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .budget_app import BudgetApp
from .config import (
    BUDGET_APP_OPTIONS,
    MIDDLEWARE_OPTIONS,
    budget_app_options,
    closest,
    convert_options,
    did_you_mean,
    middleware_options,
    one_of,
    to_bool,
    to_duration,
    to_positive_int,
    to_text,
    unknown_names,
)
from .errors import ConfigurationError
from .graceful import DEFAULT_SHUTDOWN_TIMEOUT
from .logformat import LOG_FORMATS
from .middleware import SnsMiddleware
from .terminal import terminal_safe

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .frontdoor import FrontDoor
    from .graceful import GracefulServer
    from .metrics import MetricsServer, SnsMetrics

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "SNSMIDDLEWARE_"
DEFAULT_TOPIC: Final = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
DEFAULT_PATH: Final = "/sns/budgets"

# --- behind a TLS proxy -----------------------------------------------------------------------

#: The server options that describe the TLS-terminating proxy in front (ALB, nginx, Caddy).
#: Same names as waitress's, so one ``[server:main]`` reads the same under ``pserve``.
PROXY_OPTIONS: Final = ("trusted_proxy", "trusted_proxy_headers", "trusted_proxy_count")

#: The forwarding headers waitress can take from a trusted proxy (its ``KNOWN_PROXY_HEADERS``).
PROXY_HEADERS: Final = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-by",
        "forwarded",
    }
)

#: What an ALB, Caddy and the usual nginx ``proxy_set_header`` lines send: the client's
#: address and the scheme it used. (waitress alone would trust only X-Forwarded-Proto, with a
#: deprecation warning.)
DEFAULT_PROXY_HEADERS: Final = frozenset({"x-forwarded-for", "x-forwarded-proto"})


def to_proxy_headers(value: str) -> frozenset[str]:
    """``x-forwarded-for x-forwarded-proto`` (spaces or commas): names waitress knows.

    Checked here rather than by waitress, whose ``ValueError`` would come as a traceback
    after the start-up checks."""
    names = frozenset(name.lower() for name in value.replace(",", " ").split())
    if not names:
        raise ValueError("must name at least one header")
    unknown = names - PROXY_HEADERS
    if unknown:
        raise ValueError(
            f"unknown header(s) {', '.join(sorted(unknown))}; known: "
            + ", ".join(sorted(PROXY_HEADERS))
        )
    if "forwarded" in names and len(names) > 1:
        raise ValueError("Forwarded and the X-Forwarded-* headers exclude each other: trust one")
    return names


#: Options of the server itself (not of the middleware or the app).
SERVER_OPTIONS: Final = {
    "host": to_text,
    "port": to_positive_int,
    "threads": to_positive_int,
    "workers": to_positive_int,
    "development": to_bool,
    "dev_ca": to_text,
    "shutdown_timeout": to_duration,
    "trusted_proxy": to_text,
    "trusted_proxy_headers": to_proxy_headers,
    "trusted_proxy_count": to_positive_int,
    # Prometheus metrics on a port of their own (never the SNS port), and the log format.
    "metrics_port": to_positive_int,
    "metrics_host": to_text,
    "log_format": one_of(*LOG_FORMATS),
}
#: The server options an INI file's ``[server:main]`` may set.
INI_SERVER_OPTIONS: Final = (
    "host",
    "port",
    "threads",
    "workers",
    "shutdown_timeout",
    "metrics_port",
    "metrics_host",
    "log_format",
    *PROXY_OPTIONS,
)

#: Server options only a command-line flag may set. Development trust (``--dev``) makes the
#: server accept messages signed by a key that sits unencrypted on disk; an environment
#: variable is inherited silently (a container image, a systemd EnvironmentFile, a shell that
#: once exported it), a flag is seen on the command line and in the process list.
FLAG_ONLY_OPTIONS: Final = {"development": "--dev"}

#: What ``snsmiddleware serve`` runs with when nothing is configured: a server that works on a
#: fresh machine with no AWS account (alerts land as .eml files in ./outbox).
#: The server's own defaults (host, port, threads...) are :class:`ServerSettings`'s.
EMBEDDED_DEFAULTS: Final[Mapping[str, str]] = {
    "paths": DEFAULT_PATH,
    "topics": DEFAULT_TOPIC,
    "dedupe": "sqlite:var/dedupe.sqlite3",  # durable across restarts, shared by processes
    # mailer: the file outbox in ./outbox, BudgetApp's own default
    "default_recipients": "Budget owner <budget-owner@localhost>",
}


@dataclass
class ServerSettings:
    """Validated settings: the server's own, and the raw strings for the middleware and app.

    The defaults here are the server's only definition of them (the CLI's help reads them).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 4
    #: processes (``serve --workers``, :mod:`snsmiddleware.prefork`); 1 serves in this one
    workers: int = 1
    development: bool = False
    dev_ca: str | None = None
    #: how long in-flight deliveries may finish after SIGTERM (SNS's answer deadline)
    shutdown_timeout: timedelta = DEFAULT_SHUTDOWN_TIMEOUT
    #: the TLS proxy in front (waitress's settings of the same names; see proxy_options)
    trusted_proxy: str | None = None
    trusted_proxy_headers: frozenset[str] = frozenset()
    trusted_proxy_count: int | None = None
    #: serve Prometheus metrics on this port (``None``: no metrics); needs the extra
    metrics_port: int | None = None
    #: the metrics port's address: loopback, whatever ``host`` is (scrapers are local or
    #: reach it through a private network the operator opens on purpose)
    metrics_host: str = "127.0.0.1"
    #: ``plain`` text lines or ``json`` (one object per line, decision fields included)
    log_format: str = "plain"
    # Raw strings that can hold secrets (basic_auth, smtp_password): kept out of the repr.
    sns: dict[str, str] = field(default_factory=dict, repr=False)
    budgets: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_proxy_settings(self)


def options_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``SNSMIDDLEWARE_TOPICS=...`` -> ``{"topics": ...}``; unknown names are an error."""
    known = (set(SERVER_OPTIONS) - set(FLAG_ONLY_OPTIONS)) | set(MIDDLEWARE_OPTIONS)
    known |= set(BUDGET_APP_OPTIONS)
    options: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in FLAG_ONLY_OPTIONS:
            raise ConfigurationError(
                f"{name} is not read: development mode is enabled only by the "
                f"{FLAG_ONLY_OPTIONS[key]} flag of snsmiddleware serve"
            )
        if key not in known:
            # Compared without the shared prefix, which would make every name look close.
            match = closest(key, known)
            hint = (
                f" (did you mean {env_name(match)}?)"
                if match
                else "; known: " + ", ".join(sorted(map(env_name, known)))
            )
            # Refused, not ignored: a misspelt SNSMIDDLEWARE_REQUIRE_SIGNATURE_V2 would
            # otherwise switch a safety setting off without a word.
            raise ConfigurationError(f"unknown environment variable {name}{hint}")
        options[key] = value
    return options


def env_name(key: str) -> str:
    """``dedupe_lease`` -> ``SNSMIDDLEWARE_DEDUPE_LEASE``."""
    return ENV_PREFIX + key.upper()


#: The ``serve`` flag that sets each option given by flag (errors name the flag).
FLAG_OF_OPTION: Final = {
    "host": "--host",
    "port": "--port",
    "topics": "--topic",
    "basic_auth": "--basic-auth-file",
    "development": "--dev",
    "dev_ca": "--dev-ca",
    "admin_recipients": "--admin-recipient",
}
#: Options whose values are secrets: an error names the option, never repeats the value.
SECRET_OPTIONS: Final = frozenset({"basic_auth", "smtp_password"})
_CONVERTERS: Final = {**SERVER_OPTIONS, **MIDDLEWARE_OPTIONS, **BUDGET_APP_OPTIONS}


def _shown(key: str, value: str) -> str:
    if key in SECRET_OPTIONS:
        return "***"
    text = value if len(value) <= 80 else value[:80] + "..."
    return terminal_safe(text)


def check_values(options: Mapping[str, str], label: Callable[[str, str], str]) -> None:
    """Convert each option given on one surface on its own, so a bad value is reported in
    that surface's words: ``label(key, value)`` is how the surface names it
    (``SNSMIDDLEWARE_DEDUPE_LEASE=abc``, ``--port 0``, ``server.ini [server:main] port``)."""
    for key, value in options.items():
        converter = _CONVERTERS.get(key)
        if converter is None or not isinstance(value, str):
            continue  # unknown keys are reported by settings_from, with a "did you mean"
        try:
            converter(value)
        except ValueError as exc:
            raise ConfigurationError(f"{label(key, value)}: {exc}") from None


def env_label(key: str, value: str) -> str:
    return f"{env_name(key)}={_shown(key, value)}"


def flag_label(key: str, value: str) -> str:
    flag = FLAG_OF_OPTION.get(key, f"--{key.replace('_', '-')}")
    return flag if key in SECRET_OPTIONS else f"{flag} {_shown(key, value)}"


#: How errors of the constructors name an option that is not their own key.
_MENTIONED_AS: Final = {"topics": "TopicArn"}


def _with_origins(exc: ConfigurationError, origins: Mapping[str, str]) -> ConfigurationError:
    """``exc`` with where each option it names was set: an error about two options
    (``smtp_host do not apply to mailer = file``) names the variables or flags to change."""
    text = str(exc)
    named = [
        f"{key} from {origin}"
        for key, origin in sorted(origins.items())
        if re.search(rf"(?<![\w-]){re.escape(_MENTIONED_AS.get(key, key))}(?![\w-])", text)
    ]
    return ConfigurationError(f"{text} ({'; '.join(named)})") if named else exc


def settings_from(options: Mapping[str, str]) -> ServerSettings:
    """Sort flat string options into server, middleware and app settings, checking each."""
    server = {k: v for k, v in options.items() if k in SERVER_OPTIONS}
    settings = ServerSettings(**convert_options(server, SERVER_OPTIONS, section="server"))
    settings.sns = {k: v for k, v in options.items() if k in MIDDLEWARE_OPTIONS}
    settings.budgets = {k: v for k, v in options.items() if k in BUDGET_APP_OPTIONS}
    unknown = set(options) - set(server) - set(settings.sns) - set(settings.budgets)
    if unknown:
        raise ConfigurationError(f"unknown option(s): {unknown_names(unknown, _CONVERTERS)}")
    return settings


def build_application(settings: ServerSettings) -> SnsMiddleware:
    """BudgetApp behind SnsMiddleware, from validated settings (fails before serving)."""
    sns = middleware_options(settings.sns)
    if not sns.get("topics"):
        raise ConfigurationError("topics is required: the TopicArns this server accepts")
    app = BudgetApp(**budget_app_options(settings.budgets))
    # An unsubscribed endpoint gets no more alerts: the app tells its admin recipients.
    return SnsMiddleware(app, on_unsubscribe=app.on_unsubscribe, **sns)


def load_ini_application(
    path: Path, environ: Mapping[str, str]
) -> tuple[WSGIApplication, dict[str, str]]:
    """Load ``[app:main]`` (or ``[pipeline:main]``) with PasteDeploy, and ``[server:main]``.

    ``SNSMIDDLEWARE_*`` environment variables are offered to the file for interpolation as
    ``%(SNSMIDDLEWARE_NAME)s`` (see :func:`ini_defaults`). Returns the application and the
    server section's :data:`INI_SERVER_OPTIONS` (strings).
    """
    try:
        from paste.deploy import loadapp
        from paste.deploy.loadwsgi import SERVER, loadcontext
    except ImportError:
        raise ConfigurationError(
            "INI files need PasteDeploy, which is not installed: pip install snsmiddleware[paste]"
        ) from None
    if not path.is_file():
        raise ConfigurationError(f"no such configuration file: {path}")
    uri = f"config:{path.resolve()}"
    env = options_from_env(environ)
    global_conf = ini_defaults(path, env)
    try:
        app = loadapp(uri, global_conf=global_conf)
    except ConfigurationError as exc:  # from our factories: say which file
        raise ConfigurationError(f"{path}: {exc}") from None
    except (configparser.Error, LookupError) as exc:  # a bad %(name)s, no [app:main]...
        raise ConfigurationError(f"{path}: {exc}") from None
    try:
        server_conf = loadcontext(SERVER, uri, global_conf=global_conf).local_conf
    except LookupError:  # no [server:main]: the defaults and flags decide
        server_conf = {}
    except configparser.Error as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    server = {key: server_conf[key] for key in INI_SERVER_OPTIONS if key in server_conf}
    _warn_unread(path, server_conf, env)
    return app, server


def _ini_options(path: Path) -> dict[str, tuple[str, str]]:
    """Every option of the file's sections (not ``[DEFAULT]``): name -> (section, raw value)."""
    parser = configparser.RawConfigParser(strict=False, default_section="DEFAULT")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # as PasteDeploy's
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    defaults = set(parser.defaults())
    return {
        option: (section, parser.get(section, option))
        for section in parser.sections()
        for option in parser.options(section)
        if option not in defaults
    }


def ini_defaults(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The ``SNSMIDDLEWARE_*`` values offered to an INI file for interpolation.

    Each is offered under its variable's name (``%(SNSMIDDLEWARE_BASIC_AUTH)s``) and, for
    compatibility, as ``<name>`` when no option of the file has that name. PasteDeploy
    drops every option named like a default it is given, so ``basic_auth =
    %(basic_auth)s`` with SNSMIDDLEWARE_BASIC_AUTH set used to lose the line and serve
    without Basic auth, in silence; that form is now refused with the fix. Values are
    escaped (``%`` -> ``%%``): a password may contain ``%``.
    """
    options = _ini_options(path)
    for key in env:
        if key in options and f"%({key})s" in options[key][1].lower():
            section, value = options[key]
            raise ConfigurationError(
                f"{path}: [{section}] {key} = {value.strip()} cannot take {env_name(key)} "
                f"(PasteDeploy drops an option named like a value it is given); write "
                f"{key} = %({env_name(key)})s"
            )
    escaped = {key: value.replace("%", "%%") for key, value in env.items()}
    offered = {env_name(key): value for key, value in escaped.items()}
    offered.update({key: value for key, value in escaped.items() if key not in options})
    return offered


#: What ``serve`` reads from an INI's ``[server:main]`` (pserve hands the rest to waitress).
def _warn_unread(path: Path, server_conf: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Warn about what an INI start silently ignores: ``[server:main]`` keys other than
    :data:`INI_SERVER_OPTIONS` (waitress settings that pserve would apply), and
    ``SNSMIDDLEWARE_*`` variables the file never interpolates (``%(topics)s``). Warned, not
    refused: the same file also serves pserve, and a variable may be meant for another
    process; the warning makes neither silent."""
    for key in sorted(set(server_conf) - set(INI_SERVER_OPTIONS) - {"use"}):
        log.warning(
            "%s [server:main] %s is not read by snsmiddleware serve%s (it reads %s)",
            path,
            key,
            did_you_mean(key, INI_SERVER_OPTIONS),
            ", ".join(INI_SERVER_OPTIONS),
        )
    text = path.read_text(encoding="utf-8", errors="replace").lower()
    for key in sorted(env):
        used = f"%({key})s" in text or f"%({env_name(key).lower()})s" in text
        if key not in SERVER_OPTIONS and not used:
            log.warning(
                "%s is set but %s never uses %%(%s)s: it has no effect", env_name(key), path, key
            )


def enable_development_mode(app: WSGIApplication, dev_ca: str | None) -> None:
    """Trust the local development CA on ``app`` (an SnsMiddleware), and say so loudly."""
    from .certs import CertificateStore
    from .devmode import DEFAULT_DEV_CA_DIR, DevelopmentTrust, load_or_create_dev_ca

    if not isinstance(app, SnsMiddleware):
        raise ConfigurationError("development mode needs SnsMiddleware as the outermost app")
    directory = Path(dev_ca) if dev_ca else DEFAULT_DEV_CA_DIR
    trust = DevelopmentTrust(load_or_create_dev_ca(directory))
    app.verifier.certificates = CertificateStore(
        trust.fetch_certificate, check_names=app.verifier.certificates.check_names
    )
    app.confirmer = trust.wrap_confirmer(app.confirmer)
    log.warning(
        "DEVELOPMENT MODE: messages signed by the local development CA in %s are trusted. "
        "Never expose this server to the internet.",
        directory.resolve(),
    )


@dataclass
class Assembly:
    """What :func:`assemble` built: the application, its settings, and where they came from
    (``"embedded defaults"``, ``"configuration server.ini"``...)."""

    app: Any
    settings: ServerSettings
    source: str
    #: the metrics the app is instrumented with (``metrics_port`` set), else ``None``
    metrics: SnsMetrics | None = None


def assemble(
    flags: Mapping[str, str], environ: Mapping[str, str], config: Path | None = None
) -> Assembly:
    """Build the application ``snsmiddleware serve`` runs, checking everything first.

    :param flags: string options from the command line (``host``, ``topics``...).
    :param environ: the process environment (``SNSMIDDLEWARE_*`` variables are read).
    :param config: an INI file to load the application from, instead of the embedded
        defaults (which ``--topic`` and ``--basic-auth-file`` then cannot change).
    """
    env = options_from_env(environ)
    check_values(env, env_label)
    check_values(flags, flag_label)
    # (In INI mode only the server's own variables apply directly; the others are the file's
    # business, through interpolation, and its errors name the file.)
    origins = {key: env_name(key) for key in env if config is None or key in SERVER_OPTIONS}
    origins.update({key: FLAG_OF_OPTION.get(key, key) for key in flags})
    try:
        return _assemble(flags, env, environ, config)
    except ConfigurationError as exc:
        raise _with_origins(exc, origins) from None


def _assemble(
    flags: Mapping[str, str],
    env: Mapping[str, str],
    environ: Mapping[str, str],
    config: Path | None,
) -> Assembly:
    app: Any
    if config is not None:
        app, server = load_ini_application(config, environ)
        check_values(server, lambda key, value: f"{config} [server:main] {key}")
        if "topics" in flags:
            raise ConfigurationError(
                "--topic applies to the embedded defaults; set topics in the INI"
            )
        if "admin_recipients" in flags:
            raise ConfigurationError(
                "--admin-recipient applies to the embedded defaults; set admin_recipients in "
                "the INI's budget_app section"
            )
        if "basic_auth" in flags:
            raise ConfigurationError(
                "--basic-auth-file applies to the embedded defaults; set basic_auth in the "
                "INI (basic_auth = %(basic_auth)s takes it from SNSMIDDLEWARE_BASIC_AUTH)"
            )
        env_server = {k: v for k, v in env.items() if k in SERVER_OPTIONS}
        settings = settings_from({**server, **env_server, **flags})
        source = f"configuration {config}"
    else:
        settings = settings_from({**EMBEDDED_DEFAULTS, **env, **flags})
        app = build_application(settings)
        source = "embedded defaults" + (" + environment" if env else "")
    if settings.development:
        enable_development_mode(app, settings.dev_ca)
    return Assembly(app, settings, source, instrument_for_metrics(app, settings))


def instrument_for_metrics(app: WSGIApplication, settings: ServerSettings) -> SnsMetrics | None:
    """Metrics for ``app`` (an SnsMiddleware) when ``metrics_port`` is set, else ``None``.

    The metrics port is never the SNS port: what it shows (topics, reason codes, traffic) is
    for the operator, not for whoever can reach the endpoint SNS posts to.
    """
    if settings.metrics_port is None:
        return None
    if settings.metrics_port == settings.port:
        raise ConfigurationError(
            f"metrics_port {settings.metrics_port} is the SNS port: give the metrics a port "
            "of their own (they are for the operator, not for the internet)"
        )
    from .metrics import SnsMetrics

    if not isinstance(app, SnsMiddleware):
        raise ConfigurationError("metrics need SnsMiddleware as the outermost app")
    metrics = SnsMetrics()
    metrics.instrument(app)
    return metrics


def start_metrics_server(assembly: Assembly) -> MetricsServer | None:
    """Serve ``assembly``'s metrics on ``metrics_host:metrics_port`` (a background thread),
    or nothing when it has none."""
    settings = assembly.settings
    if assembly.metrics is None or settings.metrics_port is None:
        return None
    try:
        return assembly.metrics.serve(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
            f"{exc.strerror or exc}"
        ) from None


#: How deep :func:`budget_app_from` looks through a pipeline's layers (``.app``) for BudgetApp.
_MAX_PIPELINE_DEPTH: Final = 16


def budget_app_from(environ: Mapping[str, str], config: Path | None = None) -> BudgetApp:
    """The :class:`BudgetApp` that ``serve`` would run with the same settings (its mailer,
    sender, dead-letter outbox, default recipients): what ``snsmiddleware replay`` sends
    with. From an INI file, the pipeline's ``budget_app``; otherwise the embedded defaults
    and the ``SNSMIDDLEWARE_*`` variables, checked as strictly as for ``serve``."""
    if config is None:
        settings = settings_from({**EMBEDDED_DEFAULTS, **options_from_env(environ)})
        return BudgetApp(**budget_app_options(settings.budgets))
    found: Any = load_ini_application(config, environ)[0]
    for _ in range(_MAX_PIPELINE_DEPTH):
        if isinstance(found, BudgetApp):
            return found
        found = getattr(found, "app", None)
    raise ConfigurationError(
        f"{config} runs no budget_app (use = egg:snsmiddleware#budget_app): replay sends "
        "through its mailer"
    )


def front_door(app: WSGIApplication) -> FrontDoor:
    """``app`` behind the server's own answers: ``/healthz``, ``/readyz``, and 404 for every
    other path when ``app`` is the budget app behind SnsMiddleware (which can only refuse
    them); an INI pipeline around an app of one's own keeps its other paths."""
    from .frontdoor import FrontDoor
    from .graceful import find_middlewares

    middleware = next(find_middlewares(app), None)
    return FrontDoor(app, middleware=middleware, not_found=serves_only_sns(app))


def serves_only_sns(app: object) -> bool:
    """Whether ``app`` answers nothing but its SNS paths: the budget app right behind
    SnsMiddleware (the embedded defaults, ``examples/paste.ini``)."""
    return isinstance(app, SnsMiddleware) and isinstance(app.app, BudgetApp)


def request_body_limit(app: object) -> int | None:
    """waitress's ``max_request_body_size`` for ``app``: the largest ``max_body_bytes`` of
    its SnsMiddleware instances, so a larger body is refused as its headers arrive instead
    of being buffered in full before a middleware could say 413 (waitress reads every body
    before it calls the app). waitress refuses sizes at or above its limit, hence the + 1.
    ``None`` (waitress's own 1 GB) for an app without the middleware."""
    from .graceful import find_middlewares

    limits = [middleware.max_body_bytes for middleware in find_middlewares(app)]
    return max(limits) + 1 if limits else None


def make_server(assembly: Assembly, **waitress_options: Any) -> GracefulServer:
    """The graceful waitress server for ``assembly`` (bound, not yet running).

    ``waitress_options`` go to waitress; ``sockets=[...]`` serves on sockets already bound
    (the workers of :mod:`snsmiddleware.prefork`) instead of ``host`` and ``port``. A port
    that cannot be bound is a :class:`ConfigurationError` saying so in one line."""
    from . import graceful  # looked up at call time: tests stand in for the server

    settings = assembly.settings
    where: dict[str, Any] = (
        {} if "sockets" in waitress_options else {"host": settings.host, "port": settings.port}
    )
    limits = {}
    if (limit := request_body_limit(assembly.app)) is not None:
        limits["max_request_body_size"] = limit
    try:
        return graceful.GracefulServer(
            front_door(assembly.app),
            timeout=settings.shutdown_timeout,
            threads=settings.threads,
            **where,
            **limits,
            **proxy_options(settings),
            **waitress_options,
        )
    except OSError as exc:
        raise ConfigurationError(bind_failure(exc, settings.host, settings.port)) from None


def bind_failure(exc: OSError, host: str, port: int) -> str:
    """One line on why ``host:port`` cannot be listened on, and what to do instead."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; pick another with --port"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this process lacks; pick one above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; pick another with --host"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def summary(assembly: Assembly, port: int) -> list[str]:
    """What ``snsmiddleware serve`` says once at start, one fact a line: where it listens,
    what it accepts, where state and mail go, and which safety switches are on. Never a
    secret: Basic auth shows its user names, stores and mailers their own ``repr``."""
    from ._version import __version__
    from .frontdoor import HEALTH_PATH, READY_PATH

    settings, app = assembly.settings, assembly.app
    base = f"http://{settings.host}:{port}"
    lines = [f"snsmiddleware {__version__} serving {base} ({assembly.source})"]
    middleware = app if isinstance(app, SnsMiddleware) else None
    if middleware is not None:
        lines += [f"  SNS endpoint   {base}{path}" for path in sorted(middleware.paths)]
        verifier = middleware.verifier
        lines.append(f"  topics         {', '.join(verifier.topics.entries)}")
        versions = " and ".join(sorted(verifier.signature_versions))
        lines.append(f"  signatures     SignatureVersion {versions}")
        if verifier.emulator is not None:
            lines.append(f"  EMULATOR       trusting {verifier.emulator.base} instead of AWS")
        lines.append(f"  dedupe         {middleware.dedupe!r}")
        inner = middleware.app
        if (mailer := getattr(inner, "mailer", None)) is not None:
            lines.append(f"  mailer         {mailer!r}")
        if (dead_letter := getattr(inner, "dead_letter", None)) is not None:
            lines.append(f"  dead letters   {dead_letter!r}")
        auth = middleware.basic_auth
        lines.append(
            "  basic auth     off"
            if auth is None
            else f"  basic auth     on: users {', '.join(auth.users)}, realm {auth.realm!r}"
        )
        lines.append(f"  body limit     {middleware.max_body_bytes} bytes (larger POSTs get 413)")
    lines.append(
        "  development    ON: the local development CA is trusted (never expose this server)"
        if settings.development
        else "  development    off: only AWS-signed messages are trusted"
    )
    lines.append(
        f"  health         {base}{HEALTH_PATH} (liveness), {base}{READY_PATH} (readiness); "
        "GET/HEAD, no auth"
    )
    if serves_only_sns(app):
        lines.append("  other paths    404 not_found")
    return lines


def check_proxy_settings(settings: ServerSettings) -> None:
    """Headers or a hop count without a proxy to trust mean a misunderstanding: refuse them
    (waitress would, with a traceback); a proxy without headers trusts the default ones."""
    if settings.trusted_proxy is None:
        given = [
            name
            for name in ("trusted_proxy_headers", "trusted_proxy_count")
            if getattr(settings, name)
        ]
        if given:
            raise ConfigurationError(
                f"{' and '.join(given)} mean nothing without trusted_proxy (the address of "
                "the proxy in front, or * when only the proxy can reach this port)"
            )
    elif not settings.trusted_proxy_headers:
        settings.trusted_proxy_headers = DEFAULT_PROXY_HEADERS


def proxy_options(settings: ServerSettings) -> dict[str, Any]:
    """waitress's keyword arguments for the proxy in front; none when there is none.

    Only what waitress does with them changes: ``REMOTE_ADDR`` becomes the client's address
    and ``wsgi.url_scheme`` the scheme it used; headers from any other peer are removed.
    SNS verification uses neither (a message is genuine by its signature, not its origin).
    """
    if settings.trusted_proxy is None:
        return {}
    options: dict[str, Any] = {
        "trusted_proxy": settings.trusted_proxy,
        "trusted_proxy_headers": set(settings.trusted_proxy_headers),
    }
    if settings.trusted_proxy_count is not None:
        options["trusted_proxy_count"] = settings.trusted_proxy_count
    return options


# --- logging from the INI file --------------------------------------------------------------


def configure_logging(config: Path) -> bool:
    """Apply the ``[loggers]``, ``[handlers]`` and ``[formatters]`` sections of ``config``,
    as ``pserve`` does with the same file; False when it has none (the defaults stay).

    Loggers that exist already are kept enabled (``disable_existing_loggers=False``): the
    library's loggers are created at import, before the file is read, and would otherwise
    fall silent. ``%(here)s`` is the file's directory, as under PasteDeploy.
    """
    import configparser
    import logging.config

    if not config.is_file():
        return False  # assemble() names the missing file
    sections = configparser.RawConfigParser(strict=False)
    try:
        sections.read(config, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigurationError(f"{config}: {exc}") from None
    if not sections.has_section("loggers"):
        return False
    where = config.resolve()
    try:
        logging.config.fileConfig(
            where,
            defaults={"here": str(where.parent), "__file__": str(where)},
            disable_existing_loggers=False,
            encoding="utf-8",
        )
    except (KeyError, ValueError, TypeError, ImportError, configparser.Error) as exc:
        raise ConfigurationError(f"the logging sections of {config}: {exc!r}") from None
    return True


def make_app(config: str | None = None) -> WSGIApplication:
    """The application ``snsmiddleware serve`` runs, for another WSGI server (a factory).

    For gunicorn: ``gunicorn -w 2 'snsmiddleware.server:make_app()'`` (or
    ``make_app("server.ini")``); settings come from the ``SNSMIDDLEWARE_*`` environment
    variables (or the INI file), checked as ``serve`` checks them. Each worker process calls
    it, after the fork, so each opens its own connection to the de-duplication store,
    which the workers must share: the embedded default (SQLite, one host) or Redis. Server
    settings (host, port, threads, workers) are the process manager's, not read here.
    Development mode stays a ``serve --dev`` flag: it is never enabled here. The app is
    behind the same :func:`front_door` (``/healthz``, ``/readyz``, 404 off the SNS paths).
    ``metrics_port`` is refused: only ``serve`` runs the metrics server, and one per worker
    could not share the port.
    """
    assembly = assemble({}, os.environ, Path(config) if config else None)
    if assembly.settings.metrics_port is not None:
        raise ConfigurationError(
            "metrics_port is served by `snsmiddleware serve` (one process); under another "
            "WSGI server leave it unset"
        )
    return front_door(assembly.app)
