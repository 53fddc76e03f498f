import { z } from "zod";

import { MAX_ROOM_NAME_LENGTH, ROOM_NAME_PATTERN } from "../protocol/names";

/**
 * Room names: 1 to 128 characters from `A-Z a-z 0-9 . _ ~ : -`, and not `.` or `..`.
 * The set is what a URL path segment carries without escaping (plus `:` for namespacing such
 * as `team:doc-42`), so a name reads the same in a URL, a log line and a Durable Object key.
 */
export const roomNameSchema = z
  .string()
  .min(1, "room name is empty")
  .max(MAX_ROOM_NAME_LENGTH, `room name is longer than ${MAX_ROOM_NAME_LENGTH} characters`)
  .regex(ROOM_NAME_PATTERN, "room name may contain only A-Z a-z 0-9 . _ ~ : -")
  .refine((name) => name !== "." && name !== "..", "room name may not be . or ..");
