// PgCat's table_access plugin: refuse queries that touch listed tables.
//
//   [pools.<name>.plugins.table_access]         (or [plugins.table_access])
//   enabled = true
//   tables = ["pg_user", "pg_roles", "pg_database"]
//
// References are found by the Postgres parser (see relationsOf), so names in
// subqueries, CTEs, joins and DML/DDL targets count, and unquoted names are
// matched as Postgres folds them (`FROM SECRET` is table secret; PgCat
// compares the spelling, so it would let that through). As in PgCat, a
// listed name without a schema matches that table in any schema; PgLynx
// also accepts `schema.table`, which matches references to that table
// qualified by that schema or unqualified (the search_path is unknown here,
// so an unqualified name is refused rather than risk letting it through).
// Text that does not parse is passed through: the server rejects it anyway.
// It checks extended-protocol Parse text too, or a driver using Parse would
// bypass the rule (PgCat checks both).

import { relationsOf, type Relation } from './sql.js';
import type { PluginVerdict, QueryPlugin } from './types.js';

/** insufficient_privilege, what Postgres itself answers to a refused table. */
const INSUFFICIENT_PRIVILEGE = '42501';

export class TableAccessPlugin implements QueryPlugin {
  readonly name = 'table_access';
  readonly checksParse = true;
  /** Listed without a schema. */
  private readonly anySchema = new Set<string>();
  /** Listed as schema.table: table -> schemas. */
  private readonly inSchema = new Map<string, Set<string>>();

  private constructor(tables: readonly string[]) {
    for (const entry of tables) {
      const dot = entry.lastIndexOf('.');
      if (dot <= 0 || dot === entry.length - 1) {
        this.anySchema.add(entry);
        continue;
      }
      const table = entry.slice(dot + 1);
      const schemas = this.inSchema.get(table) ?? new Set<string>();
      schemas.add(entry.slice(0, dot));
      this.inSchema.set(table, schemas);
    }
  }

  /** Null when nothing is listed (PgCat treats an empty list as disabled). */
  static build(tables: readonly string[]): TableAccessPlugin | null {
    return tables.length > 0 ? new TableAccessPlugin(tables) : null;
  }

  private refuses(rel: Relation): boolean {
    if (this.anySchema.has(rel.name)) return true;
    const schemas = this.inSchema.get(rel.name);
    return schemas !== undefined && (rel.schema === null || schemas.has(rel.schema));
  }

  onQuery(sql: string): PluginVerdict {
    const relations = relationsOf(sql);
    if (relations === null) return null;
    for (const rel of relations) {
      if (this.refuses(rel)) {
        // PgCat's wording, so clients and log filters see the same message.
        return { kind: 'error', code: INSUFFICIENT_PRIVILEGE, message: `permission for table "${rel.name}" denied` };
      }
    }
    return null;
  }
}
