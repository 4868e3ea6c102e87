// Command intake takes staff's reports and their evidence files, stores them
// encrypted, and announces each report to the other services (DESIGN.md §1).
package main

import (
	"takedown/pkg/service"
	"takedown/services/intake/internal/app"
)

func main() { service.Main(app.Name, service.Serve(app.LoadConfig, app.New)) }
