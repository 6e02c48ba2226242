"""The plan's report page: projection, calibrated projection, measurements and figures.

Rendered on the server from a Jinja2 template; the figures are inline SVG, so the page needs no
external asset and works offline.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from planner.calibration import runs_for_plan
from planner.document import Plan
from planner.validation import ValidationResult
from present import job_text, plan_text


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    return env.get_template("report.html")


def compact_json(value: Any, indent: int = 0) -> str:
    """JSON with an object's keys one a line and a list of numbers or strings on one line (a
    DeepSpeed block's 22 layer ids take a line, not 22)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}  {json.dumps(k)}: {compact_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [f"{pad}  {compact_json(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def render_report(
    plan: Plan, measured: ValidationResult | None = None, job_id: str | None = None
) -> str:
    """The report page of a plan, with the latest successful validation result if any."""
    from present.figures import plan_svg  # matplotlib loads when a figure is drawn, not before

    runs = runs_for_plan(plan)
    return _template().render(
        plan=plan,
        header=plan_text.plan_header(plan),
        rows=plan_text.plan_rows(plan),
        cal_headers=job_text.CAL_HEADERS,
        calibrated_rows=job_text.calibrated_rows(plan),
        result=measured,
        job_id=job_id,
        summary=job_text.validation_summary(plan, measured) if measured else [],
        step_rows=job_text.validation_rows(measured) if measured else [],
        step_headers=job_text.STEP_HEADERS,
        projection_note=plan_text.projection_note(plan),
        verdict=job_text.verdict_line(measured.quality) if measured and measured.quality else None,
        svg=plan_svg(plan, runs, measured),
        deepspeed=compact_json(plan.deepspeed_config.model_dump(mode="json")),
    )
