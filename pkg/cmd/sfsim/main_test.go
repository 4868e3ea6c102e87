package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"takedown/pkg/salesforce"
	"takedown/pkg/salesforce/sfsim"
)

func TestRealMainServesAndShutsDown(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SFSIM_CLIENT_ID":           "cid",
		"SFSIM_CLIENT_SECRET":       "secret",
		"SFSIM_JWT_PUBLIC_KEY_FILE": keyFile,
		"SFSIM_JWT_USERNAME":        "integration@example",
		"SFSIM_ADMIN":               "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- realMain(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, logger, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("realMain: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("simulator did not start")
	}
	base := "http://" + addr

	for _, creds := range []salesforce.Credentials{
		salesforce.ClientCredentials{ClientID: "cid", ClientSecret: "secret"},
		salesforce.JWTBearer{ClientID: "cid", Username: "integration@example", Audience: "https://login.salesforce.com", PrivateKey: key},
	} {
		c, err := salesforce.New(salesforce.Options{LoginURL: base, Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSchema(t.Context(), salesforce.ObjectSchema{Object: sfsim.CaseObject, ExternalIDField: sfsim.CaseReportID, Fields: []string{"NCMEC_Report_Id__c"}}); err != nil {
			t.Fatalf("%v: check schema: %v", creds, err)
		}
		if _, err := c.Upsert(t.Context(), sfsim.CaseObject, sfsim.CaseReportID, "r-1", map[string]any{"Subject": "s"}); err != nil {
			t.Fatalf("%v: upsert: %v", creds, err)
		}
	}
	resp, err := http.Get(base + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	var st sfsim.State
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.TokenCount != 2 || len(st.Records[sfsim.CaseObject]) != 1 {
		t.Fatalf("state: %+v, %v; want 2 tokens and 1 case", st, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("simulator did not shut down")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(nil, func(k string) string {
		return map[string]string{"SFSIM_ADMIN": "maybe", "SFSIM_API_LIMIT": "-1", "SFSIM_SCHEMA_FILE": "/nonexistent"}[k]
	})
	if err == nil {
		t.Fatal("loadConfig accepted a bad configuration")
	}
	for _, want := range []string{"SFSIM_CLIENT_ID", "SFSIM_CLIENT_SECRET", "SFSIM_ADMIN", "SFSIM_API_LIMIT", "SFSIM_SCHEMA_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestPrintSchemaRoundTrips(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := realMain(t.Context(), []string{"-print-schema"}, func(string) string { return "" }, &out, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{"-schema", file, "-client-id", "c", "-client-secret", "s"}, func(string) string { return "" })
	if err != nil {
		t.Fatalf("load printed schema: %v", err)
	}
	if _, err := sfsim.New(cfg.sim); err != nil {
		t.Fatalf("simulator from printed schema: %v", err)
	}
}
