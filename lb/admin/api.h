/* The admin API wired into the process (INTERFACE.md "Admin HTTP API"):
 * the route table, its handlers on the control loop, requests to the
 * workers for live sessions, overrides and their drain deadlines. */
#ifndef LB_ADMIN_API_H
#define LB_ADMIN_API_H

#include <stddef.h>

struct lb_server;
struct lb_control_ops;

/* Starts the admin server when the config has an admin section (token
 * from admin.token_file). 0, or -1 with why in err. */
int lb_admin_start(struct lb_server *srv, char *err, size_t errlen);
/* A reload switched srv->conf: new token (NULL = none) and public_read;
 * drain deadlines are rescheduled. No-op without an admin server. */
void lb_admin_reloaded(struct lb_server *srv, const char *token);
/* Closes the server (stop). */
void lb_admin_stop(struct lb_server *srv);
/* The three above, for lb_proc_run. */
extern const struct lb_control_ops lb_admin_control;
/* The overrides changed (start, API): (re)arm the drain deadline timer. */
void lb_admin_schedule_drains(struct lb_server *srv);

#endif
