"""The TOML config file: read, ``${VAR}``-expanded, validated, and frozen into :class:`Settings`.

Every problem is reported as ``file: key: what is wrong`` and never quotes a secret.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from attrs import field, frozen

from chatopsbot.access import AccessRule, AccessSettings
from chatopsbot.durations import DurationError, parse_duration
from chatopsbot.errors import UserError
from chatopsbot.suggest import close_matches

__all__ = [
    "AuditSettings",
    "CommandSettings",
    "ConfigError",
    "ConfigErrors",
    "LoggingSettings",
    "OutboundSettings",
    "PluginSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "ZoomSettings",
    "config_path",
    "load_settings",
    "parse_settings",
]


class ConfigError(UserError):
    """A config problem: ``str()`` is ``source: key: message``.

    When it reports a file's own problems, ``plugins`` and ``access`` hold the file's
    ``[plugins]`` and ``[access]`` as far as they could be read, so that the plugins' tables and
    the access rules can be checked in the same pass (``check-config`` lists it all at once).
    """

    plugins: PluginSettings | None = None
    access: AccessSettings | None = None

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")
        self.source = source
        self.key = key
        self.message = message

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Each problem found: this one alone (:class:`ConfigErrors` has several)."""
        return (self,)


class ConfigErrors(ConfigError):
    """Every problem found in one pass: ``str()`` is one ``source: key: message`` line each.

    A :class:`ConfigError` itself (``source``, ``key``, ``message`` are the first problem's), so
    code that handles one problem handles several.
    """

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.source, first.key, first.message)
        self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Each problem, in the order found."""
        return self._problems

    def __str__(self) -> str:
        """One ``source: key: message`` line per problem."""
        return "\n".join(ConfigError.__str__(p) for p in self._problems)


class Problems:
    """Config problems collected while reading, to be raised together; the first per key wins.

    One wrong value can trip several checks (an unset ``${VAR}`` makes a required key empty):
    reporting only the first keeps the list to one line per mistake.
    """

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], ConfigError] = {}

    def add(self, problem: ConfigError) -> None:
        """Record ``problem`` (each of them, for a :class:`ConfigErrors`)."""
        for one in problem.problems:
            self._found.setdefault((one.source, one.key), one)

    def raise_if_any(
        self, *, plugins: PluginSettings | None = None, access: AccessSettings | None = None
    ) -> None:
        """Raise what was recorded: one :class:`ConfigError`, or :class:`ConfigErrors`;
        ``plugins`` and ``access`` go with it (see :class:`ConfigError`)."""
        error = self.error()
        if error is not None:
            error.plugins, error.access = plugins, access
            raise error

    def error(self) -> ConfigError | None:
        """What was recorded as one exception: a :class:`ConfigError`, :class:`ConfigErrors`
        for several, None for none."""
        found = list(self._found.values())
        if not found:
            return None
        return found[0] if len(found) == 1 else ConfigErrors(found)


@frozen(repr=False)
class Secret:
    """A value that must never be printed; ``reveal()`` is the only way to read it."""

    _value: str = field(alias="value")

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it."""
        return self._value

    def __bool__(self) -> bool:
        """True when there is a value at all (an empty secret is as good as none)."""
        return bool(self._value)

    def __repr__(self) -> str:
        """Masked, so a logged or printed settings object never carries the value."""
        return "Secret('********')"

    def __str__(self) -> str:
        """Masked, like :meth:`__repr__`."""
        return "********"


DEFAULT_WELCOME = "Thanks for adding me! Type help to see what I can do."
APP_TYPES = ("admin", "user")


@frozen
class ZoomSettings:
    """``[zoom]``: the app's credentials and Zoom's endpoints."""

    client_id: str
    client_secret: Secret
    bot_jid: str
    secret_token: Secret
    api_base_url: str = "https://api.zoom.us/v2"
    oauth_url: str = "https://zoom.us/oauth/token"
    #: ``"admin"`` (an admin-managed app, the default) or ``"user"`` (user-managed: every
    #: request names the user it is for, and private replies go to that user's 1:1 chat,
    #: since such apps cannot use ``visible_to_user``).
    app_type: str = "admin"
    #: What the bot says to whoever installs it (``bot_installed``); empty says nothing.
    welcome: str = DEFAULT_WELCOME
    #: What the bot posts in a channel it is added to (``team_chat.channel_app_added``);
    #: empty (the default) posts nothing but what plugins post.
    channel_welcome: str = ""


@frozen
class ServerSettings:
    """``[server]``: where ``chatopsbot run`` listens (port 0 picks a free one).

    ``body_timeout`` is how long a client may take to send a request body; ``metrics_token``,
    when set, is the bearer token ``GET /metrics`` requires.
    """

    host: str = "0.0.0.0"  # noqa: S104 - a bot behind a proxy listens on every interface
    port: int = 8080
    webhook_path: str = "/zoom/webhook"
    body_timeout: float = 10.0
    metrics_token: Secret = Secret("")


@frozen
class OutboundSettings:
    """``[outbound]``: rate limit per Zoom account, retries, shutdown drain, request timeout.

    ``give_up_after`` is how long (seconds) failures that may pass are retried before a message
    becomes a dead letter; ``retry_max_delay`` caps the wait between tries; ``degraded_after``
    is how long Zoom may fail before ``/healthz`` says ``degraded``. ``max_attempts`` is read
    for compatibility and no longer limits anything (``give_up_after`` does).
    """

    rate_limit: float = 20.0
    max_attempts: int = 5
    drain_timeout: float = 30.0
    request_timeout: float = 10.0
    give_up_after: float = 86400.0
    retry_max_delay: float = 30.0
    degraded_after: float = 60.0


@frozen
class CommandSettings:
    """``[commands]``: how long a handler may run."""

    timeout: float = 30.0


@frozen
class LoggingSettings:
    """``[logging]``: ``plain`` or ``json`` lines, and the level."""

    format: str = "plain"
    level: str = "INFO"


@frozen
class StorageSettings:
    """``[storage]``: the SQLite file (relative paths are relative to the config file), or a
    PostgreSQL ``url`` for several replicas (the password is kept out of reprs)."""

    path: str = "chatopsbot.db"
    url: Secret = Secret("")

    @property
    def describe(self) -> str:
        """Which backend, and where, without the password."""
        if self.url:
            from chatopsbot.storage.postgres import redact

            return f"PostgreSQL at {redact(self.url.reveal())}"
        return "SQLite in memory" if self.path == ":memory:" else f"SQLite file {self.path}"


@frozen
class AuditSettings:
    """``[audit]``: how long audit entries are kept (seconds) before the bot purges them."""

    keep: float = 90 * 86400.0


def _table_names(tables: Mapping[str, Any]) -> str:
    return "<" + ", ".join(tables) + ">"


@frozen
class PluginSettings:
    """``[plugins]``: plugins not to load, and each plugin's own table by name.

    Tables are read-only (arrays become tuples). Their repr shows only the plugin names: a
    table may hold a token (``webhook_token``) that only the plugin knows to treat as secret.
    """

    disabled: tuple[str, ...] = ()
    tables: Mapping[str, Mapping[str, Any]] = field(
        factory=lambda: MappingProxyType({}), repr=_table_names
    )


@frozen
class Settings:
    """The whole validated configuration; ``source`` names the file it came from."""

    zoom: ZoomSettings
    server: ServerSettings = field(factory=ServerSettings)
    outbound: OutboundSettings = field(factory=OutboundSettings)
    commands: CommandSettings = field(factory=CommandSettings)
    logging: LoggingSettings = field(factory=LoggingSettings)
    storage: StorageSettings = field(factory=StorageSettings)
    plugins: PluginSettings = field(factory=PluginSettings)
    access: AccessSettings = field(factory=AccessSettings)
    source: str = "config.toml"
    audit: AuditSettings = field(factory=AuditSettings)


_SECTIONS = (
    "access",
    "audit",
    "commands",
    "logging",
    "outbound",
    "plugins",
    "server",
    "storage",
    "zoom",
)
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
}


def _kind(value: object) -> str:
    # Only the type is ever named, never the value: it may be a secret.
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dt.date | dt.time):
        return "a date or time"
    return _TYPES.get(type(value), type(value).__name__)


_SECONDS = re.compile(r"\d+(?:\.\d+)?")


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _recovering(
    read: Callable[Concatenate[_Reader, str, _P], _T],
) -> Callable[Concatenate[_Reader, str, _P], _T]:
    """A read that records its problem and returns the default, so reading goes on.

    Every problem in the file is then reported at once; the settings are never built from the
    defaults that stood in (:func:`parse_settings` raises before).
    """

    @functools.wraps(read)
    def recovering(reader: _Reader, key: str, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return read(reader, key, *args, **kwargs)
        except ConfigError as exc:
            reader.problems.add(exc)
            default: _T = _default_of(read, reader, key, *args, **kwargs)
            return default

    return recovering


def _default_of(read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    bound = inspect.signature(read).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments["default"]


class _Reader:
    """Typed reads from one table, each problem naming ``section.key``; unknown keys refused.

    Problems are recorded in ``problems`` and the read goes on with the default.
    """

    def __init__(self, source: str, section: str, data: object, problems: Problems) -> None:
        self.source = source
        self.section = section
        self.problems = problems
        if not isinstance(data, Mapping):
            problems.add(
                ConfigError(source, section, f"expected a table [{section}], got {_kind(data)}")
            )
            data = {}
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"{self.section}.{key}", message)

    def problem(self, key: str, message: str) -> None:
        """Record that ``key`` is wrong; reading goes on."""
        self.problems.add(self.error(key, message))

    @_recovering
    def get(self, key: str, kind: type, default: Any, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "required")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.error(key, f"expected {_TYPES[kind]}, got {_kind(value)}")
        return value

    @_recovering
    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        value: str = self.get(key, str, default, required=required)
        if required and key in self.data and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    @_recovering
    def number(self, key: str, default: float, *, minimum: float, inclusive: bool = False) -> float:
        value: float = self.get(key, float, default)
        # TOML allows nan and inf; nan slips through every comparison and inf never ends.
        if not math.isfinite(value):
            raise self.error(key, "must be a finite number")
        if value < minimum or (value == minimum and not inclusive):
            relation = "at least" if inclusive else "greater than"
            raise self.error(key, f"must be {relation} {minimum:g}")
        return value

    @_recovering
    def choice(
        self, key: str, default: str, choices: tuple[str, ...], fold: Callable[[str], str]
    ) -> str:
        value = fold(self.text(key, default))
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(sorted(choices))}")
        return value

    @_recovering
    def duration(self, key: str, default: float, *, minimum: float) -> float:
        """Seconds, as a number or as text such as ``"90s"``, ``"15m"``, ``"24h"``, ``"2d"``."""
        self.used.add(key)
        value = self.data.get(key, default)
        if isinstance(value, str):
            text = value.strip()
            try:
                span = None if _SECONDS.fullmatch(text) else parse_duration(text, allow_zero=True)
            except DurationError:
                raise self.error(
                    key, f"expected seconds or a duration such as 24h, got {value!r}"
                ) from None
            value = float(text) if span is None else span.total_seconds()
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected seconds or a duration such as 24h, got {_kind(value)}")
        if not math.isfinite(value) or value < minimum:
            raise self.error(key, f"must be at least {minimum:g} seconds")
        return float(value)

    @_recovering
    def url(self, key: str, default: str) -> str:
        value = self.text(key, default)
        if not value.startswith(("http://", "https://")):
            raise self.error(key, "must start with http:// or https://")
        if not urlsplit(value).hostname:
            raise self.error(key, "must name a host")
        return value

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                close = close_matches(key, sorted(self.used), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.problem(key, f"unknown key{hint}")


def _expand(
    value: Any, path: str, source: str, environ: Mapping[str, str], problems: Problems
) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                problems.add(
                    ConfigError(
                        source, path, "malformed ${...}: write ${NAME}, or $${ for a literal"
                    )
                )
                return ""
            if name not in environ:
                problems.add(ConfigError(source, path, f"environment variable {name} is not set"))
                return ""
            return environ[name]

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{path}.{k}" if path else k, source, environ, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", source, environ, problems) for i, v in enumerate(value)]
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def parse_settings(
    data: Mapping[str, Any],
    *,
    source: str = "config.toml",
    environ: Mapping[str, str] | None = None,
    base_dir: str | None = None,
) -> Settings:
    """Validate parsed TOML into :class:`Settings`. ``base_dir`` anchors a relative storage path.

    Every problem in ``data`` is reported at once: :class:`ConfigErrors` when there are several.
    """
    env = os.environ if environ is None else environ
    problems = Problems()
    for name in data:
        if name not in _SECTIONS:
            problems.add(
                ConfigError(source, name, f"unknown section (known: {', '.join(_SECTIONS)})")
            )
    expanded: dict[str, Any] = _expand(dict(data), "", source, env, problems)

    def section(name: str) -> _Reader:
        return _Reader(source, name, expanded.get(name, {}), problems)

    if "zoom" not in expanded:
        problems.add(
            ConfigError(source, "zoom", "required: the [zoom] section with the app's credentials")
        )
    z = section("zoom")
    zoom = ZoomSettings(
        client_id=z.text("client_id", required="zoom" in expanded),
        client_secret=Secret(z.text("client_secret", required="zoom" in expanded)),
        bot_jid=z.text("bot_jid", required="zoom" in expanded),
        secret_token=Secret(z.text("secret_token", required="zoom" in expanded)),
        # API paths are joined onto the base, so "/v2/" would give "//users".
        api_base_url=z.url("api_base_url", "https://api.zoom.us/v2").rstrip("/"),
        oauth_url=z.url("oauth_url", "https://zoom.us/oauth/token"),
        app_type=z.choice("app_type", "admin", APP_TYPES, str.lower),
        welcome=z.text("welcome", DEFAULT_WELCOME).strip(),
        channel_welcome=z.text("channel_welcome", "").strip(),
    )
    z.done()

    s = section("server")
    port = s.get("port", int, 8080)
    if not 0 <= port <= 65535:
        s.problem("port", "must be between 0 and 65535")
    path = s.text("webhook_path", "/zoom/webhook")
    if not path.startswith("/"):
        s.problem("webhook_path", "must start with /")
    server = ServerSettings(
        s.text("host", "0.0.0.0"),  # noqa: S104
        port,
        path,
        s.duration("body_timeout", 10.0, minimum=0.1),
        Secret(s.text("metrics_token", "")),
    )
    s.done()

    o = section("outbound")
    attempts = o.get("max_attempts", int, 5)
    if attempts < 1:
        o.problem("max_attempts", "must be at least 1")
    outbound = OutboundSettings(
        rate_limit=o.number("rate_limit", 20.0, minimum=0),
        max_attempts=attempts,
        drain_timeout=o.number("drain_timeout", 30.0, minimum=0, inclusive=True),
        request_timeout=o.number("request_timeout", 10.0, minimum=0),
        give_up_after=o.duration("give_up_after", 86400.0, minimum=60),
        retry_max_delay=o.duration("retry_max_delay", 30.0, minimum=0.1),
        degraded_after=o.duration("degraded_after", 60.0, minimum=1),
    )
    o.done()

    c = section("commands")
    commands = CommandSettings(c.number("timeout", 30.0, minimum=0))
    c.done()

    lg = section("logging")
    logging_ = LoggingSettings(
        lg.choice("format", "plain", ("plain", "json"), str.lower),
        lg.choice("level", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), str.upper),
    )
    lg.done()

    st = section("storage")
    store = st.text("path", "chatopsbot.db")
    if not store.strip():
        st.problem("path", "must not be empty")
    url = st.text("url", "")
    if url:
        parts = urlsplit(url)
        # Only the shape is described, never the value: the URL holds the password.
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            st.problem("url", "must look like postgresql://user:password@host:5432/database")
        elif "path" in st.data:
            st.problem("url", "give either path (SQLite) or url (PostgreSQL), not both")
    if store != ":memory:" and base_dir is not None and not os.path.isabs(store):
        store = str(Path(base_dir) / store)
    st.done()

    access = _access(section("access"))

    au = section("audit")
    # At least an hour: a shorter time is almost certainly "90" meant as days, not seconds.
    audit = AuditSettings(au.duration("keep", 90 * 86400.0, minimum=3600))
    au.done()

    p = section("plugins")
    disabled = p.get("disabled", list, [])
    for i, name in enumerate(disabled):
        if not isinstance(name, str):
            p.problem(f"disabled[{i}]", f"expected a string, got {_kind(name)}")
    tables: dict[str, Any] = {}
    for name, value in p.data.items():
        if name == "disabled":
            continue
        if not isinstance(value, dict):
            p.problem(name, f"expected a table [plugins.{name}], got {_kind(value)}")
            continue
        tables[name] = _freeze(value)

    plugin_settings = PluginSettings(
        tuple(name for name in disabled if isinstance(name, str)), MappingProxyType(tables)
    )
    problems.raise_if_any(plugins=plugin_settings, access=access)
    return Settings(
        zoom=zoom,
        server=server,
        outbound=outbound,
        commands=commands,
        logging=logging_,
        storage=StorageSettings(store, Secret(url)),
        plugins=plugin_settings,
        access=access,
        source=source,
        audit=audit,
    )


def _names(reader: _Reader, key: str, what: str) -> tuple[str, ...]:
    found = []
    for i, value in enumerate(reader.get(key, list, [])):
        if not isinstance(value, str) or not value.strip():
            reader.problem(f"{key}[{i}]", f"expected {what}, got {_kind(value)}")
        elif what == "a channel JID" and "@" not in value:
            # A channel's name is chosen (and changed) by its members: never an identity.
            reader.problem(
                f"{key}[{i}]",
                f"{value!r} is a name, not a channel JID; rules match JIDs "
                "(...@conference.xmpp.zoom.us): type whoami in the channel to see its JID",
            )
        elif what == "a user id or JID" and "@" in value and not value.lower().endswith("zoom.us"):
            # Zoom's chatbot events carry user ids and JIDs only, so an e-mail could never match.
            reader.problem(
                f"{key}[{i}]",
                "e-mail addresses cannot be matched (Zoom's chatbot events carry no e-mail); "
                "use the user id or the JID (...@xmpp.zoom.us)",
            )
        else:
            found.append(value)
    return tuple(found)


def _access(a: _Reader) -> AccessSettings:
    user = "a user id or JID"
    channel = "a channel JID"
    admins = _names(a, "admins", user)
    rules_table = a.get("commands", dict, {})
    a.done()
    rules: dict[str, AccessRule] = {}
    for name, table in rules_table.items():
        r = _Reader(a.source, f'access.commands."{name}"', table, a.problems)
        rules[" ".join(name.lower().split()) if ":" not in name else name] = AccessRule(
            allow_users=_names(r, "allow_users", user),
            deny_users=_names(r, "deny_users", user),
            allow_channels=_names(r, "allow_channels", channel),
            deny_channels=_names(r, "deny_channels", channel),
            admin_only=r.get("admin_only", bool, None),
        )
        r.done()
    return AccessSettings(admins, MappingProxyType(rules))


def load_settings(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    replace: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Read and validate the TOML file at ``path``.

    ``replace`` stands in for whole sections of the file, which are then neither read nor
    checked (``chatopsbot shell`` needs no ``[zoom]`` credentials: it talks to a fake Zoom).
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        hint = (
            "start from the example: cp config.example.toml config.toml"
            if Path(path).name == "config.toml"
            else f"start from the example: cp config.example.toml {path}"
        )
        raise ConfigError(source, "file", f"not found ({hint})") from None
    except OSError as exc:
        raise ConfigError(source, "file", f"cannot read: {exc.strerror or exc}") from None
    try:
        # utf-8-sig: editors on Windows may start the file with a byte-order mark.
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(source, "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "syntax", str(exc)) from None
    return parse_settings(
        {**data, **(replace or {})},
        source=source,
        environ=environ,
        base_dir=str(Path(path).resolve().parent),
    )


def config_path(cli_value: str | None, environ: Mapping[str, str]) -> str:
    """``--config``, else ``$CHATOPSBOT_CONFIG``, else ``config.toml``."""
    return cli_value or environ.get("CHATOPSBOT_CONFIG") or "config.toml"
