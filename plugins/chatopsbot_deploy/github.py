"""GitHub's ``deployment_status`` and ``workflow_run`` webhooks, read into deploy events.

Pure: a payload in, the JSON hook's events out (``service``, ``environment``, ``version``,
``status``, ...), which then take the very path a JSON-hook event takes. The mapping:

- service: the repository's name (``octo-repo`` of ``octo-org/octo-repo``) unless
  ``[plugins.deploy.github] services`` maps the full name to another;
- environment: the deployment's; for ``workflow_run``, the one ``[plugins.deploy.github]
  workflows`` gives the workflow (by name, file name or path): an unlisted workflow is not a
  deploy (a lint run is not announced), so its events are acknowledged and ignored;
- version: ``<ref>@<short sha>`` (``main@f95f852``), actor: who made the deployment or
  started the run, URL: the run's log, else the environment's, else the repository's
  deployments page;
- status: see :data:`DEPLOYMENT_STATES` and :data:`CONCLUSIONS`; states that say nothing
  about a deploy's outcome (``inactive``, a run ``skipped``...) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from chatopsbot_deploy import payload
from chatopsbot_deploy.events import LIMITS, EventInvalid, clip

#: ``deployment_status.state`` to the deploy plugin's status; ``inactive`` (a later deploy
#: replaced this one) says nothing new and is ignored.
DEPLOYMENT_STATES = {
    "pending": "started",
    "queued": "started",
    "in_progress": "started",
    "success": "succeeded",
    "failure": "failed",
    "error": "failed",
}
#: A completed run's ``conclusion``; ``neutral``, ``skipped``, ``stale`` and
#: ``action_required`` (waiting for an approval) are not an outcome and are ignored.
CONCLUSIONS = {
    "success": "succeeded",
    "failure": "failed",
    "timed_out": "failed",
    "startup_failure": "failed",
    "cancelled": "failed",
}
#: Events the hook reads; ``ping`` is answered; anything else is acknowledged and ignored.
EVENTS = ("deployment_status", "workflow_run")
_SHA = 7


@frozen
class GithubSettings:
    """``[plugins.deploy.github]``: ``services`` maps ``"org/repo"`` to a service name,
    ``workflows`` maps a workflow (name, file name or path) to the environment it deploys."""

    services: Mapping[str, str] = field(factory=dict, validator=payload.names)
    workflows: Mapping[str, str] = field(factory=dict, validator=payload.names)


@frozen
class Translation:
    """What a webhook means: the deploy events to record, or why there are none."""

    events: tuple[dict[str, Any], ...] = ()
    ignored: str = ""


def translate(event: str, body: Any, settings: GithubSettings) -> Translation:
    """The deploy events in a GitHub webhook of type ``event`` (``X-GitHub-Event``).

    Raises :class:`~chatopsbot_deploy.events.EventInvalid` naming a field that is missing or
    of the wrong type.
    """
    if not isinstance(body, Mapping):
        return Translation(ignored="body: expected a JSON object")
    if event == "deployment_status":
        return _deployment_status(body, settings)
    if event == "workflow_run":
        return _workflow_run(body, settings)
    return Translation(ignored=f"{event!r} events are not deploys")


def _service(body: Mapping[str, Any], settings: GithubSettings) -> str:
    full = payload.field(body, "repository.full_name")
    mapped = settings.services.get(full) or settings.services.get(full.casefold())
    return mapped or payload.slug(payload.field(body, "repository.name"), "service")


def _deployment_status(body: Mapping[str, Any], settings: GithubSettings) -> Translation:
    state = payload.field(body, "deployment_status.state")
    status = DEPLOYMENT_STATES.get(state)
    if status is None:
        return Translation(ignored=f"deployment state {state!r} is not a deploy's progress")
    environment = payload.text(body, "deployment_status.environment", "deployment.environment")
    if environment is None:
        raise EventInvalid("deployment.environment: required")
    sha = payload.field(body, "deployment.sha")
    repo_url = payload.text(body, "repository.html_url")
    return Translation(
        (
            {
                "service": _service(body, settings),
                "environment": payload.slug(environment, "environment"),
                "version": payload.version(payload.text(body, "deployment.ref"), sha, _SHA),
                "status": status,
                "timestamp": payload.text(
                    body, "deployment_status.updated_at", "deployment_status.created_at"
                ),
                "actor": payload.text(body, "deployment.creator.login", "sender.login"),
                "url": _http(
                    payload.text(
                        body,
                        "deployment_status.log_url",
                        "deployment_status.target_url",
                        "deployment_status.environment_url",
                    )
                    or (f"{repo_url}/deployments" if repo_url else None)
                ),
                "commit": sha,
                "message": payload.first_line(
                    payload.text(body, "deployment_status.description", "deployment.description")
                ),
            },
        )
    )


def _workflow_run(body: Mapping[str, Any], settings: GithubSettings) -> Translation:
    run = payload.field(body, "workflow_run", dict)
    path = payload.text(run, "path") or ""
    names = [
        n for n in (payload.text(body, "workflow.name"), payload.text(run, "name")) if n is not None
    ]
    candidates = [*names, path, path.rsplit("/", 1)[-1]]
    environment = next((settings.workflows[c] for c in candidates if c in settings.workflows), None)
    what = names[0] if names else path or "?"
    if environment is None:
        return Translation(
            ignored=f"workflow {what!r} ({path}) is not in [plugins.deploy.github] workflows"
        )
    action = payload.field(body, "action")
    if action == "completed":
        conclusion = payload.field(run, "conclusion", required=False)
        status = CONCLUSIONS.get(conclusion or "")
        if status is None:
            return Translation(ignored=f"a run that ended {conclusion!r} is not an outcome")
    elif action in ("requested", "in_progress"):
        status = "started"
    else:
        return Translation(ignored=f"workflow_run action {action!r} is not a deploy's progress")
    sha = payload.field(run, "head_sha")
    conclusion = payload.text(run, "conclusion")
    title = payload.first_line(payload.text(run, "display_title")) or what
    return Translation(
        (
            {
                "service": _service(body, settings),
                "environment": environment,
                "version": payload.version(payload.text(run, "head_branch"), sha, _SHA),
                "status": status,
                "timestamp": payload.text(run, "updated_at", "run_started_at", "created_at"),
                "actor": payload.text(
                    body,
                    "workflow_run.triggering_actor.login",
                    "workflow_run.actor.login",
                    "sender.login",
                ),
                "url": _http(payload.text(run, "html_url")),
                "commit": sha,
                "message": clip(
                    title + (" (cancelled)" if conclusion == "cancelled" else ""), LIMITS["message"]
                ),
            },
        )
    )


def _http(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None
