// Command retraction is the retraction service of takedown (DESIGN.md §1).
package main

import "takedown/pkg/service"

func main() { service.Main("retraction", service.OpsOnly("retraction", "retraction", ":8081")) }
