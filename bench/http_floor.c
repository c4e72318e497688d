/*
 * The HTTP floor: a reference row for the benchmark. A bare evhttp server
 * on one event loop that answers the loadgen's workload itself (initialize
 * with a session id, notifications with 202, tools/call echo with its text),
 * parsing and writing JSON with jansson like the gateway, but with no
 * upstream, no checks and no routing. What it reaches on a machine is the
 * most any evhttp-based gateway could reach there with the same load
 * generator, so the gateway's row reads best as a fraction of it.
 *
 *   build/bench/http_floor PORT      (binds 127.0.0.1 only)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

static void
answer(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	if (s != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/json");
		evbuffer_add(b, s, strlen(s));
	}
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Accepted", b);
	evbuffer_free(b);
	free(s);
}

static void
handle(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_t *msg, *id, *res;
	const char *method;

	(void)arg;
	msg = json_loadb((const char *)evbuffer_pullup(in, -1), len,
	    JSON_REJECT_DUPLICATES, NULL);
	id = json_object_get(msg, "id");
	method = json_string_value(json_object_get(msg, "method"));
	if (msg == NULL || method == NULL) {
		evhttp_send_reply(req, 400, "Bad Request", NULL);
	} else if (id == NULL) {
		answer(req, 202, NULL);
	} else if (strcmp(method, "initialize") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Mcp-Session-Id", "floor");
		res = json_pack("{s:s, s:O, s:{s:s, s:{}, s:{s:s, s:s}}}",
		    "jsonrpc", "2.0", "id", id, "result", "protocolVersion",
		    "2025-11-25", "capabilities", "serverInfo", "name", "floor",
		    "version", "1");
		answer(req, 200, res);
		json_decref(res);
	} else {
		const char *text = json_string_value(json_object_get(
		    json_object_get(json_object_get(msg, "params"), "arguments"),
		    "text"));
		res = json_pack("{s:s, s:O, s:{s:[{s:s, s:s}]}}", "jsonrpc",
		    "2.0", "id", id, "result", "content", "type", "text", "text",
		    text ? text : "");
		answer(req, 200, res);
		json_decref(res);
	}
	json_decref(msg);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	char *end;
	long port;

	if (argc != 2 || (port = strtol(argv[1], &end, 10)) <= 0 ||
	    port > 65535 || *end != '\0') {
		fprintf(stderr, "usage: http_floor PORT\n");
		return 2;
	}
	base = event_base_new();
	http = base ? evhttp_new(base) : NULL;
	if (http == NULL || evhttp_bind_socket(http, "127.0.0.1",
	    (ev_uint16_t)port) != 0) {
		fprintf(stderr, "http_floor: cannot listen on 127.0.0.1:%ld\n",
		    port);
		return 1;
	}
	evhttp_set_gencb(http, handle, NULL);
	event_base_dispatch(base);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
