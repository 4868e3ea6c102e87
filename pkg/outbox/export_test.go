package outbox

import "sync/atomic"

// CrashAfterPublish makes r fail every batch after publishing it and before
// marking it, as a relay killed at that moment would.
func CrashAfterPublish(r *Relay, err error) { r.afterPublish = func() error { return err } }

// CountPasses counts r's passes that publish something in n.
func CountPasses(r *Relay, n *atomic.Int32) { r.afterPublish = func() error { n.Add(1); return nil } }
