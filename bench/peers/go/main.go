// Package main is the benchmark's Go peer: service-a and service-b as a Go
// team would build them instead, with grpc-go and grpc-gateway v2, from the
// same proto/ (three rpcs, the three REST paths), with JSON request logs
// (log/slog) and the peer called over gRPC. bench/run.sh builds it and
// measures it beside the Rust services; see README.md here.
//
// Configured by the same environment as `status-service serve`:
// SERVICE_NAME, SERVER_PORT, BIND_ADDRESS, PEER_URL.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/soheilhy/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	statusv1 "scdemo-go-peer/gen/scdemo/status/v1"
)

const (
	// peerTimeout bounds one call to the peer (PEER_REQUEST_TIMEOUT's default).
	peerTimeout = 5 * time.Second
	// readHeaderTimeout bounds how long a client may take to send its headers.
	readHeaderTimeout = 10 * time.Second
	// shutdownTimeout bounds the graceful stop.
	shutdownTimeout = time.Second
	// exitBadConfig is the exit code for a configuration error, as the Rust binary's.
	exitBadConfig = 64
)

type config struct {
	service string
	address string
	peerURL string
	peer    string // host:port of PEER_URL
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func loadConfig() (config, error) {
	peerURL := env("PEER_URL", "http://127.0.0.1:8202")
	parsed, err := url.Parse(peerURL)
	if err != nil || parsed.Host == "" {
		return config{}, fmt.Errorf("invalid PEER_URL %q: want http://host:port", peerURL)
	}
	return config{
		service: env("SERVICE_NAME", "service-a"),
		address: net.JoinHostPort(env("BIND_ADDRESS", "127.0.0.1"), env("SERVER_PORT", "8201")),
		peerURL: peerURL,
		peer:    parsed.Host,
	}, nil
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	slog.SetDefault(logger)
	cfg, err := loadConfig()
	if err != nil {
		logger.Error("bad configuration", "error", err)
		os.Exit(exitBadConfig)
	}
	if err := run(cfg, logger); err != nil {
		logger.Error("failed", "error", err)
		os.Exit(1)
	}
}

func run(cfg config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	listener, err := net.Listen("tcp", cfg.address)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.address, err)
	}
	// Lazy, like the Rust services' Channel: connects on the first call.
	peerConn, err := grpc.NewClient(cfg.peer, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("peer client: %w", err)
	}
	defer peerConn.Close()

	healthServer := health.NewServer()
	statusName := statusv1.StatusService_ServiceDesc.ServiceName
	for _, name := range []string{"", statusName} {
		healthServer.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	metrics := startSampler(ctx)
	api := newStatusServer(cfg, metrics, statusv1.NewStatusServiceClient(peerConn))

	grpcServer := grpc.NewServer(
		grpc.ChainUnaryInterceptor(unaryAccessLog(logger, cfg.service)),
		grpc.ChainStreamInterceptor(streamAccessLog(logger, cfg.service)),
	)
	statusv1.RegisterStatusServiceServer(grpcServer, api)
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	reflection.Register(grpcServer)

	// grpc-gateway calling the implementation in-process (no extra hop),
	// mounted under /{SERVICE_NAME} like the Rust gateway's routes.
	gateway := runtime.NewServeMux()
	if err := statusv1.RegisterStatusServiceHandlerServer(ctx, gateway, api); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	prefix := "/" + cfg.service
	routes := http.NewServeMux()
	routes.HandleFunc("GET "+prefix+"/healthcheck", healthcheck(healthServer))
	routes.Handle(prefix+"/", http.StripPrefix(prefix, gateway))
	httpServer := &http.Server{
		Handler:           httpAccessLog(logger, cfg.service, routes),
		ReadHeaderTimeout: readHeaderTimeout,
	}

	// One port: HTTP/1.x to net/http (REST), HTTP/2 to grpc-go's own
	// server (gRPC), split by cmux on the connection's first bytes.
	mux := cmux.New(listener)
	restListener := mux.Match(cmux.HTTP1Fast())
	grpcListener := mux.Match(cmux.Any())
	served := make(chan error, 3)
	go func() { served <- grpcServer.Serve(grpcListener) }()
	go func() { served <- httpServer.Serve(restListener) }()
	go func() { served <- mux.Serve() }()
	logger.Info("listening", "service", cfg.service, "address", cfg.address, "peer", cfg.peerURL)

	go func() {
		select {
		case <-metrics.ready:
			for _, name := range []string{"", statusName} {
				healthServer.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
			}
			logger.Info("serving", "service", cfg.service)
		case <-ctx.Done():
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("server stopped: %w", err)
	}
	logger.Info("stopping", "service", cfg.service)
	healthServer.Shutdown()
	api.stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	if err := httpServer.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("HTTP shutdown", "error", err)
	}
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		grpcServer.Stop()
	}
	logger.Info("stopped", "service", cfg.service)
	return nil
}

// healthcheck answers GET /{service}/healthcheck from the gRPC health
// server: {"status":"SERVING"} 200, else the status with 503.
func healthcheck(server *health.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		answer, err := server.Check(r.Context(), &healthpb.HealthCheckRequest{})
		status := healthpb.HealthCheckResponse_NOT_SERVING
		if err == nil {
			status = answer.GetStatus()
		}
		w.Header().Set("Content-Type", "application/json")
		if status != healthpb.HealthCheckResponse_SERVING {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, `{"status":%q}`, status.String())
	}
}
