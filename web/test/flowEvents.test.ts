import { describe, expect, it } from "vitest";
import { readFlowEvent } from "../src/client";
import { AGENT, USER } from "./fakes";

const bytes = (message: object) => new TextEncoder().encode(JSON.stringify(message));
const event = {
  version: 1,
  type: "flow.event",
  sessionId: "s1",
  seq: 3,
  kind: "lifecycle",
  name: "session.failed",
  timestamp: "2026-01-01T00:00:00Z",
  data: {},
  error: { message: "boom" },
};

describe("readFlowEvent", () => {
  it("takes a flow event from the server (SendData: no participant, no sender identity)", () => {
    expect(readFlowEvent(bytes(event), undefined, "flow-events", "s1")).toEqual(event);
    expect(readFlowEvent(bytes(event), undefined, "flow-events", "s1", "")).toEqual(event);
  });

  it("ignores a flow event any participant published: a user, even the agent, or one not yet announced", () => {
    expect(readFlowEvent(bytes(event), USER, "flow-events", "s1")).toBeNull();
    expect(readFlowEvent(bytes(event), AGENT, "flow-events", "s1")).toBeNull();
    expect(readFlowEvent(bytes(event), undefined, "flow-events", "s1", "user-unannounced")).toBeNull();
  });

  it("ignores other topics, other sessions, other types and what is not JSON", () => {
    expect(readFlowEvent(bytes(event), undefined, "agent-status", "s1")).toBeNull();
    expect(readFlowEvent(bytes(event), undefined, "flow-events", "s2")).toBeNull();
    expect(readFlowEvent(bytes({ ...event, type: "agent.ready" }), undefined, "flow-events", "s1")).toBeNull();
    expect(readFlowEvent(new TextEncoder().encode("{"), undefined, "flow-events", "s1")).toBeNull();
  });
});
