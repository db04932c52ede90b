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

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .budget_app import BudgetApp
from .config import (
    BUDGET_APP_OPTIONS,
    MIDDLEWARE_OPTIONS,
    budget_app_options,
    convert_options,
    middleware_options,
    to_bool,
    to_duration,
    to_positive_int,
    to_text,
)
from .errors import ConfigurationError
from .graceful import DEFAULT_SHUTDOWN_TIMEOUT
from .middleware import SnsMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .graceful import GracefulServer

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
    "development": to_bool,
    "dev_ca": to_text,
    "shutdown_timeout": to_duration,
    "trusted_proxy": to_text,
    "trusted_proxy_headers": to_proxy_headers,
    "trusted_proxy_count": to_positive_int,
}

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
    development: bool = False
    dev_ca: str | None = None
    #: how long in-flight deliveries may finish after SIGTERM (SNS's answer deadline)
    shutdown_timeout: timedelta = DEFAULT_SHUTDOWN_TIMEOUT
    #: the TLS proxy in front (waitress's settings of the same names; see proxy_options)
    trusted_proxy: str | None = None
    trusted_proxy_headers: frozenset[str] = frozenset()
    trusted_proxy_count: int | None = None
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
            raise ConfigurationError(
                f"unknown environment variable {name}; known: "
                + ", ".join(ENV_PREFIX + k.upper() for k in sorted(known))
            )
        options[key] = value
    return options


def settings_from(options: Mapping[str, str]) -> ServerSettings:
    """Sort flat string options into server, middleware and app settings, checking each."""
    server = {k: v for k, v in options.items() if k in SERVER_OPTIONS}
    settings = ServerSettings(**convert_options(server, SERVER_OPTIONS, section="server"))
    settings.sns = {k: v for k, v in options.items() if k in MIDDLEWARE_OPTIONS}
    settings.budgets = {k: v for k, v in options.items() if k in BUDGET_APP_OPTIONS}
    unknown = set(options) - set(server) - set(settings.sns) - set(settings.budgets)
    if unknown:
        raise ConfigurationError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return settings


def build_application(settings: ServerSettings) -> SnsMiddleware:
    """BudgetApp behind SnsMiddleware, from validated settings (fails before serving)."""
    sns = middleware_options(settings.sns)
    if not sns.get("topics"):
        raise ConfigurationError("topics is required: the TopicArns this server accepts")
    app = BudgetApp(**budget_app_options(settings.budgets))
    return SnsMiddleware(app, **sns)


def load_ini_application(
    path: Path, environ: Mapping[str, str]
) -> tuple[WSGIApplication, dict[str, str]]:
    """Load ``[app:main]`` (or ``[pipeline:main]``) with PasteDeploy, and ``[server:main]``.

    ``SNSMIDDLEWARE_*`` environment variables are offered to the file as ``%(name)s``
    defaults. Returns the application and the server section's host/port/threads/
    shutdown_timeout (strings).
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
    global_conf = options_from_env(environ)
    app = loadapp(uri, global_conf=global_conf)
    try:
        server_conf = loadcontext(SERVER, uri, global_conf=global_conf).local_conf
    except LookupError:  # no [server:main]: the defaults and flags decide
        server_conf = {}
    server = {
        key: server_conf[key]
        for key in ("host", "port", "threads", "shutdown_timeout", *PROXY_OPTIONS)
        if key in server_conf
    }
    return app, server


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
    app: Any
    if config is not None:
        app, server = load_ini_application(config, environ)
        if "topics" in flags:
            raise ConfigurationError(
                "--topic applies to the embedded defaults; set topics in the INI"
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
    return Assembly(app, settings, source)


def make_server(assembly: Assembly) -> GracefulServer:
    """The graceful waitress server for ``assembly`` (bound, not yet running)."""
    from . import graceful  # looked up at call time: tests stand in for the server

    settings = assembly.settings
    return graceful.GracefulServer(
        assembly.app,
        timeout=settings.shutdown_timeout,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        **proxy_options(settings),
    )


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
