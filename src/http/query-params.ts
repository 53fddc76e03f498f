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

/** Reads a JSON request body and validates it; a bad one is a 400 that names the field (e.g. `rooms.3`). */
export async function parseJsonBody<T extends z.ZodType>(
  schema: T,
  request: Request,
): Promise<z.infer<T>> {
  let value: unknown;
  try {
    value = await request.json();
  } catch {
    throw new HttpError(400, "invalid_body", "the body must be JSON", "body");
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : "body";
  throw new HttpError(400, "invalid_body", `${field}: ${issue?.message ?? "invalid"}`, field);
}
