// Joining a session's room when LiveKit creates no room on join (`room.auto_create: false`, as the deploy files set
// it so that a late join cannot re-create an ended session's room): the dispatcher creates the room just after the
// 202, so a fast frontend can come first and be refused with 404 "requested room does not exist".

export const ROOM_MISSING = "requested room does not exist";

/** True when a join failed because the room does not exist (yet): livekit-client's ConnectionError, status 404. */
export function roomNotCreatedYet(error: unknown): boolean {
  return error instanceof Error && error.message.includes(ROOM_MISSING);
}

const FIRST_PAUSE_MS = 100;
const MAX_PAUSE_MS = 1000;

/**
 * `connect()`, tried again (after 0.1 s, doubling to 1 s) while it fails because the room does not exist yet and
 * `giveUp()` is false (the caller's own deadline bounds it); any other failure rejects at once.
 */
export async function joinWhenCreated(connect: () => Promise<void>, giveUp: () => boolean): Promise<void> {
  let pause = FIRST_PAUSE_MS;
  for (;;) {
    try {
      await connect();
      return;
    } catch (error) {
      if (!roomNotCreatedYet(error) || giveUp()) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    if (giveUp()) throw new Error(`The room was not created in time (${ROOM_MISSING}).`);
    pause = Math.min(pause * 2, MAX_PAUSE_MS);
  }
}
