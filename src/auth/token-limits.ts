/**
 * Longest token accepted, in characters: room for the largest `user` claim (4 KiB, which
 * base64url makes a third longer) and a generous capability map. A longer `?token=` could not
 * reach the Worker anyway (Cloudflare refuses URLs over 16 KiB); the bound also caps what an
 * in-band refresh (`auth.refresh`) may carry. Its own module, free of `jose`, so the protocol
 * schemas (which the client SDK shares) can use it.
 */
export const MAX_TOKEN_CHARS = 16 * 1024;
