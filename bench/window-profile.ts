// A CPU profile of one stretch of a process (the measured window of a benchmark), not of its whole life:
// `node --cpu-prof` also records module loading, connecting and closing, which at the profiling sizes are
// as large as the work measured and hide it. Open the .cpuprofile in Chrome's DevTools (Performance).
import { Session } from 'node:inspector/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Starts profiling this process now; the returned function stops and writes DIR/NAME-PID.cpuprofile. */
export async function profileWindow(dir: string, name: string): Promise<() => Promise<string>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 200 µs between samples: the default (1 ms) leaves too few samples in a window of a few seconds.
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const file = join(dir, `${name}-${process.pid}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    return file;
  };
}
