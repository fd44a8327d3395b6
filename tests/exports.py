"""Exports as people send them, not in the contract's shape: an online shop's invoice lines
(Online Retail: quantity x unit price, returns as negative quantities, lines without a customer,
one-time buyers), a telecom customer table (Telco: a Yes/No churn column, TotalCharges with
blank cells) and a CRM export with Chinese column names in GB18030 (customers with signup and
cancellation dates, orders, satisfaction visits). Seeded and small; nothing read from the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.shapes import RETAIL_END, retail_log

SHOP_END = RETAIL_END  # the invoice log's last day
CRM_START, CRM_END = pd.Timestamp("2024-07-01"), pd.Timestamp("2026-06-30")


def online_retail(folder: Path, n: int = 900, seed: int = 5) -> Path:
    """invoices.csv: InvoiceNo, StockCode, Description, Quantity, InvoiceDate (M/D/YYYY H:MM),
    UnitPrice, CustomerID, Country. Each basket of tests.shapes.retail_log becomes 1-3 lines;
    3% of baskets are returned later (a C-invoice, negative quantities); 2% of lines have no
    customer (guest checkouts)."""
    rng = np.random.default_rng(seed)
    log = retail_log(n=n, seed=seed)
    stock = [(f"{85000 + i}", f"ITEM NUMBER {i} HOME DECORATION") for i in range(40)]
    country = {c: rng.choice(["United Kingdom", "France", "Germany"]) for c in log["customer_id"]}
    rows = []
    for i, basket in enumerate(log.itertuples(index=False)):
        lines = rng.integers(1, 4)
        shares = rng.dirichlet(np.ones(lines))
        cid = str(12346 + int(basket.customer_id[1:]))
        for share in shares:
            code, desc = stock[rng.integers(len(stock))]
            qty = int(rng.integers(1, 13))
            price = round(max(basket.amount * share / qty, 0.1), 2)
            rows.append((f"{536365 + i}", code, desc, qty, basket.ts, price, cid))
            if rng.random() < 0.03:
                later = min(basket.ts + pd.Timedelta(days=int(rng.integers(1, 20))), SHOP_END)
                rows.append((f"C{536365 + i}", code, desc, -qty, later, price, cid))
    df = pd.DataFrame(
        rows,
        columns=[
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
        ],
    )
    df["Country"] = df["CustomerID"].map(lambda c: country[f"R{int(c) - 12346:05d}"])
    guest = rng.random(len(df)) < 0.02
    df.loc[guest, "CustomerID"] = ""
    df["InvoiceDate"] = [
        f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in df["InvoiceDate"]
    ]
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "invoices.csv", index=False)
    return folder


def telco(folder: Path, n: int = 600, seed: int = 11) -> Path:
    """WA_Fn-UseC_-Telco-Customer-Churn.csv: customerID, gender, SeniorCitizen, tenure,
    Contract, MonthlyCharges, TotalCharges (a blank " " for new customers), Churn (Yes/No)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    monthly = np.round(rng.uniform(18, 119, n), 2)
    logit = (
        -0.5
        - 0.05 * tenure
        + np.select([contract == "Month-to-month", contract == "One year"], [1.5, 0.0], -1.0)
        + 0.01 * (monthly - 70)
    )
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    total = [" " if t == 0 else f"{m * t:.2f}" for m, t in zip(monthly, tenure, strict=True)]
    df = pd.DataFrame(
        {
            "customerID": [
                f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHJK'), 5))}"
                for _ in range(n)
            ],
            "gender": rng.choice(["Female", "Male"], n),
            "SeniorCitizen": (rng.random(n) < 0.16).astype(int),
            "tenure": tenure,
            "Contract": contract,
            "MonthlyCharges": monthly,
            "TotalCharges": total,
            "Churn": np.where(churn, "Yes", "No"),
        }
    )
    df = df.drop_duplicates("customerID").reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "WA_Fn-UseC_-Telco-Customer-Churn.csv", index=False)
    return folder


def crm_gb18030(folder: Path, n: int = 300, seed: int = 3) -> Path:
    """A CRM export in GB18030 with Chinese column names: 客户.csv (客户编号, 性别, 地区, 行业,
    注册日期, 注销日期 blank while active, 是否流失 是/否), 订单.csv (订单号, 客户编号,
    交易时间, 金额) and 回访.csv (客户编号, 回访时间, 满意度 1-5, 备注). Customers who leave
    buy less and rate lower in the months before they cancel."""
    rng = np.random.default_rng(seed)
    days = (CRM_END - CRM_START).days + 1
    ids = [f"KH{10000 + i}" for i in range(n)]
    signup = CRM_START - pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    leaves = rng.random(n) < 0.45
    cancel_day = np.where(leaves, rng.integers(120, days, n), -1)
    customers = pd.DataFrame(
        {
            "客户编号": ids,
            "性别": rng.choice(["男", "女"], n),
            "地区": rng.choice(["华东", "华南", "华北", "西南"], n),
            "行业": rng.choice(["零售", "制造", "物流"], n),
            "注册日期": signup.strftime("%Y/%m/%d"),
            "注销日期": [
                (CRM_START + pd.Timedelta(days=int(d))).strftime("%Y/%m/%d") if d >= 0 else ""
                for d in cancel_day
            ],
            "是否流失": np.where(leaves, "是", "否"),
        }
    )
    orders, visits = [], []
    for i, cid in enumerate(ids):
        end = cancel_day[i] if cancel_day[i] >= 0 else days
        rate = rng.gamma(2.0, 1 / 20)  # orders a day
        t = int(rng.exponential(1 / rate))
        while t < end:
            fading = cancel_day[i] >= 0 and end - t < 90
            amount = round(float(rng.lognormal(6.0, 0.5)) * (0.4 if fading else 1.0), 2)
            ts = CRM_START + pd.Timedelta(days=t, seconds=int(rng.integers(28800, 75600)))
            orders.append((f"DD{len(orders):07d}", cid, ts.strftime("%Y-%m-%d %H:%M:%S"), amount))
            gap = rng.exponential(1 / rate) * (3.0 if fading else 1.0)
            t += max(1, int(gap))
        for t in range(int(rng.integers(0, 60)), end, 90):
            fading = cancel_day[i] >= 0 and end - t < 120
            score = int(np.clip(rng.normal(2.3 if fading else 4.0, 0.8), 1, 5))
            note = "服务很好，继续合作" if score >= 4 else "价格太高，考虑换供应商"
            ts = CRM_START + pd.Timedelta(days=t)
            visits.append((cid, ts.strftime("%Y-%m-%d"), score, note))
    folder.mkdir(parents=True, exist_ok=True)
    kw = {"index": False, "encoding": "gb18030"}
    customers.to_csv(folder / "客户.csv", **kw)
    pd.DataFrame(orders, columns=["订单号", "客户编号", "交易时间", "金额"]).to_csv(
        folder / "订单.csv", **kw
    )
    pd.DataFrame(visits, columns=["客户编号", "回访时间", "满意度", "备注"]).to_csv(
        folder / "回访.csv", **kw
    )
    return folder
