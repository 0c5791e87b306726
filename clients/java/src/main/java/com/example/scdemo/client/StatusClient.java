package com.example.scdemo.client;

import com.example.scdemo.status.v1.GetPeerStatusRequest;
import com.example.scdemo.status.v1.GetPeerStatusResponse;
import com.example.scdemo.status.v1.GetStatusRequest;
import com.example.scdemo.status.v1.ServiceStatus;
import com.example.scdemo.status.v1.StatusServiceGrpc;
import com.example.scdemo.status.v1.WatchStatusRequest;
import com.example.scdemo.status.v1.WatchStatusResponse;
import com.google.protobuf.Duration;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Calls service-a and service-b over gRPC with gzip: GetStatus,
 * GetPeerStatus, a WatchStatus stream of three messages then cancel,
 * Health/Check, and a bad WatchStatus interval that must fail with
 * INVALID_ARGUMENT. Exits 1 on the first failure.
 */
public final class StatusClient {
  /** Bounds every call, so a hung server fails the run instead of stalling it. */
  private static final long CALL_TIMEOUT_SECONDS = 5;

  private static final Metadata.Key<String> GRPC_ENCODING =
      Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER);

  private StatusClient() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 2) {
      System.err.println("usage: StatusClient SERVICE_A_ADDRESS SERVICE_B_ADDRESS");
      System.exit(2);
    }
    try {
      check("service-a", args[0], "service-b");
      check("service-b", args[1], "service-a");
    } catch (RuntimeException e) {
      System.err.println("FAIL: " + e);
      System.exit(1);
    }
    System.out.println("java client: all rpcs OK");
  }

  private static void require(boolean condition, String message) {
    if (!condition) {
      throw new IllegalStateException(message);
    }
  }

  private static void check(String name, String address, String peer) throws InterruptedException {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(address).usePlaintext().build();
    try {
      AtomicReference<Metadata> headers = new AtomicReference<>();
      AtomicReference<Metadata> trailers = new AtomicReference<>();
      // gzip on every request; grpc-java accepts gzip answers by default.
      StatusServiceGrpc.StatusServiceBlockingStub stub =
          StatusServiceGrpc.newBlockingStub(channel)
              .withCompression("gzip")
              .withInterceptors(MetadataUtils.newCaptureMetadataInterceptor(headers, trailers));

      ServiceStatus own = deadline(stub).getStatus(GetStatusRequest.getDefaultInstance()).getStatus();
      require(own.getService().equals(name), name + ": GetStatus names " + own.getService());
      require(own.getState() == ServiceStatus.State.STATE_RUNNING, name + ": state " + own.getState());
      require("gzip".equals(headers.get().get(GRPC_ENCODING)),
          name + ": answer encoding " + headers.get().get(GRPC_ENCODING));
      System.out.printf("%s GetStatus: %s, state %s, rss %d bytes (gzip both ways)%n",
          name, own.getService(), own.getState(), own.getProcessMemoryBytes());

      GetPeerStatusResponse viaPeer = deadline(stub).getPeerStatus(GetPeerStatusRequest.getDefaultInstance());
      require(viaPeer.getStatus().getService().equals(peer),
          name + ": GetPeerStatus answered " + viaPeer.getStatus().getService());
      System.out.printf("%s GetPeerStatus: %s at %s%n", name, peer, viaPeer.getPeerAddress());

      watchThree(stub, name);

      HealthCheckResponse health = HealthGrpc.newBlockingStub(channel)
          .withCompression("gzip")
          .withDeadlineAfter(CALL_TIMEOUT_SECONDS, TimeUnit.SECONDS)
          .check(HealthCheckRequest.getDefaultInstance());
      require(health.getStatus() == HealthCheckResponse.ServingStatus.SERVING, name + ": health " + health.getStatus());
      System.out.printf("%s Health/Check: SERVING%n", name);

      WatchStatusRequest bad = WatchStatusRequest.newBuilder()
          .setInterval(Duration.newBuilder().setNanos(1000))
          .build();
      try {
        deadline(stub).watchStatus(bad).hasNext();
        throw new IllegalStateException(name + ": a 1us interval was accepted");
      } catch (StatusRuntimeException e) {
        require(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT, name + ": bad interval gave " + e.getStatus());
        System.out.printf("%s WatchStatus(1us): INVALID_ARGUMENT: %s%n", name, e.getStatus().getDescription());
      }
    } finally {
      channel.shutdownNow().awaitTermination(CALL_TIMEOUT_SECONDS, TimeUnit.SECONDS);
    }
  }

  private static StatusServiceGrpc.StatusServiceBlockingStub deadline(StatusServiceGrpc.StatusServiceBlockingStub stub) {
    return stub.withDeadlineAfter(CALL_TIMEOUT_SECONDS, TimeUnit.SECONDS);
  }

  /** Reads three WatchStatus messages, then cancels the call through its context. */
  private static void watchThree(StatusServiceGrpc.StatusServiceBlockingStub stub, String name) {
    WatchStatusRequest request = WatchStatusRequest.newBuilder()
        .setInterval(Duration.newBuilder().setNanos(100_000_000))
        .build();
    try (Context.CancellableContext call = Context.current().withCancellation()) {
      Context previous = call.attach();
      try {
        Iterator<WatchStatusResponse> stream = deadline(stub).watchStatus(request);
        for (int i = 0; i < 3; i++) {
          String from = stream.next().getStatus().getService();
          require(from.equals(name), name + ": WatchStatus message from " + from);
        }
      } finally {
        call.detach(previous);
      }
      call.cancel(null);
    }
    System.out.printf("%s WatchStatus: 3 messages, then cancelled%n", name);
  }
}
