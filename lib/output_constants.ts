/**
 * The console writer's control block layout (Int32 words), shared by the
 * writer thread (lib/output_worker.ts) and the threads that ring its bell.
 * Kept apart from the worker module, which must not be imported elsewhere.
 *
 * @module
 */

/** Bumped (and notified) after bytes were put into a ring. */
export const WRITER_BELL = 0;
/** Set to 1 to ask the writer to write out what is queued and stop. */
export const WRITER_STOP = 1;
/** The writer sets it to 1 when it has stopped. */
export const WRITER_STOPPED = 2;
/** Bytes of the control block. */
export const WRITER_CONTROL_BYTES = 16;
