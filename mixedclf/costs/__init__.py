"""Cost accounting for mixedclf: pricing profiles, measured run costs, estimates, CI checks.

Pure package: numbers in, numbers out (no torch, no process pools). Formulas: docs/cost-model.md.
"""

from mixedclf.costs.accounting import (
    DAYS_PER_MONTH,
    SCHEMA_VERSION,
    CostBreakdown,
    CostTotals,
    ProvisionedParts,
    RunMeasurements,
    StageCost,
    StageMeasurement,
    price_run,
)
from mixedclf.costs.pricing import (
    DEFAULT_PRICING_PATH,
    DEFAULT_PROFILE,
    CostInputError,
    PricingProfile,
    list_profiles,
    load_pricing,
)

__all__ = [
    "DAYS_PER_MONTH",
    "DEFAULT_PRICING_PATH",
    "DEFAULT_PROFILE",
    "SCHEMA_VERSION",
    "CostBreakdown",
    "CostInputError",
    "CostTotals",
    "PricingProfile",
    "ProvisionedParts",
    "RunMeasurements",
    "StageCost",
    "StageMeasurement",
    "list_profiles",
    "load_pricing",
    "price_run",
]
