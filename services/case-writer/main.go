// Command case-writer records each report as a Salesforce Case with one
// child record per file, and keeps the case's NCMEC state up to date
// (DESIGN.md §1). It never sends media: only metadata and hashes.
package main

import (
	"takedown/pkg/service"
	"takedown/services/case-writer/internal/app"
)

func main() { service.Main(app.Name, service.Serve(app.LoadConfig, app.New)) }
