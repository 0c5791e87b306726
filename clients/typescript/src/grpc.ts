/**
 * gRPC client (Connect-ES createGrpcTransport: HTTP/2, as Node services call
 * gRPC) with gzip both ways. Run: npm run grpc -- 127.0.0.1:8201 127.0.0.1:8202
 */
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { main } from "./checks.js";

await main(
  "typescript grpc client",
  (address) =>
    createGrpcTransport({
      baseUrl: `http://${address}`,
      sendCompression: compressionGzip,
      acceptCompression: [compressionGzip],
    }),
  (headers, rpc) => {
    // The server compressed its answer, as asked.
    if (headers.get("grpc-encoding") !== "gzip") {
      throw new Error(`${rpc}: answer encoding ${headers.get("grpc-encoding")}, want gzip`);
    }
  },
);
