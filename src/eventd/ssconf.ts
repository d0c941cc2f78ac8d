// Ganeti's ssconf files name the cluster and its master; eventd follows them so that it publishes job
// messages only while this node is the master, and notices a failover within a second.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CLUSTER_NAME_FILE = 'ssconf_cluster_name';
export const MASTER_NODE_FILE = 'ssconf_master_node';

export interface ClusterView {
  /** Undefined while the cluster is not initialised (no ssconf files). */
  cluster: string | undefined;
  master: string | undefined;
}

/** An ssconf file holds one value and a newline. */
export function parseSsconfValue(text: string): string | undefined {
  const value = text.trim();
  return value === '' ? undefined : value;
}

export function isMaster(view: ClusterView, nodeName: string): boolean {
  return view.master !== undefined && view.master === nodeName;
}

export function sameView(a: ClusterView, b: ClusterView): boolean {
  return a.cluster === b.cluster && a.master === b.master;
}

async function readValue(path: string): Promise<string | undefined> {
  try {
    return parseSsconfValue(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function readClusterView(ganetiDataDir: string): Promise<ClusterView> {
  const [cluster, master] = await Promise.all([
    readValue(join(ganetiDataDir, CLUSTER_NAME_FILE)),
    readValue(join(ganetiDataDir, MASTER_NODE_FILE)),
  ]);
  return { cluster, master };
}
