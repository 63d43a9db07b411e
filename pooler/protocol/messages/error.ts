// ErrorResponse and NoticeResponse, written by the pooler itself, and the
// reader for the ones servers send (the pooler logs and counts them).

import { builder } from '../serializer.js';

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'LOG' | 'INFO';

export interface ErrorFields {
  severity: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function fields(type: number, f: ErrorFields): Buffer {
  const b = builder
    .begin(type)
    .byte(0x53).cstring(f.severity) // S: localized severity
    .byte(0x56).cstring(f.severity) // V: non-localized severity (v9.6+)
    .byte(0x43).cstring(f.code) // C: SQLSTATE
    .byte(0x4d).cstring(f.message); // M
  if (f.detail) b.byte(0x44).cstring(f.detail);
  if (f.hint) b.byte(0x48).cstring(f.hint);
  return b.byte(0).finish();
}

export function errorResponse(code: string, message: string, severity: Severity = 'ERROR', detail?: string): Buffer {
  return fields(0x45, { severity, code, message, detail });
}

export function noticeResponse(message: string, code = '00000', severity: Severity = 'NOTICE', detail?: string): Buffer {
  return fields(0x4e, { severity, code, message, detail });
}

/** Reads the fields of an ErrorResponse/NoticeResponse body into a map keyed by field letter. */
export function parseErrorFields(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const key = String.fromCharCode(body[i]);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    out.set(key, body.toString('utf8', i + 1, end));
    i = end + 1;
  }
  return out;
}

/** The fields of the ErrorResponse/NoticeResponse at [at, end) of `buf`. */
export function errorFieldsAt(buf: Buffer, at: number, end: number): Map<string, string> {
  return parseErrorFields(buf.subarray(at + 5, end));
}
