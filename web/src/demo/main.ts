// The demo page: one Start button, the seed's UI states, the agent's audio, stage timings, a clear error.
import { Room, RoomEvent, Track } from "livekit-client";
import { getSession, startSession, type AgentSession, type StageTimings } from "../client";

/** `/demo/config.json`: served by the API in dev mode (never a secret key: a publishable one). */
interface DemoConfig {
  apiUrl: string;
  flowId: string;
  publishableKey: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const startButton = $<HTMLButtonElement>("start");
const statusBox = $("status");
const timingsTable = $<HTMLTableElement>("timings");

function show(state: "waiting" | "ready" | "failed", text: string, via?: string) {
  statusBox.dataset.state = state;
  if (via) statusBox.dataset.readyVia = via;
  statusBox.textContent = text;
}

function showTimings(rows: [string, number | undefined][]) {
  timingsTable.replaceChildren(
    ...rows
      .filter(([, ms]) => ms !== undefined)
      .map(([name, ms]) => {
        const row = timingsTable.ownerDocument.createElement("tr");
        row.innerHTML = `<td></td><td class="ms"></td>`;
        row.cells[0].textContent = name;
        row.cells[1].textContent = `${ms} ms`;
        return row;
      }),
  );
}

const clientRows = (t: StageTimings): [string, number | undefined][] => [
  ["session created (202)", t.sessionCreated],
  ["room joined", t.roomConnected],
  ["agent ready", t.agentReady],
];

/** The server's stage times, relative to its `requested` (the data channel can beat the status to "ready"). */
async function showServerStages(config: DemoConfig, session: AgentSession) {
  let { stages } = await getSession(config.apiUrl, session.grant);
  for (let attempt = 0; !stages.ready && attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    ({ stages } = await getSession(config.apiUrl, session.grant));
  }
  const since = (at: string | null) => (at ? Date.parse(at) - Date.parse(stages.requested ?? at) : undefined);
  showTimings([
    ...clientRows(session.timings),
    ["server: dispatched", since(stages.dispatched)],
    ["server: agent joined", since(stages.agentJoined)],
    ["server: user subscribed to the agent", since(stages.listenerSubscribed)],
    ["server: greeting started", since(stages.greetingStarted)],
    ["server: greeting finished", since(stages.greetingFinished)],
    ["server: ready", since(stages.ready)],
  ]);
}

async function start(config: DemoConfig) {
  startButton.disabled = true;
  show("waiting", "Waiting for agent...");
  const room = new Room();
  room.on(RoomEvent.TrackSubscribed, (track) => {
    if (track.kind === Track.Kind.Audio) $("audio").append(track.attach());
  });
  void room.startAudio(); // inside the click's gesture, so the browser lets the agent's audio play
  try {
    const session = await startSession({
      ...config,
      room,
      onStage: (_stage, timings) => showTimings(clientRows(timings)),
    });
    const path = session.readyVia === "data-channel" ? "the room's data channel" : "SSE";
    show("ready", "Agent ready - listening...", session.readyVia);
    $("greeting").textContent = session.ready ? `Greeting: "${session.ready.greeting}"` : "";
    $("detail").textContent =
      `agent.ready came over ${path}` + (session.roomError ? ` (the room was not joined: ${session.roomError})` : "");
    await showServerStages(config, session).catch((error: unknown) => {
      console.warn("could not read the server's stage times", error);
      showTimings(clientRows(session.timings));
    });
  } catch (error) {
    const code = (error as { code?: string | null }).code;
    show("failed", `${(error as Error).message}${code ? ` (${code})` : ""}`);
    startButton.disabled = false;
  }
}

async function main() {
  let config: DemoConfig;
  try {
    const response = await fetch(`${import.meta.env.BASE_URL}config.json`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = (await response.json()) as DemoConfig;
  } catch (error) {
    show("failed", `Could not read the demo's config.json (${(error as Error).message}); is the API in dev mode?`);
    startButton.disabled = true;
    return;
  }
  startButton.addEventListener("click", () => void start(config));
}

void main();
