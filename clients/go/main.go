// Command statusclient calls service-a and service-b over gRPC with gzip:
// GetStatus, GetPeerStatus, a WatchStatus stream of three messages then
// cancel, Health/Check, and a bad WatchStatus interval that must fail with
// INVALID_ARGUMENT. It exits non-zero on the first failure.
//
// The stubs in gen/ come from the repository's generation recipe
// (clients/generate.sh, buf.gen.yaml); grpc-go ships the health stubs.
//
//	go run . 127.0.0.1:8201 127.0.0.1:8202
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	statusv1 "example.com/statusclient/gen/scdemo/status/v1"
)

// callTimeout bounds every call, so a hung server fails the run instead of
// stalling it.
const callTimeout = 5 * time.Second

// countingGzip is grpc-go's gzip codec, counting the answers it
// decompresses: grpc-go keeps grpc-encoding out of the metadata it shows,
// so this is how the client sees that the server compressed its answers.
type countingGzip struct {
	encoding.Compressor
	decompressed atomic.Int64
}

func (c *countingGzip) Decompress(r io.Reader) (io.Reader, error) {
	c.decompressed.Add(1)
	return c.Compressor.Decompress(r)
}

var gzipCodec = &countingGzip{Compressor: encoding.GetCompressor(gzip.Name)}

func init() { encoding.RegisterCompressor(gzipCodec) }

func main() {
	if len(os.Args) != 3 {
		log.Fatalf("usage: %s SERVICE_A_ADDRESS SERVICE_B_ADDRESS", os.Args[0])
	}
	services := []struct{ name, address, peer string }{
		{"service-a", os.Args[1], "service-b"},
		{"service-b", os.Args[2], "service-a"},
	}
	for _, s := range services {
		if err := check(s.name, s.address, s.peer); err != nil {
			log.Fatalf("FAIL %s: %v", s.name, err)
		}
	}
	fmt.Println("go client: all rpcs OK")
}

func check(name, address, peer string) error {
	// Every call compresses its request with gzip; grpc-go asks for
	// compressed answers with the same codec.
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := statusv1.NewStatusServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()

	before := gzipCodec.decompressed.Load()
	own, err := client.GetStatus(ctx, &statusv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("GetStatus: %w", err)
	}
	st := own.GetStatus()
	if st.GetService() != name || st.GetState() != statusv1.ServiceStatus_STATE_RUNNING {
		return fmt.Errorf("GetStatus answered %s in %s", st.GetService(), st.GetState())
	}
	if gzipCodec.decompressed.Load() == before {
		return fmt.Errorf("GetStatus answer was not gzip-compressed")
	}
	fmt.Printf("%s GetStatus: %s, state %s, rss %d bytes (gzip both ways)\n",
		name, st.GetService(), st.GetState(), st.GetProcessMemoryBytes())

	viaPeer, err := client.GetPeerStatus(ctx, &statusv1.GetPeerStatusRequest{})
	if err != nil {
		return fmt.Errorf("GetPeerStatus: %w", err)
	}
	if viaPeer.GetStatus().GetService() != peer {
		return fmt.Errorf("GetPeerStatus answered %q", viaPeer.GetStatus().GetService())
	}
	fmt.Printf("%s GetPeerStatus: %s at %s in %v\n", name, peer,
		viaPeer.GetPeerAddress(), viaPeer.GetLatency().AsDuration())

	if err := watchThree(ctx, client, name); err != nil {
		return err
	}

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("Health/Check: %v %v", health.GetStatus(), err)
	}
	fmt.Printf("%s Health/Check: %s\n", name, health.GetStatus())

	bad := &statusv1.WatchStatusRequest{Interval: durationpb.New(time.Microsecond)}
	stream, err := client.WatchStatus(ctx, bad)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("WatchStatus(1us) gave %v, want INVALID_ARGUMENT", err)
	}
	fmt.Printf("%s WatchStatus(1us): INVALID_ARGUMENT: %s\n", name, status.Convert(err).Message())
	return nil
}

// watchThree reads three WatchStatus messages, then cancels the stream.
func watchThree(ctx context.Context, client statusv1.StatusServiceClient, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	request := &statusv1.WatchStatusRequest{Interval: durationpb.New(100 * time.Millisecond)}
	stream, err := client.WatchStatus(ctx, request)
	if err != nil {
		return fmt.Errorf("WatchStatus: %w", err)
	}
	for i := 0; i < 3; i++ {
		message, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("WatchStatus message %d: %w", i+1, err)
		}
		if message.GetStatus().GetService() != name {
			return fmt.Errorf("WatchStatus message from %q", message.GetStatus().GetService())
		}
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		return fmt.Errorf("after cancel the stream gave %v, want CANCELED", err)
	}
	fmt.Printf("%s WatchStatus: 3 messages, then cancelled\n", name)
	return nil
}
