"""Alertmanager's webhook notification (format version 4) read into plain values.

The format: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config. Only what
the card and the silences use is kept; fields Alertmanager adds in later versions are ignored.
Every string that reaches a card is capped (:data:`LIMITS`), so one odd alert cannot make the
card too large for Zoom; the caps cut text, they never refuse a notification for its length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attr
import cattrs
from attrs import frozen

Status = Literal["firing", "resolved"]
STATUSES = ("firing", "resolved")
#: The most characters kept of each kind of text.
LIMITS = {"label": 200, "annotation": 1000, "url": 1000, "key": 1000}
#: The most alerts of one notification kept; the rest are counted as truncated, as
#: Alertmanager's own ``max_alerts`` does.
MAX_ALERTS = 200
#: The most labels or annotations one alert may have.
MAX_PAIRS = 100


class NotificationInvalid(ValueError):
    """A body that is not an Alertmanager webhook notification; ``str()`` names the field."""


@frozen
class Alert:
    """One alert of a notification."""

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = ""
    fingerprint: str = ""

    @property
    def name(self) -> str:
        """The ``alertname`` label (what Alertmanager and Prometheus call the rule)."""
        return self.labels.get("alertname", "")


@frozen
class Notification:
    """One webhook notification: a group of alerts, as its ``groupKey`` identifies it."""

    group_key: str
    status: Status
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    truncated_alerts: int = 0

    @property
    def firing(self) -> tuple[Alert, ...]:
        """The alerts still firing."""
        return tuple(a for a in self.alerts if a.status == "firing")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, for the store (lists, as it gives them back)."""
        return attr.asdict(self, retain_collection_types=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        """Back from :meth:`to_json`."""
        return _CONVERTER.structure(dict(data), cls)


_CONVERTER = cattrs.Converter()


def parse(data: object) -> Notification:
    """Check a webhook body and read it; :class:`NotificationInvalid` naming the field otherwise."""
    if not isinstance(data, dict):
        raise NotificationInvalid("body: expected a JSON object (Alertmanager's webhook format)")
    version = data.get("version")
    if version != "4":
        raise NotificationInvalid(
            f'version: expected "4" (Alertmanager\'s webhook format), got {version!r}'
        )
    group_key = _string(data, "groupKey", "key", required=True)
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise NotificationInvalid("alerts: expected a non-empty list")
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise NotificationInvalid("truncatedAlerts: expected a whole number")
    # Firing ones first, so that a huge group keeps what matters most.
    ordered = sorted(
        alerts, key=lambda a: not (isinstance(a, dict) and a.get("status") == "firing")
    )
    kept, truncated = ordered[:MAX_ALERTS], truncated + max(0, len(alerts) - MAX_ALERTS)
    return Notification(
        group_key=group_key,
        status=_status(data, "status"),
        receiver=_string(data, "receiver", "label"),
        group_labels=_pairs(data, "groupLabels", "label"),
        common_labels=_pairs(data, "commonLabels", "label"),
        common_annotations=_pairs(data, "commonAnnotations", "annotation"),
        external_url=_url(data, "externalURL"),
        alerts=tuple(_alert(item, f"alerts[{n}]") for n, item in enumerate(kept)),
        truncated_alerts=truncated,
    )


def _alert(data: object, where: str) -> Alert:
    if not isinstance(data, dict):
        raise NotificationInvalid(f"{where}: expected an object")
    return Alert(
        status=_status(data, "status", where),
        labels=_pairs(data, "labels", "label", where),
        annotations=_pairs(data, "annotations", "annotation", where),
        starts_at=_string(data, "startsAt", "label", where=where),
        ends_at=_string(data, "endsAt", "label", where=where),
        generator_url=_url(data, "generatorURL", where),
        fingerprint=_string(data, "fingerprint", "label", where=where),
    )


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _status(data: Mapping[str, Any], key: str, where: str = "") -> Status:
    value = data.get(key)
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise NotificationInvalid(f"{_name(where, key)}: expected firing or resolved")


def _string(
    data: Mapping[str, Any], key: str, kind: str, *, required: bool = False, where: str = ""
) -> str:
    value = data.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise NotificationInvalid(f"{_name(where, key)}: required")
        return ""
    if not isinstance(value, str) or (required and not value):
        raise NotificationInvalid(f"{_name(where, key)}: expected a string")
    return value if kind == "key" else clip(value, LIMITS[kind])


def _pairs(data: Mapping[str, Any], key: str, kind: str, where: str = "") -> dict[str, str]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise NotificationInvalid(f"{_name(where, key)}: expected an object of strings")
    if len(value) > MAX_PAIRS:
        raise NotificationInvalid(f"{_name(where, key)}: at most {MAX_PAIRS} entries")
    return {clip(k, LIMITS["label"]): clip(v, LIMITS[kind]) for k, v in value.items()}


def _url(data: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _string(data, key, "url", where=where)
    # Only web links become links on a card; anything else (javascript:...) is dropped.
    return value if value.startswith(("http://", "https://")) else ""


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
