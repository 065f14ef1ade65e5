"""dropprice pricing core: intensity index, demand model, price policy, simulator.

Pure functions over arrays and tables: no sockets, no Redis, no servers.
"""

from pricing.events import EVENT_KINDS, EventKind
from pricing.guardrails import GuardrailCode, GuardrailSpec, apply_guardrails
from pricing.intensity import (
    IntensityParams,
    build_intensity_index,
    forecast_intensity,
    market_rollup,
    validate_events,
)
from pricing.model import DemandParams, ElasticityFit, fit_elasticity
from pricing.policy import PolicySurfaces, Surfaces, price_surfaces_from_fit, solve_surfaces

__all__: list[str] = []
__all__ += ["EVENT_KINDS", "EventKind"]
__all__ += ["Surfaces", "solve_surfaces"]
__all__ += ["GuardrailCode", "GuardrailSpec", "PolicySurfaces", "apply_guardrails"]
__all__ += ["price_surfaces_from_fit"]
__all__ += [
    "IntensityParams",
    "build_intensity_index",
    "forecast_intensity",
    "market_rollup",
    "validate_events",
]
from pricing.experiments import ExperimentReport, experiment_report  # noqa: E402
from pricing.signals import Detection, SignalParams, detect_signals  # noqa: E402

__all__ += ["Detection", "ExperimentReport", "SignalParams", "detect_signals", "experiment_report"]
__all__ += ["DemandParams", "ElasticityFit", "fit_elasticity"]
from pricing.allocation import StockPlan, allocate, plan_stock, value_curves  # noqa: E402

__all__ += ["StockPlan", "allocate", "plan_stock", "value_curves"]
