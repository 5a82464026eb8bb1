// Submission probe (a developer's tool, not the benchmark): starts a Karya server and measures
// POST /v1/plan with autocannon; --cpu-prof writes the server's V8 CPU profile into the printed directory.
//
//   node bench/probe-submit.mjs [--seconds 10] [--connections 64] [--cpu-prof]
import { parseArgs } from 'node:util';
import { cpuDelta, cpuSnapshot, formatCpu } from './lib/cpu.mjs';
import { submissionBench } from './lib/karya.mjs';
import { withProbeDeployment } from './lib/probe-deployment.mjs';
import { childNames } from './lib/proc.mjs';
import { log } from './lib/util.mjs';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    kind: { type: 'string', default: 'split' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
await withProbeDeployment({ kind: args.kind, cpuProf: args['cpu-prof'] }, async ({ dep, userId }) => {
  // Warm-up, then the measured run.
  await submissionBench(dep.serverPort, userId, 1, { connections: Number(args.connections), seconds: 2 });
  const c0 = cpuSnapshot(childNames());
  const r = await submissionBench(dep.serverPort, userId, 1, { connections: Number(args.connections), seconds: Number(args.seconds) });
  log(`submission: ${r.rate}/s, latency p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}`);
  log(`CPU: ${formatCpu(cpuDelta(c0, cpuSnapshot(childNames())))}`);
});
