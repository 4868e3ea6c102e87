package app_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func pgxConnect(t testing.TB, url string) (*pgx.Conn, error) {
	return pgx.Connect(context.Background(), url)
}
