// Replies to PgCat's custom SQL, written by the pooler (see custom-sql.ts).

import { commandComplete, dataRow, rowDescription } from '../protocol/messages/rows.js';
import { CustomSqlError, type CustomCommand } from './custom-sql.js';
import type { RoutingState } from './route.js';
import type { ShardState } from '../sharding/shard-state.js';

function show(column: string, value: string): Buffer {
  return Buffer.concat([rowDescription([{ name: column }]), dataRow([value]), commandComplete('SHOW')]);
}

/** What SET SHARD / SET SHARDING KEY need to know of a sharded pool. */
export interface ShardCount {
  readonly settings: { readonly shards: number };
  keyToShard(key: string): number | null;
}

/**
 * Apply the command to the client's state and build its reply (without
 * ReadyForQuery). `sharding`: the pool's shards (null: one shard, where
 * PgCat's commands are accepted and change nothing).
 */
export function answerCustom(cmd: CustomCommand, routing: RoutingState, shards: ShardState, sharding: ShardCount | null = null): Buffer {
  switch (cmd.kind) {
    case 'set_server_role':
      routing.role = cmd.role;
      return commandComplete('SET');
    case 'show_server_role':
      return show('server role', routing.role);
    case 'set_primary_reads':
      routing.primaryReads = cmd.value;
      return commandComplete('SET');
    case 'show_primary_reads':
      return show('primary reads', routing.primaryReads);
    case 'set_shard':
      if (sharding && typeof cmd.shard === 'number' && cmd.shard >= sharding.settings.shards) {
        throw new CustomSqlError(`shard ${cmd.shard} does not exist: the pool has ${sharding.settings.shards} shards (0-${sharding.settings.shards - 1})`);
      }
      shards.shard = cmd.shard;
      shards.shardingKey = null;
      return commandComplete('SET');
    case 'set_sharding_key':
      if (sharding) {
        // PgCat: the key picks the shard for the statements that follow.
        const shard = sharding.keyToShard(cmd.key);
        if (shard === null) throw new CustomSqlError(`sharding key "${cmd.key}" cannot be hashed with this pool's sharding_function`);
        shards.shard = shard;
      }
      shards.shardingKey = cmd.key;
      return commandComplete('SET');
    case 'show_shard':
      return show('shard', shards.shard === null ? 'default' : String(shards.shard));
  }
}
