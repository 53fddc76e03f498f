/** Splits a blob into views of at most `maxBytes` each (SQLite rows are capped at 2 MB). An empty blob is one empty chunk. */
export function splitIntoChunks(data: Uint8Array, maxBytes: number): Uint8Array[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 1)
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  if (data.byteLength <= maxBytes) return [data];
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < data.byteLength; start += maxBytes) {
    chunks.push(data.subarray(start, Math.min(start + maxBytes, data.byteLength)));
  }
  return chunks;
}

/** Concatenates chunks back into one blob (no copy for a single chunk). */
export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  let size = 0;
  for (const chunk of chunks) size += chunk.byteLength;
  const out = new Uint8Array(size);
  let pos = 0;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.byteLength;
  }
  return out;
}
