/* The session core (DESIGN.md "Inside lb/"): one owner for a session's
 * sockets, polls, timer, both directions, its state and its access-log
 * line. Phases (lb/front/) decide what to do with the bytes before the
 * hand-over; transports (lb/xprt/) move them. */
#ifndef LB_SESSION_SESSION_H
#define LB_SESSION_SESSION_H

#include "lb/session/session-t.h"

/* Takes fd (a connected, non-blocking client socket). */
void lb_session_start(struct lb_shost *h, const struct lb_listen_info *l, int fd,
                      const struct sockaddr *sa, socklen_t salen);
/* Ends a session now (worker: shutdown, drain deadline). */
void lb_session_end(struct lb_session *s, enum lb_reason r);
/* The operator closes node n's sessions (disabled, close_after): a
 * session on it ends with r; one that only dialled it early, before its
 * client's command, just lets that leg go and routes on the command.
 * true: the session ended. */
bool lb_session_close_on_node(struct lb_session *s, enum lb_reason r);

/* dialq.c: closes the worker's dial-queue tick (at exit). */
void lb_dialq_close(struct lb_shost *h);

/* pipepool.c */
void lb_pipepool_init(struct lb_pipepool *pp, size_t max_live, size_t max_idle);
bool lb_pipe_get(struct lb_pipepool *pp, struct lb_pipe *out);
/* Back to the pool: empty=false means bytes may be left in it: closed. */
void lb_pipe_put(struct lb_pipepool *pp, struct lb_pipe *p, bool empty);
void lb_pipepool_destroy(struct lb_pipepool *pp);

#endif
