// pgJDBC (Debian libpostgresql-jdbc-java) through PgLynx with
// prepareThreshold=1: every PreparedStatement uses a named server-side
// statement from its first execution. Run as a single-file program (Java 11+):
//
//   java -cp /usr/share/java/postgresql.jar tests/drivers/Jdbc.java
//
// Connection from PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE. Prints
// `ok CHECK` or `not ok CHECK: error` per check (see tests/drivers.test.ts);
// exit 1 if any check failed.
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class Jdbc {
  static final String TABLE = "drv_jdbc";
  static final int CONNS = 4, ITERATIONS = 50;
  static boolean failed = false;

  interface Check {
    void run() throws Exception;
  }

  static Connection connect() throws SQLException {
    String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/"
        + System.getenv("PGDATABASE") + "?prepareThreshold=1&connectTimeout=10";
    return DriverManager.getConnection(url, System.getenv("PGUSER"), System.getenv("PGPASSWORD"));
  }

  static void check(String name, Check fn) {
    try {
      fn.run();
      System.out.println("ok " + name);
    } catch (Throwable e) {
      failed = true;
      Throwable cause = e.getCause() != null && e instanceof java.util.concurrent.ExecutionException ? e.getCause() : e;
      System.out.println("not ok " + name + ": " + (cause.getClass().getSimpleName() + ": " + cause.getMessage()).replaceAll("\\s+", " "));
    }
    System.out.flush();
  }

  static void require(boolean ok, String message) {
    if (!ok) throw new AssertionError(message);
  }

  static void setup() throws SQLException {
    try (Connection c = connect(); Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS " + TABLE);
      s.execute("CREATE TABLE " + TABLE + " (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])");
    }
  }

  static void worker(int w) throws SQLException {
    try (Connection c = connect();
        PreparedStatement select = c.prepareStatement("SELECT ?::int + ?::int AS s, ?::text AS t");
        PreparedStatement insert = c.prepareStatement("INSERT INTO " + TABLE + " (worker, i, kind) VALUES (?, ?, ?)");
        PreparedStatement divide = c.prepareStatement("SELECT 1 / ?::int")) {
      for (int i = 0; i < ITERATIONS; i++) {
        select.setInt(1, w);
        select.setInt(2, i);
        select.setString(3, "w" + w);
        try (ResultSet r = select.executeQuery()) {
          r.next();
          require(r.getInt(1) == w + i && r.getString(2).equals("w" + w), "worker " + w + " iteration " + i + ": got " + r.getInt(1));
        }
        c.setAutoCommit(false);
        insert.setInt(1, w);
        insert.setInt(2, i);
        insert.setString(3, "tx");
        insert.executeUpdate();
        c.commit();
        if (i % 10 == 9) {
          insert.setInt(1, w);
          insert.setInt(2, i);
          insert.setString(3, "rolled_back");
          insert.executeUpdate();
          divide.setInt(1, 0);
          try {
            divide.executeQuery().close();
            throw new AssertionError("division by zero did not fail");
          } catch (SQLException e) {
            require("22012".equals(e.getSQLState()), "expected 22012, got " + e.getSQLState() + ": " + e.getMessage());
          }
          c.rollback();
        }
        c.setAutoCommit(true);
      }
    }
  }

  static void prepared() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(CONNS);
    try {
      List<Future<Object>> futures = new ArrayList<>();
      for (int w = 0; w < CONNS; w++) {
        final int id = w;
        futures.add(pool.submit((Callable<Object>) () -> {
          worker(id);
          return null;
        }));
      }
      for (Future<Object> f : futures) f.get();
    } finally {
      pool.shutdown();
    }
  }

  static float[] vector(Array a) throws SQLException {
    require(a != null, "NULL embedding");
    Float[] boxed = (Float[]) a.getArray();
    float[] v = new float[boxed.length];
    double sum = 0;
    for (int i = 0; i < v.length; i++) {
      v[i] = boxed[i];
      sum += v[i] * v[i];
    }
    require(v.length == 384, "expected 384 floats, got " + v.length);
    require(Math.abs(Math.sqrt(sum) - 1) < 1e-4, "not unit length");
    return v;
  }

  static float[] embed(String sql, String... args) throws SQLException {
    try (Connection c = connect(); PreparedStatement p = c.prepareStatement(sql)) {
      for (int i = 0; i < args.length; i++) p.setString(i + 1, args[i]);
      try (ResultSet r = p.executeQuery()) {
        r.next();
        return vector(r.getArray(1));
      }
    }
  }

  static final String POSITIONAL = "SELECT pgml.embed('lexical', ?) AS e";

  static void embedPositional() throws SQLException {
    float[] a = embed(POSITIONAL, "hello world");
    float[] b = embed(POSITIONAL, "stock markets fell");
    require(!Arrays.equals(a, b), "different inputs gave the same embedding");
    require(Arrays.equals(a, embed(POSITIONAL, "hello world")), "not deterministic");
  }

  static void embedNamed() throws SQLException {
    float[] a = embed("SELECT pgml.embed(transformer => 'lexical', text => ?) AS e", "hello world");
    require(Arrays.equals(a, embed(POSITIONAL, "hello world")), "named form differs from positional");
  }

  static void embedLiteral() throws SQLException {
    float[] a = embed("SELECT pgml.embed('lexical', 'hello world') AS e");
    require(Arrays.equals(a, embed(POSITIONAL, "hello world")), "literal differs from parameter");
  }

  static void embedInsert() throws SQLException {
    try (Connection c = connect()) {
      c.setAutoCommit(false);
      try (PreparedStatement p = c.prepareStatement("INSERT INTO " + TABLE + " (worker, i, kind, emb) VALUES (-1, ?, 'embed', pgml.embed('lexical', ?))")) {
        for (int i = 0; i < 3; i++) {
          p.setInt(1, i);
          p.setString(2, "doc " + i);
          p.executeUpdate();
        }
      }
      c.commit();
      c.setAutoCommit(true);
      try (PreparedStatement p = c.prepareStatement("SELECT count(*) FROM " + TABLE + " WHERE kind = 'embed' AND array_length(emb, 1) = ?")) {
        p.setInt(1, 384);
        try (ResultSet r = p.executeQuery()) {
          r.next();
          require(r.getLong(1) == 3, r.getLong(1) + " stored embeddings, expected 3");
        }
      }
    }
  }

  static void count() throws SQLException {
    try (Connection c = connect();
        PreparedStatement p = c.prepareStatement("SELECT kind, count(*) FROM " + TABLE + " WHERE kind <> ? GROUP BY kind")) {
      p.setString(1, "embed");
      Map<String, Long> rows = new TreeMap<>();
      try (ResultSet r = p.executeQuery()) {
        while (r.next()) rows.put(r.getString(1), r.getLong(2));
      }
      require(rows.equals(Map.of("tx", (long) CONNS * ITERATIONS)), "rows by kind " + rows + ", expected {tx=" + CONNS * ITERATIONS + "}");
    }
  }

  public static void main(String[] args) {
    check("setup", Jdbc::setup);
    check("prepared", Jdbc::prepared);
    check("embed positional", Jdbc::embedPositional);
    check("embed named", Jdbc::embedNamed);
    check("embed literal", Jdbc::embedLiteral);
    check("embed insert", Jdbc::embedInsert);
    check("count", Jdbc::count);
    System.exit(failed ? 1 : 0);
  }
}
