import type { z } from "zod";
import { HttpError } from "./errors";

/** Validates query parameters with a zod schema; the first bad one is a 400 that names it. */
export function parseQuery<T extends z.ZodType>(
  schema: T,
  query: Record<string, string>,
): z.infer<T> {
  const result = schema.safeParse(query);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = String(issue?.path[0] ?? "query");
  throw new HttpError(400, "invalid_query", `${field}: ${issue?.message ?? "invalid"}`, field);
}
