// AMQP heartbeats on every connection of the package: a broker host that vanishes from the network
// (no reset, no close) is noticed within about two heartbeats instead of the broker's default 60 s
// or, without heartbeats, when the kernel gives up on the socket.

export const AMQP_HEARTBEAT_SECONDS = 10;

/** The URL with `heartbeat=<seconds>` unless it names its own. */
export function withHeartbeat(url: string, seconds: number = AMQP_HEARTBEAT_SECONDS): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.href;
}
