// One parse per statement text. Every reader of client SQL (read/write
// classification, session-state tracking, prepared statements, sharding
// keys and cross-shard plans, pgml calls, query plugins) asks this module
// for the text's `Statement`, and every answer is worked out at most once,
// when first asked, from one libpg-query parse (and at most one scan) kept
// with the statement. Nothing is parsed until a feature asks: a text that
// only passes through is never decoded or parsed here.
//
// Statements are remembered by text (applications send the same few texts
// over and over; a parse costs tens of microseconds) in a cache bounded by
// entries and by characters. Eviction is second-chance (CLOCK over the
// Map's insertion order): a hit only sets a flag, so a lookup is one
// Map.get; a text over MAX_CACHED_TEXT is not cached but kept in a single
// slot, so the features reading it in one pass still share its parse.

import { loadModule, parseSync, scanSync } from 'libpg-query';
import { ALL_DIRTY } from '../server/reset.js';
import { canonicalFromTokens } from '../plugins/canonical.js';
import { findPgmlCalls, PgmlError, type PgmlAnalysis } from '../pgml/find-calls.js';
import { findShardingKeys, type KeySpec, type ShardingKeys } from '../sharding/key-conditions.js';
import { planSelect } from '../sharding/plan-select.js';
import type { PlanError } from '../sharding/plan-tree.js';
import type { CrossShardPlan } from '../sharding/plan-types.js';
import { relationsIn, type Relation } from './relations.js';
import { sessionEffects } from './session-effects.js';
import { sessionSets, type SetOp } from './session-sets.js';
import { listenOps, type ListenOp } from './listen-statements.js';
import { nodeType, type RawStmt, type ScanToken } from './sql-ast.js';
import { deallocationOf, dropsPrepared, kindOf, opensTransaction, pipelineKind, type Deallocation, type QueryKind } from './statement-kind.js';

await loadModule();

/** Texts longer than this are not cached (a bulk INSERT); the last one is kept in a slot of its own. */
export const MAX_CACHED_TEXT = 8192;
const MAX_ENTRIES = 4096;
/** Characters of cached text; the parse trees are a few tens of times larger. */
const MAX_CHARS = 2 * 1024 * 1024;

let parses = 0;
let scans = 0;

/** libpg-query parses run since the process started (one per distinct text while the cache holds it). */
export function parseCount(): number {
  return parses;
}

/** libpg-query scans run since the process started. */
export function scanCount(): number {
  return scans;
}

/** Why a text does not parse: libpg-query's message (Postgres's own) and where. */
export interface ParseError {
  readonly message: string;
  /** Where in the text the parser stopped (libpg-query's 0-based cursor position; -1 when unknown). */
  readonly cursorPosition: number;
}

const UNSET = Symbol('unset');
type Lazy<T> = T | typeof UNSET;

/** What the pooler knows about one statement text; each part is worked out once, when first asked. */
export class Statement {
  private parsed: Lazy<readonly RawStmt[] | null> = UNSET;
  private parseError: ParseError | null = null;
  private scanned: Lazy<readonly ScanToken[] | null> = UNSET;
  private kindMemo: QueryKind | null = null;
  private dirtMemo = -1;
  private pipelineMemo: Lazy<'read' | 'write' | null> = UNSET;
  private setsMemo: Lazy<SetOp[] | null> = UNSET;
  private listenMemo: Lazy<ListenOp[] | null> = UNSET;
  private deallocationMemo: Lazy<Deallocation | null> = UNSET;
  private relationsMemo: Lazy<readonly Relation[] | null> = UNSET;
  private canonicalMemo: Lazy<readonly string[] | null> = UNSET;
  private pgmlMemo: Lazy<PgmlAnalysis | null> = UNSET;
  private pgmlError: PgmlError | null = null;
  private planMemo: Lazy<CrossShardPlan | PlanError> = UNSET;
  /** Sharding keys per key spec (`table.column`): pools may shard by different keys. */
  private keysMemo: Map<string, ShardingKeys> | null = null;

  constructor(readonly text: string) {}

  /** The parsed statements (libpg-query's RawStmt list); null when the text does not parse. */
  get stmts(): readonly RawStmt[] | null {
    if (this.parsed === UNSET) {
      parses += 1;
      try {
        this.parsed = parseSync(this.text).stmts ?? [];
      } catch (err) {
        const details = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
        this.parseError = { message: (err as Error).message, cursorPosition: details?.cursorPosition ?? -1 };
        this.parsed = null;
      }
    }
    return this.parsed;
  }

  /** Why the text does not parse (null when it does). */
  get error(): ParseError | null {
    return this.stmts === null ? this.parseError : null;
  }

  /** The scanner's tokens (byte offsets into the UTF-8 text); null when the text cannot be scanned. */
  get tokens(): readonly ScanToken[] | null {
    if (this.scanned === UNSET) {
      scans += 1;
      try {
        this.scanned = scanSync(this.text).tokens;
      } catch {
        this.scanned = null; // an unterminated quote or comment
      }
    }
    return this.scanned;
  }

  /** Read or write; unparseable text is a write (the primary will say what is wrong). */
  get kind(): QueryKind {
    if (this.kindMemo === null) {
      const stmts = this.stmts;
      this.kindMemo = stmts === null ? 'write' : kindOf(stmts);
    }
    return this.kindMemo;
  }

  /** It leaves a transaction block open (BEGIN / START TRANSACTION without a COMMIT after it). */
  get opensTransaction(): boolean {
    const stmts = this.stmts;
    return stmts !== null && opensTransaction(stmts);
  }

  /**
   * Session state its statements leave on the server beyond the transaction
   * (Dirty bits of server/reset.ts; 0: none). Unparseable: everything, since
   * whatever part of it runs there (another server version's grammar) is not seen.
   */
  get sessionState(): number {
    if (this.dirtMemo < 0) {
      const stmts = this.stmts;
      this.dirtMemo = stmts === null ? ALL_DIRTY : sessionEffects(stmts);
    }
    return this.dirtMemo;
  }

  /** The SET / RESET changes a client may keep across transactions, when the text is only those (session-sets.ts). */
  get sessionSets(): SetOp[] | null {
    if (this.setsMemo === UNSET) {
      const stmts = this.stmts;
      this.setsMemo = stmts === null ? null : sessionSets(stmts);
    }
    return this.setsMemo;
  }

  /** LISTEN / UNLISTEN ops, when the text is only those (listen-statements.ts). */
  get listenOps(): ListenOp[] | null {
    if (this.listenMemo === UNSET) {
      const stmts = this.stmts;
      this.listenMemo = stmts === null ? null : listenOps(stmts);
    }
    return this.listenMemo;
  }

  /**
   * May share a busy server with other clients' statements (pipelining):
   * 'read' or 'write' for autocommit statements that leave no session state
   * and open no transaction; null when it must have a server to itself.
   */
  get pipelineKind(): 'read' | 'write' | null {
    if (this.pipelineMemo === UNSET) {
      const stmts = this.stmts;
      this.pipelineMemo = stmts === null || this.sessionState !== 0 ? null : pipelineKind(stmts);
    }
    return this.pipelineMemo;
  }

  /** The text is exactly one DEALLOCATE [PREPARE] name | ALL (null otherwise). */
  get deallocation(): Deallocation | null {
    if (this.deallocationMemo === UNSET) this.deallocationMemo = this.stmts === null ? null : deallocationOf(this.stmts);
    return this.deallocationMemo;
  }

  /** Some statement of it drops prepared statements (DEALLOCATE, DISCARD ALL). */
  get dropsPrepared(): boolean {
    const stmts = this.stmts;
    return stmts !== null && dropsPrepared(stmts);
  }

  /** The node type of its only statement (`SelectStmt`...); null for several statements or unparseable text. */
  get soleStatementType(): string | null {
    const stmts = this.stmts;
    return stmts !== null && stmts.length === 1 && stmts[0].stmt ? nodeType(stmts[0].stmt) : null;
  }

  /** Every table-like name it refers to (router/relations.ts); null when it does not parse. */
  get relations(): readonly Relation[] | null {
    if (this.relationsMemo === UNSET) this.relationsMemo = this.stmts === null ? null : relationsIn(this.stmts);
    return this.relationsMemo;
  }

  /** Its statements in canonical form (plugins/canonical.ts), from the scan alone; null when it cannot be scanned. */
  get canonicalStatements(): readonly string[] | null {
    if (this.canonicalMemo === UNSET) this.canonicalMemo = this.tokens === null ? null : canonicalFromTokens(this.tokens);
    return this.canonicalMemo;
  }

  /** Its pgml.embed / pgml.transform calls (null: none). Throws PgmlError, every time, for calls the pooler cannot serve. */
  get pgml(): PgmlAnalysis | null {
    if (this.pgmlMemo === UNSET && this.pgmlError === null) {
      try {
        this.pgmlMemo = findPgmlCalls(this.stmts, () => this.tokens);
      } catch (err) {
        if (!(err instanceof PgmlError)) throw err;
        this.pgmlError = err;
      }
    }
    if (this.pgmlError !== null) throw this.pgmlError;
    return this.pgmlMemo as PgmlAnalysis | null;
  }

  /** How to run it across shards (a SELECT), or why it cannot be. */
  get crossShardPlan(): CrossShardPlan | PlanError {
    if (this.planMemo === UNSET) this.planMemo = planSelect(this.stmts, this.parseError?.message ?? null, this.text, () => this.tokens);
    return this.planMemo;
  }

  /** Its sharding keys for one automatic_sharding_key (a shared object: do not mutate). */
  shardingKeys(spec: KeySpec): ShardingKeys {
    const key = `${spec.table ?? '*'}.${spec.column}`;
    let keys = this.keysMemo?.get(key);
    if (keys === undefined) {
      keys = findShardingKeys(this.stmts, this.text, () => this.tokens, spec);
      (this.keysMemo ??= new Map()).set(key, keys);
    }
    return keys;
  }
}

interface Entry {
  readonly statement: Statement;
  /** Asked for since the eviction hand last passed (second chance). */
  used: boolean;
}

const cache = new Map<string, Entry>();
let cachedChars = 0;
let oversize: Statement | null = null;

/** The statement for a SQL text (remembered: callers share it; never mutate what it returns). */
export function statementOf(text: string): Statement {
  const hit = cache.get(text);
  if (hit !== undefined) {
    hit.used = true;
    return hit.statement;
  }
  if (text.length > MAX_CACHED_TEXT) {
    if (oversize === null || oversize.text !== text) oversize = new Statement(text);
    return oversize;
  }
  const statement = new Statement(text);
  cache.set(text, { statement, used: false });
  cachedChars += text.length;
  while (cache.size > MAX_ENTRIES || cachedChars > MAX_CHARS) evictOne();
  return statement;
}

/** Drops the oldest entry not asked for since the hand last passed it; the ones asked for go round again. */
function evictOne(): void {
  for (;;) {
    const next = cache.entries().next();
    if (next.done) return;
    const [text, entry] = next.value;
    cache.delete(text);
    if (entry.used) {
      entry.used = false;
      cache.set(text, entry);
      continue;
    }
    cachedChars -= text.length;
    return;
  }
}

/** Statements cached now (for tests and metrics). */
export function cachedStatements(): number {
  return cache.size;
}
