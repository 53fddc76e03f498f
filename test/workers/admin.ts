import { createExecutionContext, env } from "cloudflare:test";
import worker from "../../src/worker";

/** The admin token the workerd tests run with (the suite's env has none, so admin routes are off otherwise). */
export const ADMIN = "an-admin-token-for-workerd-tests";
export const adminEnv = { ...env, HALO_ADMIN_TOKEN: ADMIN };

/** An admin request (`/v1/admin/...`) through the real Worker, with the admin token. */
export async function admin(method: string, path: string, body?: unknown): Promise<Response> {
  const request = new Request(`http://halo.test${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return worker.fetch(request, adminEnv, createExecutionContext());
}
