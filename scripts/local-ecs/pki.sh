# shellcheck shell=bash
# The local CA of the ECS stand-in: what AWS Private CA does for Service
# Connect TLS, with openssl. `up` creates a throwaway root and issues every
# task a short-lived certificate named like its service's discovery names;
# all of it lives under $LECS_RUN/pki and is never committed. Sourced by
# scripts/local-ecs.sh after common.sh.

lecs_pki_dir() { printf '%s/pki' "$LECS_RUN"; }

# EC P-256, as the Private CA's EC_prime256v1.
lecs_new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

lecs_pki_create_ca() {
  local dir
  dir=$(lecs_pki_dir)
  mkdir -m 700 "$dir"
  lecs_new_key "$dir/ca.key"
  openssl req -x509 -new -sha256 -key "$dir/ca.key" -days "$LECS_CA_DAYS" \
    -subj "/O=local-ecs/CN=local-ecs throwaway root CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem"
  install -m 644 "$dir/ca.pem" "$(lecs_ca_file)"
}

# lecs_pki_issue NAME SUBJECT_ALT_NAMES: NAME.pem holds the certificate then
# its key (the form HAProxy's `crt` loads), signed by the local CA.
lecs_pki_issue() {
  local name=$1 sans=$2 dir
  dir=$(lecs_pki_dir)
  lecs_new_key "$dir/$name.key"
  openssl req -new -sha256 -key "$dir/$name.key" -subj "/O=local-ecs/CN=$name" -out "$dir/$name.csr"
  openssl x509 -req -sha256 -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "$LECS_CERT_DAYS" -out "$dir/$name.crt" 2>/dev/null \
    -extfile <(printf '%s\n' \
      "subjectAltName=$sans" \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth")
  cat "$dir/$name.crt" "$dir/$name.key" >"$dir/$name.pem"
  rm -f "$dir/$name.csr" "$dir/$name.key"
}

# The root, one certificate per task with a service (each replica its own key,
# both named for the service: the client alias and the discovery name), and
# the load balancer's (ACM's job on AWS).
lecs_pki_up() {
  local task service
  lecs_pki_create_ca
  for task in "${LECS_TASKS[@]}"; do
    service=${LECS_TASK_SERVICE[$task]}
    lecs_pki_issue "$task" "DNS:$(lecs_alias "$service"),DNS:$service"
  done
  lecs_pki_issue alb "DNS:alb.local-ecs,IP:${LECS_ADDR[alb]}"
}
