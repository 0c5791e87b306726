/**
 * The calls every TypeScript client makes against one service, over
 * whichever Connect-ES transport it is given: GetStatus, GetPeerStatus, a
 * WatchStatus stream of three messages then cancel, Health/Check, and a bad
 * interval that must fail with INVALID_ARGUMENT. Throws on the first failure.
 */
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ServiceStatus_State, StatusService } from "../gen/scdemo/status/v1/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";

/** Bounds every call, so a hung server fails the run instead of stalling it. */
export const CALL_TIMEOUT_MS = 5000;

/** What the caller wants checked in each answer's headers (compression, CORS). */
export type HeaderCheck = (headers: Headers, rpc: string) => void;

function fail(message: string): never {
  throw new Error(message);
}

export async function checkService(
  transport: Transport,
  name: string,
  peer: string,
  checkHeaders: HeaderCheck,
): Promise<void> {
  const client = createClient(StatusService, transport);
  const options = (rpc: string) => ({
    timeoutMs: CALL_TIMEOUT_MS,
    onHeader: (headers: Headers) => checkHeaders(headers, rpc),
  });

  const own = (await client.getStatus({}, options("GetStatus"))).status;
  if (own?.service !== name || own.state !== ServiceStatus_State.RUNNING) {
    fail(`${name}: GetStatus answered ${own?.service} in state ${own?.state}`);
  }
  console.log(`${name} GetStatus: ${own.service}, state RUNNING, rss ${own.processMemoryBytes} bytes`);

  const viaPeer = await client.getPeerStatus({}, options("GetPeerStatus"));
  if (viaPeer.status?.service !== peer) fail(`${name}: GetPeerStatus answered ${viaPeer.status?.service}`);
  console.log(`${name} GetPeerStatus: ${peer} at ${viaPeer.peerAddress}`);

  // Three messages, then cancel: leaving the loop aborts the call.
  const received: string[] = [];
  const watch = client.watchStatus({ interval: durationFromMs(100) }, options("WatchStatus"));
  for await (const message of watch) {
    received.push(message.status?.service ?? "");
    if (received.length === 3) break;
  }
  if (received.join() !== [name, name, name].join()) fail(`${name}: WatchStatus gave ${received}`);
  console.log(`${name} WatchStatus: 3 messages, then cancelled`);

  const health = await createClient(Health, transport).check({}, options("Health/Check"));
  if (health.status !== HealthCheckResponse_ServingStatus.SERVING) fail(`${name}: health ${health.status}`);
  console.log(`${name} Health/Check: SERVING`);

  try {
    for await (const _ of client.watchStatus({ interval: { seconds: 0n, nanos: 1000 } }, options("WatchStatus"))) {
      fail(`${name}: a 1us interval was accepted`);
    }
    fail(`${name}: a 1us interval ended without an error`);
  } catch (error) {
    const connectError = ConnectError.from(error);
    if (connectError.code !== Code.InvalidArgument) throw error;
    console.log(`${name} WatchStatus(1us): INVALID_ARGUMENT: ${connectError.rawMessage}`);
  }
}

/** Runs `checkService` on both services from the command line; exits 1 on failure. */
export async function main(label: string, transportFor: (address: string) => Transport, checkHeaders: HeaderCheck) {
  const [addressA, addressB] = process.argv.slice(2);
  if (!addressA || !addressB) {
    console.error(`usage: ${label} SERVICE_A_ADDRESS SERVICE_B_ADDRESS`);
    process.exit(2);
  }
  try {
    await checkService(transportFor(addressA), "service-a", "service-b", checkHeaders);
    await checkService(transportFor(addressB), "service-b", "service-a", checkHeaders);
  } catch (error) {
    console.error(`FAIL (${label}):`, error);
    process.exit(1);
  }
  console.log(`${label}: all rpcs OK`);
}
