/**
 * gRPC-Web client, as a browser runs it: Connect-ES createGrpcWebTransport
 * from @connectrpc/connect-web, over fetch (HTTP/1.1), with an Origin header
 * so the CORS answer is checked too. Run:
 * npm run grpc-web -- 127.0.0.1:8201 127.0.0.1:8202
 */
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { main } from "./checks.js";

/** A page's origin: the server must allow it (CORS) for a browser to read answers. */
const ORIGIN = "https://status-page.example";

const fromPage: Interceptor = (next) => async (request) => {
  request.header.set("origin", ORIGIN);
  return next(request);
};

await main(
  "typescript grpc-web client",
  (address) => createGrpcWebTransport({ baseUrl: `http://${address}`, interceptors: [fromPage] }),
  (headers, rpc) => {
    const type = headers.get("content-type") ?? "";
    if (!type.startsWith("application/grpc-web")) throw new Error(`${rpc}: content-type ${type}`);
    const allowed = headers.get("access-control-allow-origin");
    if (allowed !== "*" && allowed !== ORIGIN) throw new Error(`${rpc}: CORS allows ${allowed}`);
  },
);
