package atomicfile

// syncDir does nothing on Windows, which cannot sync a directory:
// FlushFileBuffers refuses a directory's handle.
func syncDir(string) error { return nil }
