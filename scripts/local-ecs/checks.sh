# shellcheck shell=bash
# The functional checks of `scripts/local-ecs.sh test`: REST through the load
# balancer, per-request balancing, grpcurl from the toolbox, TLS 1.3 between
# tasks and no plaintext on the bridge. Each fails the test (lecs_die) on the
# first wrong answer and records a line for the summary (lecs_result).
# Sourced by scripts/local-ecs.sh.

# Requests of the balancing check: enough that a per-connection balancer
# (all on one replica) cannot pass by chance (2^-19).
LECS_BALANCING_REQUESTS=20
# WatchStatus: messages every 200 ms for 1.5 s must give at least this many.
LECS_WATCH_INTERVAL=0.2s
LECS_WATCH_SECONDS=1.5
LECS_WATCH_MIN_MESSAGES=4

# lecs_alb_curl ARGS...: curl to the load balancer, trusting the local CA.
lecs_alb_curl() { curl -s --max-time 5 --cacert "$(lecs_ca_file)" "$@"; }

# lecs_is_task_of SERVICE HOSTNAME: HOSTNAME is one of SERVICE's tasks.
lecs_is_task_of() { [[ " ${LECS_SERVICE_TASKS[$1]} " == *" $2 "* ]]; }

# lecs_expect_json FILE JQ_FILTER WANT WHAT: the filter's value is WANT.
lecs_expect_json() {
  local got
  got=$(jq -r "$2" "$1" 2>/dev/null) || got="(not JSON: $(head -c 200 "$1"))"
  [ "$got" = "$3" ] || lecs_die "$4: got '$got', want '$3'"
}

lecs_check_rest_via_alb() {
  local flag want_version service peer route code version body requests=0 host
  body=$(lecs_dir alb)/body
  lecs_log "REST through the load balancer, HTTP/1.1 and HTTP/2"
  for flag in --http1.1 --http2; do
    want_version=$([ "$flag" = --http1.1 ] && echo 1.1 || echo 2)
    for service in service-a service-b; do
      peer=${LECS_PEER[$service]}
      for route in healthcheck status other-status; do
        read -r code version < <(lecs_alb_curl "$flag" -o "$body" -w '%{http_code} %{http_version}\n' \
          "$(lecs_alb_url)/$service/$route")
        requests=$((requests + 1))
        [ "$code" = 200 ] || lecs_die "$flag /$service/$route answered $code: $(head -c 300 "$body")"
        [ "$version" = "$want_version" ] || lecs_die "$flag /$service/$route spoke HTTP/$version"
        case $route in
          healthcheck) lecs_expect_json "$body" .status SERVING "/$service/healthcheck" ;;
          status)
            lecs_expect_json "$body" .service "$service" "/$service/status"
            host=$(jq -r .hostname "$body")
            lecs_is_task_of "$service" "$host" || lecs_die "/$service/status answered from '$host'"
            ;;
          other-status)
            lecs_expect_json "$body" .status.service "$peer" "/$service/other-status"
            lecs_expect_json "$body" .peer_address "http://$(lecs_alias "$peer"):${LECS_PORT[$peer]}" \
              "/$service/other-status peer_address"
            host=$(jq -r .status.hostname "$body")
            lecs_is_task_of "$peer" "$host" || lecs_die "/$service/other-status answered by '$host'"
            ;;
        esac
        printf '  HTTP/%-3s %s /%s/%s -> %s\n' "$version" "$code" "$service" "$route" "${host:-SERVING}"
        host=
      done
    done
  done
  # Anything else: the listener's fixed 404; port 80: redirect to HTTPS.
  code=$(lecs_alb_curl -o "$body" -w '%{http_code}' "$(lecs_alb_url)/service-c/status")
  [ "$code" = 404 ] || lecs_die "/service-c/status answered $code, want the listener's 404"
  lecs_expect_json "$body" .error "not found" "the listener's 404"
  read -r code host < <(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{redirect_url}\n' \
    "http://${LECS_ADDR[alb]}/service-a/status")
  [ "$code" = 301 ] && [ "$host" = "$(lecs_alb_url)/service-a/status" ] ||
    lecs_die "port 80 answered $code $host, want 301 to HTTPS"
  lecs_result "REST via ALB: 6 paths x HTTP/1.1, HTTP/2" "$((requests + 2))" 0 \
    "200 from the right service; 404 elsewhere; :80 -> 301"
}

# lecs_span TASK TRACE_ID KIND FIELD: FIELD of the span of that kind (2
# SERVER, 3 CLIENT) in that trace, as the task's collector received it.
lecs_span() {
  jq -r --arg trace "$2" --argjson kind "$3" \
    ".resourceSpans[].scopeSpans[].spans[] | select(.traceId == \$trace and .kind == \$kind) | $4" \
    "$(lecs_dir "$1")/spans.jsonl" 2>/dev/null | head -n1
}
lecs_has_span() { [ -n "$(lecs_span "$1" "$2" "$3" .spanId)" ]; }

# One trace across the Service Connect TLS hop: a request through the load
# balancer with a sampled traceparent gives service-a's SERVER and CLIENT
# spans in task-a's collector and the answering B replica's SERVER span,
# the child of A's CLIENT span, in that replica's collector.
lecs_check_trace_across_the_hop() {
  local trace=4bf92f3577b34da6a3ce929d0e0e47aa caller=00f067aa0ba902b7 body code
  local a_server a_client host b_parent
  body=$(lecs_dir alb)/trace-body
  lecs_log "one trace across the TLS hop, in the tasks' collectors"
  code=$(lecs_alb_curl -o "$body" -w '%{http_code}' -H "traceparent: 00-$trace-$caller-01" \
    "$(lecs_alb_url)/service-a/other-status")
  [ "$code" = 200 ] || lecs_die "/service-a/other-status with a traceparent answered $code"
  host=$(jq -r .status.hostname "$body")
  lecs_is_task_of service-b "$host" || lecs_die "/service-a/other-status answered by '$host'"
  lecs_wait 15 "task-a's collector to receive A's CLIENT span" lecs_has_span task-a "$trace" 3 ||
    lecs_die "no CLIENT span of trace $trace in task-a's collector"
  lecs_wait 15 "$host's collector to receive B's SERVER span" lecs_has_span "$host" "$trace" 2 ||
    lecs_die "no SERVER span of trace $trace in $host's collector"
  a_server=$(lecs_span task-a "$trace" 2 .spanId)
  [ "$(lecs_span task-a "$trace" 2 .parentSpanId)" = "$caller" ] ||
    lecs_die "A's SERVER span's parent is not the caller's span"
  a_client=$(lecs_span task-a "$trace" 3 .spanId)
  [ "$(lecs_span task-a "$trace" 3 .parentSpanId)" = "$a_server" ] ||
    lecs_die "A's CLIENT span's parent is not A's SERVER span"
  b_parent=$(lecs_span "$host" "$trace" 2 .parentSpanId)
  [ "$b_parent" = "$a_client" ] || lecs_die "B's SERVER span's parent is $b_parent, not A's CLIENT span $a_client"
  printf '  trace %s: A SERVER %s -> A CLIENT %s -> %s SERVER (parent %s)\n' \
    "$trace" "$a_server" "$a_client" "$host" "$b_parent"
  lecs_result "one trace A -> B across the TLS hop" 1 0 \
    "A SERVER -> A CLIENT -> B SERVER, parents right"
}

# Service-a's app keeps one HTTP/2 connection to service-b-sc (its own
# proxy); both B replicas answering over it proves per-request balancing.
# The client side is one connection too (curl reuses it for a URL glob).
lecs_check_per_request_balancing() {
  local path out connects b1 b2
  out=$(lecs_dir alb)/balancing
  lecs_log "per-request balancing over one connection: $LECS_BALANCING_REQUESTS requests"
  for path in /service-a/other-status /service-b/status; do
    lecs_alb_curl --http2 -w '\t%{http_code}\t%{num_connects}\n' \
      "$(lecs_alb_url)$path?n=[1-$LECS_BALANCING_REQUESTS]" >"$out"
    awk -F'\t' '$2 != 200 { bad++ } END { exit bad > 0 }' "$out" ||
      lecs_die "$path: not every answer was 200: $(grep -v "$(printf '\t200\t')" "$out" | head -n 3)"
    connects=$(awk -F'\t' '{ n += $3 } END { print n }' "$out")
    b1=$(grep -c '"hostname":"task-b1"' "$out" || true)
    b2=$(grep -c '"hostname":"task-b2"' "$out" || true)
    printf '  %s: task-b1 %s, task-b2 %s, client connections %s\n' "$path" "$b1" "$b2" "$connects"
    [ "$((b1 + b2))" = "$LECS_BALANCING_REQUESTS" ] || lecs_die "$path: $((b1 + b2)) answers from B replicas"
    ((b1 > 0 && b2 > 0)) || lecs_die "$path: one replica answered everything (per-connection balancing?)"
    [ "$connects" = 1 ] || lecs_die "$path: curl opened $connects connections, the check needs one"
  done
  lecs_result "per-request balancing (A->B and ALB->B)" $((2 * LECS_BALANCING_REQUESTS)) 0 \
    "last run: task-b1 $b1, task-b2 $b2 over one connection"
}

# grpcurl in the toolbox, plaintext to the -sc names, as ECS Exec runs it.
lecs_toolbox_grpcurl() { ip netns exec toolbox grpcurl -plaintext -max-time 5 "$@"; }

lecs_check_grpcurl_from_toolbox() {
  local service peer target out err calls=0 messages
  out=$(lecs_dir toolbox)/grpcurl.out
  err=$(lecs_dir toolbox)/grpcurl.err
  lecs_log "grpcurl from the toolbox through its own proxy"
  for service in service-b service-a; do
    peer=${LECS_PEER[$service]}
    target=$(lecs_alias "$service"):${LECS_PORT[$service]}
    lecs_toolbox_grpcurl "$target" list >"$out" || lecs_die "grpcurl $target list failed"
    for want in scdemo.status.v1.StatusService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
      grep -qx "$want" "$out" || lecs_die "grpcurl $target list lacks $want: $(tr '\n' ' ' <"$out")"
    done
    lecs_toolbox_grpcurl "$target" describe scdemo.status.v1.StatusService >"$out" ||
      lecs_die "grpcurl $target describe StatusService failed"
    grep -q 'rpc WatchStatus' "$out" || lecs_die "describe StatusService: $(head -c 300 "$out")"
    lecs_toolbox_grpcurl "$target" describe grpc.health.v1.Health >"$out" ||
      lecs_die "grpcurl $target describe Health failed"
    grep -q 'rpc Check' "$out" || lecs_die "describe Health: $(head -c 300 "$out")"
    lecs_toolbox_grpcurl "$target" scdemo.status.v1.StatusService/GetStatus >"$out" ||
      lecs_die "grpcurl $target GetStatus failed"
    lecs_expect_json "$out" .status.service "$service" "grpcurl $target GetStatus"
    lecs_is_task_of "$service" "$(jq -r .status.hostname "$out")" || lecs_die "GetStatus from a stranger"
    lecs_toolbox_grpcurl "$target" scdemo.status.v1.StatusService/GetPeerStatus >"$out" ||
      lecs_die "grpcurl $target GetPeerStatus failed"
    lecs_expect_json "$out" .status.service "$peer" "grpcurl $target GetPeerStatus"
    lecs_expect_json "$out" .peerAddress "http://$(lecs_alias "$peer"):${LECS_PORT[$peer]}" "GetPeerStatus peerAddress"
    lecs_toolbox_grpcurl "$target" grpc.health.v1.Health/Check >"$out" || lecs_die "grpcurl $target Health/Check failed"
    lecs_expect_json "$out" .status SERVING "grpcurl $target Health/Check"
    # A server stream through both proxies; it ends at grpcurl's deadline.
    if ip netns exec toolbox grpcurl -plaintext -max-time "$LECS_WATCH_SECONDS" \
      -d "{\"interval\":\"$LECS_WATCH_INTERVAL\"}" "$target" scdemo.status.v1.StatusService/WatchStatus \
      >"$out" 2>"$err"; then
      lecs_die "WatchStatus on $target ended by itself"
    fi
    grep -q DeadlineExceeded "$err" || lecs_die "WatchStatus on $target failed: $(head -c 300 "$err")"
    messages=$(jq -r .status.service "$out" | grep -cx "$service" || true)
    ((messages >= LECS_WATCH_MIN_MESSAGES)) ||
      lecs_die "WatchStatus on $target gave $messages messages in ${LECS_WATCH_SECONDS}s"
    printf '  %s: list, describe x2, GetStatus, GetPeerStatus (-> %s), Health/Check SERVING, WatchStatus %s messages\n' \
      "$target" "$peer" "$messages"
    calls=$((calls + 7))
  done
  lecs_result "grpcurl (toolbox) -> service-a-sc, -b-sc" "$calls" 0 \
    "list, describe, GetStatus, GetPeerStatus, WatchStatus, Health/Check"
}

# lecs_s_client NS ADDR:PORT NAME ARGS...: openssl s_client's one-screen
# summary, from namespace NS ("root": the root namespace, like the loads).
lecs_s_client() {
  local ns=$1 target=$2 name=$3 run=()
  shift 3
  [ "$ns" = root ] || run=(ip netns exec "$ns")
  "${run[@]}" timeout 5 openssl s_client -brief -connect "$target" -servername "$name" \
    -verify_hostname "$name" -verify_return_error "$@" </dev/null 2>&1
}

# The load balancer's listener policy, ELBSecurityPolicy-TLS13-1-2-Res-2021-06:
# TLS 1.3, or TLS 1.2 with ECDHE + AES-GCM only; nothing older.
lecs_check_alb_tls_policy() {
  local target=${LECS_ADDR[alb]}:443 name=alb.local-ecs out ca
  ca=$(lecs_ca_file)
  lecs_log "the load balancer's TLS policy"
  out=$(lecs_s_client root "$target" "$name" -CAfile "$ca") || lecs_die "TLS to the ALB failed: $out"
  grep -q '^Protocol version: TLSv1.3' <<<"$out" || lecs_die "ALB: not TLS 1.3 by default: $out"
  out=$(lecs_s_client root "$target" "$name" -CAfile "$ca" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256) ||
    lecs_die "ALB refused TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256: $out"
  if out=$(lecs_s_client root "$target" "$name" -CAfile "$ca" -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256); then
    lecs_die "ALB accepted the CBC suite ECDHE-ECDSA-AES128-SHA256: $out"
  fi
  grep -q 'alert handshake failure' <<<"$out" || lecs_die "ALB, CBC suite: not refused by the ALB: $out"
  if out=$(lecs_s_client root "$target" "$name" -CAfile "$ca" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'); then
    lecs_die "ALB accepted TLS 1.1: $out"
  fi
  grep -q 'alert protocol version' <<<"$out" || lecs_die "ALB, TLS 1.1: not refused by the ALB: $out"
  printf '  %s: TLS 1.3 by default; TLS 1.2 only with ECDHE-GCM; TLS 1.1 and CBC suites refused\n' "$target"
  lecs_result "ALB listener TLS policy (s_client)" 4 0 "TLS13-1-2-Res: 1.3, 1.2 ECDHE-GCM; CBC and 1.1 refused"
}

# The hop between tasks: TLS 1.3 only, a certificate the local CA signed for
# the alias name, and nothing but TLS on the container port.
lecs_check_tls_between_tasks() {
  local task service name target out handshakes=0
  lecs_log "TLS between tasks (openssl s_client from a peer task)"
  for task in "${LECS_TASKS[@]}"; do
    service=${LECS_TASK_SERVICE[$task]}
    name=$(lecs_alias "$service")
    target=${LECS_ADDR[$task]}:${LECS_PORT[$service]}
    out=$(lecs_s_client toolbox "$target" "$name" -CAfile "$(lecs_ca_file)" -alpn h2) ||
      lecs_die "TLS to $task as $name failed: $out"
    grep -q '^Protocol version: TLSv1.3' <<<"$out" || lecs_die "$task: not TLS 1.3: $out"
    grep -q '^Verification: OK' <<<"$out" || lecs_die "$task: certificate not verified: $out"
    grep -q "^Verified peername: $name" <<<"$out" || lecs_die "$task: certificate not for $name: $out"
    printf '  %s (%s): %s, %s, verified as %s by the local CA\n' "$task" "$target" \
      "$(sed -n 's/^Protocol version: //p' <<<"$out")" "$(sed -n 's/^Ciphersuite: //p' <<<"$out")" "$name"
    if out=$(lecs_s_client toolbox "$target" "$name" -CAfile "$(lecs_ca_file)" -tls1_2); then
      lecs_die "$task accepted TLS 1.2: $out"
    fi
    grep -q 'alert protocol version' <<<"$out" || lecs_die "$task, TLS 1.2: not refused by its proxy: $out"
    if out=$(lecs_s_client toolbox "$target" "$name" -CAfile /etc/ssl/certs/ca-certificates.crt); then
      lecs_die "$task's certificate verified against the system CAs, not only the local CA: $out"
    fi
    grep -q 'unable to get local issuer certificate' <<<"$out" || lecs_die "$task, system CAs: $out"
    if ip netns exec toolbox grpcurl -plaintext -max-time 2 "$target" list >/dev/null 2>&1; then
      lecs_die "$task's container port answered plaintext gRPC: the proxy must own it"
    fi
    handshakes=$((handshakes + 4))
  done
  lecs_result "TLS on the container ports (s_client)" "$handshakes" 0 \
    "TLSv1.3 + local CA + alias name; TLS 1.2, other CAs, plaintext refused"
}

# A capture on the bridge while status crosses it (gRPC A->B, REST through
# service-b-sc, the ALB's hops) must hold none of the status's plaintext;
# the same capture on task-b1's loopback (proxy -> app, plaintext by design)
# must: that proves the search would have found it.
lecs_check_no_plaintext_on_bridge() {
  local bridge_pcap loop_pcap bridge_pid loop_pid marker packets found requests=0 i
  bridge_pcap=$(lecs_dir toolbox)/bridge.pcap
  loop_pcap=$(lecs_dir task-b1)/loopback.pcap
  lecs_log "capture on $LECS_BRIDGE and on task-b1's loopback"
  env "$LECS_MARKER=capture" tcpdump -Z root -U -n -i "$LECS_BRIDGE" -w "$bridge_pcap" tcp \
    2>"$bridge_pcap.log" &
  bridge_pid=$!
  LECS_BG_PIDS+=("$bridge_pid")
  ip netns exec task-b1 env "$LECS_MARKER=capture" tcpdump -Z root -U -n -i lo -w "$loop_pcap" \
    "tcp port ${LECS_PORT[service-b]}" 2>"$loop_pcap.log" &
  loop_pid=$!
  LECS_BG_PIDS+=("$loop_pid")
  lecs_wait 5 "tcpdump to listen" grep -q 'listening on' "$bridge_pcap.log" || lecs_die "tcpdump did not start"
  lecs_wait 5 "tcpdump to listen" grep -q 'listening on' "$loop_pcap.log" || lecs_die "tcpdump did not start"
  for i in 1 2 3 4 5 6 7 8; do
    lecs_alb_curl -o /dev/null "$(lecs_alb_url)/service-a/other-status?n=$i"
    ip netns exec toolbox curl -s --max-time 5 -o /dev/null "http://service-b-sc:8202/service-b/status?n=$i"
    lecs_toolbox_grpcurl service-b-sc:8202 scdemo.status.v1.StatusService/GetStatus >/dev/null
    requests=$((requests + 3))
  done
  sleep 0.5
  kill -INT "$bridge_pid" "$loop_pid"
  wait "$bridge_pid" "$loop_pid" 2>/dev/null || true
  packets=$(tcpdump -r "$bridge_pcap" -n "tcp port ${LECS_PORT[service-b]}" 2>/dev/null | wc -l)
  ((packets > 0)) || lecs_die "the bridge capture saw no packet to service-b's port"
  for marker in STATE_RUNNING '"hostname"' task-b1 task-b2 memory_percent; do
    found=$(grep -a -c -F "$marker" "$bridge_pcap" || true)
    [ "$found" = 0 ] || lecs_die "plaintext '$marker' on the bridge ($found packets)"
    grep -a -q -F "$marker" "$loop_pcap" || [ "$marker" = task-b2 ] ||
      lecs_die "control failed: '$marker' not found on task-b1's loopback, so the search proves nothing"
  done
  printf '  bridge: %s packets to :%s, no STATE_RUNNING/hostname/task-b1/task-b2/memory_percent; task-b1 loopback: all there\n' \
    "$packets" "${LECS_PORT[service-b]}"
  lecs_result "capture: no plaintext status on the bridge" "$requests" 0 \
    "$packets packets to :${LECS_PORT[service-b]} on $LECS_BRIDGE; control on task-b1 lo"
}

# down removes everything and a second down finds nothing to do.
lecs_check_down_leaves_nothing() {
  local left
  lecs_log "down, twice"
  lecs_down
  lecs_down
  left=$(lecs_leftovers)
  [ -z "$left" ] || lecs_die "left behind by down: $left"
  lecs_result "down (twice): nothing left" 0 0 "no namespace, lecs link, marked process, /etc/netns or $LECS_RUN"
}
