// Which server role a transaction goes to, decided from its first message:
// PgCat's default_role, query_parser_enabled + read_write_splitting (reads
// to replicas, everything else to the primary), primary_reads_enabled, and
// the client's own SET SERVER ROLE / SET PRIMARY READS.

import type { DefaultRole } from '../../config/types.js';
import { Frontend } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
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
  /** Walks each batch (reused: no allocation per batch). */
  private readonly cursor = new MessageCursor();

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
    try {
      for (const m = this.cursor.over(buf); m.next(); ) {
        let kind: QueryKind | null = null;
        if (m.type === Frontend.Query) {
          kind = classify(m.sql());
        } else if (m.type === Frontend.Parse) {
          kind = classify(m.sql());
          this.statementKinds.set(m.statementName()!, kind);
        } else if (m.type === Frontend.Bind) {
          kind = this.statementKinds.get(m.statementName()!) ?? 'write';
        }
        first ??= kind;
      }
    } catch {
      // A malformed message: the primary's server rejects it.
    }
    return first ?? 'write';
  }
}
