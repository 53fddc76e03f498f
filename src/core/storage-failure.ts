/** A write to storage failed: the room's memory may now hold what its storage does not. */
export class StorageFailure extends Error {
  override readonly name = "StorageFailure";

  constructor(override readonly cause: unknown) {
    super("storage write failed");
  }
}
