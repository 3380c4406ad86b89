//go:build !linux && !windows && !darwin

package host

// Nothing more than the core count is measured on this platform yet.

func memory() (total, available int64) { return 0, 0 }

func cpuModel() string { return "" }

func osVersion() string { return "" }

func disk(string) (total, free int64) { return 0, 0 }

func power() Power { return Power{} }
