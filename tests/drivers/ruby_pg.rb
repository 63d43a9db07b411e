# ruby-pg (Debian ruby-pg) through PgLynx: statements prepared once per
# connection by name (PG::Connection#prepare) and run with exec_prepared
# while the pooler moves the connection between servers; exec_params for the
# rest (unnamed extended protocol). Run by hand:
#
#   ruby tests/drivers/ruby_pg.rb
#
# Connection from PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (libpq reads
# them). Prints `ok CHECK` or `not ok CHECK: error` per check (see
# tests/drivers.test.ts); exit 1 if any check failed.
require 'pg'

TABLE = 'drv_ruby_pg'
CONNS = 4
ITERATIONS = 50
$failed = false
$stdout.sync = true

def connect
  PG.connect(connect_timeout: 10)
end

def with_conn
  c = connect
  yield c
ensure
  c&.close
end

def check(name)
  yield
  puts "ok #{name}"
rescue StandardError, ScriptError => e
  $failed = true
  puts "not ok #{name}: #{"#{e.class}: #{e.message}".split.join(' ')}"
end

def assert(ok, message)
  raise message unless ok
end

def setup
  with_conn do |c|
    c.exec("DROP TABLE IF EXISTS #{TABLE}")
    c.exec("CREATE TABLE #{TABLE} (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])")
  end
end

def worker(w)
  with_conn do |c|
    c.prepare('sum', 'SELECT $1::int + $2::int AS s, $3::text AS t')
    c.prepare('ins', "INSERT INTO #{TABLE} (worker, i, kind) VALUES ($1, $2, $3)")
    c.prepare('div', 'SELECT 1 / $1::int')
    ITERATIONS.times do |i|
      r = c.exec_prepared('sum', [w, i, "w#{w}"])[0]
      assert(r['s'].to_i == w + i && r['t'] == "w#{w}", "worker #{w} iteration #{i}: got #{r}")
      c.exec('BEGIN')
      c.exec_prepared('ins', [w, i, 'tx'])
      c.exec('COMMIT')
      next unless i % 10 == 9

      c.exec('BEGIN')
      c.exec_prepared('ins', [w, i, 'rolled_back'])
      begin
        c.exec_prepared('div', [0])
        raise 'division by zero did not fail'
      rescue PG::DivisionByZero
        nil
      end
      c.exec('ROLLBACK')
    end
  end
end

def prepared
  threads = (0...CONNS).map { |w| Thread.new { worker(w) } }
  threads.each(&:join) # re-raises a worker's exception
end

# real[] arrives as text: '{0.1,-0.2,...}'.
def vector(text)
  assert(text.is_a?(String) && text.start_with?('{'), "expected a real[] text, got #{text.inspect[0, 80]}")
  v = text[1..-2].split(',').map(&:to_f)
  assert(v.length == 384, "expected 384 floats, got #{v.length}")
  assert((Math.sqrt(v.sum { |x| x * x }) - 1).abs < 1e-4, 'not unit length')
  v
end

def embed(sql, params)
  with_conn { |c| vector(c.exec_params(sql, params)[0]['e']) }
end

POSITIONAL = "SELECT pgml.embed('lexical', $1) AS e"

def embed_positional
  a = embed(POSITIONAL, ['hello world'])
  b = embed(POSITIONAL, ['stock markets fell'])
  assert(a != b, 'different inputs gave the same embedding')
  # The same text through a named statement, twice on one connection.
  with_conn do |c|
    c.prepare('emb', POSITIONAL)
    2.times { assert(vector(c.exec_prepared('emb', ['hello world'])[0]['e']) == a, 'not deterministic') }
  end
end

def embed_named
  a = embed("SELECT pgml.embed(transformer => 'lexical', text => $1) AS e", ['hello world'])
  assert(a == embed(POSITIONAL, ['hello world']), 'named form differs from positional')
end

def embed_literal
  a = embed("SELECT pgml.embed('lexical', 'hello world') AS e", [])
  assert(a == embed(POSITIONAL, ['hello world']), 'literal differs from parameter')
end

def embed_insert
  with_conn do |c|
    c.exec('BEGIN')
    c.prepare('ins_emb', "INSERT INTO #{TABLE} (worker, i, kind, emb) VALUES (-1, $1, 'embed', pgml.embed('lexical', $2))")
    3.times { |i| c.exec_prepared('ins_emb', [i, "doc #{i}"]) }
    c.exec('COMMIT')
    n = c.exec_params("SELECT count(*) AS n FROM #{TABLE} WHERE kind = 'embed' AND array_length(emb, 1) = $1", [384])[0]['n'].to_i
    assert(n == 3, "#{n} stored embeddings, expected 3")
  end
end

def count
  with_conn do |c|
    rows = c.exec_params("SELECT kind, count(*) AS n FROM #{TABLE} WHERE kind <> $1 GROUP BY kind", ['embed'])
            .to_h { |r| [r['kind'], r['n'].to_i] }
    assert(rows == { 'tx' => CONNS * ITERATIONS }, "rows by kind #{rows}, expected {\"tx\"=>#{CONNS * ITERATIONS}}")
  end
end

check('setup') { setup }
check('prepared') { prepared }
check('embed positional') { embed_positional }
check('embed named') { embed_named }
check('embed literal') { embed_literal }
check('embed insert') { embed_insert }
check('count') { count }
exit($failed ? 1 : 0)
