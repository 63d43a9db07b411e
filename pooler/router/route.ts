// Which server role a transaction goes to, decided from its first message:
// PgCat's default_role, query_parser_enabled + read_write_splitting (reads
// to replicas, everything else to the primary), primary_reads_enabled, and
// the client's own SET SERVER ROLE / SET PRIMARY READS.

import type { DefaultRole } from '../../config/types.js';
import { Frontend } from '../protocol/codes.js';
import type { RoleTarget } from '../pool/cluster.js';
import { classify, type QueryKind } from './classify.js';
import type { RoleSetting } from './custom-sql.js';

export interface RoutingSettings {
  queryParser: boolean;
  readWriteSplitting: boolean;
  defaultRole: DefaultRole;
  primaryReads: boolean;
}

/** A client's routing choices (PgCat's custom SQL) and what its statements do. */
export class RoutingState {
  role: RoleSetting = 'default';
  primaryReads: 'on' | 'off' | 'default' = 'default';
  /** Named statements' kinds, so a later Bind routes like its Parse. */
  private readonly statementKinds = new Map<string, QueryKind>();

  /** Role and primary-reads for a batch whose messages are in `buf`. */
  route(buf: Buffer, settings: RoutingSettings): { role: RoleTarget; primaryReads: boolean } {
    const primaryReads = this.primaryReads === 'default' ? settings.primaryReads : this.primaryReads === 'on';
    const parse = settings.queryParser && settings.readWriteSplitting;
    // A role the client or default_role names is taken as is, as in PgCat:
    // 'replica' means replicas only. primary_reads_enabled (and SET PRIMARY
    // READS) only let the primary take the reads the parser classifies.
    if (this.role === 'primary' || this.role === 'replica' || this.role === 'any') return { role: this.role, primaryReads: false };
    if (!parse && this.role !== 'auto') return { role: settings.defaultRole, primaryReads: false };
    const kind = this.firstKind(buf);
    return { role: kind === 'read' || kind === 'begin_read_only' ? 'replica' : 'primary', primaryReads };
  }

  /** Kind of the first statement of the batch; records every Parse on the way. */
  private firstKind(buf: Buffer): QueryKind {
    let first: QueryKind | null = null;
    let offset = 0;
    while (offset + 5 <= buf.length) {
      const type = buf[offset];
      const end = offset + 1 + buf.readInt32BE(offset + 1);
      let kind: QueryKind | null = null;
      if (type === Frontend.Query) {
        kind = classify(buf.toString('utf8', offset + 5, end - 1));
      } else if (type === Frontend.Parse) {
        const nameEnd = buf.indexOf(0, offset + 5);
        kind = classify(buf.toString('utf8', nameEnd + 1, buf.indexOf(0, nameEnd + 1)));
        this.statementKinds.set(buf.toString('utf8', offset + 5, nameEnd), kind);
      } else if (type === Frontend.Bind) {
        const stmtStart = buf.indexOf(0, offset + 5) + 1;
        kind = this.statementKinds.get(buf.toString('utf8', stmtStart, buf.indexOf(0, stmtStart))) ?? 'write';
      }
      first ??= kind;
      offset = end;
    }
    return first ?? 'write';
  }
}
