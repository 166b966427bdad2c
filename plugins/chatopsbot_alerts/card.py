"""The card of one alert group: what fires, what resolved, who acknowledged, what is silenced.

Pure: the plugin passes the buttons in. Markdown stays off, so whatever labels and annotations
hold (``**``, ``<url|text>``, mentions) is shown as typed, never interpreted by Zoom.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from attrs import frozen

from chatopsbot import Actions, Button, Card, CardItem, Field, Fields, Paragraph, Style
from chatopsbot_alerts.notification import Alert, Notification, clip

RED = "#D64541"
GREEN = "#1F9D55"
#: Alerts shown one by one; the rest are counted.
SHOWN = 10
#: Labels every card leaves out of the per-alert lines (they are in the head).
_QUIET = frozenset({"alertname"})


@frozen
class Acknowledgement:
    """Who acknowledged the group, and when (epoch seconds)."""

    by: str
    at: float


@frozen
class SilenceNote:
    """The silence made from the card: Alertmanager's id, who made it, until when."""

    id: str
    by: str
    until: float


@frozen
class GroupView:
    """What a group's card shows."""

    notification: Notification
    ack: Acknowledgement | None = None
    silence: SilenceNote | None = None


def render(view: GroupView, buttons: Sequence[Button] = ()) -> Card:
    """The card: head red while anything fires, green once everything resolved."""
    n = view.notification
    firing = n.firing
    name = title(n)
    if n.status == "firing" and firing:
        head = f"🔥 FIRING: {len(firing)} · {name}"
        color = RED
    else:
        head = f"✅ RESOLVED · {name}"
        color = GREEN
    grouped = " ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()) if k not in _QUIET)
    body: list[CardItem] = []
    common = {**n.common_annotations}
    for key in ("summary", "description"):
        if common.get(key) and all(a.annotations.get(key) == common[key] for a in n.alerts):
            body.append(Paragraph(common[key]))
    shown = sorted(n.alerts, key=lambda a: (a.status != "firing", a.starts_at))[:SHOWN]
    # Alerts of one rule share its generator URL and, usually, its runbook: each link once.
    linked: set[str] = set()
    for alert in shown:
        body.append(Paragraph(line(alert, n.common_labels, common)))
        for text, url in _links(alert):
            if url not in linked:
                linked.add(url)
                body.append(Paragraph(text, link=url))
    hidden = len(n.alerts) - len(shown) + n.truncated_alerts
    if hidden:
        body.append(Paragraph(f"… and {hidden} more alert(s)"))
    runbook = common.get("runbook_url", "")
    if _is_link(runbook) and runbook not in linked:
        body.append(Paragraph("Runbook", link=runbook))
    fields: list[Field] = []
    if view.ack is not None:
        fields.append(Field("Acknowledged", f"{view.ack.by} at {when(view.ack.at)}", short=True))
    if view.silence is not None:
        fields.append(
            Field("Silenced", f"by {view.silence.by} until {when(view.silence.until)}", short=True)
        )
    if fields:
        body.append(Fields(tuple(fields)))
    if _is_link(n.external_url):
        body.append(Paragraph("Open Alertmanager", link=n.external_url))
    if buttons:
        body.append(Actions(tuple(buttons)))
    return Card(
        head=clip(head, 200),
        sub_head=clip(grouped, 200) or None,
        head_style=Style(color=color, bold=True),
        body=body,
    )


def title(n: Notification) -> str:
    """The group's name: its ``alertname`` when the alerts share one, else its group labels."""
    name = n.common_labels.get("alertname") or n.group_labels.get("alertname")
    if name:
        return name
    names = sorted({a.name for a in n.alerts if a.name})
    return ", ".join(names[:3]) + (" …" if len(names) > 3 else "") or "alerts"


def line(alert: Alert, common_labels: Mapping[str, str], common: Mapping[str, str]) -> str:
    """One alert: its state, name, the labels it does not share, summary and description."""
    icon = "🔴" if alert.status == "firing" else "🟢"
    labels = " ".join(
        f"{k}={v}"
        for k, v in sorted(alert.labels.items())
        if k not in _QUIET and common_labels.get(k) != v
    )
    parts = [f"{icon} {alert.name or 'alert'}"]
    if labels:
        parts.append(labels)
    if alert.status == "firing" and alert.starts_at:
        parts.append(f"since {stamp(alert.starts_at)}")
    elif alert.ends_at:
        parts.append(f"resolved {stamp(alert.ends_at)}")
    text = " · ".join(parts)
    notes = [
        alert.annotations[key]
        for key in ("summary", "description")
        if alert.annotations.get(key) and alert.annotations[key] != common.get(key)
    ]
    if notes:
        text += ": " + " ".join(notes)
    return clip(text, 1500)


def _links(alert: Alert) -> list[tuple[str, str]]:
    links = []
    runbook = alert.annotations.get("runbook_url", "")
    if _is_link(runbook):
        links.append((f"Runbook: {alert.name or 'alert'}", runbook))
    if _is_link(alert.generator_url):
        links.append((f"Source: {alert.name or 'alert'}", alert.generator_url))
    return links


def _is_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def when(timestamp: float) -> str:
    """An epoch time as shown on cards."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)")


def stamp(text: str) -> str:
    """An Alertmanager RFC 3339 time (nanoseconds and all) as shown on cards."""
    found = _RFC3339.match(text)
    if found is None:
        return text[:40]
    parsed = datetime.fromisoformat(found[1] + found[2].replace("Z", "+00:00"))
    return when(parsed.timestamp())
