/**
 * `metrics.listen` (`host:port`, `[v6]:port`, `:port`): parsed once here for the config schema, the
 * metrics server and doctor, so all three accept and refuse the same addresses.
 */
export interface ListenAddress {
  /** Undefined: every interface. */
  host: string | undefined;
  port: number;
}

export function parseListenAddress(listen: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65_535) {
    throw new Error(
      `metrics.listen: expected host:port such as 0.0.0.0:9839, [::1]:9839 or :9839, got ${JSON.stringify(listen)}`,
    );
  }
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}
