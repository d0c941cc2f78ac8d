// This node's fully qualified name, as Ganeti's ssconf_master_node and GANETI_MASTER spell it.
// os.hostname() is often the short name, so ask `hostname --fqdn` (the resolver's answer, like
// Python's socket.getfqdn() that Ganeti and Synnefo use), with a short timeout.

import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';

export function nodeFqdn(): string {
  try {
    const out = execFileSync('hostname', ['--fqdn'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (out !== '') return out;
  } catch {
    // No resolver answer: the kernel's host name is the best we have.
  }
  return hostname();
}
