// Command audit-logger is the audit-logger service of takedown (DESIGN.md §1).
package main

import "takedown/pkg/service"

func main() { service.Main("audit-logger", service.OpsOnly("audit-logger", "audit", ":8082")) }
