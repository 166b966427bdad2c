"""GitLab's deployment and pipeline webhooks, read into deploy events.

Pure: a payload in, the JSON hook's events out, which then take the very path a JSON-hook
event takes. The mapping:

- service: the project's path (``gitlab-test`` of ``gitlab-org/gitlab-test``) unless
  ``[plugins.deploy.gitlab] services`` maps the full path to another;
- a deployment event is one deploy of its ``environment``; a pipeline event holds one per
  deploy job (a job whose ``environment.action`` is ``start``), each with that job's status:
  a pipeline without one is not a deploy and is acknowledged and ignored;
- version: ``<ref>@<short sha>`` when the payload gives the ref (pipelines), else the short
  sha (deployment events carry none); actor: the GitLab username; URL: the job, else the
  pipeline;
- status: see :data:`DEPLOYMENT_STATUSES` and :data:`JOB_STATUSES`; a job not run yet
  (``created``, ``manual``, ``skipped``...) is no deploy yet and is left out.

Tick either deployment events or pipeline events for a project, not both: the two name the
same deploy with different versions (a deployment event has no ref).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from chatopsbot_deploy import payload
from chatopsbot_deploy.events import EventInvalid
from chatopsbot_deploy.github import Translation

#: A deployment event's ``status``; GitLab sends these four.
DEPLOYMENT_STATUSES = {
    "running": "started",
    "success": "succeeded",
    "failed": "failed",
    "canceled": "failed",
}
#: A deploy job's ``status`` in a pipeline event; others (not started yet) are left out.
JOB_STATUSES = {
    "pending": "started",
    "running": "started",
    "success": "succeeded",
    "failed": "failed",
    "canceled": "failed",
}
#: ``X-Gitlab-Event`` values the hook reads; anything else is acknowledged and ignored.
EVENTS = ("Deployment Hook", "Pipeline Hook")
_SHA = 8  # GitLab's own short sha
_SHA_HEX = re.compile(r"^[0-9a-f]{40,64}$")


@frozen
class GitlabSettings:
    """``[plugins.deploy.gitlab]``: ``services`` maps ``"group/project"`` to a service name."""

    services: Mapping[str, str] = field(factory=dict, validator=payload.names)


def translate(event: str, body: Any, settings: GitlabSettings) -> Translation:
    """The deploy events in a GitLab webhook whose ``X-Gitlab-Event`` is ``event``.

    Raises :class:`~chatopsbot_deploy.events.EventInvalid` naming a field that is missing or
    of the wrong type.
    """
    if not isinstance(body, Mapping):
        return Translation(ignored="body: expected a JSON object")
    kind = body.get("object_kind")
    if event == "Deployment Hook" and kind == "deployment":
        return _deployment(body, settings)
    if event == "Pipeline Hook" and kind == "pipeline":
        return _pipeline(body, settings)
    return Translation(ignored=f"{event!r} events ({kind!r}) are not deploys")


def _service(body: Mapping[str, Any], settings: GitlabSettings) -> str:
    full = payload.field(body, "project.path_with_namespace")
    mapped = settings.services.get(full) or settings.services.get(full.casefold())
    return mapped or payload.slug(full.rsplit("/", 1)[-1], "service")


def _deployment(body: Mapping[str, Any], settings: GitlabSettings) -> Translation:
    state = payload.field(body, "status")
    status = DEPLOYMENT_STATUSES.get(state)
    if status is None:
        return Translation(ignored=f"deployment status {state!r} is not a deploy's progress")
    sha = payload.text(body, "sha") or payload.field(body, "short_sha")
    commit_url = payload.text(body, "commit_url")
    return Translation(
        (
            {
                "service": _service(body, settings),
                "environment": payload.slug(payload.field(body, "environment"), "environment"),
                "version": payload.version(payload.text(body, "ref"), sha, _SHA),
                "status": status,
                "timestamp": payload.gitlab_time(
                    payload.text(body, "status_changed_at"), "status_changed_at"
                ),
                "actor": payload.text(body, "user.username", "user.name"),
                "url": payload.text(body, "deployable_url") or commit_url,
                "commit": _full_sha(commit_url, sha),
                "message": payload.first_line(payload.text(body, "commit_title")),
            },
        )
    )


def _pipeline(body: Mapping[str, Any], settings: GitlabSettings) -> Translation:
    pipeline = payload.field(body, "object_attributes", dict)
    builds = payload.field(body, "builds", list, required=False) or []
    # The last deploy job of each environment (a retried job comes later, with a larger id).
    jobs: dict[str, Mapping[str, Any]] = {}
    for n, build in enumerate(builds):
        if not isinstance(build, Mapping):
            raise EventInvalid(f"builds.{n}: expected an object")
        if payload.text(build, "environment.action") != "start":
            continue
        name = payload.field(build, "environment.name")
        if name not in jobs or build.get("id", 0) > jobs[name].get("id", 0):
            jobs[name] = build
    if not jobs:
        return Translation(ignored="no deploy job (environment action start) in this pipeline")
    service = _service(body, settings)
    sha = payload.field(pipeline, "sha")
    version = payload.version(payload.text(pipeline, "ref"), sha, _SHA)
    found = []
    for environment, job in sorted(jobs.items()):
        status = JOB_STATUSES.get(payload.field(job, "status"))
        if status is None:
            continue
        started = status == "started"
        when = payload.text(job, "started_at" if started else "finished_at") or payload.text(
            job, "created_at"
        )
        found.append(
            {
                "service": service,
                "environment": payload.slug(environment, "environment"),
                "version": version,
                "status": status,
                "timestamp": payload.gitlab_time(when, "builds.finished_at"),
                "actor": payload.text(job, "user.username")
                or payload.text(body, "user.username", "user.name"),
                "url": payload.text(pipeline, "url"),
                "commit": sha,
                "message": payload.first_line(
                    payload.text(body, "commit.message") or payload.text(pipeline, "name")
                ),
            }
        )
    if not found:
        states = ", ".join(f"{e} {payload.text(j, 'status')}" for e, j in sorted(jobs.items()))
        return Translation(ignored=f"no deploy job has run yet ({states})")
    return Translation(tuple(found))


def _full_sha(commit_url: str | None, short: str) -> str:
    """The commit's full sha, which a deployment event gives only as the end of its
    ``commit_url``; the short one otherwise."""
    tail = (commit_url or "").rsplit("/", 1)[-1]
    return tail if _SHA_HEX.match(tail) and tail.startswith(short) else short
