"""Settings of the dispatcher, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import BatchSettings, LiveKitSettings


class DispatcherSettings(BatchSettings, LiveKitSettings):
    """LiveKit room options, retry bounds, the dispatch watchdog and concurrency toward LiveKit."""

    room_empty_timeout_s: int = Field(default=300, ge=1)
    room_departure_timeout_s: int = Field(default=20, ge=0)
    room_max_participants: int = Field(default=10, ge=0)
    livekit_max_in_flight: int = Field(default=64, ge=1, description="cap on LiveKit API requests in flight")
    livekit_timeout_s: float = Field(default=5.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)
    retry_max_seconds: float = Field(default=20.0, gt=0)
    retry_initial_s: float = Field(default=0.1, gt=0)
    max_workers: int = Field(
        default=64, ge=1, description="session requests read at once (a batch) and dispatched concurrently per replica"
    )
    status_batch_window_s: float = Field(
        default=0.25,
        ge=0,
        description="after a batch of status changes smaller than batch_max_records, the next read waits this long, "
        "so the changes arriving meanwhile are applied together (one read, one script, one ack) instead of one by one; "
        "none of them waits longer than this (0: read again at once)",
    )
    room_lock_ttl_s: float = Field(
        default=10.0, gt=0, description="a crashed dispatcher's room lock lapses after this (renewed while held)"
    )
    room_lock_wait_s: float = Field(default=20.0, gt=0, description="how long a delivery waits for a busy room's lock")
    dispatch_join_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="the longest one dispatch waits for agent.joined before re-dispatch (the first waits "
        "dispatch_join_timeout_min_s, each further one twice the last up to this, jittered; a session is dispatched "
        "again until its readiness deadline, however many dispatches that takes)",
    )
    dispatch_join_timeout_min_s: float = Field(
        default=5.0,
        gt=0,
        description="the shortest one dispatch waits (capped by dispatch_join_timeout_s): LiveKit's job offer "
        "expires after ~3 s, then the job starts and says agent.joined",
    )
    dispatch_ready_reserve_s: float = Field(
        default=5.0, ge=0, description="time a joined agent needs to get ready, kept free before the deadline"
    )
    dispatch_max_attempts: int = Field(
        default=5, ge=1, description="dispatches of a session whose readiness deadline is unknown (an old record)"
    )
    dispatch_started_job_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a job a worker took (ListDispatch lists it) keeps its dispatch this long (at least "
        "dispatch_join_timeout_s) before it is taken for lost and replaced: a slow start on a busy fleet must not "
        "get the room a second agent job",
    )
    dispatch_with_room: bool = Field(
        default=True,
        description="a session's first dispatch is made with its room (CreateRoom with the agent in it: LiveKit "
        "dispatches it as it creates the room), one LiveKit call instead of two. Needs LiveKit's room.auto_create off "
        "(as deploy/ sets it): only the dispatcher creates rooms then. With auto_create on, set false: a room a "
        "frontend's join created first gets no agent from CreateRoom, and the watchdog would add one only after "
        "dispatch_join_timeout_min_s",
    )
    dispatch_max_waiting: int = Field(
        default=200,
        ge=0,
        description="new dispatches wait while this many dispatched sessions wait for their agent (all replicas; "
        "0: no pacing). Keep it below the agent fleet's free job capacity: LiveKit drops jobs a full fleet refuses",
    )
    dispatch_max_pacing_wait_s: float = Field(
        default=60.0, gt=0, description="a paced session is dispatched anyway after waiting this long"
    )
    watchdog_scan_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="the longest each replica sleeps between looks at the earliest watch deadline (it wakes at that "
        "deadline; capped by the shortest join wait, so a watch armed meanwhile is never missed)",
    )
    watchdog_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="a claimed watch is due again after this long if its replica died; keep it above "
        "retry_max_seconds plus the room-lock wait",
    )
    watchdog_batch: int = Field(default=100, ge=1, description="watches claimed per scan")
    room_sweep_interval_s: float = Field(
        default=30.0, gt=0, description="how often a joined or ready session's room is looked up on LiveKit"
    )
    room_sweep_grace_s: float = Field(
        default=60.0, ge=0, description="a session's room is first looked up this long after the session went live"
    )
    room_sweep_batch: int = Field(default=100, ge=1, le=1000, description="room names per ListRooms call")
    room_sweep_max_batches: int = Field(default=10, ge=1, description="ListRooms calls per sweep and replica")
    retire_group_idle_s: float = Field(
        default=900.0,
        gt=0,
        description="the dispatcher's group on a stream it no longer reads (agent.joined) is removed once none of "
        "its consumers was seen this long: keep it well above a rolling deploy's duration, older replicas still "
        "read it until they are gone",
    )
    retire_group_every_s: float = Field(default=60.0, gt=0, description="how often each replica looks for it")
    redis_max_connections: int = Field(
        default=64, ge=2, description="pool of the room locks and the ledger (callers wait for a free connection)"
    )
    ledger_ttl_s: int = Field(default=86_400, ge=60, description="how long the dispatcher remembers a session")
    flow_watchers_cache_s: float = Field(
        default=1.0, ge=0, description="how long a room's watcher list is reused for flow events (0: list every time)"
    )
    flow_relay_workers: int = Field(
        default=1,
        ge=1,
        description="flow events relayed concurrently per replica; 1 keeps each session's events in order "
        "(more: watchers must reorder by seq)",
    )
    flow_relay_attempts: int = Field(default=3, ge=1, description="SendData attempts per flow event and role")
