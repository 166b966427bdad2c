"""GitHub, GitLab and Argo CD deploy events, end to end: their published example payloads,
signed as they sign them, into the bot; the cards fake Zoom receives; ``deploy status``."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness
from chatopsbot_deploy import DeployPlugin, payload
from chatopsbot_deploy.events import EventInvalid
from tests.plugins.example_config import example_tables

FIXTURES = Path(__file__).parent / "fixtures"
GH_SECRET = "gh-webhook-secret"
GL_TOKEN = "gl-webhook-token"
JSON_TOKEN = "ci-secret"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def config(**deploy: Any) -> dict[str, Any]:
    return {
        "plugins": {
            "deploy": {
                "webhook_token": JSON_TOKEN,
                "github_secret": GH_SECRET,
                "gitlab_token": GL_TOKEN,
                **deploy,
            }
        }
    }


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START), config=config()) as harness:
        yield harness


async def github(
    bot: BotHarness,
    kind: str,
    body: Any,
    *,
    delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    secret: str = GH_SECRET,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST as GitHub does: the raw body, its HMAC-SHA256 in X-Hub-Signature-256."""
    raw = data if data is not None else json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": kind,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
        **(headers or {}),
    }
    return await bot.hook("POST", "deploy", "/github", data=raw, headers=sent)


async def gitlab(
    bot: BotHarness,
    kind: str,
    body: Any,
    *,
    token: str | None = GL_TOKEN,
    data: bytes | None = None,
) -> Any:
    """POST as GitLab does: the secret token as X-Gitlab-Token, the event as X-Gitlab-Event."""
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": kind}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    raw = data if data is not None else json.dumps(body).encode()
    return await bot.hook("POST", "deploy", "/gitlab", data=raw, headers=headers)


async def status_lines(bot: BotHarness) -> list[str]:
    return (await bot.command("deploy status")).only().text.splitlines()[1:]


async def history_rows(bot: BotHarness, service: str) -> list[str]:
    return (await bot.command(f"deploy history {service} --limit 50")).only().text.splitlines()[1:]


def cards(bot: BotHarness) -> list[Any]:
    return [m for m in bot.messages if " → " in m.text.splitlines()[0]]


# GitHub.


async def test_a_github_deployment_is_stored_announced_and_shown(bot):
    await bot.command("deploy subscribe all")
    body = fixture("github-deployment_status-success.json")
    result = await github(bot, "deployment_status", body)
    assert result.status == 202
    assert result.body == {
        "accepted": True,
        "deploys": [{"accepted": True, "announced": 1, "locked": False}],
    }
    [card] = cards(bot)
    assert card.to_jid == "ops@conference.xmpp.zoom.us"
    assert card.text.splitlines()[0] == "Hello-World → production"
    assert "Status: ✅ succeeded" in card.text
    assert "Version: master@f95f852" in card.text
    assert "By: Codertocat" in card.text
    assert "Commit: f95f852bd8fc" in card.text
    assert await status_lines(bot) == [
        "Hello-World production: master@f95f852 ✅ succeeded (2019-05-15 15:20 UTC)"
    ]
    assert await history_rows(bot, "Hello-World") == [
        "production · 2019-05-15 15:20 UTC · master@f95f852 · ✅ succeeded · by Codertocat · "
        "https://github.com/Codertocat/Hello-World/deployments"
    ]


async def test_a_github_deployment_looks_exactly_like_the_same_deploy_from_the_json_hook():
    """The same deploy through either door: the same card, the same status, the same history."""
    seen = []
    for door in ("github", "json"):
        async with BotHarness(clock=ManualClock(START), config=config()) as bot:
            await bot.command("deploy subscribe all")
            if door == "github":
                body = fixture("github-deployment_status-success.json")
                assert (await github(bot, "deployment_status", body)).status == 202
            else:
                event = {
                    "service": "Hello-World",
                    "environment": "production",
                    "version": "master@f95f852",
                    "status": "succeeded",
                    "timestamp": "2019-05-15T15:20:55Z",
                    "actor": "Codertocat",
                    "url": "https://github.com/Codertocat/Hello-World/deployments",
                    "commit": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                }
                headers = {"Authorization": f"Bearer {JSON_TOKEN}"}
                assert (await bot.hook("POST", "deploy", json=event, headers=headers)).status == 202
            seen.append(
                (
                    [c.text for c in cards(bot)],
                    await status_lines(bot),
                    await history_rows(bot, "Hello-World"),
                )
            )
    assert seen[0] == seen[1]


async def test_a_redelivered_github_event_neither_rolls_back_nor_repeats(bot):
    await bot.command("deploy subscribe all")
    success = fixture("github-deployment_status-success.json")
    # The same deploy's earlier status, as GitHub sends it first (derived from the example).
    progress = copy.deepcopy(success)
    progress["deployment_status"].update(
        state="in_progress", created_at="2019-05-15T15:19:00Z", updated_at="2019-05-15T15:19:00Z"
    )
    assert (await github(bot, "deployment_status", progress, delivery="d-1")).status == 202
    assert (await github(bot, "deployment_status", success, delivery="d-2")).status == 202
    [card] = cards(bot)
    assert "succeeded" in card.text
    assert card.edits == 1
    rows = await history_rows(bot, "Hello-World")
    assert len(rows) == 2
    # "Redeliver" in GitHub's settings, for either delivery, days later: nothing moves.
    await bot.advance(3 * 86400)
    for body, delivery in ((progress, "d-1"), (success, "d-2")):
        again = await github(bot, "deployment_status", body, delivery=delivery)
        assert again.status == 200
        assert again.body["deploys"] == [
            {"accepted": False, "reason": "superseded", "current": "succeeded"}
        ]
    assert await history_rows(bot, "Hello-World") == rows
    assert "succeeded" in (await status_lines(bot))[0]
    assert card.edits == 1
    assert len(cards(bot)) == 1


async def test_github_repositories_map_to_services():
    services = {"Codertocat/Hello-World": "hello"}
    async with BotHarness(
        clock=ManualClock(START), config=config(github={"services": services})
    ) as bot:
        body = fixture("github-deployment_status-in_progress.json")
        assert (await github(bot, "deployment_status", body)).status == 202
        assert await status_lines(bot) == [
            "hello github-pages: master@f95f852 🚀 started (2022-01-03 01:28 UTC)"
        ]
        [row] = await history_rows(bot, "hello")
        # The run's log is the link; the deployment's creator the actor.
        assert row.endswith(
            "by github-pages[bot] · "
            "https://github.com/CorsixTH/CorsixTH/runs/4687056418?check_suite_focus=true"
        )


async def test_an_unlisted_workflow_is_acknowledged_and_ignored(bot, caplog):
    caplog.set_level(logging.INFO, logger="chatopsbot.plugin.deploy")
    result = await github(bot, "workflow_run", fixture("github-workflow_run-completed.json"))
    assert result.status == 200
    ignored = (
        "workflow 'test' (.github/workflows/test.yml) is not in [plugins.deploy.github] workflows"
    )
    assert result.body == {"accepted": False, "ignored": ignored}
    assert any(ignored in r.getMessage() for r in caplog.records)
    assert (await status_lines(bot)) == ["No deploys recorded yet."]


async def test_a_listed_workflow_run_is_a_deploy_from_requested_to_completed():
    workflows = {"test.yml": "production"}
    async with BotHarness(
        clock=ManualClock(START), config=config(github={"workflows": workflows})
    ) as bot:
        await bot.command("deploy subscribe octo-repo")
        requested = await github(bot, "workflow_run", fixture("github-workflow_run-requested.json"))
        assert requested.status == 202
        [card] = cards(bot)
        assert card.text.splitlines()[0] == "octo-repo → production"
        assert "Status: 🚀 started" in card.text
        completed = await github(bot, "workflow_run", fixture("github-workflow_run-completed.json"))
        assert completed.status == 202
        assert "Status: ✅ succeeded" in card.text
        assert card.edits == 1
        assert "https://github.com/octo-org/octo-repo/actions/runs/289782451" in json.dumps(
            card.content
        )
        assert await status_lines(bot) == [
            "octo-repo production: master@3484a3f ✅ succeeded (2020-10-05 16:33 UTC)"
        ]


@pytest.mark.parametrize(
    ("conclusion", "outcome"),
    [
        ("failure", "❌ failed"),
        ("cancelled", "❌ failed"),
        ("timed_out", "❌ failed"),
        ("skipped", None),
        ("action_required", None),
    ],
)
async def test_workflow_conclusions(conclusion, outcome):
    async with BotHarness(
        clock=ManualClock(START), config=config(github={"workflows": {"test": "prod"}})
    ) as bot:
        body = fixture("github-workflow_run-completed.json")
        body["workflow_run"]["conclusion"] = conclusion
        result = await github(bot, "workflow_run", body)
        if outcome is None:
            assert result.status == 200
            assert result.body["ignored"] == f"a run that ended {conclusion!r} is not an outcome"
            assert await status_lines(bot) == ["No deploys recorded yet."]
        else:
            assert result.status == 202
            assert outcome in (await status_lines(bot))[0]


async def test_github_ping_is_answered_and_other_events_ignored(bot, caplog):
    caplog.set_level(logging.INFO, logger="chatopsbot.plugin.deploy")
    ping = await github(bot, "ping", fixture("github-ping.json"))
    assert (ping.status, ping.body) == (200, {"status": "pong"})
    push = await github(bot, "push", {"ref": "refs/heads/main"}, delivery="d-push")
    assert push.status == 200
    assert push.body == {"accepted": False, "ignored": "'push' events are not deploys"}
    assert any("GitHub push delivery d-push ignored" in r.getMessage() for r in caplog.records)
    body = fixture("github-deployment_status-success.json")
    body["deployment_status"]["state"] = "inactive"
    inactive = await github(bot, "deployment_status", body)
    assert inactive.body["ignored"] == "deployment state 'inactive' is not a deploy's progress"


async def test_github_signatures(bot):
    body = fixture("github-deployment_status-success.json")
    raw = json.dumps(body).encode()
    wrong = await github(bot, "deployment_status", body, secret="not-the-secret")
    assert wrong.status == 401
    assert wrong.body == {"error": "missing or wrong x-hub-signature-256 signature"}
    # Signed for one body, sent with another.
    other = raw.replace(b'"success"', b'"failure"')
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    swapped = await github(
        bot, "deployment_status", None, data=other, headers={"X-Hub-Signature-256": signature}
    )
    assert swapped.status == 401
    unsigned = await bot.hook(
        "POST",
        "deploy",
        "/github",
        data=raw,
        headers={"X-GitHub-Event": "deployment_status", "Content-Type": "application/json"},
    )
    assert unsigned.status == 401
    # GitHub's older SHA-1 header alone is not enough.
    sha1 = "sha1=" + hmac.new(GH_SECRET.encode(), raw, hashlib.sha1).hexdigest()
    old = await bot.hook(
        "POST",
        "deploy",
        "/github",
        data=raw,
        headers={"X-GitHub-Event": "deployment_status", "X-Hub-Signature": sha1},
    )
    assert old.status == 401
    # The form content type GitHub offers: signed, but not what the hook reads.
    form = b"payload=" + raw
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), form, hashlib.sha256).hexdigest()
    formed = await github(
        bot,
        "deployment_status",
        None,
        data=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Hub-Signature-256": signature,
        },
    )
    assert formed.status == 415
    assert "Content type to application/json" in formed.body["error"]
    assert await status_lines(bot) == ["No deploys recorded yet."]


async def test_without_a_github_secret_the_github_hook_refuses_everything():
    async with BotHarness(config={"plugins": {"deploy": {"webhook_token": JSON_TOKEN}}}) as bot:
        body = fixture("github-deployment_status-success.json")
        result = await github(bot, "deployment_status", body, secret="")
        assert result.status == 401
        assert result.body == {
            "error": "the GitHub hook is off: set [plugins.deploy] github_secret"
        }
        refused = await gitlab(bot, "Deployment Hook", fixture("gitlab-deployment.json"), token="")
        assert refused.status == 401
        assert refused.body == {
            "error": "the GitLab hook is off: set [plugins.deploy] gitlab_token"
        }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda b: b["deployment_status"].pop("state"), "deployment_status.state: required"),
        (lambda b: b["deployment"].update(sha=7), "deployment.sha: expected a string"),
        (lambda b: b["repository"].pop("full_name"), "repository.full_name: required"),
        (
            lambda b: b["deployment_status"].update(updated_at="last week"),
            "timestamp: expected ISO 8601 with a time zone, or epoch seconds",
        ),
    ],
)
async def test_malformed_github_payloads_get_400_naming_the_field(bot, caplog, change, error):
    body = fixture("github-deployment_status-success.json")
    change(body)
    result = await github(bot, "deployment_status", body)
    assert (result.status, result.body) == (400, {"error": error})
    garbage = await github(bot, "deployment_status", None, data=b"{not json")
    assert garbage.status == 400
    assert await status_lines(bot) == ["No deploys recorded yet."]


# GitLab.


async def test_a_gitlab_deployment_is_stored_announced_and_shown(bot):
    await bot.command("deploy subscribe all")
    result = await gitlab(bot, "Deployment Hook", fixture("gitlab-deployment.json"))
    assert result.status == 202
    [card] = cards(bot)
    assert card.text.splitlines()[0] == "test-deployment-webhooks → staging"
    assert "Status: ✅ succeeded" in card.text
    assert "By: root" in card.text
    assert "Commit: 279484c09fbe" in card.text
    # 21:50 +0200 is 19:50 UTC.
    assert await status_lines(bot) == [
        "test-deployment-webhooks staging: 279484c0 ✅ succeeded (2021-04-28 19:50 UTC)"
    ]
    [row] = await history_rows(bot, "test-deployment-webhooks")
    assert row.endswith("http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796")
    # The same event again (GitLab retries, or "Resend request"): nothing changes.
    again = await gitlab(bot, "Deployment Hook", fixture("gitlab-deployment.json"))
    assert again.status == 200
    assert len(await history_rows(bot, "test-deployment-webhooks")) == 1
    assert card.edits == 0


async def test_a_gitlab_pipeline_without_a_deploy_that_ran_is_ignored(bot, caplog):
    caplog.set_level(logging.INFO, logger="chatopsbot.plugin.deploy")
    result = await gitlab(bot, "Pipeline Hook", fixture("gitlab-pipeline.json"))
    assert result.status == 200
    assert result.body == {
        "accepted": False,
        "ignored": "no deploy job has run yet (production skipped, staging created)",
    }
    assert any("ignored: no deploy job has run yet" in r.getMessage() for r in caplog.records)


async def test_a_gitlab_pipelines_deploy_jobs_are_deploys_of_their_environments():
    services = {"gitlab-org/gitlab-test": "web"}
    async with BotHarness(
        clock=ManualClock(START), config=config(gitlab={"services": services})
    ) as bot:
        await bot.command("deploy subscribe web")
        body = fixture("gitlab-pipeline.json")
        staging = next(b for b in body["builds"] if b["name"] == "staging")
        staging.update(status="running", started_at="2016-08-12 15:27:00 UTC")
        running = await gitlab(bot, "Pipeline Hook", body)
        assert running.status == 202
        assert running.body["deploys"] == [{"accepted": True, "announced": 1, "locked": False}]
        [card] = cards(bot)
        assert card.text.splitlines()[0] == "web → staging"
        assert "Status: 🚀 started" in card.text
        staging.update(status="success", finished_at="2016-08-12 15:29:00 UTC")
        assert (await gitlab(bot, "Pipeline Hook", body)).status == 202
        assert "Status: ✅ succeeded" in card.text
        assert card.edits == 1
        assert await status_lines(bot) == [
            "web staging: master@bcbb5ec3 ✅ succeeded (2016-08-12 15:29 UTC)"
        ]
        [row, _] = await history_rows(bot, "web")
        assert row == (
            "staging · 2016-08-12 15:29 UTC · master@bcbb5ec3 · ✅ succeeded · by root · "
            "http://example.com/gitlab-org/gitlab-test/-/pipelines/31"
        )


async def test_gitlab_tokens_and_other_events(bot):
    body = fixture("gitlab-deployment.json")
    assert (await gitlab(bot, "Deployment Hook", body, token="wrong")).status == 401
    missing = await gitlab(bot, "Deployment Hook", body, token=None)
    assert missing.status == 401
    assert missing.body == {"error": "missing or wrong X-Gitlab-Token"}
    push = await gitlab(bot, "Push Hook", {"object_kind": "push"})
    assert push.status == 200
    ignored = "'Push Hook' events ('push') are not deploys"
    assert push.body == {"accepted": False, "ignored": ignored}
    broken = copy.deepcopy(body)
    broken["status_changed_at"] = "yesterday"
    bad = await gitlab(bot, "Deployment Hook", broken)
    assert bad.status == 400
    error = "status_changed_at: expected a time like 2021-04-28 21:50:00 +0200"
    assert bad.body == {"error": error}
    assert await status_lines(bot) == ["No deploys recorded yet."]


# Argo CD.


async def test_the_argocd_template_output_is_accepted_by_the_json_hook(bot):
    """docs/deploy-integrations.md's Argo CD template, rendered for its sample application."""
    await bot.command("deploy subscribe all")
    rendered = fixture("argocd-deploy.json")
    headers = {"Authorization": f"Bearer {JSON_TOKEN}"}
    result = await bot.hook("POST", "deploy", json=rendered, headers=headers)
    assert result.status == 202, result.body
    assert await status_lines(bot) == [
        "guestbook production: 53e28ff20cc530b9ada2173fbbd64d48338583ba ✅ succeeded "
        "(2026-11-25 08:58 UTC)"
    ]


def test_the_argocd_template_in_the_docs_renders_the_fixture():
    """The fixture is what the documented template gives: the template's body, with each
    ``{{...}}`` replaced by the sample application's value, is the fixture byte for byte."""
    doc = (Path(__file__).parents[2] / "docs" / "deploy-integrations.md").read_text()
    [body] = re.findall(r"body: \|\n((?:          .*\n)+)", doc)
    template = "\n".join(line[10:] for line in body.splitlines())
    phase = ".app.status.operationState.phase"
    values = {
        f'{{{{if eq {phase} "Running"}}}}started{{{{else if eq {phase} "Succeeded"}}}}'
        "succeeded{{else}}failed{{end}}": "succeeded",
        "{{.app.metadata.name}}": "guestbook",
        "{{.app.spec.destination.namespace}}": "production",
        "{{.app.status.sync.revision}}": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
        "{{or .app.status.operationState.finishedAt .app.status.operationState.startedAt}}": (
            "2026-11-25T08:58:12Z"
        ),
        "{{.app.status.operationState.operation.initiatedBy.username}}": "admin",
        "{{.context.argocdUrl}}": "https://argocd.example.com",
    }
    for name, value in values.items():
        template = template.replace(name, value)
    assert "{{" not in template
    assert json.loads(template) == fixture("argocd-deploy.json")


# Configuration.


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"github": {"services": {"org/repo": "no spaces"}}},
            "plugins.deploy.github.services.org/repo: expected a name of letters, digits",
        ),
        (
            {"github": {"workflows": {"deploy.yml": ""}}},
            "plugins.deploy.github.workflows.deploy.yml: expected a name of letters",
        ),
        ({"github_secret": 5}, "plugins.deploy.github_secret: expected a string, got int"),
        ({"gitlab": {"service": {}}}, "plugins.deploy.gitlab.service: unknown key"),
    ],
)
async def test_bad_integration_config_fails_startup_naming_the_key(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        await BotHarness(config={"plugins": {"deploy": table}}).start()


# The pure parts.


@pytest.mark.parametrize(
    ("ref", "sha", "version"),
    [
        ("main", "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "main@f95f852"),
        ("refs/heads/main", "f95f852bd8fc", "main@f95f852"),
        ("refs/tags/v1.2.0", "f95f852bd8fc", "v1.2.0@f95f852"),
        ("feature/a b+c", "f95f852bd8fc", "feature/a-b-c@f95f852"),
        ("f95f852bd8fc", "f95f852bd8fc", "f95f852"),
        (None, "f95f852bd8fc", "f95f852"),
        ("x" * 300, "f95f852bd8fc", "x" * 92 + "@f95f852"),
    ],
)
def test_versions_are_ref_and_short_sha(ref, sha, version):
    assert payload.version(ref, sha, 7) == version


def test_slugs_and_gitlab_times():
    assert payload.slug("Production (EU)", "environment") == "Production-EU"
    with pytest.raises(EventInvalid, match="environment: '✨' has no letter or digit"):
        payload.slug("✨", "environment")
    assert (
        payload.gitlab_time("2021-04-28 21:50:00 +0200", "t")
        == datetime(2021, 4, 28, 19, 50, tzinfo=UTC).timestamp()
    )
    assert (
        payload.gitlab_time("2016-08-12 15:26:29 UTC", "t")
        == datetime(2016, 8, 12, 15, 26, 29, tzinfo=UTC).timestamp()
    )
    assert (
        payload.gitlab_time("2021-02-23T02:41:37Z", "t")
        == datetime(2021, 2, 23, 2, 41, 37, tzinfo=UTC).timestamp()
    )
    assert payload.gitlab_time(None, "t") is None
    with pytest.raises(EventInvalid, match=r"^t: expected a time"):
        payload.gitlab_time("2021-04-28 21:50:00", "t")


def test_the_example_config_of_the_integrations_is_valid():
    table = example_tables("deploy")
    assert {"github_secret", "gitlab_token", "github", "gitlab"} <= set(table)
    settings = DeployPlugin().chatops_config(table)
    assert settings.github.workflows == {"deploy.yml": "production"}
    assert settings.gitlab.services == {"gitlab-org/gitlab-test": "web"}
