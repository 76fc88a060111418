"""Schema of the tables the API owns: flows."""

from __future__ import annotations

from services.runtime.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="create flows",
        sql="""
        CREATE TABLE flows (
            id text PRIMARY KEY,
            org_id text NOT NULL,
            name text NOT NULL,
            greeting text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX flows_org ON flows (org_id, created_at);
        """,
    ),
)
