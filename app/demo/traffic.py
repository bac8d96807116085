"""Seeded generator of one day of Auth0 login traffic, with its ground truth.

`generate_day` simulates every post-login Action execution of one UTC day and
returns a `Traffic`. It contains one `Login` per execution, with the Action's
`event`, the fate of its push and the tenant log record it produced, if any.
It also contains the log stream as the Firehose delivery stream would receive
it, and helpers compute what the ledger must contain once reconciliation has
run.

What the simulation covers, because reconciliation has to cope with each case:

- Interactive logins start a session. SSO re-logins reuse the session id with
  a new transaction id and log `s` with `details.prompts: []`, no connection
  and no `details.stats`.
- Silent authentication (`prompt=none`) reuses the session and logs `ssa`
  without a transaction id, although the Action's event has one.
- Refresh-token exchanges (`sertft`) and password grants (`sepft`) have no
  session and no transaction id on either side.
- The Action runs before MFA. A login abandoned at the MFA prompt is pushed
  but never logged. A completed MFA login is logged 5 to 55 seconds after the
  Action ran, and a small share of other logins are logged up to a minute late.
- Some sessions start within three minutes of midnight, so a log `date` can
  fall on the next day. A few pushes are lost, some to random timeouts and
  the rest to one contiguous outage of the push endpoint.
- The stream also carries records that are not logins (`f`, `fp`, `slo`),
  delivers records out of order, some of them minutes late, and delivers a
  share of them twice.

Everything comes from one `random.Random(seed)`, never from the wall clock, so
a seed always produces the same traffic. `iter_log_records` streams log
records alone, without Action events, for benchmarks that need millions.

All identifiers, addresses (RFC 5737 and RFC 3849 documentation ranges) and
e-mail addresses are fake. NOTE: the `description` strings of `ssa`,
`sertft` and `sepft` records and the prompt names inside `details.prompts`
are plausible values, not copies of observed records.
"""

from __future__ import annotations

import base64
import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

__all__ = [
    "CLIENTS",
    "CONNECTIONS",
    "KINDS",
    "LOGIN_LOG_TYPES",
    "NOISE_LOG_TYPES",
    "Client",
    "Connection",
    "Kind",
    "KindSummary",
    "Login",
    "LossReason",
    "Traffic",
    "generate_day",
    "iter_log_records",
]

Kind = Literal["login", "silent_login", "refresh", "password_grant"]
LossReason = Literal["timeout", "service_down"]

KINDS: tuple[Kind, ...] = ("login", "silent_login", "refresh", "password_grant")

# Tenant log type of each kind of Action execution that completes.
LOGIN_LOG_TYPES: dict[str, Kind] = {
    "s": "login",
    "ssa": "silent_login",
    "sertft": "refresh",
    "sepft": "password_grant",
}
NOISE_LOG_TYPES: tuple[str, ...] = ("f", "fp", "slo")

# `event.transaction.protocol` per kind.
PROTOCOLS: dict[Kind, str] = {
    "login": "oidc-basic-profile",
    "silent_login": "oidc-basic-profile",
    "refresh": "oauth2-refresh-token",
    "password_grant": "oauth2-password",
}

DESCRIPTIONS: dict[str, str] = {
    "s": "Successful login",
    "ssa": "Successful silent authentication",
    "sertft": "Successful exchange of Refresh Token for Access Token",
    "sepft": "Successful exchange of Password for Access Token",
    "fp": "Wrong email or password.",
}
FAILURE_DESCRIPTIONS = (
    "Callback URL mismatch.",
    "the connection is not enabled",
    "Invalid state",
)


@dataclass(frozen=True, slots=True)
class Client:
    """An Auth0 application."""

    key: str
    client_id: str
    name: str
    app_type: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class Connection:
    """An Auth0 connection (identity provider)."""

    id: str
    name: str
    strategy: str
    strategy_type: str


CLIENTS: dict[str, Client] = {
    "web": Client("web", "Wb7qR2xLk9PzT4mN8vC3sD6fG1hJ5aKe", "Example Web App",
                  "regular_web", "https://app.example.com/callback"),
    "spa": Client("spa", "Sp4nX8cV2bM6zQ1wE9rT3yU7iO5pA0sD", "Example SPA",
                  "spa", "https://dashboard.example.com"),
    "mobile": Client("mobile", "Mb3kL7jH1gF5dS9aP2oI6uY0tR4eW8qZ", "Example Mobile App",
                     "native", "com.example.app://callback"),
    "cli": Client("cli", "Cl9vB5nM1xZ3cA7sD2fG6hJ0kL4qW8eR", "Example CLI",
                  "non_interactive", ""),
}
CONNECTIONS: dict[str, Connection] = {
    "database": Connection("con_Db8kX2mQ7rT4vN1z", "Username-Password-Authentication",
                           "auth0", "database"),
    "google": Connection("con_Go5pL9wE3sJ6hY0c", "google-oauth2", "google-oauth2", "social"),
}

# (raw User-Agent header, the parsed form some log records carry instead)
BROWSERS = (
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "Chrome 120.0.0 / Mac OS X 10.15.7"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/121.0.0.0 Safari/537.36", "Chrome 121.0.0 / Windows 10.0.0"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
     "Firefox 122.0.0 / Linux 0.0.0"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
     "Mobile Safari 17.2.0 / iOS 17.2.0"),
)
MOBILE_AGENTS = ("ExampleApp/4.2.1 (iPhone; iOS 17.2; Scale/3.00)",
                 "ExampleApp/4.2.0 (Android 14; Pixel 8)")
PLACES = (
    ("Exampleville", "US", "USA", "United States of America", "NA", "WA", "Washington",
     "America/Los_Angeles"),
    ("Sampleton", "GB", "GBR", "United Kingdom", "EU", "ENG", "England", "Europe/London"),
    ("Demoburg", "DE", "DEU", "Germany", "EU", "BE", "Berlin", "Europe/Berlin"),
    ("Testopolis", "AU", "AUS", "Australia", "OC", "NSW", "New South Wales",
     "Australia/Sydney"),
)
PUSH_SECRETS = {"PUSH_URL": "http://127.0.0.1:8000/v1/hooks/auth0",
                "PUSH_HMAC_KEY": "demo-value-not-a-secret"}

# Relative login activity per UTC hour (a single-region user base, busiest 13-17 h).
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 10, 10, 11, 12, 12, 11, 10, 9, 8, 7, 5, 4, 3)
NEAR_MIDNIGHT_SHARE = 0.04
NEAR_MIDNIGHT = timedelta(minutes=3)
MFA_ENROLLED_SHARE = 0.1
LATE_LOG_SHARE = 0.02  # logins whose record is written up to a minute after the Action ran
LATE_DELIVERY_SHARE = 0.03  # log records that reach Firehose 5 to 45 minutes after `date`
_BASE64_TO_ALNUM = bytes.maketrans(b"+/", b"xz")


@dataclass(frozen=True, slots=True)
class Login:
    """One post-login Action execution and what became of it.

    `occurred_at` is when the Action ran, in whole milliseconds. It is the time
    the push carries, as the Action's send time, because `event` contains no
    timestamp of its own.
    `log_record` is the tenant log record the execution produced: None when the
    login was abandoned at MFA. `logged_at` is that record's `date`.
    """

    kind: Kind
    user_id: str
    client_id: str
    client_name: str
    connection: str
    occurred_at: datetime
    session_id: str | None
    transaction_id: str | None
    lost: LossReason | None
    abandoned_at_mfa: bool
    logged_at: datetime | None
    event: dict[str, Any] = field(compare=False, repr=False)
    log_record: dict[str, Any] | None = field(compare=False, repr=False)

    @property
    def pushed(self) -> bool:
        """Whether the push reached the service."""
        return self.lost is None

    @property
    def log_id(self) -> str | None:
        return None if self.log_record is None else self.log_record["log_id"]

    @property
    def ledger_day(self) -> date | None:
        """UTC day of the ledger row for this execution, or None if it gets none.

        A pushed execution is counted at the push's `occurred_at`, whatever day
        its log record falls on. A lost push is counted on its log record's day.
        """
        if self.pushed:
            return self.occurred_at.date()
        if self.logged_at is not None:
            return self.logged_at.date()
        return None


@dataclass(frozen=True, slots=True)
class KindSummary:
    """Counts of Action executions of one kind."""

    executions: int
    pushed: int
    lost_timeout: int
    lost_service_down: int
    abandoned_at_mfa: int
    logged: int


@dataclass(frozen=True)
class Traffic:
    """One simulated day: Action executions, the log stream, and the truth about both.

    `logins` is sorted by `occurred_at` and contains every execution whose
    Action ran on `day`. `log_records` contains (arrival, record) pairs sorted
    by arrival, where arrival is the record's approximate arrival time at
    Firehose. It lists each record once, login records and noise alike.
    `duplicates` names the `log_id`s that the stream delivers a second time.
    """

    day: date
    tenant: str
    logins: list[Login]
    log_records: list[tuple[datetime, dict[str, Any]]]
    duplicates: frozenset[str]

    def pushed(self) -> list[Login]:
        """Return the executions whose push reached the service."""
        return [login for login in self.logins if login.pushed]

    def lost(self) -> list[Login]:
        """Return the executions whose push was lost."""
        return [login for login in self.logins if not login.pushed]

    def abandoned(self) -> list[Login]:
        """Return the executions abandoned at MFA, which have no log record."""
        return [login for login in self.logins if login.abandoned_at_mfa]

    def noise_records(self) -> list[dict[str, Any]]:
        """Return the log records that describe no Action execution."""
        return [record for _, record in self.log_records if record["type"] in NOISE_LOG_TYPES]

    def expected_daily_counts(self, kind: Kind | None = None) -> dict[tuple[str, date], int]:
        """Return what the ledger must count per (user id, UTC day) after reconciliation.

        Each login log record counts once, however often the stream delivers
        it, and so does each pushed execution without a log record (abandoned
        at MFA). A lost push abandoned at MFA counts nothing. The day is
        `Login.ledger_day`. `kind` restricts the counts to one kind.
        """
        counts: Counter[tuple[str, date]] = Counter()
        for login in self.logins:
            if kind is not None and login.kind != kind:
                continue
            day = login.ledger_day
            if day is not None:
                counts[(login.user_id, day)] += 1
        return dict(counts)

    def summary(self) -> dict[Kind, KindSummary]:
        """Return the execution counts per kind, every kind present even when zero."""
        result: dict[Kind, KindSummary] = {}
        for kind in KINDS:
            of_kind = [login for login in self.logins if login.kind == kind]
            result[kind] = KindSummary(
                executions=len(of_kind),
                pushed=sum(login.pushed for login in of_kind),
                lost_timeout=sum(login.lost == "timeout" for login in of_kind),
                lost_service_down=sum(login.lost == "service_down" for login in of_kind),
                abandoned_at_mfa=sum(login.abandoned_at_mfa for login in of_kind),
                logged=sum(login.log_record is not None for login in of_kind),
            )
        return result


def generate_day(
    day: date,
    users: int,
    seed: int,
    *,
    loss: float = 0.05,
    mfa_abandon_rate: float = 0.2,
    duplicate_rate: float = 0.01,
    late_log_share: float = LATE_LOG_SHARE,
    late_delivery_share: float = LATE_DELIVERY_SHARE,
    tenant: str = "demo",
) -> Traffic:
    """Simulate every post-login Action execution of one UTC day for `users` users.

    `loss` is the share of executions whose push is lost. `mfa_abandon_rate`
    is the share of MFA challenges that users abandon (about one user in ten
    has MFA enrolled). `duplicate_rate` is the share of log records that the
    stream delivers twice. `late_log_share` is the share of non-MFA logins
    whose log record is written 2 to 58 seconds after the Action ran, instead
    of under a second. `late_delivery_share` is the share of log records that
    reach Firehose 5 to 45 minutes after their `date`, instead of within 5
    minutes. Raises ValueError when a share is outside [0, 1] or `users` is
    negative.
    """
    shares = {
        "loss": loss,
        "mfa_abandon_rate": mfa_abandon_rate,
        "duplicate_rate": duplicate_rate,
        "late_log_share": late_log_share,
        "late_delivery_share": late_delivery_share,
    }
    for name, value in shares.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}.")
    if users < 0:
        raise ValueError(f"users must not be negative, got {users!r}.")

    simulation = _DaySimulation(
        random.Random(seed), day, tenant,
        mfa_abandon_rate=mfa_abandon_rate,
        late_log_share=late_log_share,
        late_delivery_share=late_delivery_share,
    )
    return simulation.run(users, loss=loss, duplicate_rate=duplicate_rate)


def iter_log_records(
    n: int,
    seed: int,
    *,
    start: datetime = datetime(2024, 1, 15, tzinfo=UTC),
    duration: timedelta = timedelta(days=1),
    users: int | None = None,
    tenant: str = "demo",
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """Yield `n` (arrival, log record) pairs in arrival order, without Action events.

    Record dates are spread over [start, start + duration) by a Poisson
    process. The type mix is about 36% `s` (a quarter of them SSO), 25% `ssa`,
    29% `sertft`, 2% `sepft` and 8% noise (`f`, `fp`, `slo`). Records have the
    same shape as those of `generate_day` but no truth is kept, so this path
    is for load, not for checking counts. The pool of users defaults to one
    per 30 records (at least 100). Memory stays bounded because records are
    held back only until nothing earlier can arrive, about 45 minutes of
    stream time.

    Measured for n = 1,000,000 on a shared 2-vCPU Intel Xeon VM with a load
    average of about 5 from other processes, Python 3.11.7: 18 s to generate
    (about 54,000 records/s), and 74 s to generate and write the stream with
    `write_log_stream` at gzip level 6 (2,028 objects, 201 MB).
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n!r}.")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC).")
    rng = random.Random(seed)
    builder = _LogBuilder(rng, tenant)
    pool = [_new_user(rng) for _ in range(users or max(100, n // 30))]
    sessions: dict[str, str] = {}
    mean_gap = duration.total_seconds() / max(n, 1)
    clock = start.astimezone(UTC)
    pending: list[tuple[datetime, int, dict[str, Any]]] = []

    for index in range(n):
        clock += timedelta(seconds=rng.expovariate(1.0 / mean_gap))
        logged_at = _truncate_ms(clock)
        user = rng.choice(pool)
        record = _streamed_record(rng, builder, user, sessions, logged_at)
        arrival = logged_at + _delivery_delay(rng, LATE_DELIVERY_SHARE)
        heapq.heappush(pending, (arrival, index, record))
        # Every later record has date >= logged_at, so it arrives after it too.
        while pending and pending[0][0] <= logged_at:
            arrival_time, _, ready = heapq.heappop(pending)
            yield arrival_time, ready

    while pending:
        arrival_time, _, ready = heapq.heappop(pending)
        yield arrival_time, ready


# --- users, sessions and executions ------------------------------------------------------


@dataclass(slots=True)
class _User:
    user_id: str
    email: str
    connection: Connection
    browser: tuple[str, str]
    mobile_agent: str
    ip: str
    place: tuple[str, ...]
    created_at: datetime
    mfa_enrolled: bool
    logins_count: int


@dataclass(slots=True)
class _Session:
    id: str
    started_at: datetime
    authenticated_at: datetime
    ends_at: datetime
    mfa_at: datetime | None = None


@dataclass(slots=True)
class _Execution:
    """One Action execution while the day is being built; becomes a `Login`."""

    kind: Kind
    user: _User
    client: Client
    occurred_at: datetime
    session: _Session | None = None
    transaction_id: str | None = None
    sso: bool = False
    mfa: Literal["none", "completed", "abandoned"] = "none"
    log_delay: timedelta = timedelta(0)
    # When the credentials behind a refresh token were last entered.
    granted_at: datetime | None = None
    lost: LossReason | None = None


def _random_id(rng: random.Random, length: int = 32) -> str:
    """Draw an alphanumeric id; base64 of random bits with `+` and `/` replaced is fast."""
    size = (length * 3 + 3) // 4
    encoded = base64.b64encode(rng.getrandbits(size * 8).to_bytes(size, "big"))
    return encoded.translate(_BASE64_TO_ALNUM)[:length].decode("ascii")


def _truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso_ms(moment: datetime) -> str:
    """Format as Auth0 does: ISO 8601, milliseconds, `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _new_user(rng: random.Random) -> _User:
    if rng.random() < 0.7:
        connection = CONNECTIONS["database"]
        user_id = f"auth0|{rng.getrandbits(96):024x}"
    else:
        connection = CONNECTIONS["google"]
        user_id = f"google-oauth2|{rng.randrange(10**20, 10**21)}"
    handle = f"{rng.choice(('alex', 'sam', 'kim', 'noa', 'lee', 'ari'))}.{rng.getrandbits(24):06x}"
    if rng.random() < 0.8:
        ip = f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"
    else:
        ip = f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
    return _User(
        user_id=user_id,
        email=f"{handle}@example.com",
        connection=connection,
        browser=rng.choice(BROWSERS),
        mobile_agent=rng.choice(MOBILE_AGENTS),
        ip=ip,
        place=rng.choice(PLACES),
        created_at=datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 10**7)),
        mfa_enrolled=rng.random() < MFA_ENROLLED_SHARE,
        logins_count=rng.randrange(1, 400),
    )


def _delivery_delay(rng: random.Random, late_share: float) -> timedelta:
    """Time from a record's `date` to its arrival at Firehose."""
    if rng.random() < late_share:
        return timedelta(seconds=rng.uniform(300.0, 2700.0))
    return timedelta(seconds=rng.uniform(0.5, 300.0))


class _DaySimulation:
    """Builds the executions of one day user by user, then settles their fate."""

    def __init__(
        self,
        rng: random.Random,
        day: date,
        tenant: str,
        *,
        mfa_abandon_rate: float,
        late_log_share: float,
        late_delivery_share: float,
    ) -> None:
        self.rng = rng
        self.tenant = tenant
        self.start = datetime.combine(day, time(0), tzinfo=UTC)
        self.end = self.start + timedelta(days=1)
        self.mfa_abandon_rate = mfa_abandon_rate
        self.late_log_share = late_log_share
        self.late_delivery_share = late_delivery_share
        self.builder = _LogBuilder(rng, tenant)
        self.executions: list[_Execution] = []
        self.noise: list[dict[str, Any]] = []

    def run(self, users: int, *, loss: float, duplicate_rate: float) -> Traffic:
        heavy_users = min(users, max(2, users // 250)) if users else 0
        for index in range(users):
            self._simulate_user(_new_user(self.rng), heavy=index < heavy_users)

        executions = sorted(
            (ex for ex in self.executions if self.start <= ex.occurred_at < self.end),
            key=lambda ex: ex.occurred_at,
        )
        self._assign_losses(executions, loss)
        logins = self._finish(executions)

        records = [login.log_record for login in logins if login.log_record is not None]
        records += [record for record in self.noise if self._within_day(record)]
        arrivals = [
            (_parse_date(record["date"]) + _delivery_delay(self.rng, self.late_delivery_share),
             record)
            for record in records
        ]
        arrivals.sort(key=lambda pair: (pair[0], pair[1]["log_id"]))

        duplicate_count = round(duplicate_rate * len(arrivals))
        chosen = self.rng.sample(range(len(arrivals)), duplicate_count)
        duplicates = frozenset(arrivals[i][1]["log_id"] for i in chosen)
        return Traffic(self.start.date(), self.tenant, logins, arrivals, duplicates)

    def _within_day(self, record: dict[str, Any]) -> bool:
        return self.start <= _parse_date(record["date"]) < self.end

    # -- sampling times --

    def _sample_time(self) -> datetime:
        """Draw a moment of the day, a few of them within minutes of either midnight."""
        rng = self.rng
        if rng.random() < NEAR_MIDNIGHT_SHARE:
            # Offsets before the day's end cluster in its last seconds, so that some log
            # records written after the Action ran fall on the next day.
            limit = NEAR_MIDNIGHT.total_seconds()
            if rng.random() < 0.5:
                return _truncate_ms(self.start + timedelta(seconds=rng.uniform(0, limit)))
            offset = min(rng.expovariate(1 / 20.0), limit)
            return _truncate_ms(max(self.end - timedelta(seconds=offset), self.start))
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        return _truncate_ms(self.start + timedelta(hours=hour, seconds=rng.uniform(0, 3600)))

    # -- one user's day --

    def _simulate_user(self, user: _User, *, heavy: bool) -> None:
        rng = self.rng
        if heavy:
            session_count = rng.randint(12, 30)
        else:
            session_count = rng.choices((0, 1, 2, 3), weights=(30, 45, 18, 7))[0]
        for _ in range(session_count):
            self._browser_session(user, self._sample_time(), heavy=heavy)

        if rng.random() < 0.35:
            self._mobile_day(user)
        if user.connection.strategy == "auth0" and rng.random() < 0.04:
            for _ in range(rng.randint(1, 5)):
                self._add(_Execution(
                    "password_grant", user, CLIENTS["cli"], self._sample_time(),
                    log_delay=timedelta(seconds=rng.uniform(0.05, 0.4)),
                ))

    def _add(self, execution: _Execution) -> _Execution:
        self.executions.append(execution)
        return execution

    def _interactive_login(self, user: _User, client: Client, at: datetime) -> _Session | None:
        """Add an interactive login; return its session, or None when MFA is abandoned."""
        rng = self.rng
        started = at - timedelta(seconds=rng.uniform(3.0, 40.0))
        session = _Session(_random_id(rng), started, at, at)
        execution = self._add(_Execution("login", user, client, at, session, _random_id(rng)))
        execution.log_delay = timedelta(seconds=rng.uniform(0.15, 0.9))

        if rng.random() < 0.05 and user.connection.strategy == "auth0":
            failed_at = started + timedelta(seconds=rng.uniform(1.0, 3.0))
            self.noise.append(self.builder.noise("fp", user, client, failed_at))

        if user.mfa_enrolled:
            if rng.random() < self.mfa_abandon_rate:
                execution.mfa = "abandoned"
                return None
            execution.mfa = "completed"
            execution.log_delay += timedelta(seconds=rng.uniform(5.0, 55.0))
            session.mfa_at = _truncate_ms(at + execution.log_delay)
        elif rng.random() < self.late_log_share:
            execution.log_delay += timedelta(seconds=rng.uniform(2.0, 58.0))
        return session

    def _browser_session(self, user: _User, at: datetime, *, heavy: bool) -> None:
        rng = self.rng
        client = CLIENTS["web"] if rng.random() < 0.6 else CLIENTS["spa"]
        if rng.random() < 0.01:
            failed_at = at - timedelta(seconds=rng.uniform(5.0, 60.0))
            self.noise.append(self.builder.noise("f", user, client, failed_at))

        session = self._interactive_login(user, client, at)
        if session is None:
            if rng.random() < 0.5:
                retry_at = _truncate_ms(at + timedelta(seconds=rng.uniform(20.0, 600.0)))
                session = self._interactive_login(user, client, retry_at)
            if session is None:
                return
        length = rng.uniform(300.0, 1800.0) if heavy else rng.uniform(1200.0, 8 * 3600.0)
        session.ends_at = session.authenticated_at + timedelta(seconds=length)

        used_clients = {client.key}
        sso_count = rng.choices((0, 1, 2, 3), weights=(60, 25, 10, 5))[0]
        for _ in range(sso_count):
            sso_client = rng.choice((CLIENTS["web"], CLIENTS["spa"]))
            used_clients.add(sso_client.key)
            sso_at = self._moment_in(session)
            self._add(_Execution(
                "login", user, sso_client, sso_at, session, _random_id(rng), sso=True,
                log_delay=timedelta(seconds=rng.uniform(0.1, 0.6)),
            ))

        if "spa" in used_clients:
            renew_at = session.authenticated_at
            for _ in range(8):
                renew_at += timedelta(seconds=rng.uniform(1200.0, 5400.0))
                if renew_at >= session.ends_at:
                    break
                self._add(_Execution(
                    "silent_login", user, CLIENTS["spa"], _truncate_ms(renew_at), session,
                    _random_id(rng), log_delay=timedelta(seconds=rng.uniform(0.1, 0.5)),
                ))

        if rng.random() < 0.3:
            self.noise.append(self.builder.noise("slo", user, client, session.ends_at, session.id))

    def _moment_in(self, session: _Session) -> datetime:
        span = (session.ends_at - session.authenticated_at).total_seconds()
        return _truncate_ms(session.authenticated_at + timedelta(seconds=self.rng.uniform(1.0, span)))

    def _mobile_day(self, user: _User) -> None:
        """Add refresh-token exchanges, granted by a login today or 1 to 60 days earlier."""
        rng = self.rng
        mobile = CLIENTS["mobile"]
        granted_at = _truncate_ms(self.start - timedelta(days=rng.uniform(1.0, 60.0)))
        if rng.random() < 0.1:
            login_at = self._sample_time()
            if self._interactive_login(user, mobile, login_at) is not None:
                granted_at = login_at
        for _ in range(rng.choices((1, 2, 3, 4, 6, 8), weights=(30, 25, 18, 12, 10, 5))[0]):
            at = self._sample_time()
            if at <= granted_at:
                continue
            self._add(_Execution(
                "refresh", user, mobile, at, granted_at=granted_at,
                log_delay=timedelta(seconds=rng.uniform(0.05, 0.4)),
            ))

    # -- fate of each execution --

    def _assign_losses(self, executions: list[_Execution], loss: float) -> None:
        """Lose `loss` of the pushes: half in one contiguous outage, the rest to timeouts."""
        total = round(loss * len(executions))
        outage = total // 2
        first = self.rng.randrange(len(executions) - outage + 1) if executions else 0
        for execution in executions[first:first + outage]:
            execution.lost = "service_down"
        others = executions[:first] + executions[first + outage:]
        for execution in self.rng.sample(others, total - outage):
            execution.lost = "timeout"

    def _finish(self, executions: list[_Execution]) -> list[Login]:
        logins = []
        for execution in executions:
            user = execution.user
            # Auth0 counts a login once the first factor succeeds, even if MFA then fails.
            if execution.kind in ("login", "password_grant"):
                user.logins_count += 1
            event = _action_event(self.rng, execution, self.tenant)
            record = None
            if execution.mfa != "abandoned":
                logged_at = _truncate_ms(execution.occurred_at + execution.log_delay)
                record = self.builder.login_record(execution, logged_at)
            logins.append(Login(
                kind=execution.kind,
                user_id=user.user_id,
                client_id=execution.client.client_id,
                client_name=execution.client.name,
                connection=user.connection.name,
                occurred_at=execution.occurred_at,
                session_id=execution.session.id if execution.session else None,
                transaction_id=execution.transaction_id,
                lost=execution.lost,
                abandoned_at_mfa=execution.mfa == "abandoned",
                logged_at=_parse_date(record["date"]) if record else None,
                event=event,
                log_record=record,
            ))
        return logins


def _parse_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the Action's event object ------------------------------------------------------------


def _action_event(rng: random.Random, execution: _Execution, tenant: str) -> dict[str, Any]:
    """Build the post-login `event` as the Action receives it (trigger v3)."""
    user, client, connection = execution.user, execution.client, execution.user.connection
    kind = execution.kind
    event: dict[str, Any] = {
        "secrets": dict(PUSH_SECRETS),
        "tenant": {"id": tenant},
        "client": {"client_id": client.client_id, "name": client.name, "metadata": {}},
        "connection": {
            "id": connection.id, "name": connection.name,
            "strategy": connection.strategy, "metadata": {},
        },
        "request": _action_request(rng, execution, tenant),
        "transaction": _action_transaction(execution),
    }
    if execution.session is not None:
        event["session"] = _action_session(execution)
    event["authentication"] = {"methods": _authentication_methods(execution)}
    event["authorization"] = {"roles": []}
    event["stats"] = {"logins_count": user.logins_count}
    event["user"] = _action_user(user, execution.occurred_at)
    return event


def _action_request(rng: random.Random, execution: _Execution, tenant: str) -> dict[str, Any]:
    user, client = execution.user, execution.client
    city, code2, code3, country, continent, subdivision, subdivision_name, zone = user.place
    request: dict[str, Any] = {
        "ip": user.ip,
        "asn": f"AS{rng.choice((64500, 64501, 64502, 65536))}",
        "hostname": f"{tenant}.us.auth0.com",
        "language": "en",
    }
    if execution.kind in ("refresh", "password_grant"):
        request["method"] = "POST"
        request["user_agent"] = user.mobile_agent if client.key == "mobile" else "example-cli/2.3.0"
        request["query"] = {}
        body = {"grant_type": "refresh_token", "client_id": client.client_id}
        if execution.kind == "password_grant":
            body = {"grant_type": "password", "client_id": client.client_id,
                    "username": user.email, "scope": "openid profile"}
        request["body"] = body
    else:
        request["method"] = "GET"
        request["user_agent"] = user.browser[0]
        query = {
            "protocol": "oauth2", "client_id": client.client_id, "response_type": "code",
            "scope": "openid profile email", "redirect_uri": client.redirect_uri,
        }
        if execution.kind == "silent_login":
            query["prompt"] = "none"
            query["response_mode"] = "web_message"
        request["query"] = query
        request["body"] = {}
    request["geoip"] = {
        "cityName": city, "continentCode": continent, "countryCode": code2,
        "countryCode3": code3, "countryName": country, "latitude": 0.0, "longitude": 0.0,
        "subdivisionCode": subdivision, "subdivisionName": subdivision_name, "timeZone": zone,
    }
    return request


def _action_transaction(execution: _Execution) -> dict[str, Any]:
    kind, client = execution.kind, execution.client
    transaction: dict[str, Any] = {}
    if execution.transaction_id is not None:
        transaction["id"] = execution.transaction_id
    transaction["protocol"] = PROTOCOLS[kind]
    transaction["locale"] = "en"
    transaction["requested_scopes"] = ["openid", "profile", "email"]
    if kind in ("login", "silent_login"):
        transaction["response_type"] = ["code"]
        transaction["response_mode"] = "web_message" if kind == "silent_login" else "query"
        transaction["redirect_uri"] = client.redirect_uri
        transaction["ui_locales"] = ["en"]
        transaction["acr_values"] = []
        transaction["prompt"] = ["none"] if kind == "silent_login" else []
    transaction["metadata"] = {}
    return transaction


def _action_session(execution: _Execution) -> dict[str, Any]:
    session, user = execution.session, execution.user
    assert session is not None
    return {
        "id": session.id,
        "user_id": user.user_id,
        "created_at": _iso_ms(session.started_at),
        "authenticated_at": _iso_ms(session.authenticated_at),
        "cookie": {"mode": "persistent"},
        "device": {
            "initial_ip": user.ip, "last_ip": user.ip,
            "initial_user_agent": user.browser[0], "last_user_agent": user.browser[0],
        },
    }


def _authentication_methods(execution: _Execution) -> list[dict[str, Any]]:
    """Completed factors: the first one at session start, MFA only once passed.

    For SSO, silent auth and refresh the timestamps lie in the past, because no
    factor is entered during those executions.
    """
    first_factor = "pwd" if execution.user.connection.strategy == "auth0" else "federated"
    if execution.kind == "password_grant":
        return [{"name": "pwd", "timestamp": _iso_ms(execution.occurred_at)}]
    if execution.kind == "refresh":
        assert execution.granted_at is not None
        return [{"name": first_factor, "timestamp": _iso_ms(execution.granted_at)}]
    session = execution.session
    assert session is not None
    methods: list[dict[str, Any]] = [
        {"name": first_factor, "timestamp": _iso_ms(session.authenticated_at)},
    ]
    if session.mfa_at is not None and session.mfa_at <= execution.occurred_at:
        methods.append({"name": "mfa", "timestamp": _iso_ms(session.mfa_at), "type": "otp"})
    return methods


def _action_user(user: _User, now: datetime) -> dict[str, Any]:
    provider, _, identity = user.user_id.partition("|")
    return {
        "user_id": user.user_id,
        "email": user.email,
        "email_verified": True,
        "name": user.email,
        "nickname": user.email.split("@")[0],
        "picture": "https://example.com/avatar.png",
        "created_at": _iso_ms(user.created_at),
        "updated_at": _iso_ms(now),
        "app_metadata": {},
        "user_metadata": {},
        "identities": [{
            "connection": user.connection.name,
            "isSocial": user.connection.strategy_type == "social",
            "provider": provider,
            "user_id": identity,
        }],
        "multifactor": ["guardian"] if user.mfa_enrolled else [],
        "enrolledFactors": [{"type": "otp"}] if user.mfa_enrolled else [],
    }


# --- tenant log records -------------------------------------------------------------------


class _LogBuilder:
    """Builds tenant log records in the field order Auth0 emits them."""

    def __init__(self, rng: random.Random, tenant: str) -> None:
        self.rng = rng
        self.tenant = tenant
        self.hostname = f"{tenant}.us.auth0.com"

    def log_id(self, logged_at: datetime) -> str:
        """Mimic observed ids: `900`, a UTC timestamp a moment after `date`, 36 digits."""
        stamp = logged_at + timedelta(milliseconds=self.rng.randrange(0, 3000))
        digits = stamp.strftime("%Y%m%d%H%M%S") + f"{stamp.microsecond // 1000:03d}"
        return f"900{digits}{self.rng.randrange(1000):03d}{'0' * 15}{self.rng.getrandbits(59):018d}"

    def _user_agent(self, user: _User, client: Client) -> str:
        if client.key == "mobile":
            return user.mobile_agent
        if client.key == "cli":
            return "example-cli/2.3.0"
        raw, parsed = user.browser
        return raw if self.rng.random() < 0.5 else parsed

    def _head(self, log_type: str, logged_at: datetime, user: _User, client: Client,
              *, with_connection: bool = True) -> dict[str, Any]:
        record: dict[str, Any] = {"date": _iso_ms(logged_at), "type": log_type}
        if log_type in DESCRIPTIONS:
            record["description"] = DESCRIPTIONS[log_type]
        if with_connection:
            record["connection"] = user.connection.name
            record["connection_id"] = user.connection.id
        else:
            record["connection_id"] = ""
        record["client_id"] = client.client_id
        record["client_name"] = client.name
        record["ip"] = user.ip
        record["user_agent"] = self._user_agent(user, client)
        return record

    def _tail(self, record: dict[str, Any], user: _User, logged_at: datetime,
              *, with_strategy: bool = True) -> dict[str, Any]:
        record["hostname"] = self.hostname
        record["user_id"] = user.user_id
        record["user_name"] = user.email
        if with_strategy:
            record["strategy"] = user.connection.strategy
            record["strategy_type"] = user.connection.strategy_type
        record["log_id"] = self.log_id(logged_at)
        record["tenant_name"] = self.tenant
        return record

    def login_record(self, execution: _Execution, logged_at: datetime) -> dict[str, Any]:
        """Build the record a completed execution leaves in the tenant log."""
        user, client = execution.user, execution.client
        executions = {"executions": [_random_id(self.rng, 52)]}
        if execution.kind == "login":
            assert execution.session is not None and execution.transaction_id is not None
            if execution.sso:
                return self.sso(user, client, logged_at, execution.session.id,
                                execution.transaction_id, executions)
            return self.interactive(execution, logged_at, executions)
        if execution.kind == "silent_login":
            assert execution.session is not None
            return self.silent(user, client, logged_at, execution.session.id, executions)
        log_type = "sertft" if execution.kind == "refresh" else "sepft"
        return self.exchange(log_type, user, client, logged_at, executions)

    def interactive(self, execution: _Execution, logged_at: datetime,
                    actions: dict[str, Any]) -> dict[str, Any]:
        user, client, session = execution.user, execution.client, execution.session
        assert session is not None
        connection = user.connection
        authenticated = _epoch_ms(execution.occurred_at)
        started = _epoch_ms(session.started_at)
        prompts: list[dict[str, Any]] = [{
            "name": "prompt-authenticate",
            "completedAt": authenticated,
            "connection": connection.name,
            "connection_id": connection.id,
            "strategy": connection.strategy,
            "identity": user.user_id.partition("|")[2],
            "stats": {"loginsCount": user.logins_count},
            "elapsedTime": None,
        }]
        if execution.mfa == "completed":
            prompts.append({"name": "mfa", "completedAt": _epoch_ms(logged_at) - 40,
                            "elapsedTime": _epoch_ms(logged_at) - 40 - authenticated})
        prompts.append({
            "name": "login",
            "flow": "universal-login",
            "initiatedAt": started,
            "completedAt": authenticated + 50,
            "timers": {"rules": self.rng.randrange(2, 9)},
            "user_id": user.user_id,
            "user_name": user.email,
            "elapsedTime": authenticated + 50 - started,
        })
        completed = _epoch_ms(logged_at)
        record = self._head("s", logged_at, user, client)
        record["details"] = {
            "prompts": prompts,
            "initiatedAt": started - 10,
            "completedAt": completed,
            "elapsedTime": completed - started + 10,
            "session_id": session.id,
            "stats": {"loginsCount": user.logins_count},
            "transaction_id": execution.transaction_id,
            "actions": actions,
        }
        return self._tail(record, user, logged_at)

    def sso(self, user: _User, client: Client, logged_at: datetime, session_id: str,
            transaction_id: str, actions: dict[str, Any]) -> dict[str, Any]:
        # SSO rows carry no description, connection, strategy or stats.
        record = self._head("s", logged_at, user, client, with_connection=False)
        del record["description"]
        record["details"] = {
            "prompts": [],
            "completedAt": _epoch_ms(logged_at),
            "elapsedTime": None,
            "session_id": session_id,
            "transaction_id": transaction_id,
            "actions": actions,
        }
        return self._tail(record, user, logged_at, with_strategy=False)

    def silent(self, user: _User, client: Client, logged_at: datetime, session_id: str,
               actions: dict[str, Any]) -> dict[str, Any]:
        record = self._head("ssa", logged_at, user, client)
        record["details"] = {"session_id": session_id, "actions": actions}
        record = self._tail(record, user, logged_at)
        record["session_connection"] = user.connection.name
        return record

    def exchange(self, log_type: str, user: _User, client: Client, logged_at: datetime,
                 actions: dict[str, Any]) -> dict[str, Any]:
        record = self._head(log_type, logged_at, user, client)
        record["details"] = {"actions": actions}
        record["audience"] = "https://api.example.com/"
        record["scope"] = "openid profile email offline_access"
        return self._tail(record, user, logged_at)

    def noise(self, log_type: str, user: _User, client: Client, at: datetime,
              session_id: str | None = None) -> dict[str, Any]:
        """Build an `f`, `fp` or `slo` record, which no Action execution produced."""
        logged_at = _truncate_ms(at)
        record = self._head(log_type, logged_at, user, client)
        if log_type == "f":
            message = self.rng.choice(FAILURE_DESCRIPTIONS)
            record["description"] = message
            record["details"] = {"error": {"message": message, "oauthError": "invalid_request"},
                                 "session_id": session_id or _random_id(self.rng)}
        elif log_type == "fp":
            record["details"] = {"error": {"message": DESCRIPTIONS["fp"]}}
        else:
            record["details"] = {"return_to": client.redirect_uri,
                                 "session_id": session_id or _random_id(self.rng)}
        return self._tail(record, user, logged_at, with_strategy=log_type != "slo")


def _streamed_record(rng: random.Random, builder: _LogBuilder, user: _User,
                     sessions: dict[str, str], logged_at: datetime) -> dict[str, Any]:
    """Build one record of `iter_log_records`, reusing the user's last session id."""
    actions = {"executions": [_random_id(rng, 52)]}
    roll = rng.random()
    if roll < 0.27 or (roll < 0.61 and user.user_id not in sessions):
        session = _Session(_random_id(rng), logged_at - timedelta(seconds=10), logged_at, logged_at)
        sessions[user.user_id] = session.id
        user.logins_count += 1
        client = CLIENTS["web"] if rng.random() < 0.6 else CLIENTS["spa"]
        execution = _Execution("login", user, client, logged_at, session, _random_id(rng))
        return builder.interactive(execution, logged_at, actions)
    if roll < 0.36:
        return builder.sso(user, CLIENTS["web"], logged_at, sessions[user.user_id],
                           _random_id(rng), actions)
    if roll < 0.61:
        return builder.silent(user, CLIENTS["spa"], logged_at, sessions[user.user_id], actions)
    if roll < 0.90:
        return builder.exchange("sertft", user, CLIENTS["mobile"], logged_at, actions)
    if roll < 0.92:
        return builder.exchange("sepft", user, CLIENTS["cli"], logged_at, actions)
    log_type = rng.choice(NOISE_LOG_TYPES)
    return builder.noise(log_type, user, CLIENTS["web"], logged_at, sessions.get(user.user_id))
