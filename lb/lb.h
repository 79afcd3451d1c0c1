#ifndef LB_LB_H
#define LB_LB_H

#include "lb/lb-t.h"

/* server.c */
int lb_server_run(const char *conf_path, struct conf *conf);

/* worker.c */
int lb_worker_start(struct lb_worker *w);
void lb_worker_session_gone(struct lb_worker *w);
void lb_worker_command(struct lb_worker *w, unsigned cmd);
void lb_worker_publish_snapshot(struct lb_worker *w, struct ups_snapshot *snap);

/* session.c */
void lb_session_start(struct lb_worker *w, struct lb_wlistener *l, int fd,
                      const struct sockaddr *sa, socklen_t salen);
void lb_session_close(struct lb_session *s, const char *reason);
/* Used by the RTMP front door (frontdoor.c). */
void lb_session_dial(struct lb_session *s);
/* Move client->upstream bytes; false if the session closed. */
bool lb_session_pump_c2u(struct lb_session *s);
/* Both directions spliced from now on (c2u keeps its state if active). */
void lb_session_splice(struct lb_session *s, bool fresh);
void lb_session_set_poll(uv_poll_t *h, int *cur, int want, uv_poll_cb cb);
uint64_t lb_session_handshake_ms(struct lb_session *s);
/* Microseconds since accept. */
uint64_t lb_session_age_us(const struct lb_session *s);
void lb_session_passive_failure(struct lb_session *s, struct ups_node *n, const char *why);
/* Fills req's geo fields from the client's address (and s->country). */
void lb_session_geo(struct lb_session *s, struct ups_request *req);
/* A PROXY header for the node s dials, if it wants one; 0 if not. */
size_t lb_session_proxy_header(struct lb_session *s, uint8_t *out, size_t cap);

/* frontdoor.c */
void lb_rtmp_start(struct lb_session *s);
void lb_rtmp_upstream_connected(struct lb_session *s);
void lb_rtmp_dials_failed(struct lb_session *s);
void lb_rtmp_free(struct lb_session *s);

/* pipepool.c */
void lb_pipepool_init(struct lb_pipepool *pp, size_t max_live, size_t max_idle);
bool lb_pipe_get(struct lb_pipepool *pp, struct lb_pipe *out);
/* Back to the pool: empty=false means bytes may be left in it: closed. */
void lb_pipe_put(struct lb_pipepool *pp, struct lb_pipe *p, bool empty);
void lb_pipepool_destroy(struct lb_pipepool *pp);

/* netutil.c */
int lb_listen_socket(const struct sockaddr *sa, socklen_t len, int *err);
void lb_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);
uint64_t lb_now_ms(void);

#endif
