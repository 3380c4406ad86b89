package stats

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// /metrics: what an operator watches in Prometheus, read from the
// project's state when scraped, with the official client library.

// Measures is what /metrics reports.
type Measures struct {
	Assigned    uint64         // tasks given to hosts, since the project began
	Reported    uint64         // results reported
	Tasks       map[string]int // tasks by state
	Groups      []GroupMeasure // this process's part of each virtual peer
	ActiveHosts int            // hosts credited in the last ActiveDays days
	Refused     map[string]uint64
	Floods      uint64
	BlobBytes   uint64
}

// GroupMeasure is one virtual peer as this process sees it.
type GroupMeasure struct {
	Name    string
	LogLast uint64
	Lease   string // the member holding the lease
	Members []MemberMeasure
}

// MemberMeasure is one member run here.
type MemberMeasure struct {
	ID      string
	Applied uint64
	Serving bool
}

var (
	descAssigned = prometheus.NewDesc("momonga_tasks_assigned_total", "Tasks given to hosts since the project began.", nil, nil)
	descReported = prometheus.NewDesc("momonga_results_reported_total", "Results reported by hosts since the project began.", nil, nil)
	descTasks    = prometheus.NewDesc("momonga_tasks", "Tasks by state.", []string{"state"}, nil)
	descLogLast  = prometheus.NewDesc("momonga_log_last_sequence", "Sequence number of the last record of a virtual peer's log.", []string{"group"}, nil)
	descApplied  = prometheus.NewDesc("momonga_member_applied_sequence", "Last log record a member applied.", []string{"group", "member"}, nil)
	descLag      = prometheus.NewDesc("momonga_member_lag_records", "Records of the log a member has yet to apply.", []string{"group", "member"}, nil)
	descServing  = prometheus.NewDesc("momonga_members_serving", "Members of a virtual peer serving in this process.", []string{"group"}, nil)
	descLease    = prometheus.NewDesc("momonga_lease_holder", "1 for the member holding a virtual peer's lease.", []string{"group", "member"}, nil)
	descActive   = prometheus.NewDesc("momonga_hosts_active", "Hosts credited in the last 7 days.", nil, nil)
	descRefused  = prometheus.NewDesc("momonga_gateway_refusals_total", "Requests the gateway refused, by error code (rate_limited: over a host's rate).", []string{"code"}, nil)
	descFloods   = prometheus.NewDesc("momonga_gateway_floods_total", "Hosts cut off for flooding the gateway.", nil, nil)
	descBlobs    = prometheus.NewDesc("momonga_blob_store_bytes", "Bytes the blob store holds.", nil, nil)
)

// collector reads Measures at each scrape.
type collector struct {
	measure func(ctx context.Context) (Measures, error)
	logger  *slog.Logger
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAssigned, descReported, descTasks, descLogLast, descApplied, descLag, descServing, descLease,
		descActive, descRefused, descFloods, descBlobs} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := c.measure(ctx)
	if err != nil {
		c.logger.Warn("metrics", "err", err)
		ch <- prometheus.NewInvalidMetric(descAssigned, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descAssigned, prometheus.CounterValue, float64(m.Assigned))
	ch <- prometheus.MustNewConstMetric(descReported, prometheus.CounterValue, float64(m.Reported))
	for s, n := range m.Tasks {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), s)
	}
	for _, g := range m.Groups {
		ch <- prometheus.MustNewConstMetric(descLogLast, prometheus.GaugeValue, float64(g.LogLast), g.Name)
		serving := 0
		for _, mm := range g.Members {
			ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(mm.Applied), g.Name, mm.ID)
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(g.LogLast-min(mm.Applied, g.LogLast)), g.Name, mm.ID)
			if mm.Serving {
				serving++
			}
		}
		ch <- prometheus.MustNewConstMetric(descServing, prometheus.GaugeValue, float64(serving), g.Name)
		if g.Lease != "" {
			ch <- prometheus.MustNewConstMetric(descLease, prometheus.GaugeValue, 1, g.Name, g.Lease)
		}
	}
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(m.ActiveHosts))
	for code, n := range m.Refused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), code)
	}
	ch <- prometheus.MustNewConstMetric(descFloods, prometheus.CounterValue, float64(m.Floods))
	ch <- prometheus.MustNewConstMetric(descBlobs, prometheus.GaugeValue, float64(m.BlobBytes))
}

// metricsHandler serves the project's metrics and the process's own (Go
// runtime, CPU, memory).
func metricsHandler(measure func(ctx context.Context) (Measures, error), logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{measure, logger}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
