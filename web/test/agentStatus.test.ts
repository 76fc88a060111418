import { describe, expect, it } from "vitest";
import { readAgentStatus } from "../src/client";
import { AGENT, USER } from "./fakes";

const bytes = (message: object) => new TextEncoder().encode(JSON.stringify(message));
const ready = { type: "agent.ready", sessionId: "s1", greeting: "Hello", timestamp: "2026-01-01T00:00:00Z" };
const failed = {
  type: "agent.failed",
  sessionId: "s1",
  stage: "dispatch",
  reason: "No assistant.",
  timestamp: "t",
  code: "no_agent_available",
};

describe("readAgentStatus", () => {
  it("takes agent.ready from the agent participant", () => {
    expect(readAgentStatus(bytes(ready), AGENT, "agent-status", "s1")).toEqual({ kind: "ready", payload: ready });
  });

  it("ignores agent.ready from anyone else: another user, or no participant", () => {
    expect(readAgentStatus(bytes(ready), USER, "agent-status", "s1")).toBeNull();
    expect(readAgentStatus(bytes(ready), undefined, "agent-status", "s1")).toBeNull();
  });

  it("takes agent.failed from the agent or the server (the dispatcher's SendData), not from a user", () => {
    expect(readAgentStatus(bytes(failed), AGENT, "agent-status", "s1")?.kind).toBe("failed");
    expect(readAgentStatus(bytes(failed), undefined, "agent-status", "s1", "")?.kind).toBe("failed");
    expect(readAgentStatus(bytes(failed), USER, "agent-status", "s1")).toBeNull();
    expect(readAgentStatus(bytes(failed), undefined, "agent-status", "s1", "someone-unannounced")).toBeNull();
  });

  it("ignores other topics, other sessions and what is not JSON", () => {
    expect(readAgentStatus(bytes(ready), AGENT, "flow-events", "s1")).toBeNull();
    expect(readAgentStatus(bytes(ready), AGENT, "agent-status", "s2")).toBeNull();
    expect(readAgentStatus(new TextEncoder().encode("not json"), AGENT, "agent-status", "s1")).toBeNull();
  });
});
