// Package workunits is momonga's domain: applications, work units, tasks,
// results, hosts and the messages volunteers and the project exchange about
// them (DESIGN §3, §4).
//
// It is the root of the dependency graph: it imports the standard library
// only, and nothing in it touches the network, files or the wall clock. The
// wire encodings are JSON objects that carry a version field ("v") and only
// ever grow: a decoder ignores fields it does not know, so an older peer can
// read a newer message.
package workunits
