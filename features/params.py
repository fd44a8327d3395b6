"""params.yaml as typed, frozen sections: a typo, a missing key or a wrong type fails at once,
naming the key, instead of silently falling back to a default in code.

params.yaml is the one place that holds defaults: no field here has one. The models live in the
base layer (`churnlight.features`) so that every layer can take them as arguments; reading the
file is the stages' job (`churnlight.pipelines.common.load_params`).

Fields marked `runtime()` cannot change any result (threads, workers, memory caps, logging):
`dvc.yaml` leaves them out of the stages' dependencies, so changing one re-runs nothing.
"""

from __future__ import annotations

import codecs
import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from churnlight.features.sections import Section, record_reads, runtime

__all__ = ["Params", "ParamsError", "Section", "parse_params", "record_reads", "runtime"]


def _iso_date(value: Any) -> Any:
    """YAML reads an unquoted 2026-10-31 as a date; keep dates as ISO strings, and reject a
    string that is no date (2026-31-10) here, naming the key, not mid-stage."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        dt.date.fromisoformat(value)  # ValueError: pydantic reports it under the key
    return value


def _complete(mapping: dict, keys: tuple[str, ...], what: str) -> None:
    """A dict keyed by a fixed set (tiers, families) must name every one: a missing key would
    otherwise fall back to something silently (0, an empty angle) or fail mid-stage."""
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{what} needs a value for each of {list(keys)}; missing {missing}")


def _codec(value: Any) -> Any:
    """`auto` or a codec Python knows (gb18030, utf-16, cp1252): a typo fails here, naming the
    key, not when the first CSV is read."""
    if isinstance(value, str) and value != "auto":
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (try auto, utf-8, gb18030)") from None
    return value


def _ordered(value: Any) -> Any:
    """A [low, high] range must not be reversed (it would reject every value)."""
    if isinstance(value, list | tuple) and len(value) == 2 and value[0] > value[1]:
        raise ValueError(f"low must not exceed high, got {list(value)}")
    return value


IsoDate = Annotated[str, BeforeValidator(_iso_date)]
Encoding = Annotated[str, BeforeValidator(_codec)]
Number = int | float  # as written: a threshold of 2 stays the integer 2
Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(gt=0)]
Range = Annotated[tuple[Number, Number], BeforeValidator(_ordered)]


# --- the sections ----------------------------------------------------------------------------


class BaseParams(Section):
    seed: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = runtime()


class DataParams(Section):
    source: str
    as_of: IsoDate | None
    label_column: str
    value_column: str | None
    value_multiplier: Annotated[float, Field(gt=0)]
    encoding: Encoding
    # issue 16: a mapping file (`churnlight inspect` writes one) applied at validation
    mapping: str | None


WinbackTier = Literal["platinum", "gold", "silver", "regular"]


class GenerateParams(Section):
    n_customers: Positive
    months: Positive
    start: IsoDate
    regions: tuple[str, ...]
    industries: tuple[str, ...]
    existing_share: Share
    hazard_intent_base: float
    hazard_intent_satisfaction: float
    hazard_intent_engagement: float
    hazard_intent_competitor: float
    hazard_intent_downturn: float
    hazard_intent_policy: float
    hazard_intent_new_customer: float
    hazard_intent_basic_plan: float
    hazard_passive: Share
    hazard_fading: Share
    intent_churn_per_month: Share
    fading_churn_per_month: Share
    intent_activity_factor: float
    fading_decay: float
    trace_noise: float
    logins_per_month: float
    competitor_launch_rate: Share
    policy_shock_rate: Share
    downturn_rate: Share
    campaigns: bool
    campaign_control_share: Share
    campaign_failure_seen: Share
    campaign_activity_drop: Share
    campaign_low_satisfaction: float
    campaign_observation_noise: Annotated[float, Field(ge=0)]
    campaign_yellow_share: Share
    campaign_effect_active: Share
    campaign_effect_silent: Share
    campaign_red_factor: Share
    campaign_yellow_factor: Share
    campaign_red_cost: Annotated[float, Field(ge=0)]
    campaign_yellow_cost: Annotated[float, Field(ge=0)]
    campaign_cooldown_months: Annotated[int, Field(ge=1)]
    # issue 15: returns after leaving and the simulated company's win-back campaigns
    winback: bool
    winback_lookback_days: Annotated[int, Field(ge=1)]
    winback_control_share: Share
    winback_return_rate: dict[str, Annotated[float, Field(ge=0)]]
    winback_return_decay_months: Annotated[float, Field(gt=0)]
    winback_return_value: float
    winback_offer_effect: dict[str, Share]
    winback_offer_tier_factor: dict[WinbackTier, Share]
    winback_offer_cost: dict[WinbackTier, Annotated[float, Field(ge=0)]]
    winback_tier_values: dict[Literal["platinum", "gold", "silver"], Annotated[float, Field(ge=0)]]
    winback_offer_response_days: Annotated[int, Field(ge=1)]
    winback_window_days: Annotated[int, Field(ge=1)]
    winback_return_level: Annotated[float, Field(gt=0)]
    cancel_reason_share: Share  # the stated reason in customers.cancel_reason


class ValidateParams(Section):
    max_examples: Positive = runtime()  # examples in error messages only
    nps_range: Range
    csat_range: Range
    part_rows: Positive = runtime()  # event rows checked at once: memory, not results


class Signals(Section):
    activity_drop: Number
    months_without_purchase: Number
    gap_ratio: Number
    spend_drop: Number
    reply_rate_drop: Number
    booking_cancellations: Number
    service_overdue_days: Number
    nps_detractor_max: Number
    nps_drop: Number
    csat_low_max: Number
    vague_replies: Number
    competitor_mentions: Number
    industry_decline_6m: Number


class Rfm(Section):
    recency_days: tuple[Number, Number, Number, Number]
    frequency_per_year: tuple[Number, Number, Number, Number]
    monetary_per_year: tuple[Number, Number, Number, Number]
    tiers: dict[Literal["platinum", "gold", "silver"], int]

    @model_validator(mode="after")
    def _every_tier(self) -> Rfm:
        _complete(self.tiers, ("platinum", "gold", "silver"), "tiers")
        return self


class Care(Section):
    core_spend: Number
    core_interactions_per_month: Number
    dormant_days: Number


class Btyd(Section):
    enabled: bool
    penalizer: Annotated[float, Field(ge=0)]
    clv_days: Positive


class FeaturesParams(Section):
    first_cutoff: IsoDate | None
    last_cutoff: IsoDate | None
    step_months: Positive
    label_window_days: Positive
    churn_definition: Literal["cancellation", "inactivity"]
    inactivity_days: Positive
    windows_days: tuple[Positive, ...]
    lexicon: str | None
    partitions: Positive | None = runtime()
    events_per_partition: Positive = runtime()
    customers_per_partition: Positive = runtime()
    range_workers: Positive = runtime()
    duckdb_memory_limit: str | None = runtime()
    duckdb_threads: Positive | None = runtime()
    # issue 18: the engine that runs the one feature definition (same rows either way)
    engine: Literal["duckdb", "spark"] = runtime()
    signals: Signals
    rfm: Rfm
    care: Care
    btyd: Btyd


class LogregParams(Section):
    C: float


class TreeParams(Section):
    max_depth: Positive
    min_samples_leaf: Positive


class LgbmParams(Section):
    n_estimators: Positive
    learning_rate: float
    num_leaves: Positive
    max_depth: int
    min_child_samples: Positive
    subsample: float
    colsample_bytree: float
    reg_lambda: float
    # threads; None: one per core. LightGBM's float sums follow its threads: it can change results
    n_jobs: Positive | None


ModelName = Literal["logreg", "tree", "lgbm"]
# a search space entry: [low, high], [low, high, log] or {choices: [...]}
# (integers stay integers: Optuna then suggests integers)
SearchSpec = (
    tuple[int, int]
    | tuple[float, float]
    | tuple[int, int, Literal["log"]]
    | tuple[float, float, Literal["log"]]
    | dict[Literal["choices"], list]
)
HYPERPARAMETERS: dict[str, type[Section]] = {
    "logreg": LogregParams,
    "tree": TreeParams,
    "lgbm": LgbmParams,
}


class SearchSpace(Section):
    logreg: dict[str, SearchSpec]
    tree: dict[str, SearchSpec]
    lgbm: dict[str, SearchSpec]

    @model_validator(mode="after")
    def _known_hyperparameters(self) -> SearchSpace:
        for kind, model in HYPERPARAMETERS.items():
            unknown = set(getattr(self, kind)) - set(model.model_fields)
            if unknown:
                raise ValueError(
                    f"{kind}: not a hyperparameter: {sorted(unknown)} "
                    f"(known: {sorted(model.model_fields)})"
                )
        return self


class TrainParams(Section):
    models: tuple[ModelName, ...]
    test_months: Positive
    folds: Annotated[int, Field(ge=2)]
    calibration: Annotated[tuple[Literal["none", "sigmoid", "isotonic"], ...], Field(min_length=1)]
    calibration_tie: Annotated[float, Field(ge=0)]
    probability_floor: Annotated[float, Field(gt=0, lt=0.5)]
    n_trials: dict[ModelName, Positive]
    timeout_s: float
    early_stopping_rounds: Positive
    mlflow_experiment: str
    registered_model: str
    logreg: LogregParams
    tree: TreeParams
    lgbm: LgbmParams
    search_space: SearchSpace
    # rows whose outcome a treatment contact changed: left out of training (exclude) or not
    treated_rows: Literal["exclude", "keep"]
    treatment_carryover_days: Annotated[int, Field(ge=0)]  # a contact's effect lasts this long
    control_rows: Literal["exclude", "keep"]
    # issue 17: trials on a stratified sample of this many training rows, the final fit on
    # all of them or on max_rows of them (None: all)
    tune_rows: Positive | None
    max_rows: Positive | None

    @model_validator(mode="after")
    def _trials_for_every_model(self) -> TrainParams:
        _complete(self.n_trials, self.models, "n_trials")
        return self

    def hyperparameters(self, kind: str) -> dict[str, Any]:
        """The fixed hyperparameters of one candidate (the search overrides what it tunes)."""
        return getattr(self, kind).model_dump()

    def space(self, kind: str) -> dict[str, Any]:
        """The search space of one candidate, as lists and dicts (what Optuna's suggest reads)."""
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in getattr(self.search_space, kind).items()
        }


Metric = Literal["pr_auc", "roc_auc", "recall_at_capacity", "log_loss", "brier"]


class EvaluateParams(Section):
    capacity: Share
    primary_metric: Metric


class CampaignTargets(Section):
    early_identification_before: Share
    early_identification_target: Share
    roi_target: Annotated[float, Field(ge=0)]
    winback_rate: dict[Literal["platinum", "gold", "silver", "regular"], Share]
    winback_roi_target: Annotated[float, Field(ge=0)]


class CampaignsParams(Section):
    kinds: Annotated[tuple[Literal["retention", "winback"], ...], Field(min_length=1)]
    bootstrap: Annotated[int, Field(ge=100)]
    confidence: Annotated[float, Field(gt=0.5, lt=1)]
    min_group: Annotated[int, Field(ge=1)]
    targets: CampaignTargets


class ExplainParams(Section):
    top_reasons: Positive
    global_sample: Positive
    dependence_plots: Annotated[int, Field(ge=0)]
    figure_languages: tuple[Literal["en", "zh"], ...]
    reason_tiers: tuple[Literal["high", "medium", "low"], ...]
    threads: Positive | None = runtime()


RiskTier = Literal["high", "medium", "low"]
ValueTier = Literal["platinum", "gold", "silver", "regular"]


class PlaybookRow(Section):
    risk: RiskTier
    value: tuple[ValueTier, ...]
    care: tuple[Literal["core", "active", "dormant"], ...]
    owner: str
    due_within_hours: Annotated[int, Field(ge=0)]
    cost: Annotated[float, Field(ge=0)]
    action: str


class SegmentParams(Section):
    policy: Literal["capacity", "threshold"]
    high_share: Share
    medium_share: Share
    high_threshold: Share
    medium_threshold: Share
    playbook: tuple[PlaybookRow, ...]
    success_rate: dict[ValueTier, Share]
    rfm_scoring: Literal["auto", "quantile", "fixed"]
    no_contact_action: str
    psi_threshold: float
    psi_bins: Positive
    angles: dict[Literal["attitude", "external", "behaviour", "profile"], str]
    control_share: Annotated[float, Field(ge=0, lt=1)]
    campaign_id: Annotated[str, Field(min_length=1)] | None

    @model_validator(mode="after")
    def _complete_tables(self) -> SegmentParams:
        _complete(self.success_rate, ("platinum", "gold", "silver", "regular"), "success_rate")
        _complete(self.angles, ("attitude", "external", "behaviour", "profile"), "angles")
        return self

    def tier_policy(self) -> dict[str, float]:
        """The numbers that cut risk tiers (`risk_tiers`' keywords): all that the explain
        stage reads of this section."""
        return {
            "high_share": self.high_share,
            "medium_share": self.medium_share,
            "high_threshold": self.high_threshold,
            "medium_threshold": self.medium_threshold,
        }


class WinbackPlay(Section):  # a value tier's win-back play (domain.md sections 5, 8)
    action: str
    owner: str
    due_within_hours: Annotated[int, Field(ge=0)]
    cost: Annotated[float, Field(ge=0)]


class WinbackParams(Section):  # issue 15: the win-back list and its return model
    lookback_days: Positive
    window_days: Positive
    capacity: Share
    control_share: Annotated[float, Field(ge=0, lt=1)]
    campaign_id: Annotated[str, Field(min_length=1)] | None
    model: Literal["logreg", "lgbm"]
    test_months: Positive
    logreg: LogregParams
    lgbm: LgbmParams
    playbook: dict[ValueTier, WinbackPlay]  # every tier: checked by the winback stage
    no_offer_action: str


# columns of the scored customers a lake table may be partitioned by (few values each)
LakeColumn = Literal["risk_tier", "value_tier", "care_layer", "churn_kind", "rule_colour", "group"]


class ExportParams(Section):
    hash_ids: bool
    hash_secret_env: str
    lake_partitions: list[LakeColumn]  # [] = no partitioned copy


class ReportParams(Section):
    language: Literal["en", "zh"]
    screenshot: bool
    weak_slice_auc_margin: float
    max_trusted_ece: float
    max_rough_ece: float
    max_base_rate_shift: float


def connect_refusal(master: str, conf: dict[str, Any]) -> str | None:
    """Why `conf` cannot go to a Spark Connect `master` (sc://), or None: memory, cores, Java
    options are the server's; asked for by a client, they fail with the params, not silently."""
    keys = sorted(k for k in conf if not k.startswith("spark.sql."))
    if not master.strip().lower().startswith("sc://") or not keys:
        return None
    return (
        f"spark.conf {keys}: a Spark Connect client ({master}) sets spark.sql.* settings only; "
        "set these where the Connect server starts (start-connect-server.sh --conf ...)"
    )


class SparkParams(Section):
    """How the Spark engine starts (issue 18): where it runs cannot change a result."""

    master: str = runtime()  # local[*], local[2], spark://host:7077, yarn, k8s://, sc://host:15002
    conf: dict[str, str | int | float | bool] = runtime()  # extra Spark conf, e.g. memory

    @model_validator(mode="after")
    def _connect_takes_sql_settings_only(self) -> SparkParams:
        if refusal := connect_refusal(self.master, self.conf):
            raise ValueError(refusal)
        return self


class Params(Section):
    """The whole of params.yaml."""

    base: BaseParams
    data: DataParams
    generate: GenerateParams
    validate_: ValidateParams = Field(alias="validate")
    features: FeaturesParams
    train: TrainParams
    evaluate: EvaluateParams
    campaigns: CampaignsParams
    explain: ExplainParams
    segment: SegmentParams
    winback: WinbackParams
    export: ExportParams
    report: ReportParams
    spark: SparkParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParamsError(ValueError):
    """params.yaml does not fit the sections: every problem, each naming its key."""


def _where(loc: tuple) -> str:
    return ".".join("validate" if p == "validate_" else str(p) for p in loc)


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Typed params from the loaded YAML; a ParamsError naming every wrong key otherwise."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = _where(e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                lines.append(f"{key}: unknown key (a typo? it is not one of the section's keys)")
            elif e["type"] == "missing":
                lines.append(f"{key}: missing key")
            else:
                got = repr(e.get("input"))
                got = got if len(got) <= 60 else got[:57] + "..."
                lines.append(f"{key}: {e['msg']} (got {got})")
        raise ParamsError(f"{source}: {len(lines)} problem(s)\n  " + "\n  ".join(lines)) from None


def runtime_keys(model: type[Section] = Params, prefix: str = "") -> set[str]:
    """Key paths of the fields marked `runtime()`, e.g. `features.range_workers`."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("runtime"):
            out.add(key)
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            out |= runtime_keys(ann, f"{key}.")
    return out
