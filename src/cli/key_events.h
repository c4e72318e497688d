/*
 * Key lifecycle events into the audit log. The `keys` CLI runs as another
 * process and cannot append to the log's chain, so it leaves each event in
 * the key store (events table); the gateway copies them into its audit log
 * at start and then once a second, and a store cursor remembers how far it
 * got: an event made while the gateway was down is recorded when it next
 * starts, and one the log could not take is offered again (never lost,
 * at worst recorded twice after a crash between the write and the cursor
 * update).
 */
#ifndef PC_CLI_KEY_EVENTS_H
#define PC_CLI_KEY_EVENTS_H

struct event_base;
struct pc_store;
struct pc_audit;
struct pc_key_events;

/* Start copying (first pass now). st and a are borrowed and must outlive
 * the copier. 0, PC_E_NOMEM. */
int pc_key_events_start(struct event_base *base, struct pc_store *st,
    struct pc_audit *a, struct pc_key_events **out);
/* One last pass, then stop. Accepts NULL. */
void pc_key_events_free(struct pc_key_events *k);

#endif
