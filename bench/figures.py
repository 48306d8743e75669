"""What a run produces: figures, comparisons between them, and the issue's targets.

A figure that could not be measured is still recorded, as ``skipped`` or ``failed`` with the
reason, so a results file always says what was and was not measured and why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class Figure:
    key: str  # stable identifier, e.g. "cold.hello.process"
    section: str  # floors | cold | warm | throughput | scale-up | density | replay
    label: str
    system: str  # floor | echo | lambdalite | ministack
    status: str = OK
    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def headline(self) -> str:
        """The one-line summary shown in the table."""
        if self.status != OK:
            return self.status
        v = self.values
        if "display" in v:
            return str(v["display"])
        if "per_second" in v:
            return f"{v['per_second']:,.0f} /s"
        if "p50_ms" in v:
            return f"p50 {fmt_ms(v['p50_ms'])}  p99 {fmt_ms(v['p99_ms'])}  n={v['n']}"
        return ""


@dataclass
class Comparison:
    name: str
    value: float | None
    unit: str  # "ms" | "x" | "%" | ...
    detail: str = ""


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured
    note: str = ""


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def get(self, key: str) -> Figure | None:
        for figure in self.figures:
            if figure.key == key:
                return figure
        return None

    def value(self, key: str, name: str) -> float | None:
        """A numeric value of an ``ok`` figure, or None."""
        figure = self.get(key)
        if figure is None or figure.status != OK:
            return None
        raw = figure.values.get(name)
        if isinstance(raw, int | float) and not math.isnan(raw):
            return float(raw)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "figures": [asdict(f) for f in self.figures],
            "comparisons": [asdict(c) for c in self.comparisons],
            "targets": [asdict(t) for t in self.targets],
        }


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def skipped(key: str, section: str, label: str, system: str, why: str) -> Figure:
    return Figure(key, section, label, system, SKIPPED, note=why)


def failed(key: str, section: str, label: str, system: str, why: str) -> Figure:
    return Figure(key, section, label, system, FAILED, note=why)
