"""Schema of the tables the API owns: flows, organisations and their API keys (secret and publishable)."""

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
    Migration(
        version=2,
        name="create organisations and api keys",
        sql="""
        CREATE TABLE organisations (
            id text PRIMARY KEY,
            name text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE api_keys (
            id text PRIMARY KEY,
            org_id text NOT NULL REFERENCES organisations (id),
            key_hash text NOT NULL UNIQUE,
            key_prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        """,
    ),
    Migration(
        version=3,
        name="flow definition and agent settings",
        sql="""
        ALTER TABLE flows ADD COLUMN definition jsonb NOT NULL DEFAULT '{}'::jsonb;
        ALTER TABLE flows ADD COLUMN agent_settings jsonb NOT NULL DEFAULT '{}'::jsonb;
        """,
    ),
    Migration(
        version=4,
        name="key kinds, scopes, publishable keys' flows and origins",
        # Keys that exist already keep full access: every scope. New keys state theirs (no default).
        sql="""
        ALTER TABLE api_keys ADD COLUMN kind text NOT NULL DEFAULT 'secret'
            CHECK (kind IN ('secret', 'publishable'));
        ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL
            DEFAULT ARRAY['sessions', 'flows', 'watch:monitor', 'watch:supervisor', 'watch:admin'];
        ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;
        ALTER TABLE api_keys ADD COLUMN flow_ids text[] NOT NULL DEFAULT '{}';
        ALTER TABLE api_keys ADD COLUMN origins text[] NOT NULL DEFAULT '{}';
        """,
    ),
    Migration(
        version=5,
        name="webhooks scope for keys with full access",
        # A key that could do everything before the scope existed still can.
        sql="""
        UPDATE api_keys SET scopes = array_append(scopes, 'webhooks')
        WHERE kind = 'secret' AND NOT 'webhooks' = ANY (scopes)
          AND scopes @> ARRAY['sessions', 'flows', 'watch:monitor', 'watch:supervisor', 'watch:admin'];
        """,
    ),
)
