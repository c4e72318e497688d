/* Internals shared by the files of src/http. */
#ifndef PC_HTTP_INT_H
#define PC_HTTP_INT_H

#include <jansson.h>

#include "../config/config.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct pc_router;
struct pc_exchange;

struct pc_http {
	struct event_base *base;
	const struct pc_config *cfg;
	struct pc_router *router;
	struct evhttp *mcp;
	struct evhttp *admin;
	struct evhttp_bound_socket *mcp_sock;
	struct evhttp_bound_socket *admin_sock;
	struct pc_exchange *exchanges;	/* requests being answered */
	struct event *sweep;		/* arms EOF watches, see http.c */
	unsigned active;
};

void pc_http_send_json(struct evhttp_request *req, int status, json_t *body,
    const char *session_id);
void pc_http_send_error(struct evhttp_request *req, int status, json_t *id,
    int code, const char *msg);
const char *pc_http_reason(int status);
void pc_http_too_many(struct evhttp_request *req, json_t *id, int rc);

/* Bind `http` to the listen address, log it. 0, PC_E_IO, PC_E_CONFIG. */
int pc_http_bind(struct pc_http *h, struct evhttp *http,
    const struct pc_listen_conf *l, const char *name,
    struct evhttp_bound_socket **out);

/* admin.c */
int pc_admin_start(struct pc_http *h);
void pc_admin_apply(struct pc_http *h);

#endif
