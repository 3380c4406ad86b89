package runner
import ("context";"testing";"time";"os";"github.com/tetratelabs/wazero")
func TestDbg(t *testing.T) {
	m := goModule(t, "echo")
	ctx := context.Background()
	wasm, _ := os.ReadFile(m)
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		cache, _ := wazero.NewCompilationCacheWithDir(cacheDir)
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
		_, err := rt.CompileModule(ctx, wasm)
		t.Log("compile", time.Since(t0), err)
		rt.Close(ctx); cache.Close(ctx)
	}
	filepathWalk(t)
	spec, _ := echoSpec(t, "x")
	t0 := time.Now()
	res := Run(ctx, spec)
	t.Log("run", time.Since(t0), res.Reason)
	t0 = time.Now()
	res = Run(ctx, spec)
	t.Log("run", time.Since(t0), res.Reason)
}
func filepathWalk(t *testing.T) {
	es, _ := os.ReadDir(cacheDir)
	for _, e := range es { sub, _ := os.ReadDir(cacheDir+"/"+e.Name()); t.Log(e.Name(), len(sub)) }
}
