import t from 'tap';
import { createHash } from 'node:crypto';
import { isMd5Secret, md5PasswordResponse, md5Salt, md5Secret, verifyMd5Response } from '../../pooler/auth/md5.js';
import {
  SCRAM_SHA_256,
  ScramError,
  ScramServerSession,
  formatScramSecret,
  parseSaslInitialResponse,
  parseScramSecret,
  saslprep,
  scramSecretFromPassword,
  type ScramSecret,
} from '../../pooler/auth/scram-server.js';
import { ServerAuthError, ServerAuthenticator } from '../../pooler/auth/server-auth.js';
import { pgSasl } from '../harness/pg-sasl.js';

// node-postgres's SCRAM client (pgSasl) is the independent peer for the server.

// --- helpers to build backend 'R' payloads and read frontend messages -------

function authBody(code: number, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(code);
  return Buffer.concat([head, typeof data === 'string' ? Buffer.from(data, 'utf8') : data]);
}

function saslMechanisms(...names: string[]): Buffer {
  return authBody(10, Buffer.concat([...names.map((n) => Buffer.from(n + '\0')), Buffer.from([0])]));
}

/** Split a frontend message into type + payload, checking the length word. */
function frontend(msg: Buffer | null): { type: string; body: Buffer } {
  if (!msg) throw new Error('expected a message, got null');
  const len = msg.readInt32BE(1);
  if (len !== msg.length - 1) throw new Error(`bad length ${len} for ${msg.length}-byte message`);
  return { type: String.fromCharCode(msg[0]!), body: msg.subarray(5) };
}

function cstring(body: Buffer): string {
  const nul = body.indexOf(0);
  if (nul !== body.length - 1) throw new Error('expected a single trailing NUL');
  return body.toString('utf8', 0, nul);
}

// Secrets produced by a real PostgreSQL (PGlite, CREATE ROLE ... PASSWORD with
// password_encryption = scram-sha-256 / md5), pasted as literals.
const PG_SECRET_PENCIL =
  'SCRAM-SHA-256$4096:XFjYjHfHjo8IQ8kZ6CAX2w==$iIis6/PMBM/hhegnqcu4ewO5NrV2gi2DzTBI9+cav5s=:Ne2875D50j+io0WxMn8gF9EiubTIpi+3MYj7+rv1Qo8=';
// password 'I\u2168\u00a0caf\u00e9\u00ad': exercises mapping + NFKC
const PG_SECRET_UNICODE =
  'SCRAM-SHA-256$4096:yYYWU/gXNGnKE3cFn6MQkw==$S3Uqh3MyNlJKD+1DMTYlfiWMHXB98SyUb6YIZ4XQvjo=:7QkYDkbiISrLyE11m5UJbgqtfOM45yqHPe9Xj1pgBCw=';
// password 'x\u2168\ue000': private-use char is prohibited, so Postgres hashes the raw password
const PG_SECRET_PROHIBITED =
  'SCRAM-SHA-256$4096:D6+sj3as7Cfm4GVidZrT+Q==$lzFJzqu/Vchw7C+AcWw3yfUivbFupOoeg1eFgzPFy5Y=:WkoWhLoKUJVQvV7GY+r1Z6UTwbXZYIgGs6gkTrg2BAE=';
const PG_MD5_USER_SECRET = 'md520eb1b22a92b5c573dc1eb4331fc49ee'; // role "user", password 'secret'

// --- md5 -------------------------------------------------------------------

t.test('md5', async (t) => {
  const salt = Buffer.from([1, 2, 3, 4]);
  // Computed once with plain node:crypto, independently of the module.
  const expected = 'md5fccef98e4f1cf6cbe96b743fad4e8bd0';
  t.equal(md5PasswordResponse('user', 'secret', salt), expected);
  t.equal(md5Secret('user', 'secret'), PG_MD5_USER_SECRET, 'stored form matches Postgres');
  t.ok(isMd5Secret(PG_MD5_USER_SECRET));
  t.notOk(isMd5Secret('md5XYZ'));

  t.ok(verifyMd5Response(expected, 'user', 'secret', salt), 'plaintext secret');
  t.ok(verifyMd5Response(expected, 'user', PG_MD5_USER_SECRET, salt), 'stored md5 secret');
  t.notOk(verifyMd5Response(expected, 'user', 'wrong', salt), 'wrong password');
  t.notOk(verifyMd5Response(expected, 'other', 'secret', salt), 'wrong user');
  t.notOk(verifyMd5Response(expected, 'user', 'secret', Buffer.from([1, 2, 3, 5])), 'wrong salt');
  t.notOk(verifyMd5Response(expected.slice(0, 20), 'user', 'secret', salt), 'short response');
  t.notOk(verifyMd5Response(md5PasswordResponse('user', '', salt), 'user', '', salt), 'empty password never matches');
  t.notOk(verifyMd5Response(expected, 'user', PG_SECRET_PENCIL, salt), 'SCRAM secret cannot verify md5');

  const s = md5Salt();
  t.equal(s.length, 4);
  t.ok(verifyMd5Response(md5PasswordResponse('bob', 'pw', s), 'bob', 'pw', s), 'random salt round trip');
});

// --- SCRAM secrets -----------------------------------------------------------

t.test('parseScramSecret / scramSecretFromPassword', async (t) => {
  const parsed = parseScramSecret(PG_SECRET_PENCIL);
  if (!parsed) throw new Error('failed to parse a real Postgres secret');
  t.equal(parsed.iterations, 4096);
  t.equal(parsed.salt.length, 16);
  t.equal(formatScramSecret(parsed), PG_SECRET_PENCIL, 'format is the inverse of parse');
  t.equal(
    formatScramSecret(scramSecretFromPassword('pencil', parsed.iterations, parsed.salt)),
    PG_SECRET_PENCIL,
    'same verifier as Postgres',
  );

  for (const [pw, text] of [
    ['I\u2168\u00a0caf\u00e9\u00ad', PG_SECRET_UNICODE],
    ['x\u2168\ue000', PG_SECRET_PROHIBITED],
  ] as const) {
    const p = parseScramSecret(text)!;
    t.equal(formatScramSecret(scramSecretFromPassword(pw, p.iterations, p.salt)), text, `SASLprep of ${JSON.stringify(pw)}`);
  }
  t.equal(saslprep('pencil'), 'pencil');
  t.equal(saslprep('I\u2168\u00a0caf\u00e9\u00ad'), 'IIX caf\u00e9');

  const own = scramSecretFromPassword('hunter2');
  t.equal(own.iterations, 4096);
  t.same(parseScramSecret(formatScramSecret(own)), own, 'round trip of our own secret');

  for (const bad of [
    'pencil',
    PG_MD5_USER_SECRET,
    'SCRAM-SHA-256$0:XFjYjHfHjo8IQ8kZ6CAX2w==$iIis6/PMBM/hhegnqcu4ewO5NrV2gi2DzTBI9+cav5s=:Ne2875D50j+io0WxMn8gF9EiubTIpi+3MYj7+rv1Qo8=',
    'SCRAM-SHA-256$4096:XFjY!HfHjo8IQ8kZ6CAX2w==$iIis6/PMBM/hhegnqcu4ewO5NrV2gi2DzTBI9+cav5s=:Ne2875D50j+io0WxMn8gF9EiubTIpi+3MYj7+rv1Qo8=',
    'SCRAM-SHA-256$4096:XFjYjHfHjo8IQ8kZ6CAX2w==$iIis6/PMBM/hhegnqcu4ew==:Ne2875D50j+io0WxMn8gF9EiubTIpi+3MYj7+rv1Qo8=',
    PG_SECRET_PENCIL + 'x',
    PG_SECRET_PENCIL.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
  ]) {
    t.equal(parseScramSecret(bad), null, `rejects ${bad.slice(0, 30)}...`);
  }
  t.throws(() => scramSecretFromPassword('x', 0), RangeError);
});

// --- SCRAM server --------------------------------------------------------------

t.test('RFC 7677 test vector', async (t) => {
  const secret = scramSecretFromPassword('pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
  const s = new ScramServerSession(secret, { serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
  t.equal(
    s.clientFirst('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'),
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  );
  t.notOk(s.authenticated);
  t.equal(
    s.clientFinal(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    ),
    'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  );
  t.ok(s.authenticated);
  t.throws(() => s.clientFinal('c=biws'), ScramError, 'no third message');
});

async function pgClientAgainst(secret: ScramSecret, password: string): Promise<void> {
  const server = new ScramServerSession(secret);
  const session = pgSasl.startSession([SCRAM_SHA_256]);
  const serverFirst = server.clientFirst(session.response);
  // Client nonce is 24 base64 chars; the server adds 18 random bytes (24 more).
  if (!/^r=[^,]{48,},s=[A-Za-z0-9+/=]+,i=4096$/.test(serverFirst)) throw new Error(`odd server-first ${serverFirst}`);
  await pgSasl.continueSession(session, password, serverFirst);
  const serverFinal = server.clientFinal(session.response);
  pgSasl.finalizeSession(session, serverFinal);
}

t.test('round trip with node-postgres client', async (t) => {
  const secret = parseScramSecret(PG_SECRET_PENCIL)!;
  await t.resolves(pgClientAgainst(secret, 'pencil'), 'right password');
  await t.rejects(pgClientAgainst(secret, 'pencil2'), ScramError, 'wrong password');
  await t.rejects(pgClientAgainst(secret, 'pencil2'), { message: /invalid client proof/ });
  const uni = parseScramSecret(PG_SECRET_UNICODE)!;
  await t.resolves(pgClientAgainst(uni, 'I\u2168\u00a0caf\u00e9\u00ad'), 'non-ASCII password');
  await t.resolves(pgClientAgainst(uni, 'IIX caf\u00e9'), 'SASLprep-equivalent spelling');
});

t.test('SCRAM server rejects malformed or unsupported input', async (t) => {
  const secret = scramSecretFromPassword('pencil', 4096, Buffer.alloc(16, 7));
  const first = (msg: string) => () => new ScramServerSession(secret).clientFirst(msg);
  t.throws(first('p=tls-server-end-point,,n=,r=abc'), { name: 'ScramError', message: /SCRAM-SHA-256-PLUS/ });
  t.throws(first('x,,n=,r=abc'), { message: /channel-binding flag/ });
  t.throws(first('n,a=admin,n=,r=abc'), { message: /authorization identity/ });
  t.throws(first('n,,m=ext,n=,r=abc'), { message: /unsupported SCRAM extension/ });
  t.throws(first('n,,n=,x=abc'), { message: /"r="/ });
  t.throws(first('n,,n='), { message: /"r="/ });
  t.throws(first('n,,r=abc'), { message: /"n="/ });
  t.throws(first('n,,n=,r='), { message: /nonce/ });
  t.throws(first('n'), { message: /GS2 header/ });
  t.doesNotThrow(first('y,,n=*,r=abc'), 'y flag is fine: we never offer channel binding');
  t.doesNotThrow(first('n,,n=user,r=abc,q=ext'), 'optional extension ignored');

  const started = (flag = 'n') => {
    const s = new ScramServerSession(secret, { serverNonce: 'SRV' });
    s.clientFirst(`${flag},,n=,r=abc`);
    return s;
  };
  const proof = Buffer.alloc(32).toString('base64');
  t.throws(() => started().clientFinal(`c=eSws,r=abcSRV,p=${proof}`), { message: /channel-binding/ });
  t.throws(() => started('y').clientFinal(`c=biws,r=abcSRV,p=${proof}`), { message: /channel-binding/ });
  t.throws(() => started().clientFinal(`c=biws,r=abcXXX,p=${proof}`), { message: /nonce/ });
  t.throws(() => started().clientFinal('c=biws,r=abcSRV'), { message: /missing proof/ });
  t.throws(() => started().clientFinal('c=biws,r=abcSRV,p=AAAA'), { message: /invalid proof/ });
  t.throws(() => started().clientFinal(`c=biws,r=abcSRV,p=${proof},x=1`), { message: /invalid proof/ });
  t.throws(() => started().clientFinal(`c=biws,r=abcSRV,p=${proof}`), { message: /invalid client proof/ });
  t.throws(() => new ScramServerSession(secret).clientFinal(`c=biws,r=abc,p=${proof}`), { message: /unexpected/ });
  const twice = started();
  t.throws(() => twice.clientFirst('n,,n=,r=abc'), { message: /unexpected/ });
  t.throws(() => new ScramServerSession(secret, { serverNonce: 'a,b' }), ScramError);
});

t.test('parseSaslInitialResponse', async (t) => {
  const data = 'n,,n=*,r=abc';
  const len = Buffer.alloc(4);
  len.writeInt32BE(Buffer.byteLength(data));
  const body = Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, Buffer.from(data)]);
  t.same(parseSaslInitialResponse(body), { mechanism: 'SCRAM-SHA-256', data });

  const none = Buffer.alloc(4);
  none.writeInt32BE(-1);
  t.same(parseSaslInitialResponse(Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), none])), {
    mechanism: 'SCRAM-SHA-256',
    data: '',
  });
  t.throws(() => parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256')), ScramError);
  t.throws(() => parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256\0\0\0')), ScramError);
  t.throws(() => parseSaslInitialResponse(body.subarray(0, body.length - 1)), ScramError);
  t.throws(() => parseSaslInitialResponse(Buffer.concat([body, Buffer.from('x')])), ScramError);
});

// --- ServerAuthenticator (PgLynx logging into Postgres) ------------------------

t.test('ServerAuthenticator: ok, cleartext, md5', async (t) => {
  const a = new ServerAuthenticator('user', 'secret');
  const clear = frontend(await a.respond(authBody(3)));
  t.equal(clear.type, 'p');
  t.equal(cstring(clear.body), 'secret');

  const salt = Buffer.from([1, 2, 3, 4]);
  const md5 = frontend(await a.respond(authBody(5, salt)));
  t.equal(md5.type, 'p');
  t.equal(cstring(md5.body), 'md5fccef98e4f1cf6cbe96b743fad4e8bd0');
  // Cross-check against an inline computation too.
  const inner = createHash('md5').update('secretuser').digest('hex');
  const outer = 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
  t.equal(cstring(md5.body), outer);

  t.notOk(a.authenticated);
  t.equal(await a.respond(authBody(0)), null);
  t.ok(a.authenticated);
  t.equal(await new ServerAuthenticator('u', null).respond(authBody(0)), null, 'trust needs no password');
});

/** Drive a ServerAuthenticator against ScramServerSession playing Postgres. */
async function scramLogin(password: string, secret: ScramSecret, tamper?: (final: string) => string): Promise<ServerAuthenticator> {
  const server = new ScramServerSession(secret);
  const a = new ServerAuthenticator('alice', password);

  const init = frontend(await a.respond(saslMechanisms('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256')));
  if (init.type !== 'p') throw new Error('expected SASLInitialResponse');
  const { mechanism, data } = parseSaslInitialResponse(init.body);
  if (mechanism !== SCRAM_SHA_256) throw new Error(`client chose ${mechanism}`);
  if (!data.startsWith('n,,')) throw new Error('client must not claim channel binding');

  const resp = frontend(await a.respond(authBody(11, server.clientFirst(data))));
  if (resp.type !== 'p') throw new Error('expected SASLResponse');
  const serverFinal = server.clientFinal(resp.body.toString('utf8'));

  const none = await a.respond(authBody(12, tamper ? tamper(serverFinal) : serverFinal));
  if (none !== null) throw new Error('SASLFinal must not produce a message');
  if ((await a.respond(authBody(0))) !== null) throw new Error('AuthenticationOk must not produce a message');
  return a;
}

t.test('ServerAuthenticator: full SCRAM exchange', async (t) => {
  const secret = parseScramSecret(PG_SECRET_PENCIL)!;
  const a = await scramLogin('pencil', secret);
  t.ok(a.authenticated);

  await t.rejects(scramLogin('wrong', secret), ScramError, 'server refuses a wrong password');

  // An impostor server that does not know the verifier: bad v=.
  const forged = 'v=' + Buffer.alloc(32, 1).toString('base64');
  await t.rejects(scramLogin('pencil', secret, () => forged), {
    name: 'ServerAuthError',
    message: /server SCRAM signature did not verify/,
  });
  await t.rejects(scramLogin('pencil', secret, () => 'e=invalid-proof'), ServerAuthError);
});

t.test('ServerAuthenticator: error cases', async (t) => {
  const noPw = new ServerAuthenticator('bob', null);
  await t.rejects(noPw.respond(authBody(3)), { name: 'ServerAuthError', message: /no password is configured/ });
  await t.rejects(noPw.respond(authBody(5, Buffer.from([1, 2, 3, 4]))), /no password is configured/);
  await t.rejects(noPw.respond(saslMechanisms('SCRAM-SHA-256')), /no password is configured/);
  await t.rejects(new ServerAuthenticator('bob', '').respond(authBody(3)), /no password is configured/);

  const a = () => new ServerAuthenticator('bob', 'pw');
  await t.rejects(a().respond(saslMechanisms('SCRAM-SHA-256-PLUS')), {
    name: 'ServerAuthError',
    message: /SCRAM-SHA-256-PLUS.*supports only SCRAM-SHA-256/,
  });
  await t.rejects(a().respond(saslMechanisms()), /\(none\)/);
  await t.rejects(a().respond(authBody(10, 'SCRAM-SHA-256')), /malformed AuthenticationSASL/);
  for (const [code, name] of [
    [2, 'Kerberos'],
    [6, 'SCM'],
    [7, 'GSSAPI'],
    [8, 'GSSAPI'],
    [9, 'SSPI'],
    [42, 'unknown'],
  ] as const) {
    await t.rejects(a().respond(authBody(code)), { name: 'ServerAuthError', message: new RegExp(name) }, `code ${code}`);
  }
  await t.rejects(a().respond(Buffer.from([0, 0])), /shorter than 4 bytes/);
  await t.rejects(a().respond(authBody(5, Buffer.from([1, 2]))), /salt must be 4 bytes/);
  await t.rejects(a().respond(authBody(11, 'r=x,s=AAAA,i=1')), /unexpected AuthenticationSASLContinue/);
  await t.rejects(a().respond(authBody(12, 'v=AAAA')), /unexpected AuthenticationSASLFinal/);

  // Server nonce that does not extend ours: node-postgres's check, wrapped.
  const b = a();
  await b.respond(saslMechanisms('SCRAM-SHA-256'));
  await t.rejects(b.respond(authBody(11, 'r=notours,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096')), {
    name: 'ServerAuthError',
    message: /nonce/,
  });

  // AuthenticationOk straight after SASLInitialResponse: server skipped proving itself.
  const c = a();
  await c.respond(saslMechanisms('SCRAM-SHA-256'));
  await t.rejects(c.respond(authBody(0)), /before completing SCRAM/);
  t.notOk(c.authenticated);
});
