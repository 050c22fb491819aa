/**
 * Runs the /proc and conntrack sources once in whatever network namespace it
 * is started in (the e2e test bundles it and feeds it to
 * `ip netns exec NS node --input-type=module -`) and
 * prints what they saw as one JSON line.
 *
 * argv[2]: optional procRoot for the conntrack source (a directory without
 * net/nf_conntrack forces the `conntrack` tool path).
 */
import { createConntrackSource } from '../../../agent/conntrack-source.js';
import { createProcSource } from '../../../agent/proc-source.js';

const procSource = createProcSource();
await procSource.poll();
const conntrack = createConntrackSource({
  listeners: () => procSource.listeners(),
  connected: () => procSource.connected(),
  ...(process.argv[2] ? { procRoot: process.argv[2] } : {}),
});
const observations = await conntrack.poll();
process.stdout.write(
  `${JSON.stringify({
    observations,
    status: conntrack.status(),
    errors: conntrack.lastErrors(),
    listeners: procSource.listeners(),
  })}\n`,
);
