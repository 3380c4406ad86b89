package main

// stepExport is step as the module exports it.
//
//go:wasmexport step
func stepExport() int32 { return step() }
