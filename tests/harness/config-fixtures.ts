// Small pgcat.toml fixtures shared by the config tests.

export const FILE = '/tmp/pglynx-config-test/pgcat.toml';

export const GENERAL = `[general]
admin_username = "admin"
admin_password = "secret"
`;
export const USER = `[pools.app.users.0]
username = "app"
password = "app"
pool_size = 5
`;
export const SHARD = `[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]
`;

/** A minimal valid file; each part can be replaced to break one thing. */
export function minimal(parts: { general?: string; pool?: string; user?: string; shard?: string; tail?: string } = {}): string {
  return [
    parts.general ?? GENERAL,
    `[pools.app]\n${parts.pool ?? ''}`,
    parts.user ?? USER,
    parts.shard ?? SHARD,
    parts.tail ?? '',
  ].join('\n');
}
