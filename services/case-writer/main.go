// Command case-writer is the case-writer service of takedown (DESIGN.md §1).
package main

import "takedown/pkg/service"

func main() { service.Main("case-writer", service.OpsOnly("case-writer", "casewriter", ":8084")) }
