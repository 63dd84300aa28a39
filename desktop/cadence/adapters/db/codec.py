"""Translating between rows/JSON and core values. Unknown JSON keys are ignored, missing ones defaulted,
so a database written by an older or newer Cadence still loads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from datetime import date
from typing import Any

from cadence.core.model import Guardrails, HoldReason, InboundKind, Verdict

_GUARDRAIL_FIELDS = {f.name for f in fields(Guardrails)}


def guardrails_to_json(guardrails: Guardrails) -> str:
    data: dict[str, Any] = {}
    for name in _GUARDRAIL_FIELDS:
        value = getattr(guardrails, name)
        data[name] = sorted(value) if isinstance(value, frozenset) else value
    return json.dumps(data, sort_keys=True)


def guardrails_from_json(text: str) -> Guardrails:
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    known = {name: value for name, value in raw.items() if name in _GUARDRAIL_FIELDS}
    if "business_days" in known:
        known["business_days"] = frozenset(int(day) for day in known["business_days"])
    return Guardrails(**known)


def hold_reasons_to_text(reasons: tuple[HoldReason, ...]) -> str:
    return ",".join(reason.value for reason in reasons)


_HOLD_REASONS = {reason.value: reason for reason in HoldReason}


def hold_reasons_from_text(text: str) -> tuple[HoldReason, ...]:
    if not text:
        return ()
    return tuple(_HOLD_REASONS[part] for part in text.split(",") if part in _HOLD_REASONS)


_FIELDS_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # one encoder for 100,000-lead imports


def fields_to_json(values: Mapping[str, str]) -> str:
    if not values:
        return "{}"
    return _FIELDS_ENCODER.encode(dict(values))


def fields_from_json(text: str) -> dict[str, str]:
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(key): str(value) for key, value in raw.items()} if isinstance(raw, dict) else {}


def verdict_to_json(verdict: Verdict) -> str:
    data: dict[str, Any] = {}
    for item in fields(Verdict):
        value = getattr(verdict, item.name)
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        data[item.name] = value
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def verdict_from_json(text: str) -> Verdict:
    raw = json.loads(text)
    known = {item.name for item in fields(Verdict)}
    values = {name: value for name, value in raw.items() if name in known}
    values["kind"] = InboundKind(values.get("kind", InboundKind.OTHER.value))
    for name in ("recipients", "in_reply_to"):
        if name in values:
            values[name] = tuple(values[name])
    if values.get("return_date"):
        values["return_date"] = date.fromisoformat(values["return_date"])
    return Verdict(**values)
