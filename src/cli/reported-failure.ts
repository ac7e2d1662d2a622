/**
 * Raised by a command whose operation ran and reported failure as data (verify found
 * a bad blob): the result is already printed, only the exit code remains.
 */
export class ReportedFailure extends Error {
  constructor() {
    super('the operation failed; its result was printed');
  }
}
