// pgx v4 (Debian golang-github-jackc-pgx-v4-dev) through PgLynx: pgx's
// default statement cache prepares every query under its own name and
// checks the server's ParameterDescription against the arguments given.
// Built offline in GOPATH mode from Debian's sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) go build -o /tmp/pgx-driver tests/drivers/pgx.go
//
// Connection from PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE. Prints
// `ok CHECK` or `not ok CHECK: error` per check (see tests/drivers.test.ts);
// exit 1 if any check failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

const (
	table      = "drv_pgx"
	conns      = 4
	iterations = 50
)

var (
	ctx    = context.Background()
	failed = false
)

func connect() (*pgx.Conn, error) {
	// An empty connection string: pgx reads the PG* environment variables.
	return pgx.Connect(ctx, "connect_timeout=10")
}

func check(name string, fn func() error) {
	if err := fn(); err != nil {
		failed = true
		fmt.Printf("not ok %s: %s\n", name, strings.Join(strings.Fields(err.Error()), " "))
		return
	}
	fmt.Printf("ok %s\n", name)
}

// withConn runs fn on a fresh connection and closes it.
func withConn(fn func(c *pgx.Conn) error) error {
	c, err := connect()
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return fn(c)
}

func setup() error {
	return withConn(func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			return err
		}
		_, err := c.Exec(ctx, "CREATE TABLE "+table+" (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])")
		return err
	})
}

func isDivisionByZero(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22012"
}

func worker(w int) error {
	return withConn(func(c *pgx.Conn) error {
		for i := 0; i < iterations; i++ {
			var s int
			var t string
			if err := c.QueryRow(ctx, "SELECT $1::int + $2::int AS s, $3::text AS t", w, i, fmt.Sprintf("w%d", w)).Scan(&s, &t); err != nil {
				return err
			}
			if s != w+i || t != fmt.Sprintf("w%d", w) {
				return fmt.Errorf("worker %d iteration %d: got (%d, %q)", w, i, s, t)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (worker, i, kind) VALUES ($1, $2, 'tx')", w, i); err != nil {
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return err
			}
			if i%10 == 9 {
				tx, err := c.Begin(ctx)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (worker, i, kind) VALUES ($1, $2, 'rolled_back')", w, i); err != nil {
					return err
				}
				var x int
				err = tx.QueryRow(ctx, "SELECT 1 / $1::int", 0).Scan(&x)
				if !isDivisionByZero(err) {
					return fmt.Errorf("division by zero: expected 22012, got %v", err)
				}
				if err := tx.Rollback(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func prepared() error {
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			errs[w] = worker(w)
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func embed(sql string, args ...interface{}) ([]float32, error) {
	var v []float32
	err := withConn(func(c *pgx.Conn) error { return c.QueryRow(ctx, sql, args...).Scan(&v) })
	if err != nil {
		return nil, err
	}
	if len(v) != 384 {
		return nil, fmt.Errorf("expected 384 floats, got %d", len(v))
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if math.Abs(math.Sqrt(sum)-1) > 1e-4 {
		return nil, fmt.Errorf("not unit length")
	}
	return v, nil
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const positional = "SELECT pgml.embed('lexical', $1) AS e"

func embedPositional() error {
	a, err := embed(positional, "hello world")
	if err != nil {
		return err
	}
	b, err := embed(positional, "stock markets fell")
	if err != nil {
		return err
	}
	if equal(a, b) {
		return fmt.Errorf("different inputs gave the same embedding")
	}
	a2, err := embed(positional, "hello world")
	if err != nil {
		return err
	}
	if !equal(a, a2) {
		return fmt.Errorf("not deterministic")
	}
	return nil
}

// sameAs checks that sql (with args) gives the positional embedding of text.
func sameAs(sql string, text string, args ...interface{}) error {
	a, err := embed(sql, args...)
	if err != nil {
		return err
	}
	b, err := embed(positional, text)
	if err != nil {
		return err
	}
	if !equal(a, b) {
		return fmt.Errorf("%q differs from the positional form", sql)
	}
	return nil
}

func embedNamed() error {
	return sameAs("SELECT pgml.embed(transformer => 'lexical', text => $1) AS e", "hello world", "hello world")
}

func embedLiteral() error {
	return sameAs("SELECT pgml.embed('lexical', 'hello world') AS e", "hello world")
}

func embedInsert() error {
	return withConn(func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		for i := 0; i < 3; i++ {
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (worker, i, kind, emb) VALUES (-1, $1, 'embed', pgml.embed('lexical', $2))", i, fmt.Sprintf("doc %d", i)); err != nil {
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE kind = 'embed' AND array_length(emb, 1) = $1", 384).Scan(&n); err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("%d stored embeddings, expected 3", n)
		}
		return nil
	})
}

func count() error {
	return withConn(func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT kind, count(*) FROM "+table+" WHERE kind <> $1 GROUP BY kind ORDER BY kind", "embed")
		if err != nil {
			return err
		}
		defer rows.Close()
		got := map[string]int{}
		for rows.Next() {
			var kind string
			var n int
			if err := rows.Scan(&kind, &n); err != nil {
				return err
			}
			got[kind] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(got) != 1 || got["tx"] != conns*iterations {
			return fmt.Errorf("rows by kind %v, expected map[tx:%d]", got, conns*iterations)
		}
		return nil
	})
}

func main() {
	check("setup", setup)
	check("prepared", prepared)
	check("embed positional", embedPositional)
	check("embed named", embedNamed)
	check("embed literal", embedLiteral)
	check("embed insert", embedInsert)
	check("count", count)
	if failed {
		os.Exit(1)
	}
}
