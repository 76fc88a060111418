// Stand-ins for a LiveKit Room and an EventSource: what startSession touches, driven by the test.
import { ParticipantKind, type Room } from "livekit-client";
import type { EventSourceLike } from "../src/client";

type Listener = (...args: unknown[]) => void;
type Sender = { kind: ParticipantKind; identity: string };

export class FakeRoom {
  listeners = new Map<string, Set<Listener>>();
  disconnected = false;
  constructor(private readonly join: () => Promise<void>) {}
  on(event: string, listener: Listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(listener);
    return this;
  }
  off(event: string, listener: Listener) {
    this.listeners.get(event)?.delete(listener);
    return this;
  }
  connect() {
    return this.join();
  }
  async disconnect() {
    this.disconnected = true;
  }
  /** Deliver a data message as livekit-client does: payload, participant, kind, topic. */
  receive(message: object, sender: Sender | undefined, topic = "agent-status", identity = sender?.identity ?? "") {
    const payload = new TextEncoder().encode(JSON.stringify(message));
    for (const listener of this.listeners.get("dataReceived") ?? []) {
      listener(payload, sender, undefined, topic, undefined, identity);
    }
  }
  /** The server announces a participant (RoomEvent.ParticipantConnected). */
  announce(participant: Sender) {
    for (const listener of this.listeners.get("participantConnected") ?? []) listener(participant);
  }
  asRoom() {
    return this as unknown as Room;
  }
}

export class FakeEventSource implements EventSourceLike {
  readyState = 1;
  closed = false;
  private listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: object = {}) {
    for (const listener of this.listeners.get(type) ?? [])
      listener({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
}

export const AGENT: Sender = { kind: ParticipantKind.AGENT, identity: "agent-1" };
export const USER: Sender = { kind: ParticipantKind.STANDARD, identity: "user-2" };
