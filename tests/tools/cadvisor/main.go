// cadvisor-lab: cAdvisor for the test labs, built from the cAdvisor library's own container manager and
// Prometheus collector (the upstream command lives in a module the Go module proxy does not serve here).
//
// It accepts the flags ovpn renders for the cadvisor service: the library's own (docker_only,
// housekeeping_interval, max_housekeeping_interval, docker, ...) and store_container_labels and port, and serves
// /metrics and /healthz. The metric set is the one ovpn's dashboards and alerts read: cpu, memory, network and
// OOM events, plus what cAdvisor always exports (container_last_seen, container_start_time_seconds, ...).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/cadvisor/cache/memory"
	"github.com/google/cadvisor/container"
	_ "github.com/google/cadvisor/container/docker/install"
	v2 "github.com/google/cadvisor/info/v2"
	"github.com/google/cadvisor/manager"
	"github.com/google/cadvisor/metrics"
	"github.com/google/cadvisor/utils/sysfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

func main() {
	klog.InitFlags(nil)
	listenIP := flag.String("listen_ip", "", "IP to listen on (default: all)")
	port := flag.Int("port", 8080, "port for /metrics and /healthz")
	storeLabels := flag.Bool("store_container_labels", true, "export every container label as a Prometheus label")
	flag.Parse()

	included := container.MetricSet{
		container.CpuUsageMetrics:     struct{}{},
		container.MemoryUsageMetrics:  struct{}{},
		container.NetworkUsageMetrics: struct{}{},
		container.OOMMetrics:          struct{}{},
	}
	m, err := manager.New(memory.New(2*time.Minute, nil), sysfs.NewRealSysFs(), manager.HousekeepingConfigFlags, included,
		http.DefaultClient, []string{"/"}, nil, "", 0)
	if err != nil {
		fail("creating the container manager", err)
	}
	if err := m.Start(); err != nil {
		fail("starting the container manager", err)
	}

	labels := metrics.DefaultContainerLabels
	if !*storeLabels {
		labels = metrics.BaseContainerLabels(nil)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics.NewPrometheusCollector(m, labels, included, clock.RealClock{},
		v2.RequestOptions{IdType: v2.TypeName, Count: 1, Recursive: true}))
	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	address := fmt.Sprintf("%s:%d", *listenIP, *port)
	klog.Infof("cadvisor-lab serving /metrics on %s", address)
	fail("serving", http.ListenAndServe(address, nil))
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "cadvisor-lab: %s: %v\n", what, err)
	os.Exit(1)
}
