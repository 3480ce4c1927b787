"""Canonical column names and types of every source, after column mapping.

Every reader produces frames in these shapes, so the rest of the pipeline never sees a user's own
column names. Sources are named by the keys of ``SOURCES``.
"""

from __future__ import annotations

import polars as pl

CUSTOMERS: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "name": pl.String(),  # PII
    "email": pl.String(),  # PII
    "signup_date": pl.Date(),
    "birth_year": pl.Int32(),
    "gender": pl.String(),
    "income": pl.Float64(),
    "education": pl.String(),
    "household_size": pl.Int32(),
    "marital_status": pl.String(),  # one of MARITAL_STATUSES after cleaning (else recoded to null)
    # Banded demographics, for exports that deliver bands rather than values (segflow.lib.profiles.bands):
    # categories such as "25-34", "50-74K", "5+", never turned into numbers.
    "age_band": pl.String(),
    "income_band": pl.String(),
    "household_size_band": pl.String(),
    "city": pl.String(),
    "region": pl.String(),
    "country": pl.String(),
    "preferred_channel": pl.String(),
    "marketing_opt_in": pl.Boolean(),
}

TRANSACTIONS: dict[str, pl.DataType] = {
    "invoice_id": pl.String(),
    "customer_id": pl.String(),
    "invoiced_at": pl.Datetime("us"),
    "product_id": pl.String(),
    "category": pl.String(),
    "quantity": pl.Int64(),
    "unit_price": pl.Float64(),
    "channel": pl.String(),
}

ENGAGEMENT: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "event_at": pl.Datetime("us"),
    "event_type": pl.String(),  # one of ENGAGEMENT_EVENT_TYPES
}

SURVEYS: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "answered_at": pl.Datetime("us"),
    "question_id": pl.String(),  # one of SURVEY_QUESTIONS
    "answer": pl.Int32(),  # Likert 1..5
}

CAMPAIGNS: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "customer_id": pl.String(),
    "arm": pl.String(),  # "treatment" | "control"
    "exposed_at": pl.Datetime("us"),
    "responded": pl.Boolean(),
}

# A per-customer behaviour snapshot summarised by another system (a CRM or loyalty export): what a
# customer did over the last ``features.snapshot_months`` months, as of the snapshot. It stands in
# for transaction line items when there are none (the transactions source disabled), so features
# are behavioural and demographic, without RFM. Counts and amounts cover the whole snapshot window.
SNAPSHOT: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "signup_date": pl.Date(),  # places the row: everyone signed up by the month's end is in it
    "recency_days": pl.Int64(),  # days since the last purchase, as of the snapshot
    "spend": pl.Float64(),  # money spent in the snapshot window (currency units)
    "purchases": pl.Int64(),  # purchases in the window, all channels
    "web_purchases": pl.Int64(),
    "store_purchases": pl.Int64(),
    "catalog_purchases": pl.Int64(),  # mail or phone orders
    "deal_purchases": pl.Int64(),  # purchases made with a discount
    "web_visits_per_month": pl.Float64(),
    "campaign_exposures": pl.Int64(),
    "campaign_responses": pl.Int64(),
    "complaints": pl.Int64(),
    "marital_status": pl.String(),  # one of MARITAL_STATUSES after cleaning (else recoded to null)
    "children": pl.Int32(),  # children living in the household
}

SOURCES: dict[str, dict[str, pl.DataType]] = {
    "customers": CUSTOMERS,
    "transactions": TRANSACTIONS,
    "engagement": ENGAGEMENT,
    "surveys": SURVEYS,
    "campaigns": CAMPAIGNS,
    "snapshot": SNAPSHOT,
}

PII_COLUMNS: frozenset[str] = frozenset({"name", "email"})

ENGAGEMENT_EVENT_TYPES = ("session", "page_view", "email_send", "email_open", "email_click")
SURVEY_QUESTIONS = ("price_sensitivity", "brand_loyalty", "eco_conscious", "tech_savvy", "convenience")
CHANNELS = ("web", "store", "app")
CAMPAIGN_ARMS = ("treatment", "control")
MARITAL_STATUSES = ("single", "married", "together", "divorced", "widowed")
# Demographic codes cleaning accepts (anything else is recoded to null); synth.py draws from them.
GENDERS = ("F", "M", "X")
EDUCATION_LEVELS = ("basic", "secondary", "bachelor", "master", "phd")
