// The StatusService implementation of the Go peer: its own status from the
// latest metrics sample, and GetStatus of its peer over gRPC.

package main

import (
	"context"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	statusv1 "scdemo-go-peer/gen/scdemo/status/v1"
)

const (
	version = "0.1.0-go"
	// defaultWatchInterval and the bounds of WatchStatus's interval, as the Rust services'.
	defaultWatchInterval = time.Second
	minWatchInterval     = 100 * time.Millisecond
	maxWatchInterval     = time.Hour
)

type statusServer struct {
	statusv1.UnimplementedStatusServiceServer
	service   string
	hostname  string
	startTime time.Time
	metrics   *sampler
	peer      statusv1.StatusServiceClient
	peerURL   string
	stopping  chan struct{}
}

func newStatusServer(cfg config, metrics *sampler, peer statusv1.StatusServiceClient) *statusServer {
	hostname, _ := os.Hostname()
	return &statusServer{
		service:   cfg.service,
		hostname:  hostname,
		startTime: time.Now(),
		metrics:   metrics,
		peer:      peer,
		peerURL:   cfg.peerURL,
		stopping:  make(chan struct{}),
	}
}

// stop ends the WatchStatus streams with UNAVAILABLE.
func (s *statusServer) stop() { close(s.stopping) }

func (s *statusServer) current() (*statusv1.ServiceStatus, error) {
	sample := s.metrics.latest.Load()
	if sample == nil {
		return nil, status.Error(codes.Unavailable, "starting: no metrics sample yet")
	}
	return &statusv1.ServiceStatus{
		Service:                   s.service,
		State:                     statusv1.ServiceStatus_STATE_RUNNING,
		Version:                   version,
		Hostname:                  s.hostname,
		StartTime:                 timestamppb.New(s.startTime),
		SampleTime:                timestamppb.New(sample.takenAt),
		Uptime:                    durationpb.New(sample.takenAt.Sub(s.startTime)),
		CpuPercent:                sample.cpuPercent,
		ProcessCpuPercent:         sample.processCPUPercent,
		MemoryPercent:             sample.memoryPercent(),
		MemoryUsedBytes:           sample.memoryUsed,
		MemoryTotalBytes:          sample.memoryTotal,
		ProcessMemoryBytes:        sample.processMemory,
		ContainerMemoryLimitBytes: sample.containerLimit,
	}, nil
}

func (s *statusServer) GetStatus(context.Context, *statusv1.GetStatusRequest) (*statusv1.GetStatusResponse, error) {
	current, err := s.current()
	if err != nil {
		return nil, err
	}
	return &statusv1.GetStatusResponse{Status: current}, nil
}

func (s *statusServer) GetPeerStatus(ctx context.Context, _ *statusv1.GetPeerStatusRequest) (*statusv1.GetPeerStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	// Only the request id is passed on, not the caller's other metadata.
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(requestIDHeader, requestID(ctx)))
	started := time.Now()
	answer, err := s.peer.GetStatus(ctx, &statusv1.GetStatusRequest{})
	if err != nil {
		code := codes.Unavailable
		if status.Code(err) == codes.DeadlineExceeded {
			code = codes.DeadlineExceeded
		}
		return nil, status.Errorf(code, "peer %s: %v", s.peerURL, err)
	}
	return &statusv1.GetPeerStatusResponse{
		Status:      answer.GetStatus(),
		PeerAddress: s.peerURL,
		Latency:     durationpb.New(time.Since(started)),
	}, nil
}

func (s *statusServer) WatchStatus(request *statusv1.WatchStatusRequest, stream grpc.ServerStreamingServer[statusv1.WatchStatusResponse]) error {
	interval := defaultWatchInterval
	if request.GetInterval() != nil {
		interval = request.GetInterval().AsDuration()
	}
	if interval < minWatchInterval || interval > maxWatchInterval {
		return status.Errorf(codes.InvalidArgument, "interval must be from %v to %v", minWatchInterval, maxWatchInterval)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		current, err := s.current()
		if err != nil {
			return err
		}
		if err := stream.Send(&statusv1.WatchStatusResponse{Status: current}); err != nil {
			return err
		}
		select {
		case <-ticker.C:
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.stopping:
			return status.Error(codes.Unavailable, "server stopping: reconnect")
		}
	}
}
