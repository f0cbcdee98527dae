/**
 * Spawning the VM's Workers. Kept free of heavy imports so the CLI can start
 * them right after parsing the config: their module loading then overlaps
 * the main thread's own (the Workers are handed their work later).
 *
 * @module
 */

/** Workers made ahead of the machine. */
export interface PrespawnedWorkers {
  /** One per present vCPU, in CPU order. */
  readonly vcpus: Worker[];
  /** The timer thread. */
  readonly timer: Worker;
}

/** Spawns `n` vCPU Workers (cpu/vcpu_worker.ts). */
export function spawnVcpuWorkers(n: number): Worker[] {
  const url = new URL("../../cpu/vcpu_worker.ts", import.meta.url);
  return Array.from({ length: n }, (_, i) => new Worker(url, { type: "module", name: `vcpu${i}` }));
}

/** Spawns the timer thread (lib/timer_worker.ts). */
export function spawnTimerWorker(): Worker {
  return new Worker(new URL("../timer_worker.ts", import.meta.url), {
    type: "module",
    name: "timers",
  });
}

/** Spawns every Worker a VM with `cpus` vCPUs needs. */
export function prespawnWorkers(cpus: number): PrespawnedWorkers {
  return { vcpus: spawnVcpuWorkers(cpus), timer: spawnTimerWorker() };
}
