/// <reference types="node" />
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import { generate, OUTPUT } from "../scripts/gen-types.mjs";

it("the committed payload types match contracts/schemas (else run `npm run types`)", async () => {
  expect(await readFile(OUTPUT, "utf8")).toBe(await generate());
});
