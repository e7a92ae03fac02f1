"""A seeded synthetic production stream: strong daily and weekly seasonality, no drift, and injectable shifts.

The tests of the monitoring half and ``make bench monitor`` read it. A :class:`StreamSpec` fixes everything;
:func:`records` (dicts in :class:`harness.types.LogFieldMap`'s default field names), :func:`table` (one
``pyarrow.Table``), :func:`write_jsonl` and :func:`write_parquet` give the same records, and
:func:`write_project` writes a locked project (golden set, corpus, ``[monitor]`` table) that ``harness
ingest`` / ``harness monitor`` use.

Seasonality without drift. Every distribution is a fixed function of (weekday, hour UTC), the same every
week:

- volume: records per hour are Poisson with mean ``records_per_day * WEEKDAY_VOLUME[weekday] *
  hour_share[hour]``; the daily cycle peaks at 15:00 UTC and bottoms out at 03:00 (about 6x), weekends
  carry about 60-65% of a weekday's volume;
- segment mix: each attribute value's weight is ``base * exp(amplitude * cos(2 pi (hour - peak) / 24))``,
  times its weekend multiplier on Saturday and Sunday (apac peaks at UTC night, mobile in the evening and
  at weekends, enterprise in weekday business hours);
- topic mix: weekday and weekend weights per topic, with a smaller daily cycle of their own;
- per record: latency per stage lognormal (slower at busy hours, generation longer for longer answers),
  answer length (1-4 sentences of the top document, or an abstention), retrieval scores whose level
  depends on the topic, errors ~1% (more at busy hours), timeouts ~0.3%.

So week-over-week comparisons aligned by weekday and hour are A/A; day-over-day comparisons (Friday vs
Saturday, or 03:00 vs 15:00) are not. Draws are made per day from ``numpy.random.default_rng([seed, day])``
(topic-agnostic uniforms and normals first, mapped through the topic's parameters after), and each shift
draws from its own stream ``[seed, day, 1000 + i]``: adding a :class:`Shift` changes only the records it
says it changes; every other record stays byte-identical.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError

ShiftKind = Literal["topic", "segment_mix", "null_rate", "latency_tail"]
SHIFT_KINDS: tuple[str, ...] = ("topic", "segment_mix", "null_rate", "latency_tail")

RECORD_FIELDS = ("id", "timestamp", "query", "answer", "retrieved", "contexts", "latency_s", "error", "timeout",
                 "manifest_id")
"""The record's fields besides its attributes, in :class:`harness.types.LogFieldMap`'s default names."""

NULLABLE_FIELDS = ("query", "answer", "retrieved", "contexts", "latency_s", "manifest_id")
"""Fields a ``null_rate`` shift may null (besides every attribute): ``id``, ``timestamp``, ``error`` and
``timeout`` stay, as ``error`` is null on most records anyway."""

LATENCY_STAGES = ("retrieve", "generate")
DEADLINE_S = 30.0
"""A timed-out request's total latency."""

ERROR_KINDS = ("rate_limited", "upstream_error", "context_length_exceeded", "internal")
ERROR_KIND_P = (0.4, 0.35, 0.15, 0.1)

WEEKDAY_VOLUME = tuple(f * 7 / 6.62 for f in (1.10, 1.12, 1.08, 1.05, 0.95, 0.62, 0.70))
"""Monday..Sunday volume factors (mean 1 over a week)."""

_HOUR = np.arange(24)
_HOUR_SHAPE = np.exp(0.9 * np.cos(2 * np.pi * (_HOUR - 15) / 24))
HOUR_SHARE: npt.NDArray[np.float64] = _HOUR_SHAPE / _HOUR_SHAPE.sum()
"""The share of a day's records in each UTC hour (peak 15:00, trough 03:00)."""
_LOAD = (_HOUR_SHAPE - _HOUR_SHAPE.min()) / (_HOUR_SHAPE.max() - _HOUR_SHAPE.min())  # 0 at trough, 1 at peak
_BUSY_MEAN = float(0.6 + 0.8 * np.average(_LOAD, weights=HOUR_SHARE))


# --- topics ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One thing users ask about: question templates (``{slot}`` placeholders filled from the topic's slots)
    and the corpus passage that answers them (``None`` for off-domain topics, which have no documents)."""

    name: str
    questions: tuple[str, ...]
    passage: str | None = None


@dataclass(frozen=True)
class Topic:
    """A topic of the stream: its intents, slot values, its seasonal weight (weekday / weekend, with a daily
    cycle peaking at ``peak_hour``), and the per-record parameters that depend on it: the top-1 retrieval
    score's mean and spread, the median generation latency, the chance of each extra answer sentence, the
    abstention rate. ``documents`` are passages in the corpus answering no single intent."""

    name: str
    intents: tuple[Intent, ...]
    slots: tuple[tuple[str, tuple[str, ...]], ...]
    weekday_weight: float = 1.0
    weekend_weight: float = 1.0
    peak_hour: float = 15.0
    hour_amplitude: float = 0.2
    score_mean: float = 0.68
    score_sd: float = 0.06
    generate_s: float = 1.1
    answer_p: float = 0.45
    abstain_rate: float = 0.02
    documents: tuple[tuple[str, str], ...] = ()


_BILLING = Topic(
    "billing",
    intents=(
        Intent("refund", (
            "How do I get a refund for my {plan} plan?",
            "Can I get my money back after I was charged {when}?",
            "I was double charged {when}, how do I request a refund?",
            "What is the refund policy for {period} {plan} subscriptions?",
        ), "Refunds for any plan are issued to the original payment method within 5 to 10 business days. "
           "Annual subscriptions can be refunded in full within 30 days of purchase. Duplicate charges are "
           "reversed automatically once reported from the Billing page. Monthly plans are not refunded for "
           "partial months."),
        Intent("payment_method", (
            "How can I change my payment method to {method}?",
            "Can I pay for the {plan} plan with {method}?",
            "Why was my {method} declined when paying the invoice?",
            "Where do I update the {method} on file for {plan}?",
        ), "You can change the payment method under Settings, Billing, Payment methods. We accept credit "
           "and debit cards, PayPal, Apple Pay and bank transfer for annual invoices. A declined card is "
           "usually caused by an expired card or a fraud check by the bank. The new method is used for the "
           "next invoice."),
        Intent("invoice", (
            "Where can I download the invoice from {when}?",
            "How do I add a VAT number to my {plan} invoices?",
            "Can invoices for the {plan} plan be emailed to my accounting team automatically?",
            "Why does my {period} invoice show a different amount than {when}?",
        ), "Invoices are available as PDF files in the Billing history section of the dashboard. A VAT or "
           "tax number added to the billing profile appears on every future invoice. Billing contacts can "
           "receive each invoice by email automatically. Amounts change when seats are added or removed "
           "during the billing period."),
        Intent("plan_change", (
            "How do I upgrade from {plan} to {plan2}?",
            "What happens to my data if I downgrade to the {plan} plan?",
            "Can I switch from {period} to {period2} billing?",
            "Is there a discount for {period} billing on the {plan} plan?",
        ), "Plan changes take effect immediately and are prorated on the next invoice. Downgrading keeps "
           "your data, but features above the new plan's limits become read-only. Annual billing costs "
           "about 20 percent less than monthly billing. You can switch the billing period at any time from "
           "the Plans page."),
    ),
    slots=(("plan", ("Starter", "Pro", "Team", "Business", "Enterprise")),
           ("plan2", ("Pro", "Team", "Business", "Enterprise")),
           ("method", ("a credit card", "a debit card", "PayPal", "a bank transfer", "Apple Pay")),
           ("period", ("monthly", "annual", "quarterly")), ("period2", ("annual", "monthly")),
           ("when", ("last month", "this week", "yesterday", "in March", "two days ago", "twice this month"))),
    weekday_weight=1.0, weekend_weight=0.8, score_mean=0.71, generate_s=1.0,
    documents=(("billing-overview", "Billing is managed by workspace owners and billing admins. Each plan is "
                "billed per seat. Charges appear on the card statement under the company name. Billing "
                "questions are answered by the billing team within one business day."),
               ("billing-seats", "Seats can be added at any time and are charged pro rata. Removing a seat "
                "takes effect at the end of the billing period. Guests do not use a paid seat. The Team "
                "plan includes up to 50 seats.")),
)

_SHIPPING = Topic(
    "shipping",
    intents=(
        Intent("tracking", (
            "Where is my {item}? It was shipped {days} ago.",
            "How do I track my {item} with {carrier}?",
            "My tracking number for the {item} is not working, what should I do?",
            "Why has the tracking for my {item} not updated in {days}?",
        ), "Every shipment gets a tracking number by email once it leaves the warehouse. Tracking links "
           "open the carrier's page, such as UPS, DHL or FedEx. A tracking number can take up to 48 hours "
           "to become active. If tracking has not changed for five business days, contact support to open a "
           "carrier investigation."),
        Intent("delivery_time", (
            "How long does delivery to {country} take?",
            "Do you offer express shipping to {country}?",
            "When will my {item} arrive in {country} if I order today?",
            "Is weekend delivery available with {carrier}?",
        ), "Standard delivery takes 3 to 5 business days within the country and 7 to 14 days abroad. "
           "Express shipping arrives in 1 to 3 business days to most countries. Orders placed before 2 pm "
           "ship the same day. Weekend delivery depends on the carrier and the destination."),
        Intent("returns", (
            "How do I return a damaged {item}?",
            "Can I still return my {item} after {days}?",
            "Who pays for return shipping from {country}?",
            "How do I print a return label for {carrier}?",
        ), "Items can be returned within 30 days of delivery. Damaged items are replaced free of charge "
           "with a prepaid return label. Return labels are printed from the Orders page. Refunds for "
           "returns are issued once the warehouse receives the item."),
        Intent("address", (
            "Can I change the delivery address of my {item} after ordering?",
            "I entered the wrong address for my {item}, can you fix it?",
            "Can {carrier} deliver my {item} to a pickup point?",
            "Do you ship to PO boxes in {country}?",
        ), "The delivery address can be changed until the order is packed, usually within one hour. After "
           "that the carrier can redirect the parcel for a fee. Pickup points are offered at checkout in "
           "most countries. PO boxes are supported by the postal service only."),
    ),
    slots=(("item", ("order", "package", "parcel", "replacement part", "gift box")),
           ("carrier", ("UPS", "DHL", "FedEx", "the postal service")),
           ("country", ("Canada", "Germany", "Japan", "Australia", "Mexico", "the UK")),
           ("days", ("two days", "a week", "ten days", "three weeks"))),
    weekday_weight=0.8, weekend_weight=1.6, peak_hour=19.0, score_mean=0.66, generate_s=0.9,
    documents=(("shipping-overview", "Orders are shipped from warehouses in the US, the Netherlands and "
                "Singapore. Shipping costs are shown at checkout. Free standard shipping applies to orders "
                "above 50 dollars. Large items ship by freight."),
               ("shipping-customs", "International orders may be charged import duties and taxes by the "
                "destination country. Duties are paid by the recipient on delivery. Customs can delay a "
                "parcel by several days. Commercial invoices are attached to every parcel.")),
)

_ACCOUNT = Topic(
    "account",
    intents=(
        Intent("password_reset", (
            "I forgot my password, how do I reset it on my {device}?",
            "The password reset email never arrived, what now?",
            "How often do I have to change my password?",
            "Why does the reset link say it has expired on my {device}?",
        ), "Use Forgot password on the sign-in page to get a reset link by email. The link expires after "
           "one hour and works only once. Check the spam folder if the email does not arrive within a few "
           "minutes. Passwords never expire unless your administrator sets a rotation policy."),
        Intent("two_factor", (
            "How do I turn on two-factor authentication with {factor}?",
            "I lost my {device} with my {factor}, how do I log in?",
            "Can I use {factor} instead of SMS?",
            "How do I reset two-factor authentication for a team member?",
        ), "Two-factor authentication is turned on under Settings, Security. An authenticator app, a "
           "security key or SMS codes can be used as the second factor. Backup codes let you sign in when "
           "the device is lost. Administrators can reset two-factor authentication for team members."),
        Intent("login_issue", (
            "I can't log in on {browser}, it keeps reloading the page.",
            "Why am I logged out every few minutes on my {device}?",
            "My account is locked after too many attempts, how do I unlock it?",
            "Login with Google fails on {browser}, what should I check?",
        ), "Sign-in loops are usually fixed by clearing cookies for the site or allowing third-party "
           "cookies. Sessions end after 30 minutes of inactivity on shared devices. An account locks for 15 "
           "minutes after ten failed attempts. Single sign-on problems are often caused by a blocked pop-up "
           "window."),
        Intent("profile", (
            "How do I change my {thing}?",
            "Can I merge two accounts with different {thing}s?",
            "Why can't I update my {thing} in the {device} app?",
            "How do I remove my {thing} from my profile?",
        ), "Profile details are edited under Settings, Profile. Changing the email address requires "
           "confirming the new address. Two accounts cannot be merged, but projects can be transferred "
           "between them. Some fields are managed by your organization's directory."),
    ),
    slots=(("device", ("phone", "laptop", "tablet", "work computer")),
           ("factor", ("an authenticator app", "SMS codes", "a security key", "backup codes")),
           ("thing", ("email address", "username", "display name", "profile photo")),
           ("browser", ("Chrome", "Firefox", "Safari", "Edge"))),
    weekday_weight=1.0, weekend_weight=1.0, peak_hour=10.0, score_mean=0.69, generate_s=1.0,
    documents=(("account-security", "We recommend a unique password and two-factor authentication for "
                "every account. Suspicious sign-ins trigger an email alert. Active sessions can be signed "
                "out remotely. Security logs are kept for 90 days."),
               ("account-roles", "Workspaces have owner, admin, member and guest roles. Owners manage "
                "billing and can delete the workspace. Admins invite and remove members. Guests see only "
                "the projects shared with them.")),
)

_API = Topic(
    "api",
    intents=(
        Intent("auth_errors", (
            "Why does {endpoint} return {code} with a valid API key?",
            "How do I authenticate requests to {endpoint} from {lang}?",
            "My API token stopped working with a {code} error, how do I rotate it?",
            "Which scopes does a key need to call {endpoint}?",
        ), "API requests are authenticated with a bearer token in the Authorization header. A 401 error "
           "means the token is missing or revoked, a 403 means it lacks the required scope. Tokens are "
           "rotated from the Developer settings page. Each endpoint lists the scopes it needs in the "
           "reference."),
        Intent("rate_limits", (
            "What is the rate limit on {endpoint}?",
            "How should my {lang} client handle a {code} Too Many Requests response?",
            "Can we raise our limit above {limit}?",
            "Are API rate limits per key or per organization?",
        ), "The default limit is 100 requests per minute per API key. A 429 response includes a "
           "Retry-After header with the number of seconds to wait. Clients should retry with exponential "
           "backoff. Enterprise plans can request higher limits from support."),
        Intent("webhooks", (
            "How do I verify webhook signatures in {lang}?",
            "Webhook deliveries to my server fail with {code}, how do I retry them?",
            "Which events can I subscribe to with webhooks?",
            "Why do I receive the same webhook event twice?",
        ), "Every webhook request carries an HMAC SHA-256 signature header computed with the endpoint's "
           "secret. Failed deliveries are retried for up to 24 hours with backoff. Events can be replayed "
           "from the dashboard. Handlers should be idempotent because an event may be delivered more than "
           "once."),
        Intent("sdk", (
            "Is there an official {lang} SDK?",
            "How do I paginate results from {endpoint} in {lang}?",
            "The {lang} SDK throws a timeout on {endpoint}, how do I increase it?",
            "How do I upgrade the {lang} SDK to the latest major version?",
        ), "Official SDKs exist for Python, JavaScript, Go and Java. List endpoints return a cursor for "
           "the next page. The request timeout is set when the client is created. Each major version has a "
           "migration guide in the changelog."),
    ),
    slots=(("endpoint", ("/v1/search", "/v1/orders", "/v1/users", "/v1/webhooks", "/v1/exports")),
           ("lang", ("Python", "JavaScript", "Go", "Java", "Ruby")),
           ("code", ("401", "403", "429", "500", "502")),
           ("limit", ("100 requests per minute", "10 requests per second", "5,000 requests per hour"))),
    weekday_weight=1.4, weekend_weight=0.5, peak_hour=14.0, hour_amplitude=0.4, score_mean=0.63,
    generate_s=1.5, answer_p=0.6,
    documents=(("api-overview", "The REST API uses JSON over HTTPS. All timestamps are ISO 8601 in UTC. "
                "Errors return a JSON body with a code and a message. The API reference documents every "
                "endpoint."),
               ("api-versioning", "The API is versioned in the URL path. Breaking changes ship only in a "
                "new major version. Deprecated endpoints keep working for twelve months. The changelog "
                "lists every change.")),
)

_PRIVACY = Topic(
    "privacy",
    intents=(
        Intent("deletion", (
            "How do I permanently delete my {data}?",
            "How long do you keep my {data} after I close my account?",
            "Under {law}, can I ask you to erase my {data}?",
            "Is deleted {data} removed from backups too?",
        ), "Deleted data is removed from active systems immediately and from backups within 35 days. After "
           "an account is closed, data is kept for 30 days in case of reactivation. Erasure requests under "
           "GDPR or CCPA are handled by the privacy team. Billing records are kept as long as tax law "
           "requires."),
        Intent("export", (
            "How can I download a copy of my {data}?",
            "Can I export all my {data} in a machine-readable format?",
            "How long does a data export request take under {law}?",
            "Does the export include {data} from deleted projects?",
        ), "A full export is requested under Settings, Privacy, Export data. Exports are delivered as JSON "
           "and CSV files in a zip archive. Most exports are ready within 48 hours and the legal limit is "
           "30 days. Data from deleted projects is not included once it has been purged."),
        Intent("cookies", (
            "Which cookies does the site set for visitors from {region}?",
            "How do I opt out of analytics cookies?",
            "Do you sell personal data of users in {region}?",
            "How do I change my cookie consent choices?",
        ), "Essential cookies keep you signed in and cannot be turned off. Analytics cookies are set only "
           "with consent. Consent choices can be changed at any time from the cookie banner link in the "
           "footer. We do not sell personal data."),
        Intent("data_location", (
            "Where is my {data} stored?",
            "Can we keep our {data} inside {region} only?",
            "Who are your subprocessors for {data}?",
            "Is my {data} encrypted at rest and in transit?",
        ), "Customer data is stored in data centers in the US and in the EU. Enterprise customers can "
           "choose the region where their data is kept. The list of subprocessors is published on the "
           "trust page. Data is encrypted with AES-256 at rest and TLS in transit."),
    ),
    slots=(("data", ("chat history", "uploaded files", "billing records", "usage logs", "contact list")),
           ("law", ("GDPR", "CCPA", "LGPD", "the UK Data Protection Act")),
           ("region", ("the EU", "California", "Brazil", "Canada"))),
    weekday_weight=0.5, weekend_weight=0.6, peak_hour=11.0, score_mean=0.74, generate_s=1.2,
    documents=(("privacy-policy", "The privacy policy explains which personal data we collect and why. "
                "We process data only to provide the service. Users can contact the data protection officer "
                "by email. The policy is reviewed every year."),
               ("privacy-dpa", "A data processing agreement is available for every business customer. It "
                "includes the standard contractual clauses. Security measures are described in an annex. "
                "The agreement is signed electronically.")),
)

_TRAVEL = Topic(
    "travel",
    intents=(Intent("trip", (
        "What is the best time of year to visit {city}?",
        "How many days do I need to see {city}?",
        "Is {city} expensive to visit in {month}?",
        "What should I pack for {city} in {month}?",
        "Do I need {thing} for a trip to {city}?",
        "Which neighborhoods in {city} are best for a first visit?",
        "How do I get from the airport to downtown {city}?",
        "What local dishes should I try in {city}?",
    )),),
    slots=(("city", ("Lisbon", "Kyoto", "Marrakesh", "Reykjavik", "Buenos Aires", "Vancouver", "Hanoi")),
           ("month", ("April", "July", "October", "December")),
           ("thing", ("a carry-on bag", "hiking boots", "a travel adapter", "cash", "a visa"))),
    score_mean=0.31, score_sd=0.07, generate_s=1.3, abstain_rate=0.5,
)

_COOKING = Topic(
    "cooking",
    intents=(Intent("recipe", (
        "How long should I roast a {meat} at {temp} degrees?",
        "What can I use instead of {ingredient} in a {dish}?",
        "How do I keep my {dish} from getting soggy?",
        "Can I freeze a {dish} made with {ingredient}?",
        "What wine goes well with {meat}?",
        "Why did my {dish} come out dry?",
    )),),
    slots=(("meat", ("chicken", "pork shoulder", "leg of lamb", "turkey breast")),
           ("temp", ("180", "200", "350", "425")),
           ("ingredient", ("buttermilk", "eggs", "heavy cream", "fresh basil")),
           ("dish", ("lasagna", "quiche", "banana bread", "pie crust", "risotto"))),
    score_mean=0.29, score_sd=0.07, generate_s=1.3, abstain_rate=0.5,
)

DEFAULT_TOPICS: tuple[Topic, ...] = (_BILLING, _SHIPPING, _ACCOUNT, _API, _PRIVACY)
"""The stream's topics (in the corpus and the golden set)."""
OFF_DOMAIN_TOPICS: tuple[Topic, ...] = (_TRAVEL, _COOKING)
"""Topics a ``topic`` shift can inject that the corpus and the golden set do not cover."""

_DECOR_PRE = ("", "", "", "Hi, ", "Hello! ", "Quick question: ", "Hey team, ", "Sorry if this is obvious, ")
_DECOR_POST = ("", "", "", " Thanks!", " Thanks in advance.", " Please help.", " Any ideas?")
ABSTENTIONS = ("I could not find this in the documentation.",
               "I'm sorry, I don't have information about that.",
               "The documentation does not cover this question.")


# --- segments ----------------------------------------------------------------------------------------------

DEFAULT_SEGMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("geo", ("us", "eu", "apac")), ("device", ("web", "mobile")), ("user_tier", ("free", "pro", "enterprise")))
"""Attributes of every record and their values (``user_tier`` too: the stream's attributes are its segments)."""

SEGMENT_PROFILES: dict[tuple[str, str], tuple[float, float, float, float]] = {
    # (attribute, value): (base weight, peak hour UTC, amplitude, weekend multiplier)
    ("geo", "us"): (0.45, 18.0, 1.0, 1.0),
    ("geo", "eu"): (0.35, 12.0, 1.0, 0.75),
    ("geo", "apac"): (0.20, 4.0, 1.0, 1.4),
    ("device", "web"): (0.60, 14.0, 0.4, 0.6),
    ("device", "mobile"): (0.40, 21.0, 0.4, 1.5),
    ("user_tier", "free"): (0.60, 20.0, 0.2, 1.2),
    ("user_tier", "pro"): (0.30, 14.0, 0.2, 1.0),
    ("user_tier", "enterprise"): (0.10, 14.0, 0.6, 0.4),
}
"""The seasonal profile of each default attribute value; any other value gets base 1, amplitude 0.5, weekend
multiplier 1 and a peak hour spread evenly over the day by its position."""


# --- specs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    """A change injected into the stream from ``start_day`` (days from the stream's start, 0-based) up to
    ``end_day`` (exclusive; ``None``: to the end), only in records of ``segment`` (``"attribute=value"``,
    e.g. ``"geo=eu"``; ``None``: every record). Each record in scope is affected with its own seeded draw.

    - ``"topic"``: a share ``share`` of the records in scope ask about ``topic`` instead (a name among the
      spec's topics or extra topics, e.g. the off-domain ``"travel"``); their queries, retrieved documents,
      scores, answers and latencies follow that topic.
    - ``"segment_mix"``: ``attribute``'s values are redrawn for the records in scope with each value's
      seasonal weight multiplied by ``weights[value]`` (missing values: 1); volume is unchanged.
      ``attribute`` must differ from ``segment``'s attribute (e.g. geo mix of ``device=mobile``).
    - ``"null_rate"``: ``field`` (one of :data:`NULLABLE_FIELDS` or an attribute) is null with probability
      ``rate`` in scope (on top of its usual nulls: ``answer`` is null on errors and timeouts).
    - ``"latency_tail"``: a share ``share`` of the records in scope have their ``stage`` latency
      (``"retrieve"`` or ``"generate"``) multiplied by ``scale``; ``total`` follows.
    """

    kind: ShiftKind
    start_day: int
    segment: str | None = None
    end_day: int | None = None
    topic: str | None = None
    share: float = 0.3
    attribute: str | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    field: str | None = None
    rate: float = 0.5
    stage: str = "generate"
    scale: float = 5.0

    def __post_init__(self) -> None:
        where = f"Shift(kind={self.kind!r}, start_day={self.start_day})"
        if self.kind not in SHIFT_KINDS:
            raise HarnessError(f"{where}: kind must be one of {', '.join(SHIFT_KINDS)}")
        if self.start_day < 0 or (self.end_day is not None and self.end_day <= self.start_day):
            raise HarnessError(f"{where}: start_day must be >= 0 and end_day, if given, after it")
        if self.segment is not None and self.segment.count("=") != 1:
            raise HarnessError(f"{where}: segment must be 'attribute=value', got {self.segment!r}")
        if self.kind == "topic" and not self.topic:
            raise HarnessError(f"{where}: a topic shift needs topic=")
        if self.kind == "segment_mix" and (not self.attribute or not self.weights):
            raise HarnessError(f"{where}: a segment_mix shift needs attribute= and weights=")
        if self.kind == "segment_mix" and self.segment and self.segment.split("=")[0] == self.attribute:
            raise HarnessError(f"{where}: segment_mix redraws {self.attribute}; its segment must be another "
                               "attribute's")
        if any(w < 0 for w in self.weights.values()):
            raise HarnessError(f"{where}: weights must be >= 0")
        if self.kind == "null_rate" and not self.field:
            raise HarnessError(f"{where}: a null_rate shift needs field=")
        if not (0 <= self.share <= 1 and 0 <= self.rate <= 1):
            raise HarnessError(f"{where}: share and rate must be within [0, 1]")
        if self.kind == "latency_tail" and (self.stage not in LATENCY_STAGES or self.scale <= 0):
            raise HarnessError(f"{where}: stage must be one of {', '.join(LATENCY_STAGES)} and scale > 0")


@dataclass(frozen=True)
class StreamSpec:
    """Everything that determines a stream: the same spec gives the same records, byte for byte.

    ``start`` is the first day (UTC; the default is a Monday), ``days`` the stream's length,
    ``records_per_day`` the mean volume per day over a week. ``segments`` are the records' attributes and
    their values (seasonal profiles in :data:`SEGMENT_PROFILES`). ``topics`` make up the traffic (and the
    corpus and golden set); ``extra_topics`` only appear through a ``topic`` shift. ``retrieved_k``
    documents are logged per record with their scores, the top ``n_contexts`` of them as contexts.
    ``manifest_id`` is logged on every record (the bench sets the project's). ``pool_per_intent`` bounds the
    distinct queries per intent (drawn from the templates once per seed; production repeats itself).
    ``error_rate`` and ``timeout_rate`` are the mean rates over a day's records (higher at busy hours).
    """

    seed: int = 0
    start: date = date(2026, 11, 2)
    days: int = 28
    records_per_day: float = 5000.0
    segments: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_SEGMENTS
    topics: tuple[Topic, ...] = DEFAULT_TOPICS
    extra_topics: tuple[Topic, ...] = OFF_DOMAIN_TOPICS
    shifts: tuple[Shift, ...] = ()
    retrieved_k: int = 5
    n_contexts: int = 2
    manifest_id: str = "synthetic-manifest"
    pool_per_intent: int = 300
    error_rate: float = 0.01
    timeout_rate: float = 0.003

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)


# --- the compiled stream (pools, weight tables) --------------------------------------------------------------


@dataclass
class _Compiled:
    topics: list[Topic]  # spec.topics then spec.extra_topics
    attr_names: list[str]
    attr_values: list[tuple[str, ...]]
    attr_probs: list[npt.NDArray[np.float64]]  # per attribute: [weekend 0/1, hour, value]
    topic_probs: npt.NDArray[np.float64]  # [weekend, hour, topic]
    queries: pa.Array  # every topic's query pool, concatenated
    q_start: npt.NDArray[np.int64]  # per topic: first pool index
    q_size: npt.NDArray[np.int64]
    q_doc: npt.NDArray[np.int64]  # per pool entry: the intent's doc (global index), -1 off-domain
    q_docpos: npt.NDArray[np.int64]  # per pool entry: the doc's position in its topic's docs
    doc_ids: pa.Array
    doc_texts: pa.Array
    topic_docs: npt.NDArray[np.int64]  # [topic, max docs]: global doc index; row of -1 for off-domain
    topic_ndocs: npt.NDArray[np.int64]
    answers: pa.Array  # doc j's first n sentences at j*4 + n - 1; then the abstentions
    corpus_rows: list[dict[str, Any]]
    golden_pool: list[tuple[str, str, str, str]]  # (topic, intent, query, doc id)


def _segment_weights(attr: str, values: tuple[str, ...]) -> npt.NDArray[np.float64]:
    out = np.empty((2, 24, len(values)))
    for i, value in enumerate(values):
        base, peak, amp, weekend = SEGMENT_PROFILES.get((attr, value), (1.0, 24.0 * i / len(values), 0.5, 1.0))
        w = base * np.exp(amp * np.cos(2 * np.pi * (_HOUR - peak) / 24))
        out[0, :, i] = w
        out[1, :, i] = w * weekend
    return out


def _normalized(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return w / w.sum(axis=-1, keepdims=True)


def _query_pool(topic: Topic, intent: Intent, seed: int, size: int) -> list[str]:
    """Up to ``size`` distinct questions from the intent's templates (seeded by ``seed`` and the names)."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{topic.name}/{intent.name}".encode())])
    slots = dict(topic.slots)
    tries = size * 6
    template = rng.integers(len(intent.questions), size=tries)
    picks = {name: rng.integers(len(values), size=tries) for name, values in slots.items()}
    pre = rng.integers(len(_DECOR_PRE), size=tries)
    post = rng.integers(len(_DECOR_POST), size=tries)
    terse = rng.random(tries) < 0.15  # typed fast: no capital, no question mark
    used = [[n for n in slots if "{" + n + "}" in q] for q in intent.questions]
    seen: dict[str, None] = {}
    for i in range(tries):
        if len(seen) >= size:
            break
        j = int(template[i])
        q = intent.questions[j].format(**{n: slots[n][int(picks[n][i])] for n in used[j]})
        head = _DECOR_PRE[int(pre[i])]
        if head and not q.startswith("I "):
            q = q[0].lower() + q[1:]
        if terse[i]:
            q = q.lower().rstrip("?")
        seen.setdefault(head + q + _DECOR_POST[int(post[i])], None)
    return list(seen)


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in text.replace("? ", "?|").replace(". ", ".|").split("|")]
    return [p for p in parts if p]


def _compile(spec: StreamSpec) -> _Compiled:
    """The pools and weight tables of ``spec`` (what does not depend on its shifts or volume), memoized."""
    return _compiled(spec.seed, spec.segments, spec.topics, spec.extra_topics, spec.retrieved_k,
                     spec.n_contexts, spec.pool_per_intent)


@functools.lru_cache(maxsize=8)
def _compiled(seed: int, segments: tuple[tuple[str, tuple[str, ...]], ...], in_domain: tuple[Topic, ...],
              extra: tuple[Topic, ...], retrieved_k: int, n_contexts: int, pool_per_intent: int) -> _Compiled:
    spec = StreamSpec(seed=seed, segments=segments, topics=in_domain, extra_topics=extra,
                      retrieved_k=retrieved_k, n_contexts=n_contexts, pool_per_intent=pool_per_intent)
    topics = [*spec.topics, *spec.extra_topics]
    names = [t.name for t in topics]
    if len(set(names)) != len(names) or not spec.topics:
        raise HarnessError("StreamSpec: topic names must be unique and there must be at least one topic")
    if spec.retrieved_k < 1:
        raise HarnessError("StreamSpec: retrieved_k must be positive")
    if not 0 <= spec.n_contexts <= spec.retrieved_k:
        raise HarnessError(f"StreamSpec: n_contexts must be within [0, retrieved_k={spec.retrieved_k}]")
    attr_names = [a for a, _ in spec.segments]
    clash = set(attr_names) & {*RECORD_FIELDS, "topic"}
    if clash:
        raise HarnessError(f"StreamSpec: attribute {sorted(clash)[0]!r} is a record field's name")
    attr_values = [tuple(v) for _, v in spec.segments]
    attr_probs = [_normalized(_segment_weights(a, v)) for a, v in spec.segments]
    tw = np.zeros((2, 24, len(topics)))
    for i, t in enumerate(spec.topics):
        cycle = np.exp(t.hour_amplitude * np.cos(2 * np.pi * (_HOUR - t.peak_hour) / 24))
        tw[0, :, i] = t.weekday_weight * cycle
        tw[1, :, i] = t.weekend_weight * cycle
    # documents: per in-domain topic, one per intent then its general documents
    doc_ids: list[str] = []
    doc_texts: list[str] = []
    corpus_rows: list[dict[str, Any]] = []
    topic_doc_lists: list[list[int]] = []
    intent_doc: dict[tuple[str, str], int] = {}
    for t in spec.topics:
        mine: list[int] = []
        for intent in t.intents:
            if intent.passage is None:
                raise HarnessError(f"StreamSpec: topic {t.name!r} intent {intent.name!r} has no passage (an "
                                   "in-domain topic's intents are answered by the corpus)")
            intent_doc[(t.name, intent.name)] = len(doc_ids)
            mine.append(len(doc_ids))
            doc_ids.append(f"{t.name}-{intent.name}")
            doc_texts.append(intent.passage)
            corpus_rows.append({"id": doc_ids[-1], "title": f"{t.name}: {intent.name.replace('_', ' ')}",
                                "text": intent.passage, "metadata": {"topic": t.name, "intent": intent.name}})
        for doc_id, text in t.documents:
            mine.append(len(doc_ids))
            doc_ids.append(doc_id)
            doc_texts.append(text)
            corpus_rows.append({"id": doc_id, "title": f"{t.name}: {doc_id}", "text": text,
                                "metadata": {"topic": t.name}})
        topic_doc_lists.append(mine)
    if len(set(doc_ids)) != len(doc_ids):
        raise HarnessError("StreamSpec: document ids (topic-intent and the topics' documents) must be unique")
    n_docs = len(doc_ids)
    max_docs = max(len(m) for m in topic_doc_lists)
    topic_docs = np.full((len(topics), max(max_docs, n_docs)), -1, dtype=np.int64)
    topic_ndocs = np.zeros(len(topics), dtype=np.int64)
    for i, mine in enumerate(topic_doc_lists):
        topic_docs[i, :len(mine)] = mine
        topic_ndocs[i] = len(mine)
    for i in range(len(spec.topics), len(topics)):  # off-domain: retrieval wanders over the whole corpus
        topic_docs[i, :n_docs] = np.arange(n_docs)
        topic_ndocs[i] = n_docs
    if spec.retrieved_k > int(topic_ndocs.min()):
        raise HarnessError(f"StreamSpec: retrieved_k={spec.retrieved_k} is more than a topic's "
                           f"{int(topic_ndocs.min())} documents")
    queries: list[str] = []
    q_start, q_size, q_doc, q_docpos = [], [], [], []
    golden_pool: list[tuple[str, str, str, str]] = []
    for ti, t in enumerate(topics):
        q_start.append(len(queries))
        for intent in t.intents:
            pool = _query_pool(t, intent, spec.seed, spec.pool_per_intent)
            doc = intent_doc.get((t.name, intent.name), -1)
            queries.extend(pool)
            q_doc.extend([doc] * len(pool))
            q_docpos.extend([topic_doc_lists[ti].index(doc) if doc >= 0 else 0] * len(pool))
            if doc >= 0:
                golden_pool.extend((t.name, intent.name, q, doc_ids[doc]) for q in pool)
        q_size.append(len(queries) - q_start[-1])
    answers: list[str] = []
    for text in doc_texts:
        sents = _sentences(text)
        answers.extend(" ".join(sents[:min(n, len(sents))]) for n in range(1, 5))
    answers.extend(ABSTENTIONS)
    return _Compiled(
        topics=topics, attr_names=attr_names, attr_values=attr_values, attr_probs=attr_probs,
        topic_probs=_normalized(tw), queries=pa.array(queries, pa.string()),
        q_start=np.array(q_start, dtype=np.int64), q_size=np.array(q_size, dtype=np.int64),
        q_doc=np.array(q_doc, dtype=np.int64), q_docpos=np.array(q_docpos, dtype=np.int64),
        doc_ids=pa.array(doc_ids, pa.string()), doc_texts=pa.array(doc_texts, pa.string()),
        topic_docs=topic_docs, topic_ndocs=topic_ndocs, answers=pa.array(answers, pa.string()),
        corpus_rows=corpus_rows, golden_pool=golden_pool)


# --- one day, vectorized -----------------------------------------------------------------------------------


def _draw(u: npt.NDArray[np.float64], probs: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Categorical draws: row i of ``probs`` (per record) and uniform ``u[i]``."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    return (u[:, None] > cum).sum(axis=1).astype(np.int64)


def _scope(c: _Compiled, shift: Shift, day: int, attrs: list[npt.NDArray[np.int64]], n: int,
           ) -> npt.NDArray[np.bool_]:
    if day < shift.start_day or (shift.end_day is not None and day >= shift.end_day):
        return np.zeros(n, dtype=bool)
    if shift.segment is None:
        return np.ones(n, dtype=bool)
    attr, value = shift.segment.split("=")
    a = c.attr_names.index(attr)
    return attrs[a] == c.attr_values[a].index(value)


def _check(spec: StreamSpec, c: _Compiled) -> None:
    if spec.days < 1 or spec.records_per_day <= 0:
        raise HarnessError("StreamSpec: days and records_per_day must be positive")
    topic_names = [t.name for t in c.topics]
    for s in spec.shifts:
        where = f"Shift(kind={s.kind!r}, start_day={s.start_day})"
        if s.segment is not None:
            attr, value = s.segment.split("=")
            if attr not in c.attr_names or value not in c.attr_values[c.attr_names.index(attr)]:
                raise HarnessError(f"{where}: segment {s.segment!r} names no attribute value of the stream "
                                   f"({', '.join(f'{a}={v}' for a, vs in spec.segments for v in vs)})")
        if s.kind == "topic" and s.topic not in topic_names:
            raise HarnessError(f"{where}: topic {s.topic!r} is none of {', '.join(topic_names)}")
        if s.kind == "segment_mix":
            if s.attribute not in c.attr_names:
                raise HarnessError(f"{where}: attribute {s.attribute!r} is none of {', '.join(c.attr_names)}")
            unknown = set(s.weights) - set(c.attr_values[c.attr_names.index(s.attribute)])
            if unknown:
                raise HarnessError(f"{where}: weights name {sorted(unknown)[0]!r}, not a value of {s.attribute}")
        if s.kind == "null_rate" and s.field not in (*NULLABLE_FIELDS, *c.attr_names):
            raise HarnessError(f"{where}: field {s.field!r} is none of "
                               f"{', '.join((*NULLABLE_FIELDS, *c.attr_names))}")


def _day_table(spec: StreamSpec, c: _Compiled, day: int) -> pa.Table:
    d = spec.day(day)
    weekday = d.weekday()
    weekend = int(weekday >= 5)
    rng = np.random.default_rng([spec.seed, day])
    counts = rng.poisson(spec.records_per_day * WEEKDAY_VOLUME[weekday] * HOUR_SHARE)
    n = int(counts.sum())
    hour = np.repeat(_HOUR, counts)
    ms = np.sort(hour * 3_600_000 + rng.integers(0, 3_600_000, n))
    hour = ms // 3_600_000
    attrs = [_draw(rng.random(n), p[weekend][hour]) for p in c.attr_probs]
    topic = _draw(rng.random(n), c.topic_probs[weekend][hour])
    u_query = rng.random(n)
    u_hit = rng.random(n)
    alt = rng.integers(1, 1 << 20, n)
    z_score = rng.standard_normal(n)
    gaps = rng.exponential(0.035, (n, spec.retrieved_k))
    u_sent = rng.random((n, 3))
    u_abstain = rng.random(n)
    z_lat = rng.standard_normal((n, 3))
    u_err = rng.random(n)
    u_kind = rng.random(n)
    u_timeout = rng.random(n)

    nulls: dict[str, npt.NDArray[np.bool_]] = {}
    tails: list[tuple[str, npt.NDArray[np.bool_], float]] = []
    for i, s in enumerate(spec.shifts):
        srng = np.random.default_rng([spec.seed, day, 1000 + i])
        u = srng.random(n)
        scope = _scope(c, s, day, attrs, n)
        if s.kind == "segment_mix":
            assert s.attribute is not None
            a = c.attr_names.index(s.attribute)
            mult = np.array([s.weights.get(v, 1.0) for v in c.attr_values[a]])
            probs = _normalized(_segment_weights(s.attribute, c.attr_values[a]) * mult)
            redrawn = _draw(u, probs[weekend][hour])
            attrs[a] = np.where(scope, redrawn, attrs[a])
        elif s.kind == "topic":
            t = [x.name for x in c.topics].index(str(s.topic))
            topic = np.where(scope & (u < s.share), t, topic)
        elif s.kind == "null_rate":
            assert s.field is not None
            nulls[s.field] = nulls.get(s.field, np.zeros(n, dtype=bool)) | (scope & (u < s.rate))
        else:
            tails.append((s.stage, scope & (u < s.share), s.scale))

    # query and retrieval, from the (possibly shifted) topic
    qidx = c.q_start[topic] + np.minimum((u_query * c.q_size[topic]).astype(np.int64), c.q_size[topic] - 1)
    ndocs = c.topic_ndocs[topic]
    off = c.q_doc[qidx] < 0
    pos0 = np.where(off | (u_hit >= 0.85), alt % ndocs, c.q_docpos[qidx])
    ranks = np.arange(spec.retrieved_k)
    docs = c.topic_docs[topic[:, None], (pos0[:, None] + ranks[None, :]) % ndocs[:, None]]
    mu = np.array([t.score_mean for t in c.topics])[topic]
    sd = np.array([t.score_sd for t in c.topics])[topic]
    top1 = np.clip(mu + sd * z_score, 0.05, 0.99)
    scores = np.round(np.clip(top1[:, None] - np.cumsum(gaps, axis=1) + gaps[:, :1], 0.0, 1.0), 4)

    # answer: the top document's first 1-4 sentences, or an abstention
    n_sent = 1 + (u_sent < np.array([t.answer_p for t in c.topics])[topic][:, None]).sum(axis=1)
    abstain = u_abstain < np.array([t.abstain_rate for t in c.topics])[topic]
    ans = np.where(abstain, len(c.answers) - len(ABSTENTIONS) + (alt % len(ABSTENTIONS)),
                   docs[:, 0] * 4 + n_sent - 1)

    # service: latency per stage, errors, timeouts (all busier at peak hours)
    load = _LOAD[hour]
    retrieve = 0.06 * np.exp(0.35 * z_lat[:, 0]) * (1 + 0.3 * load)
    gen_s = np.array([t.generate_s for t in c.topics])[topic]
    generate = gen_s * (0.6 + 0.2 * np.where(abstain, 1, n_sent)) * np.exp(0.4 * z_lat[:, 1]) * (1 + 0.25 * load)
    overhead = 0.015 * np.exp(0.3 * z_lat[:, 2])
    busy = (0.6 + 0.8 * load) / _BUSY_MEAN  # mean 1 over a day's records
    timeout = u_timeout < spec.timeout_rate * busy
    error = (u_err < spec.error_rate * busy) & ~timeout
    generate = np.where(error, generate * 0.3, generate)
    for stage, hit, scale in tails:
        if stage == "retrieve":
            retrieve = np.where(hit, retrieve * scale, retrieve)
        else:
            generate = np.where(hit, generate * scale, generate)
    retrieve = np.round(retrieve, 4)
    generate = np.where(timeout, np.round(DEADLINE_S - retrieve - 0.02, 4), np.round(generate, 4))
    total = np.where(timeout, DEADLINE_S, np.round(retrieve + generate + overhead, 4))
    kind = _draw(u_kind, np.broadcast_to(np.array(ERROR_KIND_P), (n, len(ERROR_KIND_P))))

    # the Arrow columns, in the record's field order
    day_start = np.datetime64(d.isoformat(), "ms")
    stamps = pc.strftime(pa.array(day_start + ms.astype("timedelta64[ms]")), format="%Y-%m-%dT%H:%M:%SZ")
    ids = pc.binary_join_element_wise(f"syn{spec.seed}-{d.strftime('%Y%m%d')}-",
                                      pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 6, "0"), "")

    def mask(name: str) -> pa.Array | None:
        m = nulls.get(name)
        return None if m is None else pa.array(m)

    def taken(pool: pa.Array, idx: npt.NDArray[np.int64], null: npt.NDArray[np.bool_] | None) -> pa.Array:
        return pc.take(pool, pa.array(idx, pa.int64(), mask=null))

    k, nc = spec.retrieved_k, spec.n_contexts
    retrieved = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * k),
        pa.StructArray.from_arrays([pc.take(c.doc_ids, pa.array(docs.ravel())), pa.array(scores.ravel())],
                                   names=["doc_id", "score"]),
        mask=mask("retrieved"))
    contexts = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * nc),
        pc.take(c.doc_texts, pa.array(docs[:, :nc].ravel())), mask=mask("contexts"))
    latency = pa.StructArray.from_arrays([pa.array(retrieve), pa.array(generate), pa.array(total)],
                                         names=["retrieve", "generate", "total"], mask=mask("latency_s"))
    no_answer = error | timeout | nulls.get("answer", np.zeros(n, dtype=bool))
    columns: dict[str, pa.Array] = {
        "id": ids,
        "timestamp": stamps,
        "query": taken(c.queries, qidx, nulls.get("query")),
        "answer": taken(c.answers, ans, no_answer),
        "retrieved": retrieved,
        "contexts": contexts,
        "latency_s": latency,
        "error": taken(pa.array(ERROR_KINDS, pa.string()), kind, ~error),
        "timeout": pa.array(timeout),
        "manifest_id": taken(pa.array([spec.manifest_id], pa.string()), np.zeros(n, dtype=np.int64),
                             nulls.get("manifest_id")),
    }
    for a, name in enumerate(c.attr_names):
        columns[name] = taken(pa.array(c.attr_values[a], pa.string()), attrs[a], nulls.get(name))
    columns["topic"] = taken(pa.array([t.name for t in c.topics], pa.string()), topic, None)
    return pa.table(columns)


# --- the public faces --------------------------------------------------------------------------------------


def day_tables(spec: StreamSpec, *, truth: bool = False) -> Iterator[tuple[date, pa.Table]]:
    """One Arrow table per day, in order. ``truth=True`` keeps the ``topic`` column (the generator's ground
    truth, which a real log would not carry); by default it is dropped."""
    c = _compile(spec)
    _check(spec, c)
    for day in range(spec.days):
        t = _day_table(spec, c, day)
        yield spec.day(day), (t if truth else t.drop_columns(["topic"]))


def table(spec: StreamSpec, *, truth: bool = False) -> pa.Table:
    """The whole stream as one Arrow table (columns: :data:`RECORD_FIELDS` then the attributes; ``timestamp``
    is ISO-8601 text with ``Z``, as in the JSONL; ``retrieved`` list<struct<doc_id, score>>, ``latency_s``
    struct<retrieve, generate, total>)."""
    return pa.concat_tables([t for _, t in day_tables(spec, truth=truth)])


def records(spec: StreamSpec, *, truth: bool = False) -> Iterator[dict[str, Any]]:
    """The stream's records as dicts, in time order (the default field names of
    :class:`harness.types.LogFieldMap`, then the attributes)."""
    for _, t in day_tables(spec, truth=truth):
        yield from t.to_pylist()


def _atomic_file(path: Path) -> tuple[Path, Path]:
    from harness.storage import check_writable

    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; a written log is an ordinary file
    os.close(fd)
    return path, Path(tmp)


def write_jsonl(spec: StreamSpec, path: str | Path) -> Path:
    """Write the stream as JSON Lines (DuckDB writes each day's Arrow table: no per-record Python), atomically."""
    import duckdb

    path, tmp = _atomic_file(Path(path))
    try:
        con = duckdb.connect()
        with tmp.open("wb") as out:
            for _, day in day_tables(spec):
                chunk = tmp.with_name(tmp.name + ".day")
                con.register("day_records", day)
                con.execute(f"COPY (SELECT * FROM day_records) TO '{chunk}' (FORMAT JSON)")
                con.unregister("day_records")
                with chunk.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
                chunk.unlink()
            out.flush()
            os.fsync(out.fileno())
        con.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".day").unlink(missing_ok=True)
        raise
    return path


def write_parquet(spec: StreamSpec, path: str | Path) -> Path:
    """Write the stream as one Parquet file (a row group per day), atomically."""
    import pyarrow.parquet as pq

    path, tmp = _atomic_file(Path(path))
    try:
        writer: pq.ParquetWriter | None = None
        for _, day in day_tables(spec):
            if writer is None:
                writer = pq.ParquetWriter(tmp, day.schema, compression="zstd")
            writer.write_table(day)
        if writer is not None:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def corpus(spec: StreamSpec) -> list[dict[str, Any]]:
    """The corpus the stream retrieves from: one document per in-domain intent (``<topic>-<intent>``) and
    each topic's general documents; rows of ``harness/schemas/corpus_doc.schema.json``."""
    return [dict(r) for r in _compile(spec).corpus_rows]


def golden_cases(spec: StreamSpec, n_per_topic: int = 12) -> list[dict[str, Any]]:
    """A golden set covering the spec's (in-domain) topics: ``n_per_topic`` distinct queries per topic drawn
    from the stream's own query pools (seeded), intents round-robin; relevance is the intent's document
    (grade 1); tags ``{topic, intent}``. Rows of ``harness/schemas/golden_case.schema.json``."""
    c = _compile(spec)
    out: list[dict[str, Any]] = []
    for ti, t in enumerate(spec.topics):
        rng = np.random.default_rng([spec.seed, 7, ti])
        by_intent = [[g for g in c.golden_pool if g[0] == t.name and g[1] == i.name] for i in t.intents]
        order = [rng.permutation(len(pool)) for pool in by_intent]
        picked: list[tuple[str, str, str, str]] = []
        for j in range(max(len(p) for p in by_intent)):
            for pool, perm in zip(by_intent, order, strict=True):
                if j < len(pool) and len(picked) < n_per_topic:
                    picked.append(pool[int(perm[j])])
        for j, (topic, intent, query, doc) in enumerate(picked):
            out.append({"id": f"{topic}-{j + 1:03d}", "query": query, "relevance": {doc: 1},
                        "tags": {"topic": topic, "intent": intent}})
    return out


def default_monitor(spec: StreamSpec) -> dict[str, Any]:
    """The ``[monitor]`` table :func:`write_project` writes: segments geo and device, an SLO the unshifted
    stream meets (total latency p95 <= 5 s; error rate <= 3% and timeout rate <= 1.5%, three and five
    times the stream's rates, judged on windows of at least 1,000 records: the rates are judged by their
    Wilson upper bound, which on a window of 128 records with no error at all is 2.1%) and null-rate limits
    on the fields a shift can null (answer: up to 5%, as errors and timeouts leave it null)."""
    segments = [a for a in ("geo", "device") if a in dict(spec.segments)]
    return {
        "segments": segments,
        "slo": {"latency_s": {"total": {"p95": 5.0}}, "error_rate": round(3 * spec.error_rate, 6),
                "timeout_rate": round(5 * spec.timeout_rate, 6), "min_records": 1000},
        "log_contract": {"max_null_rate": {"query": 0.0, "answer": 0.05, "retrieved": 0.01, "contexts": 0.01,
                                           "latency_s": 0.01, "manifest_id": 0.01}},
        "seed": spec.seed,
    }


def write_project(spec: StreamSpec, folder: str | Path, *, n_per_topic: int = 12,
                  monitor: Mapping[str, Any] | None = None, fmt: str = "toml") -> Path:
    """A locked project for the stream (golden set, corpus, MiniLM flat index and dense retriever, a
    ``[monitor]`` table: :func:`default_monitor` unless ``monitor`` is given), written by
    :func:`harness.importers.project.write_project` (validated before anything is written). Returns the
    manifest's path."""
    from harness.importers.project import (
        CORPUS_FILE,
        GOLDEN_FILE,
        ImportedProject,
        manifest_data,
        retrieval_artifacts,
        retrieval_files,
    )
    from harness.importers.project import write_project as write_imported

    retriever = {"k": 10, "query_prefix": "", "doc_prefix": "", "text_fields": ["title", "text"],
                 "separator": " "}
    artifacts = {"golden": {"kind": "golden", "version": f"synthetic-{spec.seed}", "path": GOLDEN_FILE},
                 **retrieval_artifacts(f"synthetic-{spec.seed}", retriever)}
    manifest = manifest_data(
        f"synthetic-{spec.seed}",
        f"A synthetic production stream's project (harness.monitor.synthetic, seed {spec.seed}).",
        artifacts, monitor=dict(monitor) if monitor is not None else default_monitor(spec))
    project = ImportedProject(
        files={CORPUS_FILE: corpus(spec), GOLDEN_FILE: golden_cases(spec, n_per_topic), **retrieval_files()},
        manifests={"harness.toml": manifest})
    return write_imported(folder, project, fmt)


def expected_share(spec: StreamSpec, attribute: str, weekday: int) -> dict[str, float]:
    """The unshifted stream's expected share of each value of ``attribute`` over a whole ``weekday``
    (0 Monday): the hourly mixes weighted by the hourly volume (an oracle for tests)."""
    c = _compile(spec)
    a = c.attr_names.index(attribute)
    mix = c.attr_probs[a][int(weekday >= 5)]
    share = (HOUR_SHARE[:, None] * mix).sum(axis=0)
    return dict(zip(c.attr_values[a], share.tolist(), strict=True))
