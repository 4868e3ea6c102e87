package outbox

// CrashAfterPublish makes r fail every batch after publishing it and before
// marking it, as a relay killed at that moment would.
func CrashAfterPublish(r *Relay, err error) { r.afterPublish = func() error { return err } }
