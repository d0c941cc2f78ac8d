// The example streams of spec §1.5 (what snf-image writes into the monitor's FIFO).

export const STREAM_A = `{"messages": ["Starting image copy..."], "type": "image-info", "timestamp": 1500000000.10}
{"type": "image-copy-progress", "total": 2147483648, "position": 402653184, "progress": 18.75, "timestamp": 1500000003.10}
{"type": "image-copy-progress", "total": 2147483648, "position": 2147483648, "progress": 100.0, "timestamp": 1500000014.80}
{"messages": ["Image copy finished."], "type": "image-info", "timestamp": 1500000014.81}
{"messages": ["Starting customization VM..."], "type": "image-info", "timestamp": 1500000014.90}
{"subtype": "task-start", "task": "FixPartitionTable", "type": "image-helper", "timestamp": 1500000020.00}
{"subtype": "task-end", "task": "FixPartitionTable", "type": "image-helper", "timestamp": 1500000020.40}
{"subtype": "warning", "messages": [" No swap partition defined"], "type": "image-helper", "timestamp": 1500000021.00}
{"messages": ["Customization VM exited normally."], "type": "image-info", "timestamp": 1500000040.00}
{"messages": ["Checking customization status..."], "type": "image-info", "timestamp": 1500000040.01}
{"messages": ["Customization status is: SUCCESS"], "type": "image-info", "timestamp": 1500000040.02}
{"messages": ["Image customization finished successfully."], "type": "image-info", "timestamp": 1500000040.03}
`;

export const STREAM_B = `{"subtype": "task-start", "task": "MountImage", "type": "image-helper", "timestamp": 1500000100.0}
{"subtype": "error", "stderr": "mount: wrong fs type\\nbad superblock\\n", "type": "image-helper", "timestamp": 1500000101.0}
{"messages": ["Customization VM exited normally."], "type": "image-info", "timestamp": 1500000102.0}
{"messages": ["Checking customization status..."], "type": "image-info", "timestamp": 1500000102.1}
{"messages": ["Customization status is: ERROR: ..."], "type": "image-info", "timestamp": 1500000102.2}
{"messages": ["Image customization failed."], "type": "image-error", "timestamp": 1500000102.3}
`;

export const lines = (stream: string): string[] => stream.split('\n').filter((l) => l !== '');

/** A realistic progress line, numbered. */
export function progressLine(i: number): string {
  return JSON.stringify({ type: 'image-copy-progress', total: 2147483648, position: i * 4096, progress: Math.round((i / 1000) * 100) / 100, timestamp: 1500000000 + i / 100 });
}
