// startSession: get a session, join its room, and resolve once the agent says it is ready.
import { Room, RoomEvent, type RemoteParticipant } from "livekit-client";
import { createSession, endSession, eventsUrl, type SessionGrant, type StatusEvent } from "./api";
import { AGENT_STATUS_TOPIC, readAgentStatus } from "./agentStatus";
import { joinWhenCreated } from "./join";
import type { AgentReadyPayload } from "./contracts.gen";

/** Which path delivered `agent.ready`: the room's data channel (topic `agent-status`) or the API's SSE stream. */
export type ReadyPath = "data-channel" | "sse";

/** Milliseconds from the call of startSession to each client-side stage. */
export interface StageTimings {
  sessionCreated?: number;
  roomConnected?: number;
  agentReady?: number;
}

/** The part of EventSource used here (injectable for tests). */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  close(): void;
}

export interface StartOptions {
  /** Give up after this long (default 30 s, as the seed's frontend); the session is then ended. */
  timeoutMs?: number;
  /** Your own Room, to register handlers (remote audio) before it connects. */
  room?: Room;
  /** With the room joined, how long SSE's `ready` waits for the data channel's own (default 1 s). */
  sseGraceMs?: number;
  /** Called at each stage, e.g. to update a UI. */
  onStage?: (stage: keyof StageTimings, timings: StageTimings) => void;
  eventSource?: (url: string) => EventSourceLike;
}

/** A publishable key (`pk_...`) for a flow, or a callback that asks your backend (which holds the secret key). */
export type SessionSource =
  | { apiUrl: string; flowId: string; publishableKey: string }
  | { getSession: () => Promise<SessionGrant>; apiUrl?: string };

export interface AgentSession {
  grant: SessionGrant;
  /** The joined room, or null when joining failed and SSE said ready. */
  room: Room | null;
  readyVia: ReadyPath;
  /** The data channel's `agent.ready` (null when it came by SSE). */
  ready: AgentReadyPayload | null;
  timings: StageTimings;
  /** Why the room could not be joined, if it could not. */
  roomError: string | null;
  /** Leave the room and end the session (when an API URL is known). */
  end(): Promise<void>;
}

/** The agent, the dispatcher or the session's status said it will not get ready. */
export class SessionFailedError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
    readonly stage: string | null,
    readonly via: ReadyPath,
  ) {
    super(message);
    this.name = "SessionFailedError";
  }
}

/** No ready signal within the client's timeout. */
export class SessionTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`The assistant did not get ready within ${Math.round(timeoutMs / 1000)} s. Please try again.`);
    this.name = "SessionTimeoutError";
  }
}

const TERMINAL = new Set(["failed", "expired", "ended"]);
// livekit-server announces participants that publish no track in batches every 3 s (subscriberUpdateInterval)
const ANNOUNCE_WAIT_MS = 3500;
const EVENT_SOURCE_CLOSED = 2;

const asError = (value: unknown) => (value instanceof Error ? value : new Error(String(value)));

/** Start a session and resolve when the agent is ready; reject on `agent.failed`, a terminal status, or timeout. */
export function startSession(source: SessionSource & StartOptions): Promise<AgentSession> {
  const started = performance.now();
  const timings: StageTimings = {};
  const mark = (stage: keyof StageTimings) => {
    timings[stage] = Math.round(performance.now() - started);
    source.onStage?.(stage, { ...timings });
  };
  const timeoutMs = source.timeoutMs ?? 30_000;
  const apiUrl = source.apiUrl;
  const room = source.room ?? new Room();
  const openEvents = source.eventSource ?? ((url: string) => new EventSource(url));

  return new Promise<AgentSession>((resolve, reject) => {
    let settled = false;
    let grant: SessionGrant | undefined;
    let events: EventSourceLike | null = null;
    let roomError: string | null = null;
    const timer = setTimeout(() => fail(new SessionTimeoutError(timeoutMs)), timeoutMs);

    const finish = () => {
      settled = true;
      clearTimeout(timer);
      events?.close();
      room.off(RoomEvent.DataReceived, dataListener).off(RoomEvent.ParticipantConnected, onJoined);
    };
    const fail = (error: Error) => {
      if (settled) return;
      finish();
      void room.disconnect();
      // A session the client gave up on would hold an admission slot until the server's own deadline.
      if (error instanceof SessionTimeoutError && grant && apiUrl) void endSession(apiUrl, grant).catch(() => {});
      reject(error);
    };
    const succeed = (via: ReadyPath, ready: AgentReadyPayload | null, joined: boolean) => {
      if (settled || !grant) return;
      finish();
      mark("agentReady");
      const own = grant;
      resolve({
        grant: own,
        room: joined ? room : null,
        readyVia: via,
        ready,
        timings,
        roomError,
        end: async () => {
          await room.disconnect();
          if (apiUrl) await endSession(apiUrl, own);
        },
      });
    };

    // A packet can overtake the announcement of its sender (livekit-server batches the updates of participants
    // that publish no track): keep it until that participant is known, then judge it by its kind.
    const unannounced = new Map<string, { payload: Uint8Array; topic?: string }>();
    const onJoined = (participant: RemoteParticipant) => {
      const held = unannounced.get(participant.identity);
      unannounced.delete(participant.identity);
      if (held) dataListener(held.payload, participant, undefined, held.topic, undefined, participant.identity);
    };

    function dataListener(
      payload: Uint8Array,
      participant?: RemoteParticipant,
      _kind?: unknown,
      topic?: string,
      _encryption?: unknown,
      senderIdentity?: string,
    ) {
      if (!grant) return;
      if (!participant && senderIdentity && topic === AGENT_STATUS_TOPIC) {
        unannounced.set(senderIdentity, { payload, topic });
      }
      const status = readAgentStatus(payload, participant, topic, grant.sessionId, senderIdentity);
      if (status?.kind === "ready") succeed("data-channel", status.payload, true);
      if (status?.kind === "failed") {
        const { reason, code, stage } = status.payload;
        fail(new SessionFailedError(reason, code ?? null, stage, "data-channel"));
      }
    }

    const follow = (url: string, joined: Promise<boolean>) => {
      events = openEvents(url);
      events.addEventListener("status", (event) => {
        const status = JSON.parse(event.data) as StatusEvent;
        if (status.status === "ready") {
          // The data channel is the primary path: with the room joined, give its message a moment to arrive.
          void joined.then((inRoom) => {
            if (!inRoom) return succeed("sse", null, false);
            setTimeout(() => {
              // a packet whose sender is not announced yet may still turn out to be the agent's agent.ready
              if (unannounced.size === 0) succeed("sse", null, true);
              else setTimeout(() => succeed("sse", null, true), ANNOUNCE_WAIT_MS);
            }, source.sseGraceMs ?? 1000);
          });
        } else if (TERMINAL.has(status.status)) {
          const sentence = status.reason ?? `The session is ${status.status}.`;
          fail(new SessionFailedError(sentence, status.endCode, status.status, "sse"));
        }
      });
      events.addEventListener("error", () => {
        // EventSource reconnects by itself; CLOSED means it will not (an HTTP error such as 401/403).
        if (events?.readyState === EVENT_SOURCE_CLOSED) {
          void joined.then((inRoom) => {
            if (!inRoom) fail(new Error(`The room could not be joined (${roomError}) and the status stream failed.`));
          });
        }
      });
    };

    void (async () => {
      try {
        grant =
          "getSession" in source
            ? await source.getSession()
            : await createSession(source.apiUrl, source.flowId, source.publishableKey);
      } catch (error) {
        fail(asError(error));
        return;
      }
      if (settled) return;
      mark("sessionCreated");
      room.on(RoomEvent.DataReceived, dataListener).on(RoomEvent.ParticipantConnected, onJoined);
      const own = grant;
      // auto_create off: a join before the dispatcher created the room is refused (404) and tried again
      const joined = joinWhenCreated(
        () => room.connect(own.livekitUrl, own.token),
        () => settled,
      ).then(
        () => {
          if (!settled) mark("roomConnected");
          return true;
        },
        (error: unknown) => {
          roomError = asError(error).message;
          if (!apiUrl) fail(new Error(`The room could not be joined (${roomError}) and no apiUrl was given for SSE.`));
          return false;
        },
      );
      if (apiUrl) follow(eventsUrl(apiUrl, grant), joined);
    })();
  });
}
