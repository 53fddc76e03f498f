import { type CloseCodeValue, closeReason } from "./close-codes";

/** A client frame that breaks the protocol: the connection that sent it is closed with `code` and `reason`. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  readonly reason: string;

  constructor(
    readonly code: CloseCodeValue,
    reason: string,
  ) {
    super(reason);
    this.reason = closeReason(reason);
  }
}
