"""The shared rate budget (coa_sync.adapters.budget) on moto's DynamoDB: however many takers lease tokens
from one bucket in the tenants table, what reaches the server stays within the limit in every window,
and the limit is used."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import boto3
import pytest
from coa_sync.adapters.budget import PREFIX, SharedBudget, SharedBudgets
from coa_sync.tokenbucket import BudgetSpent, Rate, RateBudget
from hypothesis import HealthCheck, example, given, settings, target
from hypothesis import strategies as st
from moto import mock_aws

from tests.support import FakeClock, peak

TABLE = "tenants"
EPOCH = 1_800_000_000.0  # the shared clock is wall time (epoch seconds)
GRAIN = 1e-6  # the table keeps times to the microsecond, rounded against the caller: it may wait two more


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        yield client


class Clock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.now = EPOCH


def excess(times: list[float], capacity: float, refill: float) -> float:
    """How far the tightest stretch of `times` goes past a bucket of `capacity` refilling at `refill`: the
    most of (count in [t_i, t_j]) - (capacity + refill * (t_j - t_i)) over every i <= j (> 0: too many)."""
    ordered, worst, best_start = sorted(times), -capacity, float("-inf")
    for j, t in enumerate(ordered):
        best_start = max(best_start, refill * t - j)  # the i that leaves the most counted for its length
        worst = max(worst, j + 1 - refill * t + best_start - capacity)
    return worst


keys = iter(range(10**9))


class SlowTable:
    """The table answering each conditional update `trip` seconds after it was sent (a table many containers
    queue on): the caller's clock moves on while it waits for the answer."""

    def __init__(self, dynamodb, clock: Clock, trip: float) -> None:
        self._dynamodb, self._clock, self._trip = dynamodb, clock, trip

    def update_item(self, **kwargs):
        try:
            return self._dynamodb.update_item(**kwargs)
        finally:
            self._clock.now += self._trip


def budgets(dynamodb, rate: Rate, takers: int, clock: Clock, hold: float, lease: int = 5) -> list[SharedBudget]:
    """`takers` containers' budgets of one key (a fresh bucket): each its own lease, one item in the table."""
    key = f"test-{next(keys)}"
    return [SharedBudget(key, rate, TABLE, hold=hold, lease=lease, dynamodb=dynamodb, clock=clock, sleep=clock.sleep)
            for _ in range(takers)]


def run(group: list[SharedBudget], clock: Clock, services: list[list[float]], timeouts: list[float | None],
        until: float = float("inf"), trip: float = 0.0) -> tuple[list[float], list[float]]:
    """Containers working at once, each on its own time: a container asks for a token, waits for it (or
    is refused), sends its request, and asks again `services[i]` seconds later (cycling), until `until`.
    Events happen in time order. Returns when tokens were used, and the waits the refused were told.
    No ask waits longer than its timeout, besides the table's own time to answer (`trip` a round trip)."""
    waiting = [(clock.now, i, 0) for i in range(len(group))]
    heapq.heapify(waiting)
    used, refused = [], []
    while waiting:
        now, i, n = heapq.heappop(waiting)
        if now >= until or n >= len(services[i]):
            continue
        clock.now = now
        timeout = timeouts[i % len(timeouts)]
        trips = group[i].round_trips
        try:
            group[i].acquire(timeout)
        except BudgetSpent as spent:
            table_time = (group[i].round_trips - trips) * trip
            assert timeout is not None and spent.retry_after > timeout
            assert clock.now == pytest.approx(now + table_time)
            refused.append(spent.retry_after)
        else:
            table_time = (group[i].round_trips - trips) * trip
            assert timeout is None or clock.now - now <= timeout + table_time + 3 * GRAIN
            used.append(clock.now)
        heapq.heappush(waiting, (clock.now + services[i][n], i, n + 1))
    return used, refused


# In holds: a container asks again at once, just before its lease lapses (half a hold), later, or in between.
GAPS = st.one_of(st.sampled_from([0.0, 0.4999, 0.5001, 1.9999]), st.floats(0, 2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.one_of(st.integers(2, 40), st.integers(100, 600)), window=st.sampled_from([1.0, 60.0]),
       lease=st.integers(1, 8),
       gaps=st.lists(st.lists(GAPS, min_size=1, max_size=50), min_size=1, max_size=6),
       timeouts=st.lists(st.one_of(st.none(), st.floats(0, 3)), min_size=1, max_size=3),
       delays=st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=1, max_size=10),
       trip=st.one_of(st.just(0.0), st.floats(0, 1)))
# Found before: the table's microseconds rounded to nearest, a third of one given away at each take...
@example(limit=2, window=1.0, lease=1, gaps=[[0.0] * 4], timeouts=[None], delays=[0.0], trip=1.0)
# ... four containers at once on a table slower than a token may wait, a lease used after its time ...
@example(limit=100, window=1.0, lease=1, gaps=[[0.0]] * 4, timeouts=[None], delays=[0.0], trip=1.0)
# ... and a caller that may not wait at all, asking between two microseconds.
@example(limit=12, window=1.0, lease=1, gaps=[[1.9999, 1.0, 0.0]], timeouts=[0.0], delays=[0.0], trip=0.0)
def test_no_window_sees_more_than_the_limit_however_many_take_and_lease(dynamodb, limit, window, lease, gaps,
                                                                        timeouts, delays, trip):
    """Containers taking from one bucket at once, each leasing, each asking as it likes, the table answering
    at once or slowly; each request arrives anywhere up to half the hold after its token is used (a leased
    token unused in time is dropped: spent). The adversary's best: hold leased tokens as long as allowed, then
    arrive late.

    Two checks: the tokens used keep within the bucket the table holds, with a lease's time to use them
    (short stretches: where a mistake shows first), and the arrivals keep within the limit in every window.
    """
    clock = Clock()
    hold = window / 30
    rate = Rate.within(limit, window, hold)
    # Each take's answer comes back `trip` of half a hold later (the time a leased token may wait to be used).
    group = budgets(SlowTable(dynamodb, clock, trip * hold / 2), rate, len(gaps), clock, hold, lease)
    used, _ = run(group, clock, [[gap * hold for gap in own] for own in gaps], timeouts, trip=trip * hold / 2)
    kept = rate.burst - rate.refill * hold  # the bucket in the table
    assert excess(used, kept + rate.refill * hold / 2, rate.refill) <= 1e-6
    arrivals = [t + delays[n % len(delays)] * hold / 2 for n, t in enumerate(used)]
    target(peak(arrivals, window) / limit)  # search towards the fullest windows
    assert peak(arrivals, window) <= limit


def test_containers_that_never_rest_use_at_least_95_percent_of_the_limit(dynamodb):
    clock = Clock()
    window = 60.0
    group = budgets(dynamodb, Rate.within(500, window, 1.5), 4, clock, 1.5)
    # Each sends a request every 50 to 200 ms (Pleo's latency) for as long as it has tokens.
    services = [[0.05 * (1 + (i + n) % 4) for n in range(20_000)] for i in range(4)]
    used, _ = run(group, clock, services, [None], until=EPOCH + 10 * window)
    assert peak(used, window) <= 500
    assert len(used) / 10 >= 0.95 * 500  # per window, on average over ten
    # Leases: even sharing the budget four ways, two requests in three cost no round trip to the table.
    assert sum(budget.round_trips for budget in group) <= len(used) / 3


def test_a_caller_slowed_by_the_table_still_leases_in_blocks_and_uses_them(dynamodb):
    # The table takes 0.7 s to answer (many containers queued on it), of the 0.75 s a leased token may wait.
    clock = Clock()
    rate = Rate.within(500, 60, 1.5)
    (budget,) = budgets(SlowTable(dynamodb, clock, 0.7), rate, 1, clock, 1.5)
    used = []
    for _ in range(50):
        budget.acquire()
        used.append(clock.now)
        clock.now += 0.03  # its request
    # Leases of 1, 2, 4, then mostly 5 (the bucket's size), not lapsing while the answer comes back: a round trip
    # for about one ask in four (sized by how often it asked, and due from the ask, it was one in two).
    assert budget.round_trips <= 13
    assert peak(used, 60) <= 500


def test_the_bucket_never_falls_behind_however_a_tokens_time_rounds_on_the_wire(dynamodb):
    # A token every 1/3 s: the table stores tat to the microsecond, and 0.333333 s a take would give away a third of
    # a microsecond each time, never given back while the bucket stays in use (a busy company's all day).
    clock = Clock()
    rate = Rate(per_minute=180, burst=1, headroom=1.0)
    (budget,) = budgets(dynamodb, rate, 1, clock, hold=0.0, lease=1)
    for _ in range(3000):
        budget.acquire()
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": PREFIX + budget.key}, "sk": {"S": "BUDGET"}})["Item"]
    assert float(item["tat"]["N"]) >= EPOCH + 3000 / 3  # the 3,000th token's refill, not a millisecond less
    assert clock.now >= EPOCH + 2999 / 3


def test_a_table_slower_than_a_token_may_wait_still_gives_tokens_from_a_full_bucket(dynamodb):
    # 2 s a round trip (one local moto behind 32 containers), where a leased token may wait 0.75 s.
    clock = Clock()
    (budget,) = budgets(SlowTable(dynamodb, clock, 2.0), Rate.within(500, 60, 1.5), 1, clock, 1.5)
    for _ in range(5):
        budget.acquire()  # the bucket full every time: charged as of when its answer comes back
        clock.now += 30
    assert budget.round_trips <= 6  # the first lapses (no round trip seen yet), then one each


def test_a_token_further_away_than_the_timeout_is_refused_at_once_and_taken_from_no_one(dynamodb):
    clock = Clock()
    rate = Rate(per_minute=6, burst=1, headroom=1.0)  # a token every ten seconds
    first, second = budgets(dynamodb, rate, 2, clock, hold=0.0)
    first.acquire()
    with pytest.raises(BudgetSpent) as spent:
        second.acquire(timeout=5)
    assert spent.value.retry_after == pytest.approx(10) and clock.now == EPOCH
    second.acquire(timeout=11)  # the refused call reserved nothing: the next token is still the first one due
    assert clock.now == pytest.approx(EPOCH + 10)
    assert "no token for another 10.0 s" in str(spent.value)


def test_a_caller_that_may_wait_reserves_its_token_in_one_round_trip(dynamodb):
    clock = Clock()
    rate = Rate(per_minute=60, burst=1, headroom=1.0)
    first, second, third = budgets(dynamodb, rate, 3, clock, hold=0.0)
    first.acquire()
    second.acquire()  # promised the token due in one second: sleeps until then
    assert clock.now == pytest.approx(EPOCH + 1) and second.waited == pytest.approx(1)
    clock.now = EPOCH  # a third container, asking at the same moment, is promised the one after
    third.acquire()
    assert clock.now == pytest.approx(EPOCH + 2)
    assert (second.round_trips, third.round_trips) == (2, 2)  # the full bucket's update, then the in-use one


def test_a_leased_token_not_used_in_its_time_is_dropped_and_counts_as_spent(dynamodb):
    clock = Clock()
    rate = Rate.within(500, 60, 2.0)  # a bucket of 5 in the table; a leased token is good for 1 s
    holder, other = budgets(dynamodb, rate, 2, clock, 2.0)
    for _ in range(4):
        holder.acquire()  # a take leases as many as were asked for in the last second: 1, 2, then 4
    assert holder.round_trips == 3  # 7 tokens taken, 4 used: 3 still leased
    while clock.now < EPOCH + 1.5:
        other.acquire()  # the bucket is drained meanwhile
    trips, waited = holder.round_trips, holder.waited
    holder.acquire()  # 1.5 s on: its leased tokens lapsed, so it waits for a new one like anyone
    assert holder.round_trips > trips and holder.waited > waited


def test_a_caller_whose_whole_lease_is_not_due_in_time_takes_one_token(dynamodb):
    clock = Clock()
    rate = Rate(per_minute=60, burst=5, headroom=1.0)  # a token a second
    (budget,) = budgets(dynamodb, rate, 1, clock, hold=0.0)
    with pytest.raises(BudgetSpent):
        while True:
            budget.acquire(timeout=0)  # drains the bucket
    budget.acquire(timeout=1.5)  # a lease of 5 would be due in 5 s, one token in 1 s: it takes that one
    assert clock.now == pytest.approx(EPOCH + 1)


def test_the_bucket_is_one_item_of_the_tenants_table_that_expires_when_idle(dynamodb):
    clock = Clock()
    (budget,) = budgets(dynamodb, Rate.within(500, 60, 1.5), 1, clock, 1.5)
    budget.acquire()
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": PREFIX + budget.key}, "sk": {"S": "BUDGET"}})["Item"]
    assert set(item) == {"pk", "sk", "tat", "expiresAt"}
    assert float(item["tat"]["N"]) == pytest.approx(EPOCH + 60 / 482.93, rel=1e-3)  # one token's refill
    assert int(item["expiresAt"]["N"]) >= EPOCH + 3600


def test_one_factory_keeps_one_budget_per_key_and_rate(dynamodb):
    factory = SharedBudgets(TABLE, dynamodb=dynamodb)
    budget = factory("dualentry:key-a:GET:/accounts/", Rate(60, 10))
    assert isinstance(budget, RateBudget)
    assert factory("dualentry:key-a:GET:/accounts/", Rate(60, 10)) is budget
    assert factory("dualentry:key-a:POST:/accounts/", Rate(60, 10)) is not budget


def test_pleos_budget_is_per_company_or_per_integration_and_never_keyed_by_a_secret():
    from coa_sync import wiring
    from coa_sync.adapters.pleo import PleoCredentials
    from coa_sync.models import Tenant
    from coa_sync.settings import PleoSettings
    from coa_sync.tokens import OAuthCredentials

    def tenant(tenant_id: str, company: str) -> Tenant:
        return Tenant.model_validate({"tenantId": tenant_id, "companyId": company, "source": {"kind": "file",
                                      "uri": "s3://b/k.csv"}, "pleoSecretName": f"coa-sync/{tenant_id}/pleo"})

    def key(scope: str, who: Tenant, credentials) -> str:
        settings = PleoSettings(tenants_table=TABLE, snapshot_bucket="bucket", pleo_rate_scope=scope,
                                pleo_base_url="https://external.pleo.io")
        budget = wiring.pleo_budget(settings, who, credentials)
        assert budget.rate == Rate.within(500, 60.0, 1.5)
        return budget.key

    one, two = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    oauth = OAuthCredentials(token_url="https://auth.pleo.io/oauth/token", client_id="coa-sync-app",
                             client_secret="s3cret", refresh_token="refresh-r1")
    first, other = PleoCredentials(api_key="pls_key_one"), PleoCredentials(api_key="pls_key_two")
    # Per company (the default): every credential of one company, and only of that company.
    assert key("company", tenant("a", one), first) == key("company", tenant("b", one), other)
    assert key("company", tenant("a", one), oauth) != key("company", tenant("c", two), oauth)
    # Per integration: every company connected through one OAuth client; an API key on its own.
    assert key("integration", tenant("a", one), oauth) == key("integration", tenant("c", two), oauth)
    assert key("integration", tenant("a", one), first) != key("integration", tenant("b", one), other)
    keys = [key(scope, tenant("a", one), credentials) for scope in ("company", "integration")
            for credentials in (first, oauth)]
    assert not [k for k in keys for secret in ("pls_key_one", "s3cret", "refresh-r1") if secret in k]
