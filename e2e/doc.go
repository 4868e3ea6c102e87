// Package e2e holds the end-to-end tests of the whole takedown system: the
// stack of processes is started by package stack.
package e2e
