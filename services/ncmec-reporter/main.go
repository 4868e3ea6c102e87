// Command ncmec-reporter is the ncmec-reporter service of takedown (DESIGN.md §1).
package main

import "takedown/pkg/service"

func main() { service.Main("ncmec-reporter", service.OpsOnly("ncmec-reporter", "ncmec", ":8083")) }
