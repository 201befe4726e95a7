"""The scoring model: weights, edges and thresholds, read from a versioned TOML file.

    model = load_model()                      # the packaged default (models/<version>.toml)
    model = load_model(Path("my-2027.1.toml"))

Everything here is data; the rules that use it are in `domain.py`.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_contracts.scores import ChurnBand, ValueTier

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL_FILE = MODELS_DIR / "2026.11.toml"

CHURN_SIGNALS = (
    "complaint",
    "unsubscribe",
    "sla_breached",
    "case_reopened",
    "low_csat",
    "detractor",
    "refund",
    "positive_feedback",
    "purchase",
)


class ModelError(ValueError):
    """A model file that is missing a value or holds a wrong one."""


@dataclass(frozen=True, slots=True)
class Band:
    """A named band starting at `minimum` (inclusive)."""

    name: str
    minimum: float


@dataclass(frozen=True, slots=True)
class EngagementModel:
    """Points per interaction, decayed with a half-life, saturating at 100."""

    half_life_days: float
    saturation_points: float
    default_points: float
    points: Mapping[str, float]
    channel_weights: Mapping[str, float]
    bands: tuple[Band, ...]


@dataclass(frozen=True, slots=True)
class RfmModel:
    """Recency, frequency and monetary scores 1-5 over a window, and the value tier."""

    window_days: float
    recency_days: tuple[float, float, float, float]
    frequency_counts: tuple[int, int, int, int]
    monetary_amounts: tuple[Decimal, Decimal, Decimal, Decimal]
    tiers: tuple[Band, ...]


@dataclass(frozen=True, slots=True)
class ClvModel:
    """Average order value times purchase rhythm times expected lifetime times retention."""

    expected_lifetime_years: float
    default_purchases_per_year: float
    min_span_days: float
    max_purchases_per_year: float


@dataclass(frozen=True, slots=True)
class Signal:
    """A churn signal: weight now, halving every `half_life_days`."""

    weight: float
    half_life_days: float


@dataclass(frozen=True, slots=True)
class ChurnModel:
    """Churn risk 0-1 from overdue purchases, signals, long-open cases, falling engagement."""

    base: float
    overdue_weight: float
    overdue_full_ratio: float
    long_open_days: float
    long_open_weight: float
    engagement_drop_lookback_days: float
    engagement_drop_min_previous: int
    engagement_drop_weight: float
    low_csat_max: int
    high_csat_min: int
    detractor_max: int
    promoter_min: int
    signals: Mapping[str, Signal]
    bands: tuple[Band, ...]


@dataclass(frozen=True, slots=True)
class PublishModel:
    """How much a score must move before a change is published."""

    engagement: int
    churn_risk: float
    clv_relative: float
    clv_absolute: Decimal
    rfm: int
    max_reasons: int


@dataclass(frozen=True, slots=True)
class ScoringModel:
    """One version of every model the service scores with."""

    version: str
    currency: str
    rates: Mapping[str, Decimal]
    engagement: EngagementModel
    rfm: RfmModel
    clv: ClvModel
    churn: ChurnModel
    publish: PublishModel


def load_model(path: Path | None = None) -> ScoringModel:
    """Read and check a model file (the packaged default when `path` is None)."""
    source = path or DEFAULT_MODEL_FILE
    try:
        text = source.read_text()
    except OSError as exc:
        raise ModelError(f"cannot read the scoring model {source}: {exc}") from exc
    return parse_model(text, origin=str(source))


def parse_model(text: str, *, origin: str = "<model>") -> ScoringModel:
    """Parse and check the TOML text of a model."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{origin}: not valid TOML: {exc}") from exc
    try:
        return _build(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, ModelError):
            raise ModelError(f"{origin}: {exc}") from exc
        raise ModelError(f"{origin}: {type(exc).__name__}: {exc}") from exc


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if not isinstance(value, Mapping):
        raise ModelError(f"[{name}] is missing")
    return value


def _number(table: Mapping[str, Any], name: str, *, minimum: float | None = None) -> float:
    value = table.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelError(f"{name} must be a number")
    if minimum is not None and value < minimum:
        raise ModelError(f"{name} must be at least {minimum}")
    return float(value)


def _positive(table: Mapping[str, Any], name: str) -> float:
    value = _number(table, name)
    if value <= 0:
        raise ModelError(f"{name} must be positive")
    return value


def _integer(table: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    value = table.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelError(f"{name} must be an integer of at least {minimum}")
    return value


def _edges(table: Mapping[str, Any], name: str) -> tuple[float, float, float, float]:
    value = table.get(name)
    if not isinstance(value, list) or len(value) != 4:
        raise ModelError(f"{name} must list four ascending edges")
    edges = tuple(float(v) for v in value)
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ModelError(f"{name} must be strictly ascending")
    return edges[0], edges[1], edges[2], edges[3]


def _bands(
    table: Mapping[str, Any], name: str, allowed: tuple[str, ...] | None
) -> tuple[Band, ...]:
    raw = table.get(name)
    if not isinstance(raw, Mapping) or not raw:
        raise ModelError(f"{name} must name at least one band")
    bands = tuple(sorted((Band(k, _number(raw, k)) for k in raw), key=lambda b: b.minimum))
    if allowed is not None and sorted(b.name for b in bands) != sorted(allowed):
        raise ModelError(f"{name} must name exactly: {', '.join(allowed)}")
    if len({b.minimum for b in bands}) != len(bands):
        raise ModelError(f"{name} must have distinct minimums")
    return bands


def _build(data: Mapping[str, Any]) -> ScoringModel:
    version = data.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 64:
        raise ModelError("version must be a string of 1 to 64 characters")
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise ModelError("currency must be an ISO 4217 code such as EUR")
    rates = {code: Decimal(str(_positive(_table(data, "rates"), code))) for code in data["rates"]}
    rates[currency] = Decimal(1)

    eng = _table(data, "engagement")
    engagement = EngagementModel(
        half_life_days=_positive(eng, "half_life_days"),
        saturation_points=_positive(eng, "saturation_points"),
        default_points=_number(eng, "default_points", minimum=0),
        points={k: _number(eng["points"], k, minimum=0) for k in _table(eng, "points")},
        channel_weights={
            k: _number(eng["channel_weights"], k, minimum=0) for k in _table(eng, "channel_weights")
        },
        bands=_bands(eng, "bands", None),
    )

    rfm_t = _table(data, "rfm")
    freq = _edges(rfm_t, "frequency_counts")
    money = _edges(rfm_t, "monetary_amounts")
    rfm = RfmModel(
        window_days=_positive(rfm_t, "window_days"),
        recency_days=_edges(rfm_t, "recency_days"),
        frequency_counts=(int(freq[0]), int(freq[1]), int(freq[2]), int(freq[3])),
        monetary_amounts=(
            Decimal(str(money[0])),
            Decimal(str(money[1])),
            Decimal(str(money[2])),
            Decimal(str(money[3])),
        ),
        tiers=_bands(rfm_t, "tiers", tuple(t.value for t in ValueTier)),
    )

    clv_t = _table(data, "clv")
    clv = ClvModel(
        expected_lifetime_years=_positive(clv_t, "expected_lifetime_years"),
        default_purchases_per_year=_positive(clv_t, "default_purchases_per_year"),
        min_span_days=_positive(clv_t, "min_span_days"),
        max_purchases_per_year=_positive(clv_t, "max_purchases_per_year"),
    )

    ch = _table(data, "churn")
    raw_signals = _table(ch, "signals")
    unknown = sorted(set(raw_signals) - set(CHURN_SIGNALS))
    if unknown:
        raise ModelError(f"unknown churn signals: {', '.join(unknown)}")
    churn = ChurnModel(
        base=_number(ch, "base", minimum=0),
        overdue_weight=_number(ch, "overdue_weight", minimum=0),
        overdue_full_ratio=_number(ch, "overdue_full_ratio", minimum=1.01),
        long_open_days=_positive(ch, "long_open_days"),
        long_open_weight=_number(ch, "long_open_weight", minimum=0),
        engagement_drop_lookback_days=_positive(ch, "engagement_drop_lookback_days"),
        engagement_drop_min_previous=_integer(ch, "engagement_drop_min_previous"),
        engagement_drop_weight=_number(ch, "engagement_drop_weight", minimum=0),
        low_csat_max=_integer(ch, "low_csat_max"),
        high_csat_min=_integer(ch, "high_csat_min"),
        detractor_max=_integer(ch, "detractor_max"),
        promoter_min=_integer(ch, "promoter_min"),
        signals={
            name: Signal(
                weight=_number(_table(raw_signals, name), "weight"),
                half_life_days=_positive(_table(raw_signals, name), "half_life_days"),
            )
            for name in raw_signals
        },
        bands=_bands(ch, "bands", tuple(b.value for b in ChurnBand)),
    )
    if churn.bands[0].minimum != 0:
        raise ModelError("the lowest churn band must start at 0")

    pub = _table(data, "publish")
    publish = PublishModel(
        engagement=_integer(pub, "engagement", minimum=1),
        churn_risk=_positive(pub, "churn_risk"),
        clv_relative=_positive(pub, "clv_relative"),
        clv_absolute=Decimal(str(_number(pub, "clv_absolute", minimum=0))),
        rfm=_integer(pub, "rfm", minimum=1),
        max_reasons=_integer(pub, "max_reasons", minimum=1),
    )
    if publish.max_reasons > 20:
        raise ModelError("max_reasons must be at most 20 (the event carries 20 at most)")
    return ScoringModel(
        version=version,
        currency=currency,
        rates=rates,
        engagement=engagement,
        rfm=rfm,
        clv=clv,
        churn=churn,
        publish=publish,
    )
