// Replies to PgCat's custom SQL, written by the pooler (see custom-sql.ts).

import { commandComplete, dataRow, rowDescription } from '../protocol/messages/rows.js';
import type { CustomCommand } from './custom-sql.js';
import type { RoutingState } from './route.js';

export interface ShardState {
  shard: number | 'any' | null;
  shardingKey: string | null;
}

function show(column: string, value: string): Buffer {
  return Buffer.concat([rowDescription([{ name: column }]), dataRow([value]), commandComplete('SHOW')]);
}

/** Apply the command to the client's state and build its reply (without ReadyForQuery). */
export function answerCustom(cmd: CustomCommand, routing: RoutingState, shards: ShardState): Buffer {
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
      shards.shard = cmd.shard;
      return commandComplete('SET');
    case 'set_sharding_key':
      shards.shardingKey = cmd.key;
      return commandComplete('SET');
    case 'show_shard':
      return show('shard', shards.shard === null ? 'default' : String(shards.shard));
  }
}
