// Command linkproxy is the network lab's slow, lossy link: a TCP proxy
// (toxiproxy, used as a library) that a lab runs in a volunteer's network
// namespace, between the volunteer and its server, as a home link would
// sit. Its flags set the link's faults; SIGUSR1 drops every connection at
// once (a router's reboot), and so does --drop-every, now and then;
// SIGTERM stops it.
//
// It prints "listening on HOST:PORT" once it accepts connections.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept connections on")
	upstream := flag.String("upstream", "", "address to forward them to")
	latency := flag.Duration("latency", 0, "delay added in each direction (the round trip grows by twice this)")
	jitter := flag.Duration("jitter", 0, "random variation of the delay, plus or minus")
	upRate := flag.Int64("up-kbps", 0, "bandwidth towards the upstream in kilobits per second (0: unlimited)")
	downRate := flag.Int64("down-kbps", 0, "bandwidth from the upstream in kilobits per second (0: unlimited)")
	dropEvery := flag.Duration("drop-every", 0, "drop every connection at once this often (0: never)")
	flag.Parse()
	if err := run(*listen, *upstream, toxicsFor(*latency, *jitter, *upRate, *downRate), *dropEvery); err != nil {
		fmt.Fprintln(os.Stderr, "linkproxy:", err)
		os.Exit(1)
	}
}

// toxic is one of toxiproxy's toxics, as its API takes it.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// toxicsFor are the toxics of a link. Dropped connections are not among
// them: toxiproxy's reset_peer and timeout toxics pass no data at all
// before they act, so run drops connections itself.
func toxicsFor(latency, jitter time.Duration, upKbps, downKbps int64) []toxic {
	var ts []toxic
	add := func(name, typ, stream string, attrs map[string]any) {
		ts = append(ts, toxic{Name: name, Type: typ, Stream: stream, Toxicity: 1, Attributes: attrs})
	}
	if latency > 0 {
		for _, s := range []string{"upstream", "downstream"} {
			add("latency_"+s, "latency", s, map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
		}
	}
	// toxiproxy counts bandwidth in kilobytes per second.
	if upKbps > 0 {
		add("bandwidth_up", "bandwidth", "upstream", map[string]any{"rate": max(1, upKbps/8)})
	}
	if downKbps > 0 {
		add("bandwidth_down", "bandwidth", "downstream", map[string]any{"rate": max(1, downKbps/8)})
	}
	return ts
}

func run(listen, upstream string, ts []toxic, dropEvery time.Duration) error {
	if upstream == "" {
		return fmt.Errorf("--upstream is required")
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "link", listen, upstream)
	for _, t := range ts {
		b, _ := json.Marshal(t)
		if _, err := p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("toxic %s: %w", t.Name, err)
		}
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	fmt.Printf("listening on %s\n", p.Listen)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	var every <-chan time.Time
	if dropEvery > 0 {
		t := time.NewTicker(dropEvery)
		defer t.Stop()
		every = t.C
	}
	for {
		select {
		case s := <-sig:
			if s != syscall.SIGUSR1 {
				p.Stop()
				return nil
			}
		case <-every:
		}
		// Stopping closes every connection; the listener comes back at
		// once on the same address, as a link that went down and up.
		addr := p.Listen
		p.Stop()
		p.Listen = addr
		if err := p.Start(); err != nil {
			return fmt.Errorf("listen again on %s: %w", addr, err)
		}
		fmt.Println("dropped every connection")
	}
}
