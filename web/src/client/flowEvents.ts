// Reading topic `flow-events` (watchers: monitor / supervisor / admin): which messages a watcher may act on.
import type { RemoteParticipant } from "livekit-client";
import type { FlowEventPayload } from "./contracts.gen";

export const FLOW_EVENTS_TOPIC = "flow-events";

/**
 * The flow event a data message carries, or null when it must be ignored: another topic, another session, not
 * JSON, or any sender but the server. The backend sends flow events only through the server API's `SendData`, which
 * names no sender (`participant` undefined and no `senderIdentity`); a participant in the room (a user whose token
 * may publish data) could publish anything on this topic.
 */
export function readFlowEvent(
  payload: Uint8Array,
  participant: Pick<RemoteParticipant, "kind"> | undefined,
  topic: string | undefined,
  sessionId: string,
  senderIdentity?: string,
): FlowEventPayload | null {
  if (topic !== FLOW_EVENTS_TOPIC || participant !== undefined || senderIdentity) return null;
  let message: unknown;
  try {
    message = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
  if (typeof message !== "object" || message === null) return null;
  const { type, sessionId: about } = message as { type?: unknown; sessionId?: unknown };
  return type === "flow.event" && about === sessionId ? (message as FlowEventPayload) : null;
}
