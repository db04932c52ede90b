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

#: Options of the server itself (not of the middleware or the app).
SERVER_OPTIONS: Final = {
    "host": to_text,
    "port": to_positive_int,
    "threads": to_positive_int,
    "development": to_bool,
    "dev_ca": to_text,
    "shutdown_timeout": to_duration,
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
    # Raw strings that can hold secrets (basic_auth, smtp_password): kept out of the repr.
    sns: dict[str, str] = field(default_factory=dict, repr=False)
    budgets: dict[str, str] = field(default_factory=dict, repr=False)


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
    # An unsubscribed endpoint gets no more alerts: the app tells its admin recipients.
    return SnsMiddleware(app, on_unsubscribe=app.on_unsubscribe, **sns)


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
        for key in ("host", "port", "threads", "shutdown_timeout")
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
    return Assembly(app, settings, source)


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
    )
