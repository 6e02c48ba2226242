"""ltd-planner's pure core: random-LTD schedules, LayerTokens, FLOPs, wall-clock and cost.

    >>> from planner import plan
    >>> p = plan({"model": "gpt3-1.3b", "train_batch_size": 512, "train_steps": 1000})
    >>> round(p.savings.layer_tokens, 3) > 0
    True

No torch, FastAPI or database here: everything the project promises about numbers lives in this
package, once.
"""

from planner.check import CheckLimits, CheckResult, Violation, check_plan, compare_plans
from planner.document import Plan
from planner.errors import PlanInputError
from planner.gpus import GPUS
from planner.hardware import HardwareConfig
from planner.hf_config import resolve_model
from planner.lr import LRConfig, learning_rate
from planner.models import ModelShape
from planner.plan import plan
from planner.presets import PRESETS
from planner.request import PlanRequest, parse_request
from planner.resolve import build_runs, resolve
from planner.schedule import RandomLTDConfig, reserved_length

__all__ = [
    "GPUS",
    "PRESETS",
    "CheckLimits",
    "CheckResult",
    "HardwareConfig",
    "LRConfig",
    "ModelShape",
    "Plan",
    "PlanInputError",
    "PlanRequest",
    "RandomLTDConfig",
    "Violation",
    "build_runs",
    "check_plan",
    "compare_plans",
    "learning_rate",
    "parse_request",
    "plan",
    "reserved_length",
    "resolve",
    "resolve_model",
]
