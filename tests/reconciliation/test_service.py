"""The reconciler over a fake engine, on SQLite and PostgreSQL: the ledger properties and the Auth0 cases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from app.db.models import Origin
from app.reconciliation.engines.errors import QueryFailedError
from app.reconciliation.errors import ReconciliationNotConfiguredError, UnknownSourceError
from app.reconciliation.service import match_key
from tests.reconciliation.support import (
    DAY,
    NEXT_DAY,
    FakeEngine,
    add_push,
    at,
    counts_per_subject,
    ledger_rows,
    log_record,
    reconciled_rows,
)


def mixed_day() -> list:
    """Logs of three users: some with pushed twins, some without, one record delivered twice."""
    return [
        log_record("L-a1", "user_a", at(9), transaction_id="tx-a1"),
        log_record("L-a2", "user_a", at(10), transaction_id="tx-a2"),
        log_record("L-b1", "user_b", at(11), transaction_id=None, session_id="s-b"),
        log_record("L-b1", "user_b", at(11), transaction_id=None, session_id="s-b"),
        log_record("L-c1", "user_c", at(12, seconds=30), event_type="refresh", client_id="cli"),
    ]


async def push_some_of_mixed_day(database) -> None:
    await add_push(database, "push-a1", "user_a", at(9) - timedelta(seconds=2), transaction_id="tx-a1")
    await add_push(database, "push-b1", "user_b", at(11) - timedelta(seconds=1), session_id="s-b")


class TestProperties:
    async def test_idempotent_second_run_changes_nothing(self, database, reconciler, engine):
        engine.records = mixed_day()
        await push_some_of_mixed_day(database)

        first = (await reconciler.reconcile("auth0")).run
        rows_after_first = [(row.idempotency_key, row.reconciliation_run_id) for row in await ledger_rows(database)]
        second = (await reconciler.reconcile("auth0")).run
        rows_after_second = [(row.idempotency_key, row.reconciliation_run_id) for row in await ledger_rows(database)]

        assert first.status == "succeeded"
        assert first.gaps_filled == 2
        assert second.status == "succeeded"
        assert second.id != first.id
        assert second.gaps_filled == 0
        assert second.rows_retracted == 0
        assert rows_after_second == rows_after_first

    async def test_gap_filling_reaches_log_count(self, database, reconciler, engine):
        engine.records = mixed_day()
        await push_some_of_mixed_day(database)

        await reconciler.reconcile("auth0")

        log_counts = {"user_a": 2, "user_b": 1, "user_c": 1}
        counts = await counts_per_subject(database)
        for user, expected in log_counts.items():
            assert counts[user] >= expected, user

    async def test_pushed_twin_adds_nothing(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_a", at(9), transaction_id="tx1")]
        await add_push(database, "push-1", "user_a", at(9) - timedelta(seconds=3), transaction_id="tx1")

        run = (await reconciler.reconcile("auth0")).run

        assert run.gaps_filled == 0
        assert run.pushes_without_log == 0
        assert await counts_per_subject(database) == {"user_a": 1}

    async def test_duplicate_log_records_count_once(self, database, make_reconciler):
        records = [log_record("L1", "user_a", at(9)), log_record("L1", "user_a", at(9)), log_record("L2", "user_a", at(15))]
        reconciler = make_reconciler(query_engine=FakeEngine(records, dedupe=False))

        run = (await reconciler.reconcile("auth0")).run

        assert run.rows_scanned == 3
        assert run.gaps_filled == 2
        assert sorted(row.log_record_id for row in await reconciled_rows(database)) == ["L1", "L2"]

    async def test_late_push_is_retracted_on_next_run(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_a", at(9), transaction_id="tx1")]
        first = (await reconciler.reconcile("auth0")).run
        assert first.gaps_filled == 1
        assert await counts_per_subject(database) == {"user_a": 1}

        await add_push(database, "push-late", "user_a", at(9) - timedelta(seconds=1), transaction_id="tx1")
        assert await counts_per_subject(database) == {"user_a": 2}
        second = (await reconciler.reconcile("auth0")).run

        assert second.rows_retracted == 1
        assert second.gaps_filled == 0
        assert await reconciled_rows(database) == []
        assert await counts_per_subject(database) == {"user_a": 1}

    async def test_reconciled_rows_name_log_record_and_run(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_a", at(9)), log_record("L2", "user_b", at(10))]

        run = (await reconciler.reconcile("auth0")).run

        rows = await reconciled_rows(database)
        assert {row.log_record_id for row in rows} == {"L1", "L2"}
        for row in rows:
            assert row.reconciliation_run_id == run.id
            assert row.idempotency_key == match_key(row.log_record_id)
            assert row.origin == Origin.RECONCILIATION
            assert row.payload["log_id"] == row.log_record_id
            assert len(row.body_sha256) == 64


class TestAuth0Cases:
    async def test_sso_relogins_sharing_session(self, database, reconciler, engine):
        """Three SSO logins of one session, two pushed: only the unpushed one is a gap."""
        engine.records = [
            log_record("L1", "user_a", at(9), session_id="s1"),
            log_record("L2", "user_a", at(9, minutes=20), session_id="s1"),
            log_record("L3", "user_a", at(9, minutes=40), session_id="s1"),
        ]
        await add_push(database, "p1", "user_a", at(9) - timedelta(seconds=1), session_id="s1", transaction_id="t1")
        await add_push(database, "p3", "user_a", at(9, minutes=40) - timedelta(seconds=1), session_id="s1", transaction_id="t3")

        run = (await reconciler.reconcile("auth0")).run

        assert run.gaps_filled == 1
        assert [row.log_record_id for row in await reconciled_rows(database)] == ["L2"]
        assert await counts_per_subject(database) == {"user_a": 3}

    async def test_silent_auth_without_transaction_id(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_a", at(9), event_type="silent_login", session_id="s1")]
        await add_push(
            database, "p1", "user_a", at(9) - timedelta(seconds=1), kind="silent_login", transaction_id="tx", session_id="s1"
        )

        run = (await reconciler.reconcile("auth0")).run

        assert run.gaps_filled == 0
        assert run.pushes_without_log == 0

    async def test_login_abandoned_at_mfa_is_reported_and_kept(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_a", at(9, seconds=40), transaction_id="tx1")]
        await add_push(database, "p1", "user_a", at(9), transaction_id="tx1")
        abandoned = await add_push(database, "p-mfa", "user_a", at(9, seconds=20), transaction_id="tx2")

        with capture_logs() as logs:
            run = (await reconciler.reconcile("auth0")).run

        assert run.pushes_without_log == 1
        assert run.gaps_filled == 0
        assert abandoned in [row.id for row in await ledger_rows(database)]
        succeeded = [entry for entry in logs if entry["event"] == "reconciliation.run_succeeded"]
        assert succeeded[0]["push_ids_without_log"] == [abandoned]

    async def test_pushes_of_subjects_without_logs_are_reported(self, database, reconciler, engine):
        engine.records = [log_record("L1", "user_m", at(9))]
        await add_push(database, "p-a", "user_a", at(8))
        await add_push(database, "p-z", "user_z", at(8))
        await add_push(database, "p-outside", "user_z", DAY - timedelta(hours=3))

        run = (await reconciler.reconcile("auth0")).run

        assert run.pushes_without_log == 2
        assert run.gaps_filled == 1

    async def test_pair_across_midnight_is_seen_from_both_days(self, database, make_reconciler, clock):
        """A push at 23:59:50 and its log record at 00:00:05 the next day: no gap, no report."""
        records = [log_record("L-next", "user_a", NEXT_DAY + timedelta(seconds=5))]
        engine = FakeEngine(records)
        reconciler = make_reconciler(query_engine=engine)
        await add_push(database, "p-late-evening", "user_a", NEXT_DAY - timedelta(seconds=10))
        clock.advance(days=1)

        first_day = (await reconciler.reconcile("auth0", DAY, NEXT_DAY)).run
        second_day = (await reconciler.reconcile("auth0", NEXT_DAY)).run

        assert first_day.pushes_without_log == 0
        assert first_day.gaps_filled == 0
        assert second_day.gaps_filled == 0
        assert second_day.pushes_without_log == 0
        assert await reconciled_rows(database) == []

    async def test_log_just_outside_window_is_not_written(self, database, reconciler, engine):
        engine.records = [log_record("L-prev", "user_a", DAY - timedelta(seconds=30))]

        run = (await reconciler.reconcile("auth0")).run

        assert run.rows_scanned == 1
        assert run.gaps_filled == 0
        query = engine.queries[0]
        assert query.start == DAY - timedelta(seconds=120)
        assert query.end == NEXT_DAY + timedelta(seconds=120)

    async def test_null_subject_records_are_reconciled(self, database, reconciler, engine):
        engine.records = [log_record("L-anon", None, at(3)), log_record("L-a", "user_a", at(4))]

        run = (await reconciler.reconcile("auth0")).run

        assert run.gaps_filled == 2
        assert {row.subject for row in await reconciled_rows(database)} == {None, "user_a"}

    async def test_out_of_order_engine_output_fails_the_run(self, database, reconciler, engine):
        class Unordered(FakeEngine):
            def query_logs(self, query):
                result = super().query_logs(query)
                result.records.reverse()
                return result

        records = [log_record("L1", "user_a", at(1)), log_record("L2", "user_b", at(2))]
        reconciler.engines["auth0"] = Unordered(records, batch_size=1)

        run = (await reconciler.reconcile("auth0")).run

        assert run.status == "failed"
        assert "LogOrderError" in run.error
        assert await reconciled_rows(database) == []


class TestKeyStrategy:
    async def test_key_parity_late_push_duplicate(self, database, make_reconciler):
        from app.ingest.extract import ExtractedEvent
        from app.ingest.service import store_event

        records = [
            log_record("evt_1", "cus_1", at(9), event_type="invoice.paid", idempotency_key="evt_1"),
            log_record("evt_2", "cus_1", at(10), event_type="invoice.paid", idempotency_key="evt_2"),
        ]
        reconciler = make_reconciler(query_engine=FakeEngine(records), strategy="key")
        await add_push(database, "evt_2", "cus_1", at(10), kind="invoice.paid")
        await add_push(database, "evt_9", "cus_1", at(11), kind="invoice.paid")

        run = (await reconciler.reconcile("auth0")).run

        assert run.gaps_filled == 1
        assert run.pushes_without_log == 1
        rows = await reconciled_rows(database)
        assert [(row.idempotency_key, row.log_record_id) for row in rows] == [("evt_1", "evt_1")]

        async with database.transaction() as session:
            result = await store_event(
                session,
                source="auth0",
                event=ExtractedEvent("evt_1", "invoice.paid", "cus_1", at(9)),
                payload={"id": "evt_1"},
                body_hash="0" * 64,
                origin=Origin.PUSH,
                received_at=NEXT_DAY,
            )
        assert result.status == "duplicate"
        assert len(await ledger_rows(database)) == 3

        again = (await reconciler.reconcile("auth0")).run
        assert again.gaps_filled == 0
        assert again.rows_retracted == 0


class TestFailures:
    async def test_engine_failure_marks_run_failed_and_writes_nothing(self, database, make_reconciler):
        failing = FakeEngine(error=QueryFailedError("athena: the query failed: table not found", query_id="q-77"))
        reconciler = make_reconciler(query_engine=failing)

        with capture_logs() as logs:
            run = (await reconciler.reconcile("auth0")).run

        assert run.status == "failed"
        assert "table not found" in run.error
        assert run.query_id == "q-77"
        assert run.finished_at is not None
        assert run.lease_owner is None
        assert await ledger_rows(database) == []
        assert [entry["event"] for entry in logs if entry["event"].startswith("reconciliation.run_")] == [
            "reconciliation.run_started",
            "reconciliation.run_error",
            "reconciliation.run_failed",
        ]

    async def test_unknown_and_unconfigured_sources(self, reconciler):
        reconciler.known_sources = frozenset({"auth0", "stripe"})
        with pytest.raises(UnknownSourceError):
            reconciler.settings_for("nobody")
        with pytest.raises(ReconciliationNotConfiguredError):
            reconciler.settings_for("stripe")


class TestRunRecord:
    async def test_success_records_counts_and_timings(self, database, reconciler, engine, clock):
        engine.records = mixed_day()
        await push_some_of_mixed_day(database)

        with capture_logs() as logs:
            run = (await reconciler.reconcile("auth0")).run

        assert run.source == "auth0"
        assert (run.window_start, run.window_end) == (DAY, NEXT_DAY)
        assert run.status == "succeeded"
        assert run.engine == "fake"
        assert run.rows_scanned == 4
        assert run.gaps_filled == 2
        assert run.pushes_without_log == 0
        assert run.query_id == "q-1"
        assert run.bytes_scanned == 1234
        assert run.started_at == clock.now
        assert run.finished_at == clock.now
        assert run.lease_owner is None
        assert run.error is None
        started = next(entry for entry in logs if entry["event"] == "reconciliation.run_started")
        assert started["run_id"] == run.id
        assert started["source"] == "auth0"
