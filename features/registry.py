"""The feature registry: every feature once, with its family, unit and words in two languages.

The explanation step turns these descriptions into plain-language reasons and the model card
groups importance by family, so a feature that is not registered cannot be explained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

FAMILIES = ("behaviour", "attitude", "external", "profile")
# the one place families are named for people: figures, reasons and the model card use it
FAMILY_NAMES = {
    "en": {f: f for f in FAMILIES},
    "zh": {"behaviour": "行为", "attitude": "态度", "external": "外部风险", "profile": "客户属性"},
}


def family_name(family: str, lang: str) -> str:
    """A feature family in `lang` (an unknown family keeps its own name)."""
    return FAMILY_NAMES.get(lang, FAMILY_NAMES["en"]).get(family, family)


ACTIVITY_WORDS = {
    "login": ("logins", "登录次数"),
    "visit": ("visits", "到访次数"),
    "booking": ("bookings", "预约次数"),
    "booking_cancelled": ("booking cancellations", "取消预约次数"),
    "outreach_sent": ("outreach messages received", "收到回访次数"),
    "outreach_replied": ("replies to outreach", "回复回访次数"),
    "service_due": ("services falling due", "到期保养次数"),
    "service_done": ("services done", "完成保养次数"),
    "other": ("other activity events", "其他活动次数"),
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: str
    unit: str  # count, days, ratio, share, currency, score, flag, category, months
    description_en: str
    description_zh: str
    source: str = ""  # the raw table it needs; "" when any table of its family will do


def _windowed(windows: list[int]) -> list[FeatureSpec]:
    out: list[FeatureSpec] = []
    for w in windows:
        for etype, (en, zh) in ACTIVITY_WORDS.items():
            out.append(
                FeatureSpec(
                    f"{etype}_{w}d",
                    "behaviour",
                    "count",
                    f"Number of {en} in the last {w} days",
                    f"近{w}天{zh}",
                    "activity",
                )
            )
        out.append(
            FeatureSpec(
                f"purchases_{w}d",
                "behaviour",
                "count",
                f"Number of purchases in the last {w} days",
                f"近{w}天购买次数",
                "transactions",
            )
        )
        out.append(
            FeatureSpec(
                f"spend_{w}d",
                "behaviour",
                "currency",
                f"Spend in the last {w} days",
                f"近{w}天消费金额",
                "transactions",
            )
        )
    return out


BEHAVIOUR = [
    FeatureSpec(
        "recency_days",
        "behaviour",
        "days",
        "Days since the last purchase",
        "距上次购买天数",
        source="transactions",
    ),
    FeatureSpec(
        "activity_recency_days",
        "behaviour",
        "days",
        "Days since the last login, visit or booking (365: none within a year)",
        "距上次登录、到访或预约天数（365表示一年内没有）",
        source="activity",
    ),
    FeatureSpec("tenure_days", "behaviour", "days", "Days as a customer", "成为客户的天数"),
    FeatureSpec(
        "frequency_per_year",
        "behaviour",
        "count",
        "Purchases in the last 12 months",
        "近12个月购买次数",
        source="transactions",
    ),
    FeatureSpec(
        "monetary_per_year",
        "behaviour",
        "currency",
        "Spend in the last 12 months",
        "近12个月消费金额",
        source="transactions",
    ),
    FeatureSpec(
        "activity_30d_vs_baseline",
        "behaviour",
        "ratio",
        "Logins and visits in the last 30 days against the prior 90-day monthly average",
        "近30天登录和到访次数与此前90天月均值之比",
        source="activity",
    ),
    FeatureSpec(
        "months_without_purchase",
        "behaviour",
        "months",
        "Consecutive months without a purchase",
        "连续未购买月数",
        source="transactions",
    ),
    FeatureSpec(
        "mean_gap_days",
        "behaviour",
        "days",
        "Customer's own average days between purchases",
        "客户平均购买间隔天数",
        source="transactions",
    ),
    FeatureSpec(
        "gap_ratio",
        "behaviour",
        "ratio",
        "Current gap since the last purchase against the customer's own average gap",
        "当前未购买间隔与客户平均购买间隔之比",
        source="transactions",
    ),
    FeatureSpec(
        "spend_90d_vs_baseline",
        "behaviour",
        "ratio",
        "Spend in the last 90 days against the customer's earlier quarterly average",
        "近90天消费与此前季度平均消费之比",
        source="transactions",
    ),
    FeatureSpec(
        "promo_share_365d",
        "behaviour",
        "share",
        "Share of purchases made on promotion in the last 12 months",
        "近12个月促销购买占比",
        source="transactions",
    ),
    FeatureSpec(
        "reply_rate_90d",
        "behaviour",
        "share",
        "Share of outreach replied to in the last 90 days",
        "近90天回访回复率",
        source="activity",
    ),
    FeatureSpec(
        "reply_rate_before",
        "behaviour",
        "share",
        "Share of outreach replied to in the 9 months before that",
        "此前9个月回访回复率",
        source="activity",
    ),
    FeatureSpec(
        "reply_rate_change",
        "behaviour",
        "share",
        "Change in outreach reply rate, last 90 days against before",
        "近90天回访回复率较此前的变化",
        source="activity",
    ),
    FeatureSpec(
        "service_overdue_days",
        "behaviour",
        "days",
        "Days a periodic service due within the last year is overdue",
        "近一年内到期的定期保养逾期天数",
        source="activity",
    ),
    FeatureSpec(
        "r_score",
        "behaviour",
        "score",
        "Recency score (1-5)",
        "最近购买评分(1-5)",
        source="transactions",
    ),
    FeatureSpec(
        "f_score",
        "behaviour",
        "score",
        "Frequency score (1-5)",
        "购买频次评分(1-5)",
        source="transactions",
    ),
    FeatureSpec(
        "m_score",
        "behaviour",
        "score",
        "Monetary score (1-5)",
        "消费金额评分(1-5)",
        source="transactions",
    ),
    FeatureSpec(
        "rfm_sum",
        "behaviour",
        "score",
        "RFM total score (3-15)",
        "RFM总分(3-15)",
        source="transactions",
    ),
    FeatureSpec(
        "value_tier",
        "behaviour",
        "category",
        "Customer value tier from RFM",
        "基于RFM的客户价值等级",
        source="transactions",
    ),
    FeatureSpec(
        "care_layer",
        "behaviour",
        "category",
        "Care layer (core, active, dormant)",
        "关怀分层(核心、活跃、沉睡)",
    ),
]

ATTITUDE = [
    FeatureSpec(
        "nps_last", "attitude", "score", "Latest NPS answer (0-10)", "最近一次NPS评分(0-10)"
    ),
    FeatureSpec(
        "nps_change",
        "attitude",
        "score",
        "Change between the last two NPS answers",
        "最近两次NPS评分变化",
    ),
    FeatureSpec(
        "nps_detractor",
        "attitude",
        "flag",
        "Latest NPS answer is a detractor score",
        "最近一次NPS为贬损者",
    ),
    FeatureSpec(
        "days_since_nps",
        "attitude",
        "days",
        "Days since the latest NPS answer",
        "距最近一次NPS调查天数",
    ),
    FeatureSpec("nps_missing", "attitude", "flag", "No NPS answer yet", "尚无NPS调查结果"),
    FeatureSpec(
        "csat_last",
        "attitude",
        "score",
        "Latest satisfaction score (1-5)",
        "最近一次满意度评分(1-5)",
    ),
    FeatureSpec(
        "csat_mean_365d",
        "attitude",
        "score",
        "Average satisfaction score over the last 12 months",
        "近12个月平均满意度",
    ),
    FeatureSpec(
        "days_since_csat",
        "attitude",
        "days",
        "Days since the latest satisfaction answer",
        "距最近一次满意度调查天数",
    ),
    FeatureSpec(
        "csat_missing", "attitude", "flag", "No satisfaction answer yet", "尚无满意度调查结果"
    ),
    FeatureSpec(
        "complaints_365d",
        "attitude",
        "count",
        "Complaints opened in the last 12 months",
        "近12个月投诉次数",
    ),
    FeatureSpec(
        "complaints_open", "attitude", "count", "Complaints still unresolved", "未解决的投诉数"
    ),
    FeatureSpec(
        "oldest_open_complaint_days",
        "attitude",
        "days",
        "Age of the oldest unresolved complaint",
        "最早未解决投诉的天数",
    ),
    FeatureSpec(
        "silent_days_after_complaint",
        "attitude",
        "days",
        "Days of silence since a complaint was resolved",
        "投诉解决后沉默天数",
    ),
    FeatureSpec(
        "messages_90d",
        "attitude",
        "count",
        "Messages written in the last 90 days",
        "近90天留言条数",
    ),
    FeatureSpec(
        "vague_replies_90d",
        "attitude",
        "count",
        "Vague, non-committal replies in the last 90 days",
        "近90天含糊推脱的回复次数",
    ),
    FeatureSpec(
        "competitor_mentions_90d",
        "attitude",
        "count",
        "Mentions of a competitor in the last 90 days",
        "近90天提及竞争对手次数",
    ),
]

# the BTYD baseline's numbers (`churnlight.features.btyd`): fitted on every customer's purchases
# before the cutoff, missing for a customer without any
BTYD = [
    FeatureSpec(
        "btyd_p_alive",
        "behaviour",
        "share",
        "Chance the customer is still buying (BG/NBD model of the purchase history)",
        "客户仍在购买的概率（BG/NBD购买模型）",
        source="transactions",
    ),
    FeatureSpec(
        "btyd_expected_purchases",
        "behaviour",
        "count",
        "Expected purchases in the label window (BG/NBD model)",
        "预测期内的预期购买次数（BG/NBD模型）",
        source="transactions",
    ),
    FeatureSpec(
        "btyd_p_no_purchase",
        "behaviour",
        "share",
        "Chance of no purchase in the label window (BG/NBD model)",
        "预测期内不再购买的概率（BG/NBD模型）",
        source="transactions",
    ),
    FeatureSpec(
        "btyd_clv",
        "behaviour",
        "currency",
        "Expected spend over the next year (BG/NBD and Gamma-Gamma models)",
        "未来一年的预期消费金额（BG/NBD与Gamma-Gamma模型）",
        source="transactions",
    ),
]

EXTERNAL = [
    FeatureSpec(
        "industry_index_change_3m",
        "external",
        "share",
        "Change of the customer's industry index over 3 months",
        "客户所在行业指数3个月变化",
    ),
    FeatureSpec(
        "industry_index_change_6m",
        "external",
        "share",
        "Change of the customer's industry index over 6 months",
        "客户所在行业指数6个月变化",
    ),
    FeatureSpec(
        "competitor_launch_90d",
        "external",
        "flag",
        "A competitor launched an offer in the customer's region in the last 90 days",
        "近90天客户所在地区有竞争对手推出新品或优惠",
    ),
    FeatureSpec(
        "policy_shock_180d",
        "external",
        "flag",
        "A policy change hit the customer's industry in the last 180 days",
        "近180天客户所在行业受政策变化影响",
    ),
]


# Chinese words for customer attributes that CRM and telecom exports commonly carry, keyed by the
# column name in lower case without separators; other columns keep their own name. Yes/no
# attributes are named as questions (是否...), so that "是否有伴侣：否" reads right.
PROFILE_WORDS_ZH = {
    "region": "地区",
    "industry": "行业",
    "plan": "套餐",
    "channel": "渠道",
    "acquiredvia": "获客方式",
    "customertype": "客户类型",
    "serviceperiod": "保养周期",
    "gender": "性别",
    "seniorcitizen": "是否老年用户",
    "partner": "是否有伴侣",
    "dependents": "是否有家属",
    "tenure": "在网时长（月）",
    "contract": "合同类型",
    "contracttype": "合同类型",
    "paymentmethod": "付款方式",
    "paperlessbilling": "是否电子账单",
    "monthlycharges": "月费",
    "totalcharges": "累计费用",
    "internetservice": "宽带服务",
    "phoneservice": "电话服务",
}


# a profile feature's description is this prefix and the attribute's name: reasons drop the
# prefix ("Plan is basic", not "Customer attribute: plan: basic")
PROFILE_PREFIX = {"en": "Customer attribute: ", "zh": "客户属性："}


def profile_spec(column: str, is_numeric: bool) -> FeatureSpec:
    """Profile attributes come from the user's own columns, so their words are generic."""
    label = column.replace("_", " ")
    key = "".join(ch for ch in column.lower() if ch.isalnum())
    return FeatureSpec(
        column,
        "profile",
        "number" if is_numeric else "category",
        PROFILE_PREFIX["en"] + label,
        PROFILE_PREFIX["zh"] + PROFILE_WORDS_ZH.get(key, label),
    )


def build_registry(
    windows: list[int],
    families_on: dict[str, bool],
    profile_columns: dict[str, bool],
    tables: set[str] | None = None,
    btyd: bool = False,
) -> list[FeatureSpec]:
    """The registry for this run: switched-off families and features whose table is missing
    are left out; profile features come from the data's own columns; `btyd`: with the BTYD
    baseline's numbers."""
    specs: list[FeatureSpec] = []
    if families_on.get("behaviour"):
        specs += _windowed(windows) + BEHAVIOUR + (BTYD if btyd else [])
    if families_on.get("attitude"):
        specs += ATTITUDE
    if families_on.get("external"):
        specs += EXTERNAL
    if tables is not None:
        specs = [s for s in specs if not s.source or s.source in tables]
    specs += [profile_spec(c, num) for c, num in profile_columns.items()]
    return specs


def registry_frame(specs: list[FeatureSpec]) -> pd.DataFrame:
    cols = ["name", "family", "unit", "description_en", "description_zh"]
    return pd.DataFrame([asdict(s) for s in specs], columns=[*cols, "source"])[cols]
