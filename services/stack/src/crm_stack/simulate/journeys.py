"""The customers of a simulated business and their journeys: a pure, seeded event generator.

No I/O and no wall clock: `TrafficGenerator(config)` yields `SimEvent`s, each a structured-mode
CloudEvent (a JSON-ready dict) of `crm.interaction.recorded` plus how to send it. The same
config (seed, start, rate, shares) gives the same events, byte for byte.

People are drawn from the seed: a name, an email, a phone, a cookie, a segment (browsers who
never sign up, subscribers, customers, loyal members) and their own rhythm (how often they act,
how often they buy, how much). Each step of a person follows their journey: anonymous page
views, a signup that stitches the cookie to an email, later a call or an app login that links
the phone (and then events by phone alone), email opens and clicks of campaigns, purchases and
refunds of their own orders, complaints and support requests (with a case id once the call
centre opened one, without before), replies on cases, feedback with CSAT/NPS (linked to the
case when there was one), consent given and withdrawn, unsubscribes, memberships, referrals,
reviews. Churners stop after a number of steps and are never heard of again.

Time: the simulated clock is the send schedule. Event `n` happens at
`start + n / rate` (live traffic: with the sender holding the rate, an event's time is the
moment it is sent). With `backfill_events = B > 0` the first B events are history instead:
their times spread evenly over the `backfill_days` before `start`, so that rhythms show in
days, and live traffic follows. A share of events is late (`late_share`): their time is moved
back by one minute to three days, as a till that synchronises after being offline; and a
share is sent twice (`duplicate_share`), the copy exactly equal and a few events later, as a
channel that retries.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

RECORDED = "crm.interaction.recorded"

FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken",
    "Margaret", "Dennis", "Sophie", "Tim", "Hedy", "Linus", "Karen", "Niklaus", "Joan", "Guido",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Perlman",
    "Thompson", "Hamilton", "Ritchie", "Wilson", "Berners", "Lamarr", "Torvalds", "Jones",
    "Wirth", "Clarke", "Rossum",
)  # fmt: skip
CITIES = (("GB", "London", "en-GB"), ("FR", "Paris", "fr-FR"), ("DE", "Berlin", "de-DE"),
          ("NL", "Amsterdam", "nl-NL"), ("IE", "Dublin", "en-IE"))  # fmt: skip
PAGES = ("/", "/pricing", "/shop/shoes", "/shop/coats", "/shop/bags", "/help", "/blog/care")


class Source(StrEnum):
    """The channel systems that publish interactions (CloudEvents `source`)."""

    WEBSHOP = "urn:channel:webshop"
    EMAIL = "urn:channel:email-platform"
    CALLCENTRE = "urn:channel:callcentre"
    CHAT = "urn:channel:chat"
    POS = "urn:channel:pos"
    APP = "urn:channel:app"


class Route(StrEnum):
    """How an event travels to the back end."""

    KAFKA_BINARY = "kafka-binary"
    KAFKA_STRUCTURED = "kafka-structured"
    HTTP = "http"


class Segment(StrEnum):
    """What kind of customer a person is."""

    BROWSER = "browser"  # looks around, never signs up
    SUBSCRIBER = "subscriber"  # signs up, reads emails, rarely buys
    CUSTOMER = "customer"  # buys in a rhythm of their own
    LOYAL = "loyal"  # buys often, joins the programme, refers friends


SEGMENT_WEIGHTS = {Segment.BROWSER: 25, Segment.SUBSCRIBER: 25, Segment.CUSTOMER: 38,
                   Segment.LOYAL: 12}  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; the same config always gives the same events."""

    seed: int = 1
    contacts: int = 10_000
    start: datetime = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    rate: float = 100.0
    http_share: float = 0.1
    structured_share: float = 0.3
    duplicate_share: float = 0.01
    late_share: float = 0.02
    churn_share: float = 0.15
    backfill_events: int = 0
    backfill_days: float = 90.0
    campaigns: int = 12

    def __post_init__(self) -> None:
        if self.contacts < 1 or self.rate <= 0:
            raise ValueError("contacts must be at least 1 and rate positive")
        for name in ("http_share", "structured_share", "duplicate_share", "late_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")


@dataclass(frozen=True)
class SimEvent:
    """One event to send: the structured CloudEvent, its record key and how it travels."""

    n: int  # position in the stream (duplicates repeat their original's)
    event: dict[str, Any]
    key: str
    route: Route
    person: int
    step: str
    duplicate: bool = False
    late: bool = False

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def source(self) -> str:
        return str(self.event["source"])


@dataclass
class Person:
    """One simulated customer: who they are, their rhythm, and where their journey stands."""

    index: int
    first: str
    last: str
    email: str
    phone: str
    anonymous_id: str
    webshop_id: str
    segment: Segment
    activity: float  # relative steps per unit of stream
    buy_chance: float  # chance that a step of a known customer is a purchase
    basket: float  # mean order value
    currency: str
    country: tuple[str, str, str]
    churn_after: int | None  # steps before going quiet (None: stays)
    steps: int = 0
    signed_up: bool = False
    phone_linked: bool = False
    subscribed: bool = False
    member: bool = False
    orders: list[tuple[str, str]] = field(default_factory=list)  # (order id, amount)
    refunded: set[str] = field(default_factory=set)
    open_cases: list[str] = field(default_factory=list)
    closed_cases: list[str] = field(default_factory=list)
    pending_feedback: str | None = None  # case id awaiting a CSAT answer


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()


def make_person(seed: int, index: int, churn_share: float = 0.15) -> Person:
    """Person `index` of the population of `seed` (the same every time)."""
    rng = random.Random(f"{seed}:{index}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    tag = _digest(seed, index)[:10]
    segment = rng.choices(list(SEGMENT_WEIGHTS), weights=list(SEGMENT_WEIGHTS.values()))[0]
    buy = {Segment.BROWSER: 0.0, Segment.SUBSCRIBER: 0.03, Segment.CUSTOMER: 0.25,
           Segment.LOYAL: 0.4}[segment]  # fmt: skip
    return Person(
        index=index,
        first=first,
        last=last,
        email=f"{first.lower()}.{last.lower()}.{tag}@example.com",
        phone=f"+44 74{rng.randrange(10**8):08d}",
        anonymous_id=f"anon-{_digest('anon', seed, index)[:16]}",
        webshop_id=f"w{tag}",
        segment=segment,
        activity=rng.lognormvariate(0, 0.8),
        buy_chance=min(0.8, buy * rng.lognormvariate(0, 0.5)),
        basket=round(rng.lognormvariate(math.log(55), 0.6), 2),
        currency=rng.choices(["EUR", "GBP"], weights=[85, 15])[0],
        country=rng.choice(CITIES),
        churn_after=_churn_after(rng, segment, churn_share),
    )


def _churn_after(rng: random.Random, segment: Segment, churn_share: float) -> int | None:
    if segment is Segment.BROWSER:
        return rng.randrange(1, 8)  # a few page views, then gone
    return rng.randrange(4, 30) if rng.random() < churn_share else None


@dataclass(frozen=True)
class Touch:
    """One step of a journey before it is dressed as a CloudEvent."""

    step: str
    source: Source
    data: dict[str, Any]


class Journeys:
    """What each person does next, given where their journey stands."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._counter = 0

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self.config.seed:x}-{self._counter:x}"

    def next_touch(self, p: Person) -> Touch:
        """The person's next step (and the state it leaves them in)."""
        p.steps += 1
        if not p.signed_up:
            return self._anonymous(p)
        if p.pending_feedback and self.rng.random() < 0.6:
            return self._feedback(p, p.pending_feedback)
        if not p.phone_linked and self.rng.random() < 0.15:
            return self._link_phone(p)
        return self._known(p)

    # -- before and at signup ------------------------------------------------------------
    def _anonymous(self, p: Person) -> Touch:
        ready = p.steps > 1 + p.index % 3
        if p.segment is not Segment.BROWSER and ready:
            p.signed_up = True
            p.subscribed = self.rng.random() < 0.7
            country, city, locale = p.country
            return Touch(
                "signup",
                Source.WEBSHOP,
                {
                    "channel": "web",
                    "kind": "signup",
                    "identity": {"anonymous_id": p.anonymous_id, "email": p.email},
                    "traits": {
                        "first_name": p.first,
                        "last_name": p.last,
                        "country": country,
                        "city": city,
                        "locale": locale,
                    },
                    "properties": {"newsletter": p.subscribed},
                },
            )
        return self._page_view(p, {"anonymous_id": p.anonymous_id})

    def _page_view(self, p: Person, identity: dict[str, Any]) -> Touch:
        return Touch(
            "page_view",
            Source.WEBSHOP,
            {
                "channel": "web",
                "kind": "page_view",
                "identity": identity,
                "properties": {"path": self.rng.choice(PAGES)},
            },
        )

    def _link_phone(self, p: Person) -> Touch:
        p.phone_linked = True
        if self.rng.random() < 0.5:
            return Touch(
                "app_login",
                Source.APP,
                {
                    "channel": "app",
                    "kind": "form_submitted",
                    "identity": {"email": p.email, "phone": p.phone},
                    "properties": {"form": "app_profile"},
                },
            )
        return Touch(
            "call",
            Source.CALLCENTRE,
            {
                "channel": "phone",
                "kind": "call",
                "identity": {"email": p.email, "phone": p.phone},
                "properties": {"minutes": self.rng.randrange(1, 15)},
            },
        )

    # -- a known customer ----------------------------------------------------------------
    def _known(self, p: Person) -> Touch:
        r = self.rng.random()
        if r < p.buy_chance:
            return self._purchase(p)
        r = self.rng.random()
        choices: list[tuple[float, Any]] = [
            (30 if p.subscribed else 0, self._email),
            (
                20,
                lambda q: self._page_view(
                    q, {"external_ids": {"webshop": q.webshop_id}, "anonymous_id": q.anonymous_id}
                ),
            ),
            (4 if p.orders and len(p.refunded) < len(p.orders) else 0, self._refund),
            (3, self._complaint),
            (5, self._support),
            (6 if p.open_cases else 0, self._case_reply),
            (3, lambda q: self._feedback(q, None)),
            (3 if p.subscribed else 1, self._consent),
            (2 if p.subscribed else 0, self._unsubscribe),
            (2 if p.segment is Segment.LOYAL and not p.member else 0, self._membership),
            (3 if p.segment is Segment.LOYAL else 0, self._referral_or_review),
        ]
        total = sum(w for w, _ in choices)
        for weight, make in choices:
            if r * total < weight:
                touch: Touch = make(p)
                return touch
            r -= weight / total
        return self._page_view(p, {"anonymous_id": p.anonymous_id})

    def _campaign(self) -> str:
        return f"cmp-{self.rng.randrange(self.config.campaigns) + 1:03d}"

    def _email(self, p: Person) -> Touch:
        kind = "email_clicked" if self.rng.random() < 0.3 else "email_opened"
        return Touch(
            kind,
            Source.EMAIL,
            {
                "channel": "email",
                "kind": kind,
                "identity": {"email": p.email},
                "campaign_id": self._campaign(),
            },
        )

    def _purchase(self, p: Person) -> Touch:
        order = self._id("ord")
        amount = f"{max(2.0, self.rng.gauss(p.basket, p.basket / 3)):.2f}"
        p.orders.append((order, amount))
        channel, source = self.rng.choice(
            [("web", Source.WEBSHOP), ("store", Source.POS), ("app", Source.APP)]
        )
        identity: dict[str, Any] = {"email": p.email, "external_ids": {"webshop": p.webshop_id}}
        if source is Source.POS and p.phone_linked and self.rng.random() < 0.5:
            identity = {"phone": p.phone}  # the till knows the loyalty card's phone only
        data: dict[str, Any] = {
            "channel": channel,
            "kind": "purchase",
            "identity": identity,
            "value": {"amount": amount, "currency": p.currency},
            "properties": {"order_id": order, "items": self.rng.randrange(1, 6)},
        }
        if p.subscribed and self.rng.random() < 0.2:
            data["campaign_id"] = self._campaign()  # attributed to the email that led to it
        return Touch("purchase", source, data)

    def _refund(self, p: Person) -> Touch:
        order, amount = next(o for o in p.orders if o[0] not in p.refunded)
        p.refunded.add(order)
        return Touch(
            "refund",
            Source.WEBSHOP,
            {
                "channel": "web",
                "kind": "refund",
                "identity": {"email": p.email, "external_ids": {"webshop": p.webshop_id}},
                "value": {"amount": amount, "currency": p.currency},
                "properties": {"order_id": order},
            },
        )

    def _contact_identity(self, p: Person) -> dict[str, Any]:
        if p.phone_linked and self.rng.random() < 0.6:
            return {"phone": p.phone}  # the call centre's caller id
        return {"email": p.email}

    def _open_case(self, p: Person) -> str:
        case = self._id("case")
        p.open_cases.append(case)
        return case

    def _complaint(self, p: Person) -> Touch:
        channel, source = self.rng.choice(
            [("phone", Source.CALLCENTRE), ("chat", Source.CHAT), ("email", Source.EMAIL)]
        )
        data: dict[str, Any] = {
            "channel": channel,
            "kind": "complaint",
            "identity": self._contact_identity(p),
            "properties": {"topic": self.rng.choice(["delivery", "quality", "billing"])},
        }
        if channel == "phone":  # the agent opened a case while on the call
            data["case_id"] = self._open_case(p)
        return Touch("complaint", source, data)

    def _support(self, p: Person) -> Touch:
        channel, source = self.rng.choice([("chat", Source.CHAT), ("phone", Source.CALLCENTRE)])
        data: dict[str, Any] = {
            "channel": channel,
            "kind": "support_request",
            "identity": self._contact_identity(p),
            "properties": {"topic": self.rng.choice(["sizing", "returns", "account", "order"])},
        }
        if self.rng.random() < 0.5:
            data["case_id"] = self._open_case(p)
        return Touch("support_request", source, data)

    def _case_reply(self, p: Person) -> Touch:
        case = p.open_cases[0]
        if self.rng.random() < 0.5:  # the customer's reply settles it
            p.open_cases.pop(0)
            p.closed_cases.append(case)
            p.pending_feedback = case
        return Touch(
            "case_reply",
            Source.CHAT,
            {
                "channel": "support",
                "kind": "case_reply",
                "identity": self._contact_identity(p),
                "case_id": case,
            },
        )

    def _feedback(self, p: Person, case: str | None) -> Touch:
        data: dict[str, Any] = {
            "channel": "email",
            "kind": "feedback",
            "identity": {"email": p.email},
        }
        happy = p.segment is Segment.LOYAL or self.rng.random() < 0.6
        if case is not None:
            p.pending_feedback = None
            data["case_id"] = case
            data["csat"] = self.rng.randint(4, 5) if happy else self.rng.randint(1, 3)
        else:
            data["nps"] = self.rng.randint(8, 10) if happy else self.rng.randint(0, 7)
        return Touch("feedback", Source.EMAIL, data)

    def _consent(self, p: Person) -> Touch:
        granted = not p.subscribed
        p.subscribed = granted
        kind = "consent_given" if granted else "consent_withdrawn"
        return Touch(
            kind,
            Source.WEBSHOP,
            {
                "channel": "web",
                "kind": kind,
                "identity": {"email": p.email, "external_ids": {"webshop": p.webshop_id}},
                "consent": {"purpose": "marketing", "channel": "email"},
            },
        )

    def _unsubscribe(self, p: Person) -> Touch:
        p.subscribed = False
        return Touch(
            "unsubscribe",
            Source.EMAIL,
            {
                "channel": "email",
                "kind": "unsubscribe",
                "identity": {"email": p.email},
                "campaign_id": self._campaign(),
            },
        )

    def _membership(self, p: Person) -> Touch:
        p.member = True
        return Touch(
            "membership_joined",
            Source.APP,
            {
                "channel": "app",
                "kind": "membership_joined",
                "identity": {"email": p.email, "external_ids": {"webshop": p.webshop_id}},
                "properties": {"programme": "gold-club"},
            },
        )

    def _referral_or_review(self, p: Person) -> Touch:
        if self.rng.random() < 0.5:
            return Touch(
                "referral",
                Source.WEBSHOP,
                {
                    "channel": "web",
                    "kind": "referral",
                    "identity": {"email": p.email},
                    "properties": {"referral_code": f"ref-{p.webshop_id}"},
                },
            )
        return Touch(
            "review",
            Source.WEBSHOP,
            {
                "channel": "web",
                "kind": "review",
                "identity": {"email": p.email},
                "properties": {"rating": self.rng.randint(3, 5)},
            },
        )


_KEY_NAMESPACE = b"crm.interactions.raw.v1 partition key\x00"


def record_key(identity: dict[str, Any]) -> str:
    """The record key a channel would use: a hash of the strongest identifier, never in clear."""
    if identity.get("external_ids"):
        system = min(identity["external_ids"])
        kind, value = "external_id", f"{system}:{identity['external_ids'][system]}"
    elif identity.get("email"):
        kind, value = "email", identity["email"].strip().lower()
    elif identity.get("phone"):
        kind, value = "phone", "".join(c for c in identity["phone"] if c.isdigit())
    else:
        kind, value = "anonymous_id", identity["anonymous_id"]
    return hashlib.sha256(_KEY_NAMESPACE + f"{kind}\x00{value}".encode()).hexdigest()


def format_time(value: datetime) -> str:
    """RFC 3339 with milliseconds."""
    text = value.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class TrafficGenerator:
    """The stream of events of a simulated business, in send order."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.journeys = Journeys(config, self.rng)
        self.people: dict[int, Person] = {}
        self.n = 0
        self._due: list[tuple[float, int]] = []
        self._repeats: deque[tuple[int, SimEvent]] = deque()
        self._emitted = 0
        self._anchor = (config.backfill_events, config.start, config.rate)
        for index in range(config.contacts):
            # Who acts first is spread over the first pass of the population.
            heapq.heappush(self._due, (self.rng.random() * config.contacts, index))

    def event_time(self, n: int) -> datetime:
        """When event `n` happens on the simulated clock."""
        c = self.config
        if n < c.backfill_events:
            return c.start - timedelta(days=c.backfill_days * (1 - n / c.backfill_events))
        anchor_n, anchor_time, rate = self._anchor
        return anchor_time + timedelta(seconds=(n - anchor_n) / rate)

    def retime(self, *, start: datetime, rate: float) -> None:
        """From the next event on, the clock restarts at `start` and runs at `rate` events/s.

        For a sender that changes its rate (a benchmark stepping the load), so that event
        times keep following the send schedule.
        """
        if start.tzinfo is None or rate <= 0:
            raise ValueError("start must be timezone-aware and rate positive")
        self._anchor = (max(self.n, self.config.backfill_events), start, rate)

    def _person(self, index: int) -> Person:
        person = self.people.get(index)
        if person is None:
            person = self.people[index] = make_person(
                self.config.seed, index, self.config.churn_share
            )
        return person

    def __iter__(self) -> Iterator[SimEvent]:
        return self

    def __next__(self) -> SimEvent:
        self._emitted += 1
        if self._repeats and self._repeats[0][0] <= self._emitted:
            return self._repeats.popleft()[1]
        if not self._due:
            raise StopIteration  # everybody churned
        key, index = heapq.heappop(self._due)
        person = self._person(index)
        touch = self.journeys.next_touch(person)
        if person.churn_after is None or person.steps < person.churn_after:
            gap = self.rng.expovariate(1.0) * self.config.contacts / person.activity
            heapq.heappush(self._due, (key + gap, index))
        event = self._dress(touch, person)
        if self.rng.random() < self.config.duplicate_share:
            self._repeats.append((self._emitted + self.rng.randrange(1, 20), _as_duplicate(event)))
        return event

    def _dress(self, touch: Touch, person: Person) -> SimEvent:
        n = self.n
        self.n += 1
        when = self.event_time(n)
        late = self.rng.random() < self.config.late_share
        if late:
            when -= timedelta(seconds=60 * math.exp(self.rng.uniform(0, math.log(60 * 24 * 3))))
        r = self.rng.random()
        if r < self.config.http_share:
            route = Route.HTTP
        elif self.rng.random() < self.config.structured_share:
            route = Route.KAFKA_STRUCTURED
        else:
            route = Route.KAFKA_BINARY
        event = {
            "specversion": "1.0",
            "id": f"sim-{self.config.seed:x}-{n}",
            "source": touch.source.value,
            "type": RECORDED,
            "time": format_time(when),
            "data": touch.data,
        }
        return SimEvent(
            n=n,
            event=event,
            key=record_key(touch.data["identity"]),
            route=route,
            person=person.index,
            step=touch.step,
            late=late,
        )


def _as_duplicate(event: SimEvent) -> SimEvent:
    return SimEvent(
        n=event.n,
        event=event.event,
        key=event.key,
        route=event.route,
        person=event.person,
        step=event.step,
        duplicate=True,
        late=event.late,
    )


def sequence_number(event_id: str, seed: int) -> int | None:
    """`n` of an event id of this seed's stream, None for any other id."""
    prefix = f"sim-{seed:x}-"
    if not event_id.startswith(prefix):
        return None
    try:
        return int(event_id[len(prefix) :])
    except ValueError:
        return None
