package testenv_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"takedown/pkg/testenv"
)

func TestS3BucketsAreSeparate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testenv.S3(t), testenv.S3(t)
	if a.Bucket == b.Bucket {
		t.Fatalf("two calls gave the same bucket %s", a.Bucket)
	}
	c := a.Client(t)
	if _, err := c.PutObject(ctx, a.Bucket, "x/y", bytes.NewReader([]byte("hello")), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.DataDir, a.Bucket, "x", "y")); err != nil {
		t.Errorf("object is not a file under DataDir: %v", err)
	}
	if _, err := c.StatObject(ctx, b.Bucket, "x/y", minio.StatObjectOptions{}); err == nil {
		t.Error("object visible in the other bucket")
	}
}

func TestS3BucketRemovedAfterTest(t *testing.T) {
	t.Parallel()
	var env testenv.S3Env
	t.Run("inner", func(t *testing.T) {
		env = testenv.S3(t)
		_, err := env.Client(t).PutObject(context.Background(), env.Bucket, "k", bytes.NewReader([]byte("v")), 1, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
	})
	ok, err := env.Client(t).BucketExists(context.Background(), env.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Errorf("bucket %s still exists after its test", env.Bucket)
	}
}

func TestS3ServerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testenv.StartS3Server(t)
	env := srv.Bucket(t)
	c := env.Client(t)
	if _, err := c.PutObject(ctx, env.Bucket, "k", bytes.NewReader([]byte("kept")), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	if _, err := c.BucketExists(ctx, env.Bucket); err == nil {
		t.Fatal("server answered while stopped")
	}

	srv.Start(t)
	obj, err := c.GetObject(ctx, env.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "kept" {
		t.Errorf("after restart: %q, want %q", got, "kept")
	}
}

func TestUnreachableS3(t *testing.T) {
	t.Parallel()
	env := testenv.UnreachableS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := env.Client(t).BucketExists(ctx, env.Bucket); err == nil {
		t.Fatal("unreachable endpoint answered")
	}
}
