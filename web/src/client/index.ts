// agentready's browser client: start a session, join its LiveKit room, wait for the agent to be ready.
export { ApiError, createSession, endSession, eventsUrl, getSession } from "./api";
export type { ServerStages, SessionGrant, SessionState, StatusEvent } from "./api";
export { AGENT_STATUS_TOPIC, readAgentStatus } from "./agentStatus";
export type { AgentStatus } from "./agentStatus";
export type { AgentFailedPayload, AgentReadyPayload, FlowEventPayload } from "./contracts.gen";
export { FLOW_EVENTS_TOPIC, readFlowEvent } from "./flowEvents";
export { SessionFailedError, SessionTimeoutError, startSession } from "./session";
export type { AgentSession, EventSourceLike, ReadyPath, SessionSource, StageTimings, StartOptions } from "./session";
