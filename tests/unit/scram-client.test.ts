// PgLynx's SCRAM-SHA-256 client (pooler/auth/scram-client.ts), the one that
// logs into Postgres: RFC 7677's test vector, a full exchange against
// PgLynx's server side with a password and with the keys an auth_query login
// reveals, and the checks a client owes an untrusted server. No Postgres.
import t from 'tap';
import { ScramClient } from '../../pooler/auth/scram-client.js';
import { ScramServerSession, scramSecretFromPassword } from '../../pooler/auth/scram-server.js';
import { scramKeysSync } from '../../pooler/auth/scram-crypto.js';

// RFC 7677 section 3 (user "user", password "pencil").
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

t.test("RFC 7677's test vector, message for message", async (t) => {
  const c = new ScramClient({ password: 'pencil' }, { nonce: RFC.clientNonce, user: 'user' });
  t.equal(c.first(), RFC.clientFirst, 'client-first-message');
  t.equal(await c.final(RFC.serverFirst), RFC.clientFinal, 'client-final-message (the proof)');
  t.notOk(c.verified, 'not verified before the server signature');
  c.verify(RFC.serverFinal);
  t.ok(c.verified, "the server's signature checks out");
});

t.test('against PgLynx server side: password, non-ASCII password, and keys', async (t) => {
  for (const password of ['pencil', 'pässwörd\u00A0x']) {
    const secret = scramSecretFromPassword(password);
    const server = new ScramServerSession(secret);
    const c = new ScramClient({ password });
    const first = c.first();
    t.match(first, /^n,,n=,r=/, 'no channel binding, empty user name (as libpq)');
    const serverFinal = server.clientFinal(await c.final(server.clientFirst(first)));
    c.verify(serverFinal);
    t.ok(server.authenticated && c.verified, `both sides authenticated (${JSON.stringify(password)})`);
  }
  const salt = Buffer.from('0123456789abcdef');
  const secret = scramSecretFromPassword('from keys', 4096, salt);
  const keys = { iterations: 4096, salt, ...scramKeysSync('from keys', salt, 4096) };
  const server = new ScramServerSession(secret);
  const c = new ScramClient({ keys });
  c.verify(server.clientFinal(await c.final(server.clientFirst(c.first()))));
  t.ok(server.authenticated && c.verified, 'keys log in without the password');

  const rotated = new ScramServerSession(scramSecretFromPassword('from keys', 4096, Buffer.from('another salt 123')));
  const stale = new ScramClient({ keys });
  await t.rejects(stale.final(rotated.clientFirst(stale.first())), /secret changed/, 'keys for another salt are refused before a proof is sent');
});

t.test('an untrusted server', async (t) => {
  const started = (): ScramClient => {
    const c = new ScramClient({ password: 'pencil' }, { nonce: RFC.clientNonce });
    c.first();
    return c;
  };
  await t.rejects(started().final('r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'), /nonce/, 'a nonce that does not extend ours');
  await t.rejects(started().final(`r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`), /nonce/, 'a nonce with nothing added');
  await t.rejects(started().final(`r=${RFC.clientNonce}x,s=***,i=4096`), /salt/, 'a salt that is not base64');
  await t.rejects(started().final(`r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`), /iteration/, 'zero iterations');
  await t.rejects(started().final(`r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999`), /iterations/, 'an iteration count meant to stall us');
  await t.rejects(started().final(`m=ext,r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`), /extension/, 'a mandatory extension');

  const c = new ScramClient({ password: 'pencil' }, { nonce: RFC.clientNonce, user: 'user' });
  c.first();
  await c.final(RFC.serverFirst);
  t.throws(() => c.verify('v=' + Buffer.alloc(32, 1).toString('base64')), /signature does not match/, 'a forged server signature');
  t.throws(() => c.verify('e=invalid-proof'), /invalid-proof/, 'a server error');
  t.notOk(c.verified);
  t.throws(() => new ScramClient({ password: 'x' }).verify(RFC.serverFinal), /unexpected/, 'a server-final before anything');
});
