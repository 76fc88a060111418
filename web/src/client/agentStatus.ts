// Reading topic `agent-status`: which messages a frontend may act on.
import { ParticipantKind, type RemoteParticipant } from "livekit-client";
import type { AgentFailedPayload, AgentReadyPayload } from "./contracts.gen";

export const AGENT_STATUS_TOPIC = "agent-status";

export type AgentStatus =
  { kind: "ready"; payload: AgentReadyPayload } | { kind: "failed"; payload: AgentFailedPayload };

/**
 * The status a data message carries, or null when it must be ignored: another topic, another session, not JSON,
 * or a sender that is not the agent. `agent.ready` counts only from the agent participant (any user could publish
 * one); `agent.failed` also from the server itself (no sender identity: the dispatcher's `SendData` when no agent
 * is in the room to say it). A sender the room does not know yet (`participant` undefined, `senderIdentity` set)
 * is not trusted here: see startSession, which looks again once that participant is announced.
 */
export function readAgentStatus(
  payload: Uint8Array,
  participant: Pick<RemoteParticipant, "kind"> | undefined,
  topic: string | undefined,
  sessionId: string,
  senderIdentity?: string,
): AgentStatus | null {
  if (topic !== AGENT_STATUS_TOPIC) return null;
  let message: unknown;
  try {
    message = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
  if (typeof message !== "object" || message === null) return null;
  const { type, sessionId: about } = message as { type?: unknown; sessionId?: unknown };
  if (about !== sessionId) return null;
  const fromAgent = participant?.kind === ParticipantKind.AGENT;
  if (type === "agent.ready" && fromAgent) return { kind: "ready", payload: message as AgentReadyPayload };
  const fromServer = participant === undefined && !senderIdentity;
  if (type === "agent.failed" && (fromAgent || fromServer)) {
    return { kind: "failed", payload: message as AgentFailedPayload };
  }
  return null;
}
