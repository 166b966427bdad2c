"""The deploy plugin's hooks: the CI hook, the lock check, status, history, subscriptions, locks.

Every state change is one atomic step of the store, checked where it is written, so two of
them racing (on one bot or on two replicas) never both act on what the other changed:

- a CI event moves its deploy, the environment's latest deploy and the history together
  (``ctx.store.update_many``), deciding "a new deploy of this version" from the same snapshot;
- ``deploy lock`` takes a free lock or is refused; ``deploy unlock`` removes the lock it checked
  (the holder, ``--force``, the policy), never one taken since; the reminder timer is attached
  only to the lock it was scheduled for;
- subscriptions are read-modify-write of the channel's one key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Literal

import attrs
from attrs import field, frozen

from chatopsbot import (
    Arg,
    Card,
    Command,
    Context,
    Conversation,
    Delivery,
    Edit,
    HookError,
    HookRequest,
    HookResponse,
    Option,
    PluginContext,
    Refused,
    Route,
    Text,
    TimerHandler,
    UsageError,
    command,
    hookimpl,
    load_config,
    require_signature,
    route,
    timer,
    verify_request,
)
from chatopsbot_deploy import events, github, gitlab
from chatopsbot_deploy.github import GithubSettings, Translation
from chatopsbot_deploy.gitlab import GitlabSettings

log = logging.getLogger("chatopsbot.plugin.deploy")

ALL = "all"
ForceUnlock = Literal["admins", "anyone"]


@frozen
class DeploySettings:
    """``[plugins.deploy]``.

    ``force_unlock`` says who may remove someone else's lock with ``--force``: ``"admins"``
    (the bot's admins; the default) or ``"anyone"``. A lock's holder may always remove it.
    """

    webhook_token: str = field(default="", repr=False)
    lock_reminder: timedelta = timedelta(hours=4)
    force_unlock: ForceUnlock = "admins"
    #: The secret of the GitHub webhook (``POST /hooks/deploy/github``); none: it refuses.
    github_secret: str = field(default="", repr=False)
    #: The secret token of the GitLab webhook (``POST /hooks/deploy/gitlab``); none: it refuses.
    gitlab_token: str = field(default="", repr=False)
    github: GithubSettings = field(factory=GithubSettings)
    gitlab: GitlabSettings = field(factory=GitlabSettings)


def _latest(service: str, env: str) -> str:
    return f"latest:{service}:{env}"


def _lock(service: str, env: str) -> str:
    return f"lock:{service}:{env}"


def _run_url(url: str) -> str:
    """Where the latest event of the deploy a CI run URL belongs to is kept (for unfurls)."""
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:32]


def _deploy(service: str, env: str, version: str) -> str:
    """Where one deploy's furthest status is kept (see ``events.supersedes``)."""
    return f"deploy:{service}:{env}:{version}"


def _check_names(ctx: Context) -> None:
    """Refuse a service or environment argument CI could never have sent (too long, odd
    characters) before it is looked up, stored or echoed back."""
    for arg, key in (("service", "service"), ("target", "service"), ("env", "environment")):
        value = ctx.args.get(arg)
        if value is not None:
            problem = events.name_problem(key, value)
            if problem:
                raise UsageError(problem.replace(f"{key}:", f"{arg}:", 1))


class DeployPlugin:
    """The deploy plugin; it keeps no state of its own (all of it is in the store)."""

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> DeploySettings:
        """``[plugins.deploy]``, read into :class:`DeploySettings` (the framework checks it)."""
        settings = load_config(DeploySettings, config)
        if not settings.webhook_token:
            log.warning(
                "no webhook_token: POST /hooks/deploy refuses every request; "
                "set [plugins.deploy] webhook_token to let CI report deploys"
            )
        for key, hook in (("github_secret", "github"), ("gitlab_token", "gitlab")):
            if not getattr(settings, key):
                log.info(
                    "no %s: POST /hooks/deploy/%s refuses every request; set "
                    "[plugins.deploy] %s to take %s's deploy events",
                    key,
                    hook,
                    key,
                    "GitHub" if hook == "github" else "GitLab",
                )
        return settings

    @hookimpl
    def chatops_routes(self) -> Iterable[Route]:
        """``POST /hooks/deploy`` (CI events), ``GET /hooks/deploy/lock`` (the lock check),
        ``POST /hooks/deploy/github`` and ``POST /hooks/deploy/gitlab`` (their webhooks)."""
        return [
            route("POST")(self.ingest),
            route("GET", "/lock", max_body=0)(self.lock_check),
            route("POST", "/github", max_body=WEBHOOK_MAX_BODY)(self.github_hook),
            route("POST", "/gitlab", max_body=WEBHOOK_MAX_BODY)(self.gitlab_hook),
        ]

    @hookimpl
    def chatops_jobs(self) -> Iterable[TimerHandler]:
        """The reminder for old locks."""
        return [timer("lock_reminder")(self.remind)]

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """Every ``deploy ...`` command."""
        service = Arg("service", help="a service, as CI names it")
        env = Arg("env", help="an environment, as CI names it")
        return [
            command(
                "deploy status",
                help="What version runs where",
                args=(attrs.evolve(service, required=False),),
            )(self.status),
            command(
                "deploy history",
                help="Past deploys of a service, newest first",
                args=(service, attrs.evolve(env, required=False)),
                options=(Option("limit", type=int, default=10, help="how many (1 to 50)"),),
            )(self.history),
            command(
                "deploy subscribe",
                help="Announce deploys of a service (or all) in this channel",
                args=(Arg("target", help="a service, or all"), attrs.evolve(env, required=False)),
            )(self.subscribe),
            command(
                "deploy unsubscribe",
                help="Stop announcing deploys of a service (or all) here",
                args=(Arg("target", help="a service, or all"), attrs.evolve(env, required=False)),
            )(self.unsubscribe),
            command("deploy subscriptions", help="What this channel is subscribed to")(
                self.subscriptions
            ),
            command(
                "deploy lock",
                help="Lock an environment: CI's lock check refuses deploys into it",
                args=(service, env, Arg("reason", required=False, variadic=True)),
            )(self.lock),
            command(
                "deploy unlock",
                help="Unlock an environment (--force for someone else's lock)",
                args=(service, env),
                options=(Option("force", flag=True, help="remove another person's lock"),),
            )(self.unlock),
            command("deploy locks", help="Every lock, who holds it and why")(self.locks),
        ]

    # Zoom's events.

    @hookimpl
    async def chatops_unfurl(self, ctx: PluginContext, link: str) -> Card | None:
        """A CI run URL a deploy event carried unfurls into that deploy's status card."""
        record = await ctx.store.get(_run_url(link))
        if record is None:
            return None
        lock = await ctx.store.get(_lock(record["service"], record["environment"]))
        return events.announcement(record, lock)

    @hookimpl
    async def chatops_channel_left(self, ctx: PluginContext, conversation: Conversation) -> int:
        """The bot left a channel: its deploy subscriptions go."""
        # Zoom names the channel by id there: its JID is compared without case.
        wanted = conversation.jid.lower()
        gone = 0
        for key, sub in await ctx.store.list("sub:"):
            if sub["conversation"]["jid"].lower() == wanted:
                gone += int(await ctx.store.delete(key))
        return gone

    @hookimpl
    async def chatops_account_removed(self, ctx: PluginContext, account_id: str) -> int:
        """An account removed the app: its channels' subscriptions and its users' locks go."""
        gone = 0
        for key, value in [*await ctx.store.list("sub:"), *await ctx.store.list("lock:")]:
            if value.get("conversation", {}).get("account_id") != account_id:
                continue
            if await ctx.store.delete(key):
                gone += 1
                if value.get("timer"):
                    await ctx.timers.cancel(value["timer"])
        return gone

    # CI in.

    async def _authenticate(self, ctx: PluginContext, request: HookRequest) -> Delivery:
        """A v1-signed request (replays refused) or the bearer token; see ``verify_request``."""
        settings: DeploySettings = ctx.config
        if not settings.webhook_token:
            raise HookError(401, "the deploy hook is off: set [plugins.deploy] webhook_token")
        return await verify_request(ctx, request, settings.webhook_token, allow_bearer=True)

    async def ingest(self, ctx: PluginContext, request: HookRequest) -> HookResponse:
        """Record a deploy event and announce it in the subscribed channels."""
        delivery = await self._authenticate(ctx, request)
        if delivery.duplicate:
            return delivery.duplicate_response
        try:
            outcome = await self._record(ctx, request.json())
        except BaseException:
            # Not handled after all: the sender's retry of this delivery must be.
            await delivery.forget(ctx)
            raise
        return HookResponse(202 if outcome["accepted"] else 200, outcome)

    async def github_hook(self, ctx: PluginContext, request: HookRequest) -> HookResponse:
        """GitHub's webhook: ``deployment_status`` and ``workflow_run`` events recorded like a
        JSON-hook event (see :mod:`chatopsbot_deploy.github`), ``ping`` answered, other events
        acknowledged and ignored.

        Checked with ``X-Hub-Signature-256`` (HMAC-SHA256 of the body under
        ``github_secret``). That signature has no time in it: a delivery sent again (GitHub's
        "Redeliver", or a replay) is the same event again, which the deploy's order makes a
        no-op (see :mod:`chatopsbot_deploy.events`).
        """
        settings: DeploySettings = ctx.config
        if not settings.github_secret:
            raise HookError(401, "the GitHub hook is off: set [plugins.deploy] github_secret")
        require_signature(request, settings.github_secret, header="x-hub-signature-256")
        kind = request.header("x-github-event")
        if not kind:
            raise HookError(400, "X-GitHub-Event: required")
        delivery = request.header("x-github-delivery") or "-"
        if (request.header("content-type") or "").startswith("application/x-www-form-urlencoded"):
            raise HookError(
                415, "set the webhook's Content type to application/json on GitHub (not form)"
            )
        body = request.json()
        if kind == "ping":
            log.info("GitHub ping (delivery %s, hook %s)", delivery, _hook_id(body))
            return HookResponse(200, {"status": "pong"})
        return await self._translated(
            ctx, f"GitHub {kind} delivery {delivery}", github.translate, kind, body, settings.github
        )

    async def gitlab_hook(self, ctx: PluginContext, request: HookRequest) -> HookResponse:
        """GitLab's webhook: deployment and pipeline events recorded like a JSON-hook event
        (see :mod:`chatopsbot_deploy.gitlab`), other events acknowledged and ignored.

        Checked with ``X-Gitlab-Token`` against ``gitlab_token``, in constant time.
        """
        settings: DeploySettings = ctx.config
        given = request.header("x-gitlab-token") or ""
        if not settings.gitlab_token:
            raise HookError(401, "the GitLab hook is off: set [plugins.deploy] gitlab_token")
        if not hmac.compare_digest(
            given.encode("utf-8", "replace"), settings.gitlab_token.encode()
        ):
            raise HookError(401, "missing or wrong X-Gitlab-Token")
        kind = request.header("x-gitlab-event")
        if not kind:
            raise HookError(400, "X-Gitlab-Event: required")
        delivery = request.header("x-gitlab-event-uuid") or "-"
        return await self._translated(
            ctx,
            f"GitLab {kind} {delivery}",
            gitlab.translate,
            kind,
            request.json(),
            settings.gitlab,
        )

    async def _translated(
        self,
        ctx: PluginContext,
        what: str,
        translate: Callable[[str, Any, Any], Translation],
        kind: str,
        body: Any,
        settings: Any,
    ) -> HookResponse:
        """Record every deploy event a GitHub or GitLab webhook holds, as the JSON hook does."""
        try:
            found = translate(kind, body, settings)
        except events.EventInvalid as exc:
            log.warning("%s refused: %s", what, exc)
            raise HookError(400, str(exc)) from None
        if not found.events:
            log.info("%s ignored: %s", what, found.ignored)
            return HookResponse(200, {"accepted": False, "ignored": found.ignored})
        outcomes = [await self._record(ctx, event) for event in found.events]
        accepted = any(o["accepted"] for o in outcomes)
        log.info(
            "%s: %s",
            what,
            "; ".join(
                f"{e['service']} {e['environment']} {e['version']} {e['status']}"
                + ("" if o["accepted"] else f" ({o['reason']})")
                for e, o in zip(found.events, outcomes, strict=True)
            ),
        )
        return HookResponse(202 if accepted else 200, {"accepted": accepted, "deploys": outcomes})

    async def _record(self, ctx: PluginContext, data: Any) -> dict[str, Any]:
        """Store one deploy event (the JSON hook's format) and announce it; the answer's body.

        Every source of events (the JSON hook, GitHub, GitLab) comes through here, so each is
        checked, ordered and shown the same way.
        """
        try:
            record = events.validate(data, ctx.clock.now())
        except events.EventInvalid as exc:
            raise HookError(400, str(exc)) from None
        service, env, version = record["service"], record["environment"], record["version"]
        stamp = int(record["timestamp"] * 1000)
        deploy_key, latest_key, lock_key = (
            _deploy(service, env, version),
            _latest(service, env),
            _lock(service, env),
        )
        # One row per deploy and status: the same event stored twice is one row.
        row_key = f"hist:{service}:{env}:{stamp:015d}:{version}:{record['status']}"
        # A CI run's URL finds its deploy when someone shares it (see chatops_unfurl).
        url_key = _run_url(record["url"]) if record.get("url") else None

        def advance(current: dict[str, Any]) -> dict[str, Any]:
            # The deploy, the environment's latest and the history in one step: of two events
            # racing, one moves the deploy first and the other is judged against that.
            moved = events.advance(record, current.get(deploy_key), current.get(latest_key))
            if moved is None:
                raise Refused("superseded", detail=current[deploy_key])
            stored = {**record, "run": moved["run"]}
            writes = {deploy_key: moved, row_key: stored}
            if url_key is not None:
                writes[url_key] = stored
            if events.newer(stored, current.get(latest_key)):
                writes[latest_key] = stored
            return writes

        keys = [deploy_key, latest_key, row_key, lock_key, *([url_key] if url_key else [])]
        result = await ctx.store.update_many(keys, advance)
        if not result.applied:
            # Out of order or a repeat: a 2xx all the same, so the sender does not retry it.
            return {"accepted": False, "reason": "superseded", "current": result.detail["status"]}
        record = result.new[row_key]
        lock = result.new.get(lock_key)
        announced = await self._announce(ctx, record, lock)
        return {"accepted": True, "announced": announced, "locked": lock is not None}

    async def _announce(self, ctx: PluginContext, record: dict[str, Any], lock: Any) -> int:
        """Post one card per deploy and channel; later events of that deploy edit it.

        Who posts is decided in one atomic step on the deploy's cards: the first event to
        reach a channel claims its card (``message_id`` still ``None``), later ones only move
        the state the card should show. Sends happen after that step, never inside it; each
        poster or editor then draws again until the card shows the state stored, so the last
        edit shows the furthest status whichever replica handled which event. Returns in how
        many channels this event moved the card.
        """
        service, env = record["service"], record["environment"]
        # Each deploy of a version has its own card (run 0 keeps the key cards had before runs).
        run = record.get("run", 0)
        key = f"ann:{service}:{env}:{record['version']}" + (f":{run}" if run else "")
        subscribed = [
            (Conversation(**sub["conversation"]), sub.get("by"))
            for _, sub in await ctx.store.list("sub:")
            if _matches(sub["rules"], service, env)
        ]
        places = [where for where, _ in subscribed]
        # Announcements go out on behalf of whoever subscribed the channel (Zoom's user_jid).
        behalf = {where.jid: by for where, by in subscribed}
        if not places:
            return 0
        wanted = {
            "status": record["status"],
            "timestamp": record["timestamp"],
            "record": record,
            "lock": lock,
        }
        now = ctx.clock.now().timestamp()

        def claim(cards: dict[str, Any]) -> dict[str, Any]:
            cards = dict(cards)
            for where in places:
                known = cards.get(where.jid)
                if known is None or _abandoned(known, now):
                    cards[where.jid] = {**wanted, "message_id": None, "claimed_at": now}
                elif events.supersedes(record, {"status": "started", **known}):
                    cards[where.jid] = {**known, **wanted}
            return cards

        result = await ctx.store.attempt(key, claim, default={}, ttl=_CARDS_KEPT)
        count = 0
        for where in places:
            before, after = result.old.get(where.jid), result.new.get(where.jid)
            if after is None or after == before:
                continue  # this event does not move that card
            count += 1
            if before is None or _abandoned(before, now):
                # This event claimed the card.
                await self._post_card(ctx, key, where, after, behalf.get(where.jid))
            elif before["message_id"] is not None:
                await self._draw_card(ctx, key, where, None, behalf.get(where.jid))
            # Else another event's handler is posting the card: it draws this state after.
        return count

    async def _post_card(
        self,
        ctx: PluginContext,
        key: str,
        where: Conversation,
        claimed: dict[str, Any],
        on_behalf: str | None = None,
    ) -> None:
        """Post the card this handler claimed, note its id, and catch up with what came since."""
        try:
            sent = await ctx.send_to(
                where,
                events.announcement(claimed["record"], claimed["lock"]),
                on_behalf_of=on_behalf,
            )
        except BaseException:
            # Give the claim back, so the next event of this deploy posts the card.
            def release(cards: dict[str, Any]) -> dict[str, Any]:
                known = cards.get(where.jid)
                if known is None or known["message_id"] is not None:
                    raise Refused("posted")
                return {j: c for j, c in cards.items() if j != where.jid}

            await ctx.store.attempt(key, release, default={}, ttl=_CARDS_KEPT)
            raise

        def posted(cards: dict[str, Any]) -> dict[str, Any]:
            known = cards.get(where.jid) or claimed
            return {**cards, where.jid: {**known, "message_id": sent.message_id}}

        await ctx.store.update(key, posted, default={}, ttl=_CARDS_KEPT)
        await self._draw_card(ctx, key, where, claimed, on_behalf)

    async def _draw_card(
        self,
        ctx: PluginContext,
        key: str,
        where: Conversation,
        drawn: Mapping[str, Any] | None,
        on_behalf: str | None = None,
    ) -> None:
        """Edit the card until it shows the state stored for it (``drawn``: what it shows).

        Each edit is queued before the next read, so whichever handler queues the last edit
        has read the latest state: a change stored after that read is drawn by its own event.
        """
        while True:
            cards: dict[str, Any] = await ctx.store.get(key, {})
            known = cards.get(where.jid)
            if known is None or known["message_id"] is None or "record" not in known:
                return
            if drawn is not None and _shown(known) == _shown(drawn):
                return
            card = events.announcement(known["record"], known["lock"])
            await ctx.send_to(where, Edit(known["message_id"], card), on_behalf_of=on_behalf)
            drawn = known

    async def lock_check(self, ctx: PluginContext, request: HookRequest) -> HookResponse:
        """200 ``{"locked": false}``, or 423 with who locked it, when and why.

        Signed v1, the signature covers the query: one for ``api``/``prod`` answers for no other.
        """
        await self._authenticate(ctx, request)
        service = request.query.get("service") or ""
        env = request.query.get("environment") or ""
        for name, value in (("service", service), ("environment", env)):
            if not value:
                raise HookError(400, f"{name}: required (query parameter)")
            problem = events.name_problem(name, value)
            if problem:
                raise HookError(400, problem)
        lock = await ctx.store.get(_lock(service, env))
        if lock is None:
            return HookResponse(200, {"locked": False})
        return HookResponse(
            423,
            {
                "locked": True,
                "by": lock["by"]["name"],
                "since": events.when(lock["at"]),
                "reason": events.clip(lock.get("reason") or "", events.LIMITS["reason"]),
            },
        )

    # Commands.

    async def status(self, ctx: Context) -> Text | Any:
        """Latest per service and environment, as a compact card."""
        _check_names(ctx)
        latest = [record for _, record in await ctx.store.list("latest:")]
        service = ctx.args["service"]
        if service:
            await self._known(ctx, service)
            latest = [r for r in latest if r["service"] == service]
        locks = {f"{lk['service']}:{lk['env']}": lk for _, lk in await ctx.store.list("lock:")}
        title = f"Deploys of {service}" if service else "Deploys"
        return events.status_card(latest, locks, title)

    async def history(self, ctx: Context) -> Text:
        """Newest first: when, version, result, who, link."""
        _check_names(ctx)
        service, env, limit = ctx.args["service"], ctx.args["env"], ctx.args["limit"]
        if not 1 <= limit <= 50:
            raise UsageError("--limit must be between 1 and 50")
        await self._known(ctx, service, env)
        prefix = f"hist:{service}:{env}:" if env else f"hist:{service}:"
        rows = [r for _, r in await ctx.store.list(prefix)]
        rows.sort(key=lambda r: r["timestamp"], reverse=True)
        lines = [
            (f"{r['environment']} · " if not env else "") + events.line(r) for r in rows[:limit]
        ]
        where = f"{service} {env}" if env else service
        return Text(f"Deploy history of {where}:\n" + "\n".join(lines))

    async def subscribe(self, ctx: Context) -> Text:
        """Announce the target's deploys here."""
        _check_names(ctx)
        target, env = ctx.args["target"], ctx.args["env"]
        if target != ALL:
            await self._known(ctx, target, env, allow_new=True)
        rule = [target, env or ALL]
        key = "sub:" + ctx.conversation.jid

        def add(sub: dict[str, Any]) -> dict[str, Any]:
            rules = sub["rules"] if rule in sub["rules"] else [*sub["rules"], rule]
            return {
                "conversation": attrs.asdict(ctx.conversation),
                "rules": rules,
                # Announcements go out on behalf of the last person who subscribed here.
                "by": ctx.actor.jid,
            }

        await ctx.store.update(key, add, default={"rules": []})
        what = "every service" if target == ALL else target
        return Text(f"This channel now gets deploys of {what}" + (f" in {env}." if env else "."))

    async def unsubscribe(self, ctx: Context) -> Text:
        """Stop announcing the target here."""
        _check_names(ctx)
        target, env = ctx.args["target"], ctx.args["env"]
        key = "sub:" + ctx.conversation.jid

        def drop(sub: dict[str, Any] | None) -> dict[str, Any] | None:
            rules = [
                r
                for r in (sub or {"rules": []})["rules"]
                if not (r[0] == target and (env is None or r[1] == env))
            ]
            if sub is None or len(rules) == len(sub["rules"]):
                raise Refused("not subscribed")
            return {**sub, "rules": rules} if rules else None

        if not (await ctx.store.attempt(key, drop)).applied:
            raise UsageError(
                f"this channel is not subscribed to {target}" + (f" in {env}" if env else "")
            )
        return Text(f"No more deploys of {target}" + (f" in {env}" if env else "") + " here.")

    async def subscriptions(self, ctx: Context) -> Text:
        """This channel's subscriptions, privately."""
        sub = await ctx.store.get("sub:" + ctx.conversation.jid)
        if not sub:
            return Text("This channel is not subscribed to any deploys.", private=True)
        lines = [
            ("every service" if s == ALL else s) + ("" if e == ALL else f" in {e}")
            for s, e in sub["rules"]
        ]
        return Text("Deploys announced here:\n" + "\n".join(lines), private=True)

    async def lock(self, ctx: Context[DeploySettings]) -> Text:
        """Lock an environment; the CI lock check answers 423 until it is unlocked."""
        _check_names(ctx)
        service, env = ctx.args["service"], ctx.args["env"]
        reason = " ".join(ctx.args["reason"] or ())
        limit = events.LIMITS["reason"]
        if len(reason) > limit:
            # The reason is repeated on every announcement while the lock holds.
            raise UsageError(f"reason: at most {limit} characters (this one has {len(reason)})")
        await self._known(ctx, service, env, allow_new=True)
        settings: DeploySettings = ctx.config
        now = ctx.clock.now()
        lock = {
            "service": service,
            "env": env,
            "by": {"id": ctx.actor.id, "name": ctx.actor.name, "jid": ctx.actor.jid},
            "at": now.timestamp(),
            "reason": reason,
            "conversation": attrs.asdict(ctx.conversation),
            # Tells this lock from a later one by the same person in the same second.
            "token": secrets.token_hex(8),
        }

        def take(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is not None:
                raise Refused("locked", detail=current)
            return lock

        result = await ctx.store.attempt(_lock(service, env), take)
        if not result.applied:
            taken = result.detail
            return Text(
                f"{service} {env} is already locked by {taken['by']['name']} since "
                f"{events.when(taken['at'])}"
                + (f": {taken['reason']}" if taken.get("reason") else ""),
                private=True,
            )
        timer_id = await ctx.timers.schedule(
            "lock_reminder",
            now + settings.lock_reminder,
            {"service": service, "env": env, "at": lock["at"], "token": lock["token"]},
        )
        await self._attach_timer(ctx, lock, timer_id)
        return Text(
            f"🔒 {ctx.actor.name} locked {service} {env}" + (f": {reason}" if reason else "")
        )

    async def unlock(self, ctx: Context[DeploySettings]) -> Text:
        """Unlock; someone else's lock needs --force (from a bot admin, unless ``force_unlock =
        "anyone"``), and its holder is told privately."""
        _check_names(ctx)
        service, env = ctx.args["service"], ctx.args["env"]
        settings: DeploySettings = ctx.config
        caller, admin, force = ctx.actor.id, ctx.actor_is_admin, ctx.args["force"]

        def remove(current: dict[str, Any] | None) -> None:
            # Checked against the lock being removed: never one taken since it was looked at.
            if current is None:
                raise Refused("unlocked")
            theirs = current["by"]["id"] != caller
            if theirs and settings.force_unlock == "admins" and not admin:
                raise Refused("not yours", detail=current)
            if theirs and not force:
                raise Refused("force", detail=current)

        result = await ctx.store.attempt(_lock(service, env), remove)
        if result.reason == "unlocked":
            raise UsageError(f"{service} {env} is not locked")
        if result.reason == "not yours":
            holder = result.detail["by"]["name"]
            return Text(
                f"{service} {env} is locked by {holder}: only {holder} or a bot admin "
                "can remove that lock, so ask them.",
                private=True,
            )
        if result.reason == "force":
            raise UsageError(
                f"{service} {env} is locked by {result.detail['by']['name']}; "
                "add --force to remove their lock"
            )
        lock = result.old
        theirs = lock["by"]["id"] != caller
        if lock.get("timer"):
            await ctx.timers.cancel(lock["timer"])
        if theirs:
            await ctx.send_to(
                Conversation(**lock["conversation"]),
                Text(
                    f"Your lock on {service} {env} was removed by {ctx.actor.name}.", private=True
                ),
                visible_to=lock["by"]["id"],
                on_behalf_of=lock["by"].get("jid"),
            )
        return Text(f"🔓 {ctx.actor.name} unlocked {service} {env}")

    async def locks(self, ctx: Context) -> Text:
        """Every lock."""
        rows = [lk for _, lk in await ctx.store.list("lock:")]
        if not rows:
            return Text("Nothing is locked.", private=True)
        lines = [
            f"{lk['service']} {lk['env']}: {lk['by']['name']} since {events.when(lk['at'])}"
            + (f" ({lk['reason']})" if lk.get("reason") else "")
            for lk in rows
        ]
        return Text("Locks:\n" + "\n".join(lines), private=True)

    async def remind(self, ctx: PluginContext, payload: Any) -> None:
        """Remind the holder of a lock that is still there; again after the same time."""
        lock = await ctx.store.get(_lock(payload["service"], payload["env"]))
        if lock is None or not _same_lock(lock, payload):
            return
        settings: DeploySettings = ctx.config
        age = ctx.clock.now().timestamp() - lock["at"]
        hours = age / 3600
        await ctx.send_to(
            Conversation(**lock["conversation"]),
            Text(
                f"Reminder: you locked {lock['service']} {lock['env']} {hours:.0f} h ago. "
                f"deploy unlock {lock['service']} {lock['env']} when you are done.",
                private=True,
            ),
            visible_to=lock["by"]["id"],
            on_behalf_of=lock["by"].get("jid"),
        )
        timer_id = await ctx.timers.schedule(
            "lock_reminder", ctx.clock.now() + settings.lock_reminder, payload
        )
        await self._attach_timer(ctx, lock, timer_id)

    async def _attach_timer(self, ctx: PluginContext, lock: dict[str, Any], timer_id: str) -> None:
        """Note the reminder's timer on ``lock``, if that lock is still there; else the lock
        was removed meanwhile (its unlock found no timer to cancel): cancel it here."""

        def attach(current: dict[str, Any] | None) -> dict[str, Any]:
            # Never recreate a lock unlocked meanwhile, nor touch one taken since.
            if current is None or not _same_lock(current, lock):
                raise Refused("gone")
            return {**current, "timer": timer_id}

        result = await ctx.store.attempt(_lock(lock["service"], lock["env"]), attach)
        if not result.applied:
            await ctx.timers.cancel(timer_id)

    async def _known(
        self, ctx: Context, service: str, env: str | None = None, *, allow_new: bool = False
    ) -> None:
        """Refuse a service or environment CI never reported, listing the known ones."""
        latest = [record for _, record in await ctx.store.list("latest:")]
        if allow_new and not latest:
            return
        services = sorted({r["service"] for r in latest})
        if service not in services:
            known = ", ".join(services) or "none yet (CI has not reported any deploy)"
            raise UsageError(f"unknown service {service!r}; known: {known}")
        if env is not None:
            envs = sorted({r["environment"] for r in latest if r["service"] == service})
            if env not in envs:
                raise UsageError(
                    f"unknown environment {env!r} for {service}; known: {', '.join(envs)}"
                )


#: GitHub's and GitLab's payloads carry whole repository and job objects: far more than a
#: JSON-hook event (GitHub caps its own at 25 MB; real deploy events are tens of KB).
WEBHOOK_MAX_BODY = 1024 * 1024


def _hook_id(body: Any) -> object:
    return body.get("hook_id") if isinstance(body, dict) else None


#: How long a deploy's cards are remembered (later events of it edit them meanwhile).
_CARDS_KEPT = timedelta(days=30)
#: A claim to post a card that was never fulfilled (its handler's process died) is given up
#: after this long, so a later event of the deploy posts the card.
_CLAIM_SECONDS = 300.0


def _abandoned(card: Mapping[str, Any], now: float) -> bool:
    return card.get("message_id") is None and now - card.get("claimed_at", now) > _CLAIM_SECONDS


def _shown(card: Mapping[str, Any]) -> tuple[Any, ...]:
    """What decides a card's look: the event it shows and the lock shown with it."""
    return (card["status"], card["timestamp"], card.get("lock"))


def _same_lock(lock: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether ``lock`` is the one ``other`` (a lock, or a reminder's payload) was made for.

    Locks from before tokens existed are told apart by when they were taken.
    """
    if "token" in lock or "token" in other:
        return lock.get("token") == other.get("token")
    return bool(lock["at"] == other["at"])


def _matches(rules: list[list[str]], service: str, env: str) -> bool:
    return any(s in (ALL, service) and e in (ALL, env) for s, e in rules)
