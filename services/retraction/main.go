// Command retraction retracts NCMEC reports that were opened but could not
// be finished, and lets staff retract by hand (DESIGN.md §1, §8).
package main

import (
	"takedown/pkg/service"
	"takedown/services/retraction/internal/app"
	"takedown/services/retraction/internal/retract"
)

func main() { service.Main(retract.Name, service.Serve(app.LoadConfig, app.New)) }
