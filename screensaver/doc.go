// Package screensaver will draw what the volunteer client is computing:
// which projects and tasks, their progress and the credit earned, read from
// the client's local control API (DESIGN §1, §7). It has no code yet.
package screensaver
