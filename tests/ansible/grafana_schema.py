"""Grafana's dashboard schema, as grafana-foundation-sdk generates it from Grafana's own
schema definitions (dashboard and panel-plugin kinds), applied to a dashboard JSON file.

A dashboard passes when decoding it into the SDK's models and encoding it again loses
nothing (every key is one the schema defines), every decoded value has the type its model
declares (enums included), and every panel type is a known panel plugin.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

register_default_plugins()
SDK_MODELS = "grafana_foundation_sdk.models"


def dashboard_errors(dashboard: dict) -> list[str]:
    """Everything in ``dashboard`` (parsed JSON) that Grafana's schema does not accept."""
    errors = [
        f"$.panels[{i}].type: {panel.get('type')!r} is not a Grafana panel plugin"
        for i, panel in enumerate(dashboard.get("panels", []))
        if panel.get("type") != "row" and cogruntime.panelcfg_config(panel.get("type", "")) is None
    ]
    model = Dashboard.from_json(dashboard)
    encoded = json.loads(json.dumps(model.to_json(), default=_encode))
    errors += [f"{path}: not in the schema" for path in _lost(dashboard, encoded, "$")]
    return errors + _type_errors(model, Dashboard, "$")


def _encode(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(type(value).__name__)


def _lost(original: Any, encoded: Any, path: str) -> list[str]:
    """Paths of ``original`` that the decode/encode round trip dropped."""
    if isinstance(original, dict) and isinstance(encoded, dict):
        return [
            lost
            for key, value in original.items()
            for lost in (
                [f"{path}.{key}"]
                if key not in encoded
                else _lost(value, encoded[key], f"{path}.{key}")
            )
        ]
    if isinstance(original, list) and isinstance(encoded, list):
        return [
            lost
            for i, (a, b) in enumerate(zip(original, encoded, strict=False))
            for lost in _lost(a, b, f"{path}[{i}]")
        ]
    return []


def _type_errors(value: Any, hint: Any, path: str) -> list[str]:
    """Where a decoded value does not have the type its model's annotation declares."""
    origin = typing.get_origin(hint)
    if hint is typing.Any or hint is object:
        # A panel's options and custom field config: decoded by its plugin's own model.
        model = type(value)
        return _type_errors(value, model, path) if model.__module__.startswith(SDK_MODELS) else []
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return []
        options = tuple(o for o in options if o is not type(None))
        # A decoded model is checked as the option it was decoded into (a panel, not a row).
        matching = [o for o in options if isinstance(o, type) and isinstance(value, o)]
        attempts = [_type_errors(value, o, path) for o in matching or options]
        return [] if any(not a for a in attempts) else min(attempts, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        (item,) = typing.get_args(hint) or (typing.Any,)
        return [e for i, v in enumerate(value) for e in _type_errors(v, item, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        _key, item = typing.get_args(hint) or (str, typing.Any)
        return [e for k, v in value.items() for e in _type_errors(v, item, f"{path}.{k}")]
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = sorted(str(member.value) for member in hint)
        raw = value.value if isinstance(value, enum.Enum) else value
        return (
            [] if raw in {m.value for m in hint} else [f"{path}: {value!r} is not one of {allowed}"]
        )
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if isinstance(hint, type) and hint.__module__.startswith(SDK_MODELS):
        if not isinstance(value, hint):
            return [f"{path}: {value!r} is not a {hint.__name__}"]
        fields = typing.get_type_hints(type(value).__init__)
        fields.pop("return", None)
        return [
            e
            for name, field in fields.items()
            for e in _type_errors(getattr(value, name, None), field, f"{path}.{name}")
        ]
    if isinstance(hint, type):
        return [] if isinstance(value, hint) else [f"{path}: {value!r} is not a {hint.__name__}"]
    return []
