"""Schema of the tables the webhook sender owns: customers' endpoints (written by the API) and their deliveries."""

from __future__ import annotations

from services.runtime.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="create webhook endpoints and deliveries",
        # The payload is kept as text: the exact bytes signed on every attempt (jsonb would reorder them).
        # One delivery per endpoint, session and event type: a status change announced twice is sent once.
        sql="""
        CREATE TABLE webhook_endpoints (
            id text PRIMARY KEY,
            org_id text NOT NULL,
            url text NOT NULL,
            events text[] NOT NULL,
            secret text NOT NULL,
            description text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at);
        CREATE TABLE webhook_deliveries (
            id text PRIMARY KEY,
            endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            org_id text NOT NULL,
            session_id text NOT NULL,
            event_type text NOT NULL,
            payload text NOT NULL,
            status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            last_attempt_at timestamptz,
            last_status_code integer,
            last_error text,
            delivered_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (endpoint_id, session_id, event_type)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
        CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at DESC);
        """,
    ),
    Migration(
        version=2,
        name="webhook secret rotation: the previous secret signs too until it expires",
        sql="""
        ALTER TABLE webhook_endpoints
            ADD COLUMN previous_secret text,
            ADD COLUMN previous_secret_expires_at timestamptz;
        """,
    ),
)
