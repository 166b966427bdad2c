"""``chatopsbot run | check-config | plugins | outbox | audit | shell | console | demo | ...``.

Every failure a user can cause prints one line, ``file: key: what is wrong``, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.metadata
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from attrs import evolve

from chatopsbot import serve
from chatopsbot.app import create_app, freeze_startup_objects, handler_options
from chatopsbot.audit import AuditLog, AuditQuery, AuditQueryError, format_table
from chatopsbot.config import ConfigError, PluginSettings, Settings, config_path, load_settings
from chatopsbot.deadletters import outbox_command
from chatopsbot.logs import configure_logging
from chatopsbot.plugins import PluginError, check_file, check_rules, load_plugins
from chatopsbot.scaffold import ScaffoldError, write_plugin
from chatopsbot.storage import StorageError, open_backend
from chatopsbot.values import Conversation, User

log = logging.getLogger("chatopsbot.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatopsbot", description="A ChatOps bot framework for Zoom Team Chat."
    )
    parser.add_argument("--version", action="version", version=f"chatopsbot {_version()}")
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    config_help = "the TOML config file (default: $CHATOPSBOT_CONFIG, else ./config.toml)"
    for name, text in (
        ("run", "serve Zoom webhooks"),
        ("check-config", "validate the config file and every plugin's table, then exit"),
        ("plugins", "list the installed plugins and their commands"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", metavar="FILE", help=config_help)
        if name == "check-config":
            cmd.add_argument(
                "--connect", action="store_true", help="also open the storage and report on it"
            )
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the storage schema; or copy a bot's data into PostgreSQL",
        description="Without options: create or upgrade the schema of the config's storage "
        "(the bot also does it at start; this is for operators who run it as a step). With "
        "--from and --to: copy plugin values, timers, unfinished events, queued replies and "
        "dead letters from a SQLite file into PostgreSQL (stop the bot first).",
    )
    migrate.add_argument("--config", metavar="FILE", help=config_help)
    migrate.add_argument("--from", dest="source", metavar="FILE", help="the SQLite file")
    migrate.add_argument("--to", dest="target", metavar="URL", help="postgresql://...")
    shell = sub.add_parser(
        "shell",
        help="talk to the bot in this terminal: real plugins and storage, a fake Zoom",
        description="Runs the bot with its plugins, SQLite storage and outbound layer against "
        "a fake Zoom on loopback; type commands as a user of your choice. No Zoom account "
        "needed. Messages from timers, jobs and plugin HTTP hooks (/hook) print as they are "
        "sent. Lines piped in run as a script, echoed as a transcript.",
    )
    shell.add_argument(
        "--config",
        metavar="FILE",
        help="a config file whose plugin tables (on-call teams, ...), disabled plugins, access "
        "rules and command timeout to run with, as in production. Its [zoom] credentials and "
        "[storage] are never used: the shell talks to the fake Zoom only, and a shell bot on "
        "the production database would take over its queued replies. No default: without it, "
        "the plugins run with their defaults",
    )
    shell.add_argument(
        "--storage",
        metavar="FILE",
        default="chatopsbot-shell.db",
        help="the SQLite file the shell keeps plugin data in, across sessions (default: "
        "%(default)s in the current directory; :memory: for a fresh bot each time)",
    )
    outbox = sub.add_parser(
        "outbox",
        help="list the outbox's dead letters, send them again, or drop them",
        description="Messages Zoom refused for good, or that could not be sent within "
        "[outbound] give_up_after, are kept as dead letters. list shows them (and how many "
        "messages are queued); retry puts them back in their conversation's queue; drop "
        "deletes them. Works on the config's storage, with the bot running or not.",
    )
    # Not "action": that is where the subcommand's own name goes.
    outbox.add_argument("verb", choices=("list", "retry", "drop"), metavar="list|retry|drop")
    outbox.add_argument("ids", nargs="*", type=int, metavar="ID", help="message ids")
    outbox.add_argument("--all", action="store_true", help="every dead letter")
    outbox.add_argument("--queued", action="store_true", help="list queued messages too")
    outbox.add_argument("--config", metavar="FILE", help=config_help)
    access = sub.add_parser(
        "access",
        help="explain which access rules apply to a command, and the verdict",
        description="explain NAME --user ID --channel JID: loads the config and the plugins, "
        "then prints every rule that covers the command (or plugin:action) and what each "
        "decides for that user in that conversation. Exit status 0 if allowed, 3 if denied.",
    )
    access.add_argument("verb", choices=("explain",), metavar="explain")
    access.add_argument("name", help='a command ("deploy unlock") or an action ("polls:close")')
    access.add_argument("--user", required=True, metavar="ID", help="a Zoom user id or JID")
    access.add_argument(
        "--jid", metavar="JID", help="the user's JID too (rules may name either; give both)"
    )
    access.add_argument(
        "--channel", required=True, metavar="JID", help="a channel's (or 1:1 chat's) JID"
    )
    access.add_argument("--config", metavar="FILE", help=config_help)
    audit = sub.add_parser(
        "audit",
        help="show who did what: commands, buttons, confirmations and hooks, newest first",
        description="Reads the audit log in the config's storage (with the bot running or "
        "not): a table by default, or JSON lines with --json (one object per line, for "
        "export or jq). Newest first. See docs/audit.md.",
    )
    audit.add_argument("--config", metavar="FILE", help=config_help)
    audit.add_argument(
        "--since", metavar="WHEN", help="from this time on: 30m, 24h, 7d, or ISO-8601 (UTC)"
    )
    audit.add_argument("--until", metavar="WHEN", help="before this time (same forms)")
    audit.add_argument(
        "--user",
        metavar="WHO",
        help="a user id, JID or display name (any case), or a hook's address",
    )
    audit.add_argument(
        "--command",
        metavar="NAME",
        help='a command or action: "deploy" matches "deploy unlock", "polls" "polls:vote"',
    )
    audit.add_argument(
        "--limit", metavar="N", type=int, default=100, help="at most N entries (default: 100)"
    )
    audit.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    new = sub.add_parser(
        "new-plugin",
        help="write a ready-to-install plugin package with a command and a passing test",
        description="Writes chatopsbot-NAME/ (pyproject with the entry point, a command, tests).",
    )
    new.add_argument("name", help="the plugin's name: lower-case letters, digits, - or _")
    new.add_argument("--into", metavar="DIR", default=".", help="where to write it (default: .)")
    demo = sub.add_parser(
        "demo",
        help="run the bot against a local fake Zoom (no account needed) and show a transcript",
        description="Starts a fake Zoom API and the bot on loopback, sends signed slash-command "
        "webhooks through the real path, and prints what Zoom received.",
    )
    demo.add_argument(
        "commands", nargs="*", metavar="COMMAND", help="commands to send (default: a short tour)"
    )
    console = sub.add_parser(
        "console",
        help="a web page drawn like Zoom Team Chat: the real bot, a fake Zoom, on loopback",
        description="Runs the bot with its plugins and outbound layer against a fake Zoom and "
        "serves a page on 127.0.0.1 that draws its cards as Zoom does; type commands, press "
        "buttons, feed plugin hooks and inject Zoom faults. With a config file its plugins, "
        "plugin tables and access rules apply; its Zoom credentials and storage are not used.",
    )
    console.add_argument("--config", metavar="FILE", help="a config file (default: none)")
    console.add_argument(
        "--port", metavar="N", type=int, default=8765, help="the port (default: %(default)s)"
    )
    return parser


def _version() -> str:
    """The installed distribution's version (what ``pip install`` put there)."""
    try:
        return importlib.metadata.version("chatopsbot")
    except importlib.metadata.PackageNotFoundError:
        # Run from a checkout without installing: say so rather than invent a number.
        return "(not installed)"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``chatopsbot`` script; returns the exit status."""
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        if args.action == "shell":
            from chatopsbot.shell import run_shell

            settings = None
            if args.config:
                settings = _shell_settings(args.config, env)
            handler = configure_logging("plain", "WARNING")
            try:
                return asyncio.run(run_shell(storage=args.storage, settings=settings))
            finally:
                logging.getLogger().removeHandler(handler)
        if args.action == "new-plugin":
            root = write_plugin(args.name, Path(args.into))
            print(f"wrote {root}: cd there, pip install -e '.[test]', python -m pytest")
            return 0
        if args.action == "demo":
            from chatopsbot.demo import run_demo

            return asyncio.run(run_demo(args.commands))
        if args.action == "console":
            from chatopsbot.console import run_console

            handler = configure_logging("plain", "WARNING")
            try:
                base = load_settings(args.config, env) if args.config else None
                return asyncio.run(run_console(base, port=args.port))
            finally:
                logging.getLogger().removeHandler(handler)
        if args.action == "migrate" and (args.source or args.target):
            if not (args.source and args.target):
                print("chatopsbot migrate: give both --from FILE and --to URL", file=sys.stderr)
                return 2
            if not os.path.exists(args.source):
                print(f"chatopsbot migrate: {args.source}: no such file", file=sys.stderr)
                return 1
            return asyncio.run(_copy(args.source, _expand(args.target, env)))
        path = config_path(args.config, env)
        if args.action == "plugins":
            return _plugins(path, env)
        try:
            settings = load_settings(path, env)
        except ConfigError as exc:
            if args.action not in ("check-config", "run"):
                raise
            # Every problem of the file at once: its plugins' tables and access rules too.
            raise check_file(exc) from None
        if args.action == "outbox":
            return asyncio.run(_outbox(settings, args))
        if args.action == "audit":
            return asyncio.run(_audit(settings, args))
        if args.action == "check-config":
            return _check(settings, connect=args.connect)
        if args.action == "access":
            return _explain(settings, args)
        if args.action == "migrate":
            return asyncio.run(_migrate(settings))
        return _run(settings)
    except (ConfigError, PluginError, StorageError, ScaffoldError) as exc:
        print(str(exc) if isinstance(exc, ConfigError) else f"chatopsbot: {exc}", file=sys.stderr)
        return 1
    except AuditQueryError as exc:
        print(f"chatopsbot audit: {exc}", file=sys.stderr)
        return 1


def _shell_settings(path: str, environ: Mapping[str, str]) -> Settings:
    """The config file's settings for ``chatopsbot shell``, checked as ``run`` checks them.

    Its ``[zoom]`` and ``[storage]`` are left unread: the shell has its own (a fake Zoom, a
    local file), so their ``${VAR}`` secrets need not be set on a laptop.
    """
    stand_in = {"client_id": "shell", "client_secret": "shell", "bot_jid": "shell"}
    settings = load_settings(
        path,
        environ,
        replace={"zoom": {**stand_in, "secret_token": "shell"}, "storage": {"path": ":memory:"}},
    )
    # A problem is reported against the file, before the bot starts: the usual list, exit 1.
    check_rules(settings, load_plugins(settings.plugins, source=settings.source))
    return settings


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    # The query is checked before storage is opened: a typo costs no connection.
    query = AuditQuery.parse(
        now=time.time(),
        since=args.since,
        until=args.until,
        user=args.user,
        command=args.command,
        limit=args.limit,
    )
    backend = await open_backend(settings.storage.path, url=settings.storage.url.reveal())
    try:
        entries = await AuditLog(backend).query(query)
    finally:
        await backend.close()
    if args.json:
        for entry in entries:
            print(entry.to_json())
    elif entries:
        print("\n".join(format_table(entries)))
    else:
        print("no audit entries match")
    return 0


def _explain(settings: Settings, args: argparse.Namespace) -> int:
    plugins = load_plugins(settings.plugins, source=settings.source)
    name = args.name if ":" in args.name else " ".join(args.name.lower().split())
    stands_for = None
    if ":" in name:
        plugin, _, action_name = name.partition(":")
        found = plugins.actions.get((plugin, action_name))
        if found is None:
            print(f"chatopsbot access: no action {name!r} in the loaded plugins", file=sys.stderr)
            return 1
        stands_for = found.command
        command = plugins.commands.find(stands_for) if stands_for else None
        admin_only = found.admin_only or (command is not None and command.admin_only)
    else:
        command = plugins.commands.find(name)
        if command is None:
            print(
                f"chatopsbot access: no command {name!r} (see: chatopsbot plugins)", file=sys.stderr
            )
            return 1
        admin_only = command.admin_only
    # The ids an event would carry: a rule may name the user by id or JID.
    user = User(args.user, args.jid or (args.user if "@" in args.user else ""), "")
    verdict = settings.access.check(
        name,
        admin_only=admin_only,
        user=user,
        conversation=Conversation("", args.channel, ""),
        stands_for=stands_for,
    )
    target = f"{name} (stands for {stands_for})" if stands_for else name
    print(f"{target}, for {args.user} in {args.channel}:")
    for step in verdict.steps:
        print(f"  - {step}")
    print(f"verdict: {'allowed' if verdict.allowed else 'denied: ' + verdict.reason}")
    return 0 if verdict.allowed else 3


async def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    backend = await open_backend(settings.storage.path, url=settings.storage.url.reveal())
    try:
        return await outbox_command(
            backend, args.verb, args.ids, every=args.all, queued=args.queued, out=sys.stdout
        )
    finally:
        await backend.close()


def _check(settings: Settings, *, connect: bool = False) -> int:
    plugins = load_plugins(settings.plugins, source=settings.source)
    check_rules(settings, plugins)
    enabled = [p for p in plugins.info if p.enabled]
    print(
        f"{settings.source}: OK ({len(enabled)} plugin(s) enabled, "
        f"{len(plugins.commands)} command(s))"
    )
    print(f"storage: {settings.storage.describe}")
    if connect:
        asyncio.run(_report(settings))
    return 0


async def _report(settings: Settings) -> None:
    """Open the storage (creating or upgrading its schema) and say what it holds."""
    backend = await open_backend(settings.storage.path, url=settings.storage.url.reveal())
    try:
        queued, _ = await backend.outbox_stats()
        dead = len(await backend.outbox_list("dead"))
        print(f"storage: reachable; {queued} queued message(s), {dead} dead letter(s)")
    finally:
        await backend.close()


async def _migrate(settings: Settings) -> int:
    # Opening migrates; several replicas (or this and a replica) doing it at once is safe.
    await _report(settings)
    print(f"storage: schema up to date ({settings.storage.describe})")
    return 0


async def _copy(source: str, target: str) -> int:
    origin = await open_backend(source)
    try:
        data = await origin.export()
    finally:
        await origin.close()
    destination = await open_backend(url=target)
    try:
        if (await destination.outbox_stats())[0] or (await destination.inbox_pending()):
            print(
                "chatopsbot migrate: the target already holds queued messages or events; "
                "copy into an empty database",
                file=sys.stderr,
            )
            return 1
        await destination.load(data)
    finally:
        await destination.close()
    queued = sum(m.state == "queued" for m in data.messages)
    print(
        f"copied {len(data.values)} value(s) (plugin data and timers), {len(data.events)} "
        f"unfinished event(s), {queued} queued message(s) and "
        f"{len(data.messages) - queued} dead letter(s) from {source} to {destination.path}"
    )
    return 0


def _expand(value: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` in a command-line URL, as in the config file (a password stays out of argv)."""

    def variable(match: re.Match[str]) -> str:
        if match[1] not in environ:
            raise ConfigError("--to", match[1], "environment variable not set")
        return environ[match[1]]

    return re.sub(r"\$\{(\w+)\}", variable, value)


def _plugins(path: str, environ: Mapping[str, str]) -> int:
    if os.path.exists(path):
        settings = load_settings(path, environ)
        plugin_settings, source = settings.plugins, settings.source
    else:
        print(f"({path} not found: listing installed plugins with none disabled)")
        plugin_settings, source = PluginSettings(), path
    plugins = load_plugins(plugin_settings, source=source)
    for info in plugins.info:
        state = "enabled" if info.enabled else "disabled"
        print(f"{info.name:<12} {state:<8} {info.version:<24} {info.source}")
        for name in info.commands:
            command = plugins.commands.find(name)
            print(f"    {name:<24} {command.help if command else ''}")
    return 0


def _port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None; checked before anything starts.

    Bound the way asyncio's server binds (``SO_REUSEADDR``), so a port left in TIME_WAIT by
    the previous run is not reported as taken.
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"server.host: cannot resolve {host!r}: {exc.strerror}"
    for family, kind, proto, _, address in infos:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:
            # A family this host lacks (IPv6 switched off): asyncio skips it as well.
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: "::" then does not also claim the IPv4 port.
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return _bind_problem(host, port, exc)
    return None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"server.port: {host}:{port} is already in use (another chatopsbot? "
            "set [server] port or stop the other process)"
        )
    if exc.errno == errno.EACCES:
        return f"server.port: not allowed to listen on {host}:{port} (ports below 1024 need root)"
    return f"server: cannot listen on {host}:{port}: {exc.strerror or exc}"


def _run(settings: Settings) -> int:
    server = settings.server
    handler = configure_logging(settings.logging.format, settings.logging.level)
    try:
        # The same checks as check-config, then the port: before storage opens or "serving".
        plugins = load_plugins(settings.plugins, source=settings.source)
        check_rules(settings, plugins)
        problem = _port_taken(server.host, server.port)
        if problem is not None:
            print(f"{settings.source}: {problem}", file=sys.stderr)
            return 1
        app = create_app(settings, plugins=plugins)
        app.on_startup.append(freeze_startup_objects)
        log.info("starting on http://%s:%d", server.host, server.port)
        # Not web.run_app: serve() also closes slow and surplus connections (see serve.py).
        # Its body limit is a backstop: later than the webhook's own, which answers 408 itself.
        limits = evolve(
            serve.ConnectionLimits.for_open_files(), body_timeout=server.body_timeout + 2
        )
        try:
            serve.run(
                app,
                host=server.host,
                port=server.port,
                # Our own drain is bounded by drain_timeout; give aiohttp's wait a little more.
                shutdown_timeout=settings.outbound.drain_timeout + 5,
                limits=limits,
                handler_options=handler_options(),
            )
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                raise
            # Taken between the check above and the bind: the same one line, no traceback.
            print(
                f"{settings.source}: {_bind_problem(server.host, server.port, exc)}",
                file=sys.stderr,
            )
            return 1
        log.info("stopped")
    finally:
        logging.getLogger().removeHandler(handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
