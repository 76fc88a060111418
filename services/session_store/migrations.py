"""Schema of the sessions table, owned by the session store."""

from __future__ import annotations

from services.runtime.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="create sessions",
        sql="""
        CREATE TABLE sessions (
            id text PRIMARY KEY,
            org_id text,
            flow_id text,
            room_name text,
            status text NOT NULL,
            reason text,
            correlation_id text,
            ready_deadline timestamptz,
            requested_at timestamptz,
            dispatched_at timestamptz,
            agent_joined_at timestamptz,
            ready_at timestamptz,
            ended_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX sessions_open_deadline ON sessions (ready_deadline)
            WHERE status IN ('pending', 'dispatched', 'agent_joined');
        """,
    ),
    Migration(
        version=2,
        name="session ends: end code, maximum duration, user presence",
        sql="""
        ALTER TABLE sessions
            ADD COLUMN end_code text,
            ADD COLUMN end_deadline timestamptz,
            ADD COLUMN user_joined_at timestamptz,
            ADD COLUMN user_sid text,
            ADD COLUMN user_left_at timestamptz,
            ADD COLUMN user_left_sid text;
        CREATE INDEX sessions_not_terminal ON sessions (status)
            WHERE status IN ('pending', 'dispatched', 'agent_joined', 'ready');
        """,
    ),
    Migration(
        version=3,
        name="when the user could hear the agent and when its greeting played",
        sql="""
        ALTER TABLE sessions
            ADD COLUMN listener_subscribed_at timestamptz,
            ADD COLUMN greeting_started_at timestamptz,
            ADD COLUMN greeting_finished_at timestamptz;
        """,
    ),
    Migration(
        version=4,
        name="sessions by request time, for the operators' stage latencies of the last minutes",
        sql="""
        CREATE INDEX sessions_requested_at ON sessions (requested_at);
        """,
    ),
    Migration(
        version=5,
        name="the outbox of status changes stored but not announced yet",
        sql="""
        CREATE TABLE session_announcements (
            id uuid PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            events text NOT NULL
        );
        """,
    ),
)
