// Request ids and one JSON access line per request (log/slog to stdout), for
// REST (net/http middleware) and gRPC (interceptors), as a Go service would
// have them.

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

const (
	requestIDHeader = "x-request-id"
	// maxRequestIDLength: a longer (or non-printable) caller id is replaced.
	maxRequestIDLength = 128
)

type requestIDKey struct{}

// validOrNewID keeps a sane caller id (1-128 visible ASCII characters) and
// otherwise makes a UUID v4.
func validOrNewID(id string) string {
	valid := len(id) > 0 && len(id) <= maxRequestIDLength
	for i := 0; valid && i < len(id); i++ {
		valid = id[i] > ' ' && id[i] < 0x7f
	}
	if valid {
		return id
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// requestID is the id of the request ctx belongs to.
func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id
	}
	if values := metadata.ValueFromIncomingContext(ctx, requestIDHeader); len(values) > 0 {
		return validOrNewID(values[0])
	}
	return validOrNewID("")
}

type recordingWriter struct {
	http.ResponseWriter
	status int
}

func (w *recordingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func httpAccessLog(logger *slog.Logger, service string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		id := validOrNewID(r.Header.Get(requestIDHeader))
		w.Header().Set(requestIDHeader, id)
		recorder := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(recorder, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("service", service),
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("protocol", r.Proto),
			slog.Int("status", recorder.status),
			slog.Float64("latency_ms", float64(time.Since(started).Microseconds())/1000),
			slog.String("client", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}

func grpcLine(ctx context.Context, logger *slog.Logger, service, method, id string, started time.Time, err error) {
	client := ""
	if p, ok := peer.FromContext(ctx); ok {
		client = p.Addr.String()
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("service", service),
		slog.String("request_id", id),
		slog.String("rpc", method),
		slog.String("protocol", "gRPC"),
		slog.String("grpc_code", status.Code(err).String()),
		slog.Float64("latency_ms", float64(time.Since(started).Microseconds())/1000),
		slog.String("client", client),
	)
}

func unaryAccessLog(logger *slog.Logger, service string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, request any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		started := time.Now()
		id := requestID(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
		answer, err := handler(context.WithValue(ctx, requestIDKey{}, id), request)
		grpcLine(ctx, logger, service, info.FullMethod, id, started, err)
		return answer, err
	}
}

type streamWithID struct {
	grpc.ServerStream
	ctx context.Context
}

func (s streamWithID) Context() context.Context { return s.ctx }

func streamAccessLog(logger *slog.Logger, service string) grpc.StreamServerInterceptor {
	return func(server any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		started := time.Now()
		id := requestID(stream.Context())
		_ = stream.SetHeader(metadata.Pairs(requestIDHeader, id))
		err := handler(server, streamWithID{stream, context.WithValue(stream.Context(), requestIDKey{}, id)})
		grpcLine(stream.Context(), logger, service, info.FullMethod, id, started, err)
		return err
	}
}
