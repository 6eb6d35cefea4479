"""The store schema as ordered migrations: index + 1 is the version each brings the file to.

Append only: never edit a released migration, add a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE draws (
        draw_date DATE PRIMARY KEY,
        n1 SMALLINT NOT NULL, n2 SMALLINT NOT NULL, n3 SMALLINT NOT NULL,
        n4 SMALLINT NOT NULL, n5 SMALLINT NOT NULL,
        pb SMALLINT NOT NULL,
        multiplier SMALLINT,
        source VARCHAR NOT NULL,
        fetched_at TIMESTAMPTZ NOT NULL,
        CHECK (n1 < n2 AND n2 < n3 AND n3 < n4 AND n4 < n5)
    );
    """,
    """
    CREATE TABLE draw_conflicts (
        draw_date DATE NOT NULL,
        source VARCHAR NOT NULL,
        stored VARCHAR NOT NULL,
        offered VARCHAR NOT NULL,
        first_seen_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (draw_date, source, offered)
    );
    CREATE TABLE data_updates (
        update_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ NOT NULL,
        offline BOOLEAN NOT NULL,
        new_draws INTEGER NOT NULL,
        backfilled_draws INTEGER NOT NULL,
        rejected_records INTEGER NOT NULL,
        conflicts INTEGER NOT NULL,
        report_json VARCHAR NOT NULL
    );
    """,
    """
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        job VARCHAR NOT NULL,
        slot TIMESTAMPTZ,
        trigger VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        error VARCHAR,
        error_class VARCHAR,
        target_draw_date DATE,
        attempt INTEGER NOT NULL DEFAULT 1,
        parent_run_id VARCHAR,
        seed BIGINT,
        pid INTEGER,
        host VARCHAR,
        heartbeat_at TIMESTAMPTZ,
        archive_dir VARCHAR
    );
    CREATE TABLE run_steps (
        run_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        step VARCHAR NOT NULL,
        notebook VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        error VARCHAR,
        failed_cell INTEGER,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE predictions (
        run_id VARCHAR NOT NULL,
        target_draw_date DATE NOT NULL,
        rank INTEGER NOT NULL,
        n1 SMALLINT NOT NULL, n2 SMALLINT NOT NULL, n3 SMALLINT NOT NULL,
        n4 SMALLINT NOT NULL, n5 SMALLINT NOT NULL,
        pb SMALLINT NOT NULL,
        score DOUBLE NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, rank),
        CHECK (n1 < n2 AND n2 < n3 AND n3 < n4 AND n4 < n5)
    );
    CREATE TABLE evaluations (
        run_id VARCHAR NOT NULL,
        rank INTEGER NOT NULL,
        target_draw_date DATE NOT NULL,
        draw_key VARCHAR NOT NULL,
        white_matches SMALLINT NOT NULL,
        pb_match BOOLEAN NOT NULL,
        tier VARCHAR,
        jackpot BOOLEAN NOT NULL,
        prize BIGINT,
        prize_power_play BIGINT,
        evaluated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, rank)
    );
    CREATE TABLE artifacts (
        run_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        data_hash VARCHAR,
        payload VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, kind)
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN draw_date DATE;
    CREATE TABLE job_locks (
        job VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        pid INTEGER NOT NULL,
        host VARCHAR NOT NULL,
        acquired_at TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE dead_letters (
        dead_letter_id VARCHAR PRIMARY KEY,
        job VARCHAR NOT NULL,
        slot TIMESTAMPTZ,
        draw_date DATE,
        attempts INTEGER NOT NULL,
        last_run_id VARCHAR NOT NULL,
        error_class VARCHAR NOT NULL,
        error VARCHAR,
        notebook VARCHAR,
        failed_cell INTEGER,
        rerun_command VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        resolved_at TIMESTAMPTZ,
        resolved_by_run_id VARCHAR
    );
    CREATE TABLE missed_slots (
        job VARCHAR NOT NULL,
        slot TIMESTAMPTZ NOT NULL,
        draw_date DATE,
        kind VARCHAR NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job, slot)
    );
    CREATE TABLE alerts (
        alert_id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        job VARCHAR,
        message VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        channels VARCHAR NOT NULL
    );
    """,
    """
    -- The run ledger's head (runs/ledger.jsonl), written in the transaction that closes a run: the
    -- anchor outside runs/ that shows a truncated, rewritten or extended ledger.
    CREATE TABLE ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        entry_hash VARCHAR NOT NULL,
        run_id VARCHAR,
        updated_at TIMESTAMPTZ NOT NULL
    );
    """,
    """
    -- Alert incidents: one row per problem (a missed drawing, a failure streak), opened and cleared
    -- once each, so each gets exactly one alert when it opens and one when it clears.
    CREATE TABLE incidents (
        incident_key VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        job VARCHAR NOT NULL,
        opened_at TIMESTAMPTZ NOT NULL,
        cleared_at TIMESTAMPTZ,
        last_message VARCHAR NOT NULL
    );
    """,
    """
    -- Each start of the scheduler process: the first one is when the scheduled jobs entered service
    -- (the planner reports nothing before it missed; a manual run never counts as that start).
    CREATE TABLE scheduler_starts (
        started_at TIMESTAMPTZ NOT NULL,
        pid INTEGER NOT NULL,
        host VARCHAR NOT NULL
    );
    """,
    """
    -- Each network source's last answer: when it was last asked, when it last answered (an HTTP answer
    -- in its format, a 404 included) and the outcome of the last ask. Offline updates write nothing.
    CREATE TABLE source_answers (
        source VARCHAR PRIMARY KEY,
        last_asked_at TIMESTAMPTZ NOT NULL,
        last_answered_at TIMESTAMPTZ,
        last_outcome VARCHAR NOT NULL
    );
    """,
    """
    -- Results of walk-forward replays kept between runs (step 4): a refit's model and weights, or one
    -- target's tickets, under a key that hashes everything that determines them (code, drawings, seed,
    -- settings). Derived data: any row can be deleted and is then computed again, identically.
    CREATE TABLE backtest_replays (
        replay_key VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        draw_date DATE NOT NULL,
        payload BLOB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    );
    """,
    """
    -- A job lock names its run only: the holder's pid, host and heartbeat live on that run's row, where
    -- they outlast the lock (migration 3 kept a copy of each here, written twice on every heartbeat).
    ALTER TABLE job_locks DROP COLUMN pid;
    ALTER TABLE job_locks DROP COLUMN host;
    ALTER TABLE job_locks DROP COLUMN heartbeat_at;
    """,
    """
    -- The installed distributions a run's kernel used, each distinct list once (sorted name==version,
    -- a JSON array, keyed by its SHA-256); a run's row names only the hash (NULL before this version).
    CREATE TABLE environments (
        sha256 VARCHAR PRIMARY KEY,
        packages VARCHAR NOT NULL,
        first_seen TIMESTAMPTZ NOT NULL
    );
    ALTER TABLE runs ADD COLUMN environment_sha256 VARCHAR;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
