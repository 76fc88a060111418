// The HTTP side of agentready a browser may use: create a session with a publishable key, read or end it with its
// client token. Shapes follow services/api/schemas.py (SessionCreated, SessionOut, StatusEvent): those are API
// answers, not contracts/ events, so they are declared here; the data-channel payloads are generated.

/** What a browser needs to join a session: the 202 of `POST /api/flows/{flowId}/sessions`, or your backend's. */
export interface SessionGrant {
  sessionId: string;
  roomName: string;
  token: string;
  livekitUrl: string;
  clientToken: string;
}

/** When each server-side stage was reached (ISO-8601; null: not yet). */
export interface ServerStages {
  requested: string | null;
  dispatched: string | null;
  agentJoined: string | null;
  /** The user subscribed to the agent's audio (the greeting waits for it). */
  listenerSubscribed: string | null;
  greetingStarted: string | null;
  /** The greeting's playout ended: `agent.ready` follows. */
  greetingFinished: string | null;
  ready: string | null;
  ended?: string | null;
}

/** `GET /api/sessions/{id}`. */
export interface SessionState {
  sessionId: string;
  status: string;
  reason: string | null;
  endCode: string | null;
  stages: ServerStages;
}

/** One `event: status` of `GET /api/sessions/{id}/events`. */
export interface StatusEvent {
  sessionId: string;
  status: string;
  reason: string | null;
  endCode: string | null;
  at: string;
  /** The stage times as of this status (absent or null from an API without them). */
  stages?: ServerStages | null;
}

/** An answer of the API that was not a success, with its sentence (`error`) and HTTP status. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function answer<T>(response: Response, what: string): Promise<T> {
  if (response.ok) return (await response.json()) as T;
  let sentence = `${what} failed: HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: unknown };
    if (typeof body.error === "string") sentence = `${what} failed (HTTP ${response.status}): ${body.error}`;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  throw new ApiError(sentence, response.status);
}

const base = (apiUrl: string) => apiUrl.replace(/\/+$/, "");

/** Start a session of `flowId` with a publishable key (`pk_...`): the browser-safe credential. */
export async function createSession(apiUrl: string, flowId: string, publishableKey: string): Promise<SessionGrant> {
  let response: Response;
  try {
    response = await fetch(`${base(apiUrl)}/api/flows/${encodeURIComponent(flowId)}/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${publishableKey}` },
    });
  } catch (error) {
    // fetch says only "Failed to fetch": the API is down, or it refused this page's origin (CORS)
    const why = error instanceof Error ? error.message : String(error);
    throw new ApiError(
      `Could not reach the API at ${apiUrl} (${why}): is it running, and is this page's origin allowed?`,
      0,
    );
  }
  return answer<SessionGrant>(response, "Starting a session");
}

/** The session's status and server-side stage times, read with its client token. */
export async function getSession(apiUrl: string, grant: SessionGrant): Promise<SessionState> {
  const response = await fetch(`${base(apiUrl)}/api/sessions/${encodeURIComponent(grant.sessionId)}`, {
    headers: { authorization: `Bearer ${grant.clientToken}` },
  });
  return answer<SessionState>(response, "Reading the session");
}

/** End the session (`DELETE`, client token). */
export async function endSession(apiUrl: string, grant: SessionGrant): Promise<void> {
  const response = await fetch(`${base(apiUrl)}/api/sessions/${encodeURIComponent(grant.sessionId)}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${grant.clientToken}` },
  });
  if (!response.ok && response.status !== 404) await answer<unknown>(response, "Ending the session");
}

/** The SSE URL with the client token as `access_token` (EventSource cannot send an Authorization header). */
export function eventsUrl(apiUrl: string, grant: SessionGrant): string {
  const token = encodeURIComponent(grant.clientToken);
  return `${base(apiUrl)}/api/sessions/${encodeURIComponent(grant.sessionId)}/events?access_token=${token}`;
}
