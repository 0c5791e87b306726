#!/usr/bin/env bash
# The client generation recipe, as a user runs it: installs the pinned
# generators, then generates every client's stubs from proto/ into
# clients/<language>/gen/ (not committed).
#
#   bash clients/generate.sh
#
# Needs: Go, Node + npm, Java + Maven, Python 3. Tools go into
# clients/.tools/ and clients/typescript/node_modules/ (both not committed).
# - Go, TypeScript, Java: `buf generate` with buf.gen.yaml (local plugins
#   only): protoc-gen-go and protoc-gen-go-grpc (go install), protoc-gen-es
#   (npm), protoc and protoc-gen-grpc-java (Maven Central executables).
# - Python: grpcio-tools' own protoc (python -m grpc_tools.protoc), pinned
#   with the grpcio runtime in clients/python/requirements.txt, so stubs and
#   runtime always match; grpcio ships no protoc plugin for buf to call.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_VERSION=4.33.4           # = protobuf-java in clients/java/pom.xml
GRPC_JAVA_VERSION=1.83.1        # = grpc.version in clients/java/pom.xml
# Bounds each download step (a registry that hangs fails the run).
STEP_TIMEOUT=300

tools=$(pwd)/clients/.tools
mkdir -p "$tools/bin"

echo "== generators"
# buf and protoc-gen-es, pinned in clients/typescript/package-lock.json.
timeout "$STEP_TIMEOUT" npm ci --prefix clients/typescript --no-audit --no-fund --silent
GOBIN="$tools/bin" timeout "$STEP_TIMEOUT" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOBIN="$tools/bin" timeout "$STEP_TIMEOUT" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
maven_executable() { # GROUP ARTIFACT VERSION: a protoc or plugin executable from Maven Central
  timeout "$STEP_TIMEOUT" mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$1:$2:$3:exe:linux-x86_64" -Dmdep.stripVersion=true -Dmdep.stripClassifier=true \
    -DoutputDirectory="$tools/maven"
  install -m 755 "$tools/maven/$2.exe" "$tools/bin/$2"
}
maven_executable com.google.protobuf protoc "$PROTOC_VERSION"
maven_executable io.grpc protoc-gen-grpc-java "$GRPC_JAVA_VERSION"
python3 -m venv clients/python/.venv
timeout "$STEP_TIMEOUT" clients/python/.venv/bin/pip install --quiet --disable-pip-version-check \
  -r clients/python/requirements.txt

echo "== buf generate (Go, TypeScript, Java)"
PATH="$tools/bin:$(pwd)/clients/typescript/node_modules/.bin:$PATH" buf generate

echo "== grpc_tools.protoc (Python)"
rm -rf clients/python/gen && mkdir -p clients/python/gen
clients/python/.venv/bin/python -m grpc_tools.protoc -I proto \
  --python_out=clients/python/gen --pyi_out=clients/python/gen --grpc_python_out=clients/python/gen \
  scdemo/status/v1/status.proto

echo "generated: $(find clients/*/gen -type f | wc -l) files in clients/{go,typescript,java,python}/gen"
