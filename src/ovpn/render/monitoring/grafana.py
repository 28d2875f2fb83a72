"""A small Grafana dashboard builder: targets, panels and rows in, dashboard JSON model out.

Panels are laid out left to right in a 24-column grid and wrap to the next line; a row starts a new line.
Ids and positions follow from the order of the items, so the same items give the same JSON every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ovpn.render.monitoring.spec import DATASOURCE_UID

GRID_WIDTH = 24
SCHEMA_VERSION = 39
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}

PanelKind = Literal["stat", "timeseries", "table", "bargauge"]

GREEN = "green"
YELLOW = "yellow"
RED = "red"
BLUE = "blue"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Threshold:
    value: float | None  # None is the base step
    color: str


@dataclass(frozen=True)
class ValueText:
    value: str
    text: str
    color: str


@dataclass(frozen=True)
class Panel:
    kind: PanelKind
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 6
    height: int = 4
    description: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: tuple[Threshold, ...] = (Threshold(None, GREEN),)
    mappings: tuple[ValueText, ...] = ()
    stacked: bool = False
    bars: bool = False
    legend_calcs: tuple[str, ...] = ()
    hidden_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # a Grafana `label_values(...)` query, not PromQL


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    items: tuple[Panel | Row, ...]
    tags: tuple[str, ...] = ("ovpn",)
    time_from: str = "now-12h"
    refresh: str = "30s"
    variables: tuple[Variable, ...] = field(default=())

    def panels(self) -> list[Panel]:
        return [item for item in self.items if isinstance(item, Panel)]

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": False,
            "graphTooltip": 1,
            "id": None,
            "version": 1,
            "schemaVersion": SCHEMA_VERSION,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["ovpn"],
                    "asDropdown": True,
                    "title": "ovpn dashboards",
                    "tooltip": "",
                    "icon": "external link",
                    "includeVars": False,
                    "keepTime": False,
                    "targetBlank": False,
                }
            ],
            "templating": {"list": [_variable_json(variable) for variable in self.variables]},
            "panels": _layout(self.items),
        }


# ----------------------------------------------------------------------------------------------- helpers


def target(expr: str, legend: str = "") -> Target:
    return Target(expr, legend)


def row(title: str) -> Row:
    return Row(title)


def steps(*pairs: tuple[float | None, str]) -> tuple[Threshold, ...]:
    return tuple(Threshold(value, color) for value, color in pairs)


UP_DOWN = (ValueText("0", "DOWN", RED), ValueText("1", "UP", GREEN))
UP_DOWN_STEPS = steps((None, RED), (1, GREEN))


def stat(title: str, expr: str, unit: str = "short", **options: Any) -> Panel:
    """A single number: the last value of one instant query."""
    return Panel("stat", title, (Target(expr, instant=True),), unit=unit, **options)


def up_stat(title: str, expr: str, **options: Any) -> Panel:
    """A 1/0 health number shown as UP/DOWN."""
    return stat(title, expr, mappings=UP_DOWN, thresholds=UP_DOWN_STEPS, **options)


def timeseries(title: str, *targets: Target, unit: str = "short", **options: Any) -> Panel:
    options.setdefault("width", 12)
    options.setdefault("height", 8)
    return Panel("timeseries", title, tuple(targets), unit=unit, **options)


def table(title: str, expr: str, legend: str = "", unit: str = "short", **options: Any) -> Panel:
    """One instant query as a table: a row per series, its labels as columns, the value last."""
    options.setdefault("width", 12)
    options.setdefault("height", 8)
    return Panel("table", title, (Target(expr, legend, instant=True, table=True),), unit=unit, **options)


def bargauge(title: str, expr: str, legend: str, unit: str = "short", **options: Any) -> Panel:
    options.setdefault("width", 12)
    options.setdefault("height", 8)
    return Panel("bargauge", title, (Target(expr, legend, instant=True),), unit=unit, **options)


# ------------------------------------------------------------------------------------------------ JSON


def _target_json(t: Target, ref: str) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": t.expr,
        "legendFormat": t.legend or "__auto",
        "instant": t.instant,
        "range": not t.instant,
        "format": "table" if t.table else "time_series",
    }


def _field_defaults(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "color": {"mode": "palette-classic" if p.kind == "timeseries" else "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": t.color, "value": t.value} for t in p.thresholds],
        },
        "mappings": (
            [
                {
                    "type": "value",
                    "options": {
                        m.value: {"text": m.text, "color": m.color, "index": i}
                        for i, m in enumerate(p.mappings)
                    },
                }
            ]
            if p.mappings
            else []
        ),
    }
    if p.decimals is not None:
        defaults["decimals"] = p.decimals
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if p.bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if p.bars else 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if p.stacked else "none", "group": "A"},
        }
    return defaults


def _options(p: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if p.kind == "stat":
        return {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    if p.kind == "timeseries":
        return {
            "legend": {
                "showLegend": True,
                "displayMode": "table" if p.legend_calcs else "list",
                "placement": "bottom",
                "calcs": list(p.legend_calcs),
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if p.kind == "bargauge":
        return {
            "reduceOptions": reduce,
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}


def _panel_json(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    refs = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    result: dict[str, Any] = {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "targets": [_target_json(t, refs[i]) for i, t in enumerate(p.targets)],
        "fieldConfig": {"defaults": _field_defaults(p), "overrides": []},
        "options": _options(p),
    }
    if p.kind == "table":
        hidden = ("Time", "__name__", "job", "instance", *p.hidden_columns)
        result["transformations"] = [
            {
                "id": "organize",
                "options": {"excludeByName": dict.fromkeys(hidden, True), "renameByName": {"Value": p.title}},
            }
        ]
    return result


def _row_json(r: Row, panel_id: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": r.title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
    }


def _layout(items: Sequence[Panel | Row]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            out.append(_row_json(item, panel_id, y))
            y += 1
            x = line_height = 0
            continue
        if not 0 < item.width <= GRID_WIDTH:
            raise ValueError(f"panel {item.title!r} has width {item.width}, outside 1..{GRID_WIDTH}")
        if x + item.width > GRID_WIDTH:
            y += line_height
            x = line_height = 0
        out.append(_panel_json(item, panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    return out


def _variable_json(v: Variable) -> dict[str, Any]:
    return {
        "name": v.name,
        "label": v.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": v.query,
        "query": {"query": v.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard's JSON model (variable queries are not PromQL)."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
