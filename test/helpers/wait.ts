// Real waiting, for the tests that wait on something real (a socket, a process, a file
// another process writes). Where only time has to pass, take a ManualClock or fake timers.

/** Resolves after `ms` (through the global setTimeout, so fake timers apply when a test installs them). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
