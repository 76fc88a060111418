import { describe, expect, it, vi } from "vitest";
import { SessionFailedError, SessionTimeoutError, startSession, type SessionGrant } from "../src/client";
import { AGENT, FakeEventSource, FakeRoom, USER } from "./fakes";

const grant: SessionGrant = { sessionId: "s1", roomName: "r", token: "t", livekitUrl: "ws://lk", clientToken: "ct" };
const ready = { type: "agent.ready", sessionId: "s1", greeting: "Hello", timestamp: "t" };
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function setUp(join: () => Promise<void>) {
  const room = new FakeRoom(join);
  const sources: FakeEventSource[] = [];
  const eventSource = (url: string) => {
    const source = new FakeEventSource(url);
    sources.push(source);
    return source;
  };
  return { room, sources, eventSource };
}

describe("startSession", () => {
  it("resolves on agent.ready from the agent over the data channel, with timings", async () => {
    const { room, eventSource } = setUp(async () => {});
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource });
    await tick();
    room.receive(ready, AGENT);
    const session = await started;
    expect(session.readyVia).toBe("data-channel");
    expect(session.ready).toEqual(ready);
    expect(session.room).not.toBeNull();
    expect(Object.keys(session.timings)).toEqual(["sessionCreated", "roomConnected", "agentReady"]);
  });

  it("joins again while the room does not exist yet (auto_create off: the dispatcher creates it after the 202)", async () => {
    let attempts = 0;
    const { room, eventSource } = setUp(async () => {
      attempts += 1;
      if (attempts < 3) throw new Error("could not establish signal connection: requested room does not exist");
    });
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource });
    await vi.waitFor(() => expect(attempts).toBe(3), { timeout: 2000 });
    room.receive(ready, AGENT);
    const session = await started;
    expect(session.room).not.toBeNull();
    expect(session.roomError).toBeNull();
  });

  it("does not join again after another failure", async () => {
    let attempts = 0;
    const { room, eventSource } = setUp(async () => {
      attempts += 1;
      throw new Error("could not establish signal connection: invalid token");
    });
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource, timeoutMs: 300 });
    await expect(started).rejects.toThrow("no apiUrl was given");
    expect(attempts).toBe(1);
  });

  it("ignores agent.ready sent by another participant and times out", async () => {
    const { room, eventSource } = setUp(async () => {});
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource, timeoutMs: 50 });
    await tick();
    room.receive(ready, USER);
    await expect(started).rejects.toBeInstanceOf(SessionTimeoutError);
    expect(room.disconnected).toBe(true);
  });

  it("holds agent.ready from a sender not yet announced until the room says it is the agent", async () => {
    const { room, eventSource } = setUp(async () => {});
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource });
    await tick();
    room.receive(ready, undefined, "agent-status", AGENT.identity);
    room.announce(USER);
    room.announce(AGENT);
    expect((await started).readyVia).toBe("data-channel");
  });

  it("ignores agent.failed from an unannounced participant that turns out to be a user", async () => {
    const { room, eventSource } = setUp(async () => {});
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource, timeoutMs: 50 });
    await tick();
    room.receive(
      { type: "agent.failed", sessionId: "s1", stage: "x", reason: "forged", timestamp: "t" },
      undefined,
      "agent-status",
      USER.identity,
    );
    room.announce(USER);
    await expect(started).rejects.toBeInstanceOf(SessionTimeoutError);
  });

  it("ends the session with its client token when it gives up", async () => {
    const calls: [string, RequestInit | undefined][] = [];
    vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => {
      calls.push([url, init]);
      return new Response(null, { status: 204 });
    });
    try {
      const { room, eventSource } = setUp(async () => {});
      const started = startSession({
        getSession: async () => grant,
        apiUrl: "http://api",
        room: room.asRoom(),
        eventSource,
        timeoutMs: 30,
      });
      await expect(started).rejects.toThrow("did not get ready within");
      await vi.waitFor(() => expect(calls).toHaveLength(1));
      expect(calls[0][0]).toBe("http://api/api/sessions/s1");
      expect(calls[0][1]).toMatchObject({ method: "DELETE", headers: { authorization: "Bearer ct" } });
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("falls back to SSE (client token as access_token) when the room cannot be joined", async () => {
    const { room, sources, eventSource } = setUp(async () => Promise.reject(new Error("no SFU")));
    const started = startSession({
      getSession: async () => grant,
      apiUrl: "http://api/",
      room: room.asRoom(),
      eventSource,
    });
    await tick();
    expect(sources[0].url).toBe("http://api/api/sessions/s1/events?access_token=ct");
    sources[0].emit("status", { sessionId: "s1", status: "dispatched" });
    sources[0].emit("status", { sessionId: "s1", status: "ready" });
    const session = await started;
    expect(session).toMatchObject({ readyVia: "sse", room: null, ready: null, roomError: "no SFU" });
    expect(sources[0].closed).toBe(true);
  });

  it("rejects with the agent's sentence and code on agent.failed", async () => {
    const { room, eventSource } = setUp(async () => {});
    const started = startSession({ getSession: async () => grant, room: room.asRoom(), eventSource });
    await tick();
    room.receive(
      {
        type: "agent.failed",
        sessionId: "s1",
        stage: "readiness",
        reason: "Not in time.",
        timestamp: "t",
        code: "not_ready_in_time",
      },
      undefined,
    );
    const error = await started.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionFailedError);
    expect(error).toMatchObject({ message: "Not in time.", code: "not_ready_in_time", via: "data-channel" });
  });

  it("rejects when SSE reports a terminal status", async () => {
    const { room, sources, eventSource } = setUp(async () => Promise.reject(new Error("no SFU")));
    const started = startSession({
      getSession: async () => grant,
      apiUrl: "http://api",
      room: room.asRoom(),
      eventSource,
    });
    await tick();
    sources[0].emit("status", { status: "failed", reason: "No agent could be sent.", endCode: "dispatch_failed" });
    await expect(started).rejects.toMatchObject({
      message: "No agent could be sent.",
      code: "dispatch_failed",
      via: "sse",
    });
  });
});
