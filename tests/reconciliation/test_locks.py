"""One run per source and window: concurrent claims, leases, takeover and cancellation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from app.db.engine import Database, create_engine
from app.reconciliation.repository import RunRepository, advisory_lock_key
from app.reconciliation.runtime import ReconciliationRuntime
from app.reconciliation.service import Reconciler
from app.reconciliation.windows import Window
from app.settings import Settings
from tests.reconciliation.support import (
    DAY,
    NEXT_DAY,
    BlockingEngine,
    FakeEngine,
    at,
    log_record,
    reconciled_rows,
    reconciliation_config,
)

WINDOW = Window(DAY, NEXT_DAY)


async def wait_until(predicate, attempts: int = 500) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_concurrent_claims_in_one_process_get_one_run(reconciler):
    claims = await asyncio.gather(*(reconciler.claim("auth0", WINDOW) for _ in range(10)))

    assert sum(claim.acquired for claim in claims) == 1
    assert len({claim.run.id for claim in claims}) == 1
    assert {claim.run.status for claim in claims} == {"running"}


async def test_concurrent_claims_from_two_processes_get_one_run(database_url, tmp_path: Path, clock):
    """Two reconcilers with their own connection pools stand in for two processes."""
    config = reconciliation_config(tmp_path / "logs")
    databases = [Database(create_engine(Settings(database_url=database_url, data_dir=tmp_path))) for _ in range(2)]
    try:
        reconcilers = [
            Reconciler(database, config, engine_factory=lambda settings: FakeEngine(), clock=clock, owner=f"process-{index}")
            for index, database in enumerate(databases)
        ]
        claims = await asyncio.gather(*(reconcilers[index % 2].claim("auth0", WINDOW) for index in range(12)))
    finally:
        for database in databases:
            await database.dispose()

    assert sum(claim.acquired for claim in claims) == 1
    assert len({claim.run.id for claim in claims}) == 1


async def test_live_lease_is_not_taken_over(make_reconciler, clock):
    first = make_reconciler(owner="first")
    second = make_reconciler(owner="second")
    claimed = await first.claim("auth0", WINDOW)
    clock.advance(minutes=4)

    joined = await second.claim("auth0", WINDOW)

    assert claimed.acquired
    assert not joined.acquired
    assert joined.run.id == claimed.run.id
    assert joined.run.lease_owner == "first"


async def test_expired_lease_is_taken_over(database, make_reconciler, engine, clock):
    engine.records = [log_record("L1", "user_a", at(9))]
    crashed = make_reconciler(owner="crashed")
    successor = make_reconciler(owner="successor")
    claimed = await crashed.claim("auth0", WINDOW)
    clock.advance(minutes=6)

    taken = await successor.claim("auth0", WINDOW)
    assert taken.acquired
    assert taken.run.id == claimed.run.id
    assert taken.run.lease_owner == "successor"
    assert taken.run.lease_expires_at == clock.now + timedelta(minutes=5)

    finished = await successor.execute(taken.run.id)
    assert finished.status == "succeeded"
    assert finished.gaps_filled == 1

    late = await crashed.execute(claimed.run.id)
    assert late.status == "succeeded"
    assert late.error is None
    assert len(await reconciled_rows(database)) == 1


async def test_lost_lease_stops_the_writer(database, make_reconciler, clock):
    engine = BlockingEngine([log_record("L1", "user_a", at(9))])
    slow = make_reconciler(owner="slow", query_engine=engine)
    successor = make_reconciler(owner="successor", query_engine=FakeEngine())
    claimed = await slow.claim("auth0", WINDOW)
    running = asyncio.create_task(slow.execute(claimed.run.id))
    assert await asyncio.to_thread(engine.started.wait, 30)

    clock.advance(minutes=6)
    taken = await successor.claim("auth0", WINDOW)
    engine.release.set()
    await running

    assert taken.acquired
    assert await reconciled_rows(database) == []
    run = await successor.get_run(claimed.run.id)
    assert run.status == "running"
    assert run.lease_owner == "successor"


async def test_lease_is_renewed_while_running(database, make_reconciler, clock):
    engine = BlockingEngine([log_record("L1", "user_a", at(9))])
    reconciler = make_reconciler(query_engine=engine)
    reconciler.renew_every = timedelta(milliseconds=10)
    claimed = await reconciler.claim("auth0", WINDOW)
    running = asyncio.create_task(reconciler.execute(claimed.run.id))
    assert await asyncio.to_thread(engine.started.wait, 30)

    clock.advance(minutes=3)
    expected = clock.now + reconciler.lease_duration

    async def renewed() -> bool:
        async with database.transaction() as session:
            run = await RunRepository(session).get(claimed.run.id)
        return run.lease_expires_at == expected

    await wait_until(renewed)
    engine.release.set()
    finished = await running
    assert finished.status == "succeeded"


async def test_shutdown_cancels_and_marks_failed(database, make_reconciler):
    engine = BlockingEngine([log_record("L1", "user_a", at(9))])
    runtime = ReconciliationRuntime(make_reconciler(query_engine=engine))
    run = await runtime.trigger("auth0", None, None)
    assert await asyncio.to_thread(engine.started.wait, 30)

    await runtime.shutdown()
    engine.release.set()

    stopped = await runtime.reconciler.get_run(run.id)
    assert stopped.status == "failed"
    assert "Cancelled" in stopped.error
    assert runtime.tasks == set()
    assert await reconciled_rows(database) == []


def test_advisory_lock_key_is_stable_and_signed():
    key = advisory_lock_key("auth0", WINDOW)
    assert key == advisory_lock_key("auth0", Window(DAY, NEXT_DAY))
    assert key != advisory_lock_key("stripe", WINDOW)
    assert -(2**63) <= key < 2**63
